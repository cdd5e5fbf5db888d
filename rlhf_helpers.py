"""Plumbing for Lab 3 (RLHF detoxification of FLAN-T5 summaries with PPO): presets, data, models, measurements."""

import json
import math
import pickle
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import PartialState
from accelerate.utils import gather_object, parse_flag_from_env
from datasets import DatasetDict, load_dataset
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from rouge_score import rouge_scorer
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from checksums import MANIFEST, manifest_mismatches, weights_sha256
from lab_setup import LabSetupError
from lab_settings import (NOT_HATE_NAMES, PRESETS, SETTING_DATA_FITS, SETTING_KINDS, SETTING_RELATIONS, SETTING_RULES,
                          SOURCE_KEYS, TINY_DIR)

ROOT = Path(__file__).resolve().parent
TOXICITY_MODULE = str(ROOT / "measurements" / "toxicity")
PROMPT_TEMPLATE = "Summarize the following conversation.\n\n{dialogue}\n\nSummary:\n"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")  # the course's Lab 2 checkpoint is the .bin
# The lecture's LoRA adapter shape (Lab 2), used for the Lab 2 adapter and for the fresh PPO adapter.
LAB2_LORA = dict(r=32, lora_alpha=32, target_modules=["q", "v"], lora_dropout=0.05, bias="none",
                 task_type=TaskType.SEQ_2_SEQ_LM)


def get_preset(name: str) -> dict:
    """The settings of the preset called `name` (a copy, safe to change)."""
    if name not in PRESETS:
        raise LabSetupError(f"Unknown preset {name!r}: choose one of {', '.join(sorted(PRESETS))}.")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].items()}


def checked_overrides(overrides: dict | str, cfg: dict, source: str = "overrides") -> dict:
    """`overrides` (a dict, or JSON text as in LAB3_OVERRIDES), once every key is known to be a setting of `cfg`."""
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides or "{}")
        except json.JSONDecodeError as e:
            raise LabSetupError(f"{source} is not valid JSON ({e.msg} at character {e.pos}): write a JSON object "
                                """such as '{"max_ppo_steps": 2}'.""") from None
    if not isinstance(overrides, dict):
        raise LabSetupError(f"{source} must be a JSON object of settings, such as "
                            f"""'{{"max_ppo_steps": 2}}', not {overrides!r}.""")
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise LabSetupError(f"{source} names {', '.join(map(repr, unknown))}, which is not a setting of the lab; the "
                            f"settings are {', '.join(sorted(cfg))}.")
    return overrides


_KINDS_OF_VALUE = {int: "a whole number", float: "a number", str: "a text", bool: "a yes/no value",
                   dict: "a dictionary", list: "a list", type(None): "nothing"}


def _is_of_kind(value, kind: str) -> bool:
    """Whether `value` is of the kind a rule of SETTING_RULES names."""
    # True is an int to Python, not to a student
    return isinstance(value, SETTING_KINDS[kind]) and not isinstance(value, bool)


def _value_problem(value, rule: dict) -> str:
    """'' when `value` obeys `rule` (an entry of SETTING_RULES), else what it must be."""
    kind = rule["type"]
    bounds = [f"greater than {rule['above']}" if "above" in rule else None,
              f"at least {rule['min']}" if "min" in rule else None, f"at most {rule['max']}" if "max" in rule else None]
    allowed = f"{kind}" + (", " + " and ".join(b for b in bounds if b) if any(bounds) else "")
    if "choices" in rule:
        allowed = "one of " + ", ".join(map(repr, rule["choices"]))
    ok = _is_of_kind(value, kind)
    if ok and isinstance(value, (int, float)):
        ok = (math.isfinite(value) and value > rule.get("above", -math.inf) and value >= rule.get("min", -math.inf)
              and value <= rule.get("max", math.inf))
    if ok and "choices" in rule:
        ok = value in rule["choices"]
    return "" if ok else f"it must be {allowed}"


def check_settings(cfg: dict) -> None:
    """Stop in one sentence at the first setting of `cfg` whose value or relation to another is not allowed."""
    for name, value in cfg.items():
        if name not in SETTING_RULES:
            raise LabSetupError(f"The setting {name!r} has no rule in lab_settings.SETTING_RULES: add one there.")
        problem = _value_problem(value, SETTING_RULES[name])
        if problem:
            given = "" if _is_of_kind(value, SETTING_RULES[name]["type"]) else \
                ", " + _KINDS_OF_VALUE.get(type(value), f"a {type(value).__name__}")
            raise LabSetupError(f"{name} is {value!r}{given}; {problem}.")
    for first, relation, second in SETTING_RELATIONS:
        a, b = cfg[first], cfg[second]
        if (relation == "below" and not a < b) or (relation == "divides" and b % a):
            want = "smaller than" if relation == "below" else "a divisor of"
            raise LabSetupError(f"{first} is {a!r}; it must be {want} {second} ({b!r}).")


def check_data_fits(cfg: dict, dataset: DatasetDict) -> None:
    """Stop in one sentence when a count of `cfg` asks for more dialogues than a split of `dataset` holds."""
    for name, split in SETTING_DATA_FITS:
        if cfg[name] > len(dataset[split]):
            raise LabSetupError(f"{name} is {cfg[name]!r}; it must be at most {len(dataset[split])}, the number of "
                                f"dialogues in the {split} split within the length bounds.")


def process_state() -> PartialState:
    """The processes running the lab: one in Jupyter, several under `accelerate launch` (its CPU flag read as
    Accelerate's own `Accelerator` reads it, so that PPOTrainer's accelerator finds the same state)."""
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def per_process(size: int, num_processes: int, what: str) -> int:
    """`size` split evenly over `num_processes` (each process takes its share of every batch)."""
    if size % num_processes:
        raise LabSetupError(f"The {what} ({size}) cannot be split evenly over {num_processes} processes: launch a "
                            f"number of processes that divides it.")
    return size // num_processes


def _hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the Hugging Face Hub answers within `timeout` seconds."""
    from urllib.request import urlopen
    try:
        urlopen(hf_constants.ENDPOINT, timeout=timeout).close()
        return True
    except OSError:
        return False


def check_sources(cfg: dict) -> None:
    """Fail fast, in one sentence, when a model or data set of `cfg` is neither local, cached nor downloadable, or a
    file of the tiny preset is not the shipped one."""
    hub_ids = [cfg[k] for k in ("model_name", "toxicity_model_name") if not Path(cfg[k]).is_dir()]
    missing = [repo for repo in hub_ids if not isinstance(try_to_load_from_cache(repo, "config.json"), str)]
    if not Path(cfg["dataset_name"]).is_dir() and not hf_constants.HF_HUB_OFFLINE:
        missing.append(cfg["dataset_name"])
    check_tiny_files(cfg)
    if not missing:
        return
    why = "HF_HUB_OFFLINE is set" if hf_constants.HF_HUB_OFFLINE else None
    if why is None and not _hub_reachable():
        why = f"the Hugging Face Hub ({hf_constants.ENDPOINT}) is unreachable"
    if why:
        raise LabSetupError(f"{', '.join(missing)} cannot be loaded: {why} and they are not in the Hugging Face cache; "
                            "run the tiny preset (`make lab`), or fill the cache on a machine that reaches the Hub.")


def check_tiny_files(cfg: dict, folder: Path = TINY_DIR) -> None:
    """Fail in one sentence when `cfg` reads the tiny preset's files and one of them is not the shipped one."""
    if not any(Path(cfg[k]).is_relative_to(folder) for k in SOURCE_KEYS):
        return
    how = ("restore the shipped files with `git checkout -- checkpoints/tiny`, or rebuild them with "
           "`python -m tiny_world.build`")
    if not (folder / MANIFEST).is_file():
        raise LabSetupError(f"The tiny preset has no {MANIFEST} in {folder}: {how}.")
    wrong = manifest_mismatches(folder)
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise LabSetupError(f"{folder / wrong[0]}{more} is not the tiny preset's file (it is missing, or its "
                            f"SHA-256 differs from {folder / MANIFEST}): {how}.")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_dataset(model_name: str, dataset_name: str, input_min_text_length: int, input_max_text_length: int,
                  test_size: float = 0.2, seed: int = 42) -> DatasetDict:
    """DialogSum-style dialogues within the length bounds, tokenized as summarization prompts, split train/test."""
    dataset = load_dataset(dataset_name, split="train")
    dataset = dataset.filter(lambda x: input_min_text_length < len(x["dialogue"]) <= input_max_text_length)
    if len(dataset) == 0:
        raise LabSetupError(f"No dialogue in {dataset_name} is longer than {input_min_text_length} and at most "
                            f"{input_max_text_length} characters: widen input_min_text_length/input_max_text_length.")
    tokenizer = AutoTokenizer.from_pretrained(model_name)

    def tokenize(sample: dict) -> dict:
        sample["input_ids"] = tokenizer.encode(PROMPT_TEMPLATE.format(dialogue=sample["dialogue"]))
        sample["query"] = tokenizer.decode(sample["input_ids"])
        return sample

    dataset = dataset.map(tokenize, batched=False)
    dataset.set_format(type="torch")
    return dataset.train_test_split(test_size=test_size, shuffle=False, seed=seed)


def resolve_dtype(dtype: str, device: str) -> str:
    """`dtype`, or "float32" when it is "bfloat16" and `device` has no native bfloat16 arithmetic (it says so)."""
    if dtype != "bfloat16":
        return dtype
    if device == "cuda":
        # Not the default `including_emulation=True`: emulated bfloat16 (a T4, a V100) is slow, and Inductor cannot
        # compile it below compute capability 8.0.
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return dtype
        major, minor = torch.cuda.get_device_capability()
        print(f"This GPU (compute capability {major}.{minor}) has no native bfloat16, which needs 8.0: the models run "
              "in float32.")
        return "float32"
    # Without AVX512-BF16 or AMX, CPU bfloat16 matrix products take a slow path (benchmarks/bf16_matmul.py: 6x slower
    # than float32 forward, 89x with the backward pass, on an AVX2 EPYC).
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        return dtype
    print(f"This {device.upper()} has no fast bfloat16 (AVX512-BF16 or AMX): the models run in float32.")
    return "float32"


def load_summarizer(model_name: str, adapter_dir: str | None, missing_adapter: str = "error",
                    dtype: torch.dtype | str = torch.float32) -> AutoModelForSeq2SeqLM:
    """The Lab 2 summarizer (base model with the Lab 2 LoRA adapter merged in), without dropout, fused GELU."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    # Dropout off: PPO's probability ratios and rollouts must not carry dropout noise (TRL's later trainers do the
    # same). FLAN-T5's "gelu_new" runs as five element-wise ops; "gelu_pytorch_tanh" is the same function in one.
    config = AutoConfig.from_pretrained(model_name, dropout_rate=0.0)
    if getattr(config, "dense_act_fn", None) == "gelu_new":
        config.dense_act_fn = "gelu_pytorch_tanh"
    model = AutoModelForSeq2SeqLM.from_pretrained(model_name, config=config, dtype=dtype)
    if adapter_dir is None:
        return model
    if not Path(adapter_dir, "adapter_config.json").is_file():
        message = f"No Lab 2 adapter in {adapter_dir} (no adapter_config.json there)"
        if missing_adapter == "error":
            raise LabSetupError(message + ": build the tiny preset with `python -m tiny_world.build`.")
        print(message + f": starting from a fresh LoRA adapter, so the 'before' model is plain {model_name} "
              "and the numbers will differ from the lecture's.")
        return model
    weights = next((Path(adapter_dir, n) for n in ADAPTER_FILES if Path(adapter_dir, n).is_file()), None)
    if weights is None:
        raise LabSetupError(f"The Lab 2 adapter in {adapter_dir} has no weights: put {' or '.join(ADAPTER_FILES)} "
                            "beside its adapter_config.json.")
    how = "safetensors" if weights.suffix == ".safetensors" else "read as tensors only (torch weights_only=True)"
    print(f"Lab 2 adapter: {weights} ({how})")
    try:  # PEFT reads a .bin with torch.load(weights_only=True): a pickled object in it is refused, never run
        return PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    except pickle.UnpicklingError:
        raise LabSetupError(f"{weights} holds more than tensors, so it was not loaded: use the course's original "
                            "adapter file, or its adapter_model.safetensors.") from None


def add_fresh_lora(model: AutoModelForSeq2SeqLM) -> PeftModel:
    """`model` with a new trainable LoRA adapter of the lecture's shape; with the adapter disabled it is `model`."""
    return get_peft_model(model, LoraConfig(**LAB2_LORA))


def print_number_of_trainable_model_parameters(model: torch.nn.Module) -> str:
    """The lecture's summary of trainable and total parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return (f"\ntrainable model parameters: {trainable}\nall model parameters: {total}\n"
            f"percentage of trainable model parameters: {100 * trainable / total:.2f}%")


def not_hate_index(model_or_config) -> int:
    """The class index of the `nothate` label, read from `config.id2label`."""
    config = getattr(model_or_config, "config", model_or_config)
    for index, label in config.id2label.items():
        if str(label).lower() in NOT_HATE_NAMES:
            return int(index)
    raise LabSetupError(f"The reward model has no 'nothate' label (its labels are {sorted(config.id2label.values())}).")


def rewards_from_pipeline(outputs: list[list[dict]], label: str, mode: str = "by_label",
                          index: int = 0) -> list[torch.Tensor]:
    """One reward tensor per text: the score of `label` (mode "by_label"), or entry `index` as listed ("by_index")."""
    if mode == "by_index":  # the lecture's bug: the pipeline lists labels by score, not by class index
        return [torch.tensor(out[index]["score"]) for out in outputs]
    if mode != "by_label":
        raise ValueError(f"Unknown reward mode {mode!r}: use 'by_label' or 'by_index'.")
    rewards = []
    for out in outputs:
        scores = {d["label"]: d["score"] for d in out}
        if label not in scores:
            raise ValueError(f"The reward pipeline returned no {label!r} score (it returned {sorted(scores)}).")
        rewards.append(torch.tensor(scores[label]))
    return rewards


def collator(data: list[dict]) -> dict:
    """Batch a list of samples into a dict of lists, as PPOTrainer expects, shortest prompt first."""
    # PPO does not care about the order within a batch; sorted, the mini-batches that PPOTrainer cuts from it and the
    # texts the reward model scores a few at a time need little padding.
    data = sorted(data, key=lambda d: len(d["input_ids"]))
    return {key: [d[key] for d in data] for key in data[0]}


def drop_padding_columns(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Forward pre-hook: the call without the encoder-input columns that are padding in every row of the batch."""
    mask = kwargs.get("attention_mask")
    if kwargs.get("input_ids") is None or mask is None or mask.dim() != 2:
        return None
    # PPOTrainer pads each step's queries to the longest of the whole batch and runs its mini-batches on slices of
    # that; T5's attention is relative and masked, so dropping all-padding columns changes no result, only the cost.
    keep = mask.bool().any(dim=0)
    if keep.all():
        return None
    return args, dict(kwargs, input_ids=kwargs["input_ids"][:, keep], attention_mask=mask[:, keep])


def train_mode_while_recording_gradients(module: torch.nn.Module, args: tuple) -> None:
    """Forward pre-hook: `module` in training mode exactly while autograd records (checkpointing acts in training)."""
    # PPOTrainer.step runs its gradient forward in eval mode (so checkpointing would never act) and ends in training
    # mode (so the next generation would trace checkpointing's branches and break the compiled decoding step). Under
    # torch.compile both flags are guarded constants: the branch is decided at trace time and leaves no graph break.
    if module.training != torch.is_grad_enabled():
        module.train(torch.is_grad_enabled())


def prepare_for_ppo(ppo_model: torch.nn.Module, device: torch.device | str) -> str:
    """Apply the device's PPO settings that change no result (CPU: skip padding; GPU: recompute activations)."""
    if torch.device(device).type == "cpu":
        # On a CPU the padding a PPO mini-batch carries costs real arithmetic; on a GPU this hook costs more than it
        # saves (its `.all()` and boolean indexing make the host wait for the GPU every forward; benchmarks/README.md).
        ppo_model.register_forward_pre_hook(drop_padding_columns, with_kwargs=True)
        return "PPO steps skip all-padding prompt columns"
    # On a GPU arithmetic is cheap and memory is not: recomputing each T5 block in the backward pass instead of
    # keeping its activations cuts a lecture-sized mini-batch's saved tensors from 1.4 GB to 0.4 GB (benchmarks/).
    t5 = ppo_model.pretrained_model.get_base_model()
    t5.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    # Only re-entrant checkpointing needs inputs that require gradients; the hook transformers adds for it calls
    # `requires_grad_()` in every decoding step, which torch 2.11's compiler cannot trace (it broke the compiled step
    # into pieces on an H200 and left generation at its uncompiled speed).
    t5.disable_input_require_grads()
    t5.register_forward_pre_hook(train_mode_while_recording_gradients)  # dropout is off: the mode changes nothing else
    # One mode for every module from the start (a fresh adapter's modules come in training mode, T5's in eval mode), so
    # that the first compiled generation sees the flags every later one sees and no PPO step forces a recompilation.
    t5.eval()
    return "PPO steps recompute T5's activations in the backward pass (gradient checkpointing)"


def _why_no_fast_generation(device: torch.device, dtype: str) -> str:
    """'' where the compiled static-cache generation applies on `device` in `dtype`, else why not, in a few words."""
    if device.type != "cuda":
        return f"compiled generation pays off on a CUDA GPU, and this is {device.type}"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (7, 0):
        return f"this GPU (compute capability {major}.{minor}) is older than torch.compile's kernels support (7.0)"
    if dtype == "bfloat16" and (major, minor) < (8, 0):
        return f"Inductor cannot compile bfloat16 below compute capability 8.0 (this GPU: {major}.{minor})"
    from torch.utils._triton import has_triton
    if not has_triton():
        return "torch.compile has no Triton on this machine"
    return ""


def fast_generation_kwargs(device: torch.device | str, max_new_tokens: int, max_prompt_tokens: int,
                           dtype: str = "float32") -> dict:
    """Extra `PPOTrainer.generate` settings that compile generation on a GPU ({} elsewhere); prints which path runs."""
    # transformers compiles the decoding step (torch.compile, replayed as a CUDA graph) when the KV cache is static. One
    # compiled graph serves the whole run only if shapes never change: the cache is sized once for the longest summary
    # (LengthSampler draws a new length every step) and every prompt is padded to one length (`pad_to_multiple_of` is
    # PPOTrainer.generate's own; a multiple of at least the longest prompt pads every batch to exactly that length).
    why_not = _why_no_fast_generation(torch.device(device), dtype)
    if why_not:
        print(f"generation: transformers' default (dynamic) KV cache, no compilation: {why_not}")
        return {}
    prompt_length = -(-max_prompt_tokens // 64) * 64
    print(f"generation: static KV cache of {max_new_tokens} tokens, prompts padded to {prompt_length} tokens, decoding "
          "step compiled by transformers (the first generation compiles it: expect a wait of tens of seconds)")
    return {"cache_implementation": "static", "max_cache_len": max_new_tokens, "pad_to_multiple_of": prompt_length}


@torch.no_grad()
def generate_summaries(model, tokenizer, input_ids: list[torch.Tensor], generation_kwargs: dict,
                       batch_size: int = 16, seed: int = 0) -> list[str]:
    """Decoded summaries of the prompts `input_ids`, generated in padded batches from a fixed seed."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    generation_kwargs = dict(generation_kwargs)
    pad_to_multiple_of = generation_kwargs.pop("pad_to_multiple_of", None)  # as PPOTrainer.generate takes it
    texts = []
    for i in tqdm(range(0, len(input_ids), batch_size), desc="summaries", unit="batch"):
        batch = tokenizer.pad({"input_ids": input_ids[i:i + batch_size]}, pad_to_multiple_of=pad_to_multiple_of,
                              return_tensors="pt").to(device)
        out = model.generate(**batch, **generation_kwargs)
        texts += tokenizer.batch_decode(out, skip_special_tokens=True)
    return texts


def evaluate_toxicity(model, toxicity_evaluator, tokenizer, dataset, num_samples: int, generation_kwargs: dict,
                      seed: int = 0) -> tuple[float, float, pd.DataFrame]:
    """Mean and std of the toxicity of `num_samples` generated summaries, and the per-summary table."""
    if num_samples > len(dataset):
        raise ValueError(f"num_samples={num_samples} but the data set has only {len(dataset)} samples.")
    samples = dataset.select(range(num_samples))
    summaries = generate_summaries(model, tokenizer, list(samples["input_ids"]), generation_kwargs, seed=seed)
    queries = list(samples["query"])
    table = pd.DataFrame({
        "query": queries,
        "summary": summaries,
        "reference": list(samples["summary"]),
        "toxicity": toxicity_evaluator.compute(predictions=summaries, toxic_label="hate")["toxicity"],
        "toxicity_with_prompt": toxicity_evaluator.compute(
            predictions=[q + " " + s for q, s in zip(queries, summaries)], toxic_label="hate")["toxicity"],
    })
    return float(table.toxicity.mean()), float(table.toxicity.std(ddof=0)), table


def rouge_per_summary(predictions: list[str], references: list[str]) -> pd.DataFrame:
    """ROUGE-1/2/L F-measures of each prediction against its reference, one row per summary."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p) for p, r in zip(predictions, references)]
    return pd.DataFrame([{k: s[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")} for s in scores])


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures of `predictions` against `references`."""
    return {k: float(v) for k, v in rouge_per_summary(predictions, references).mean().items()}


def bootstrap_ci(before: np.ndarray, after: np.ndarray, n_resamples: int = 10000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap confidence interval of mean(after) - mean(before)."""
    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def comparison_table(before: pd.DataFrame, after: pd.DataFrame, reward_pipe, reward_kwargs: dict,
                     label: str = "nothate") -> pd.DataFrame:
    """Side by side: each query's summary, toxicity, reward and ROUGE-L before and after PPO, by gain in reward."""
    def rewards(table: pd.DataFrame) -> list[float]:
        texts = [q + " " + s for q, s in zip(table["query"], table["summary"])]
        return [r.item() for r in rewards_from_pipeline(reward_pipe(texts, **reward_kwargs), label)]

    df = pd.DataFrame({
        "query": before["query"], "response_before": before["summary"], "response_after": after["summary"],
        "toxic_before": before["toxicity"] >= 0.5,  # the classifier called the summary itself hateful
        "toxicity_before": before["toxicity"], "toxicity_after": after["toxicity"],
        "reward_before": rewards(before), "reward_after": rewards(after),
        "rougeL_before": rouge_per_summary(before["summary"], before["reference"])["rougeL"],
        "rougeL_after": rouge_per_summary(after["summary"], after["reference"])["rougeL"],
    })
    df["reward_gain"] = df.reward_after - df.reward_before
    return df.sort_values("reward_gain", ascending=False, ignore_index=True)


def ppo_step_record(step: int, stats: dict, pipeline_scores: list[list[dict]], rewards: list[torch.Tensor],
                    texts: list[str]) -> dict:
    """What the lab keeps of one PPO step: the lecture's statistics, the texts scored, their scores and rewards."""
    # Under `accelerate launch` each process holds its share of the batch: gather them (one process: unchanged).
    # `stats` are already the mean over the processes (PPOTrainer.step gathers them).
    keys = ("objective/kl", "ppo/returns/mean", "ppo/policy/advantages_mean", "ppo/mean_scores")
    rewards = gather_object([float(r) for r in rewards])
    return {"step": step, "reward_mean": float(np.mean(rewards)), **{k: float(stats[k]) for k in keys},
            "rewards": rewards, "pipeline_scores": gather_object(list(pipeline_scores)),
            "texts": gather_object(list(texts)), "texts_per_process": gather_object([len(texts)])}


def library_versions() -> dict[str, str]:
    """Versions of the libraries the lab depends on."""
    import datasets, evaluate, peft, transformers, trl  # noqa: E401
    return {m.__name__: m.__version__ for m in (torch, transformers, trl, peft, datasets, evaluate, np, pd)}


def results_record(preset_name: str, cfg: dict, reward_label: str, reward_mode: str, ppo_history: list[dict],
                   summaries_before: pd.DataFrame, summaries_after: pd.DataFrame,
                   toxicity_change_ci: tuple[float, float], rouge_before: dict, rouge_after: dict,
                   comparison: pd.DataFrame, timings: dict, resumed_from: list[int] = (),
                   num_processes: int = 1) -> dict:
    """Everything a grader needs about one run of the lab, as plain JSON-ready data."""
    def stats(table: pd.DataFrame) -> dict:
        return {"mean": float(table.toxicity.mean()), "std": float(table.toxicity.std(ddof=0)),
                "per_sample": table.toxicity.tolist(), "summaries": table.summary.tolist()}

    return {
        "preset_name": preset_name, "preset": cfg, "seed": cfg["seed"],
        "reward": {"label": reward_label, "mode": reward_mode},
        "num_processes": num_processes,  # how many processes shared each PPO batch (accelerate launch)
        "resumed_from_steps": list(resumed_from),  # the steps at which an interrupted run was continued, if any
        "versions": library_versions(),
        "classifier_sha256": weights_sha256(cfg["toxicity_model_name"]),  # which classifier scored this run
        "ppo_steps": ppo_history,
        "toxicity": {"before": stats(summaries_before), "after": stats(summaries_after),
                     "change_ci95": list(toxicity_change_ci)},
        "rouge": {"before": rouge_before, "after": rouge_after},
        "comparison": comparison.to_dict(orient="records"),
        "timings_s": timings,
    }
