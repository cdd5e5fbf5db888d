"""The lab's settings as plain data: the prompt, the LoRA shape, the two presets, the rules for their values, and
what a passing run shows.

Shared by `rlhf_helpers` (which runs the lab) and `grading` (which checks a run and must stay light to import), so it
imports nothing heavy.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
TINY_DIR = ROOT / "checkpoints" / "tiny"  # the tiny preset's files, shipped with the lab (MANIFEST.json: their SHA-256)
# Label names that mean "not hate" in a hate-speech classifier's id2label.
NOT_HATE_NAMES = ("nothate", "not_hate", "not-hate", "not hate", "nonhate", "non-hate", "non_hate")
PROMPT_TEMPLATE = "Summarize the following conversation.\n\n{dialogue}\n\nSummary:\n"
# The lecture's LoRA adapter shape (Lab 2), used for the Lab 2 adapter and for the fresh PPO adapter.
LAB2_LORA = dict(r=32, lora_alpha=32, target_modules=["q", "v"], lora_dropout=0.05, bias="none",
                 task_type="SEQ_2_SEQ_LM")
# Settings that name a model, an adapter or a data set (a Hub id, or a folder of the lab's checkout).
SOURCE_KEYS = ("model_name", "adapter_dir", "toxicity_model_name", "dataset_name")


def relative_to_lab(settings: dict) -> dict:
    """`settings` with each folder of the lab's checkout written relative to it: the same on every machine."""
    def relative(value):
        is_ours = isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(ROOT)
        return Path(value).relative_to(ROOT).as_posix() if is_ours else value
    return {k: relative(v) if k in SOURCE_KEYS else v for k, v in settings.items()}

_LECTURE = dict(
    input_min_text_length=200, input_max_text_length=1000,
    learning_rate=1.41e-5, ppo_epochs=1, mini_batch_size=4, batch_size=16, max_ppo_steps=10,
    output_min_length=100, output_max_length=400,
    generation_kwargs={"min_length": 5, "top_k": 0.0, "top_p": 1.0, "do_sample": True},
    # 4 texts at a time, in the batch's length order (see `collator`), pad less than the lecture's 16 at once
    # (benchmarks/README.md). `truncation`: a 1000-character dialogue plus a 400-token summary is longer than the
    # classifier's 512 positions; the tokenizer cuts each text at its `model_max_length`.
    reward_kwargs={"top_k": None, "function_to_apply": "none", "batch_size": 4, "truncation": True},
    # The lecture measured 10 summaries; on barely toxic DialogSum their CI says almost nothing, so 200 are scored.
    num_eval_samples=200, eval_max_new_tokens=100, init_kl_coef=0.2, seed=42,
    dtype="bfloat16",  # the lecture's; halves the memory of the frozen weights (LoRA and value head stay float32);
    # `resolve_dtype` falls back to float32 where the hardware has no fast bfloat16
)
PRESETS = {
    "full": dict(
        _LECTURE,
        model_name="google/flan-t5-base",
        adapter_dir=str(ROOT / "checkpoints" / "peft-dialogue-summary-checkpoint"),
        missing_adapter="warn",
        toxicity_model_name="facebook/roberta-hate-speech-dynabench-r4-target",
        dataset_name="knkarthick/dialogsum",
    ),
    "tiny": dict(
        _LECTURE,
        model_name=str(TINY_DIR / "flan-t5"),
        adapter_dir=str(TINY_DIR / "peft-dialogue-summary-checkpoint"),
        missing_adapter="error",
        toxicity_model_name=str(TINY_DIR / "roberta-hate"),
        dataset_name=str(TINY_DIR / "dialogsum"),
        # Chosen over seeds 42, 1 and 2: tiny_world/README.md has the trials, and what they give on the shipped build.
        learning_rate=2e-4, ppo_epochs=2, mini_batch_size=16, batch_size=64, max_ppo_steps=100,
        output_min_length=30, output_max_length=50, num_eval_samples=600, eval_max_new_tokens=50,
        dtype="float32",
    ),
}

# What each setting may be, checked before anything loads (`rlhf_helpers.check_settings`): its type, and for numbers
# the smallest (`min`) and largest (`max`) value allowed, `above` for a bound it must exceed, or the `choices`.
_WHOLE, _NUMBER, _TEXT, _OPTIONS = "a whole number", "a number", "a text", "a dictionary of keyword arguments"
SETTING_KINDS = {_WHOLE: int, _NUMBER: (int, float), _TEXT: str, _OPTIONS: dict}  # the Python types of each kind
SETTING_RULES = {
    "input_min_text_length": dict(type=_WHOLE, min=0),
    "input_max_text_length": dict(type=_WHOLE, min=1),
    "learning_rate": dict(type=_NUMBER, above=0, max=1),
    "ppo_epochs": dict(type=_WHOLE, min=1),
    "mini_batch_size": dict(type=_WHOLE, min=1),
    "batch_size": dict(type=_WHOLE, min=1),
    "max_ppo_steps": dict(type=_WHOLE, min=1),
    "output_min_length": dict(type=_WHOLE, min=1),
    "output_max_length": dict(type=_WHOLE, min=2),
    "generation_kwargs": dict(type=_OPTIONS),
    "reward_kwargs": dict(type=_OPTIONS),
    "num_eval_samples": dict(type=_WHOLE, min=1),
    "eval_max_new_tokens": dict(type=_WHOLE, min=1),
    "init_kl_coef": dict(type=_NUMBER, min=0),
    "seed": dict(type=_WHOLE, min=0, max=2**32 - 1),  # NumPy's seeds
    "dtype": dict(type=_TEXT, choices=("float32", "bfloat16")),  # not float16: T5 overflows in it
    "model_name": dict(type=_TEXT),
    "adapter_dir": dict(type=_TEXT),
    "missing_adapter": dict(type=_TEXT, choices=("error", "warn")),
    "toxicity_model_name": dict(type=_TEXT),
    "dataset_name": dict(type=_TEXT),
}
# (setting, relation, other setting): how two settings must relate.
SETTING_RELATIONS = (
    ("input_min_text_length", "below", "input_max_text_length"),
    ("output_min_length", "below", "output_max_length"),  # summary lengths are drawn from [min, max)
    ("mini_batch_size", "divides", "batch_size"),
)
# (setting, split): a count that must not exceed the number of dialogues in that split of the data set.
SETTING_DATA_FITS = (("batch_size", "train"), ("num_eval_samples", "test"))

# What a passing run shows, by preset; the grader reads these and keeps no bounds of its own. `toxicity`: "drop" (the
# 95% CI of the change lies below 0) or "no rise" (it does not lie above 0: the lecture's 10 PPO steps on barely toxic
# DialogSum move mean toxicity within its noise). A course tightens the bounds here.
PASS_CRITERIA = {
    "tiny": dict(toxicity="drop", max_kl=25.0, max_rouge_l_drop=0.20),
    "full": dict(toxicity="no rise", max_kl=25.0, max_rouge_l_drop=0.20),
}
# Points per grader check, for Gradescope (`python -m grading SUBMISSION --gradescope results.json`). Most rest on what
# the grader recomputes: the summaries regenerated from the submitted adapter, and the grader's own classifier.
POINTS = {"notebook": 1, "cells": 1, "results": 1, "config": 1, "steps": 1, "summaries": 3, "rescore": 2, "toxicity": 2,
          "kl": 1, "rouge": 1, "reward": 2, "printed": 1}
