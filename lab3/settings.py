"""The lab's settings: one documented field per setting, its type and range checked where it is defined; the two
presets as data; the prompt and the LoRA shape.

Shared by the lab and by `grading` (which must stay light to import), so it imports nothing heavy at module level.
"""

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from lab3 import ROOT
from lab3.errors import LabError

TINY_DIR = ROOT / "checkpoints" / "tiny"  # the tiny preset's files, shipped with the lab (MANIFEST.json: their SHA-256)
# Label names that mean "not hate" in a hate-speech classifier's id2label.
NOT_HATE_NAMES = ("nothate", "not_hate", "not-hate", "not hate", "nonhate", "non-hate", "non_hate")
PROMPT_TEMPLATE = "Summarize the following conversation.\n\n{dialogue}\n\nSummary:\n"
# The lecture's LoRA adapter shape (Lab 2), used for the Lab 2 adapter and for the fresh PPO adapter.
LAB2_LORA = dict(r=32, lora_alpha=32, target_modules=["q", "v"], lora_dropout=0.05, bias="none",
                 task_type="SEQ_2_SEQ_LM")
# Settings that name a model, an adapter or a data set (a Hub id, or a folder of the lab's checkout).
SOURCE_KEYS = ("model_name", "adapter_dir", "toxicity_model_name", "dataset_name")

_KINDS = {int: "a whole number", float: "a number", str: "a text", dict: "a dictionary of keyword arguments"}
_KINDS_OF_VALUE = {int: "a whole number", float: "a number", str: "a text", bool: "a yes/no value",
                   dict: "a dictionary", list: "a list", type(None): "nothing"}


def setting(meaning: str, **rule) -> dataclasses.Field:
    """A field of `Settings`: its one-line meaning and the `rule` its value obeys (`min`, `max`, `above`, `choices`)."""
    return field(metadata=dict(rule, meaning=meaning))


@dataclass(frozen=True)
class Settings:
    """The settings of one run: a preset (`PRESETS`), changed by the notebook's `overrides`, then the environment.
    Each value is checked when the object is made: a bad one stops the lab in one sentence."""

    # The data
    dataset_name: str = setting("the dialogues: a Hub data set, or a folder of the lab")
    input_min_text_length: int = setting("a dialogue must be longer than this many characters", min=0)
    input_max_text_length: int = setting("and at most this many characters", min=1)
    # The models
    model_name: str = setting("the FLAN-T5 summarizer: a Hub id, or a folder of the lab")
    adapter_dir: str = setting("the Lab 2 LoRA adapter, merged into the summarizer")
    missing_adapter: str = setting("without a Lab 2 adapter: stop, or warn and start from the base model",
                                   choices=("error", "warn"))
    toxicity_model_name: str = setting("the hate-speech classifier whose `nothate` logit is the reward")
    dtype: str = setting("the frozen weights' dtype (not float16: T5 overflows in it)",
                         choices=("float32", "bfloat16"))
    # PPO
    learning_rate: float = setting("Adam's step size for the LoRA adapter and the value head", above=0, max=1)
    ppo_epochs: int = setting("optimisation passes over each batch", min=1)
    mini_batch_size: int = setting("texts per gradient step; divides batch_size", min=1)
    batch_size: int = setting("prompts per PPO step", min=1)
    max_ppo_steps: int = setting("PPO steps in the run", min=1)
    init_kl_coef: float = setting("the KL penalty's first coefficient", min=0)
    kl_control: str = setting("the KL coefficient: adapted toward TRL's target KL, or fixed",
                              choices=("adaptive", "fixed"))
    seed: int = setting("the seed of every random choice (NumPy's range)", min=0, max=2**32 - 1)
    # Writing and scoring the summaries
    output_min_length: int = setting("a PPO summary has at least this many tokens", min=1)
    output_max_length: int = setting("and fewer than this many", min=2)
    generation_kwargs: dict = setting("how the policy samples (the lecture's: pure sampling)")
    reward_kwargs: dict = setting("how the reward pipeline scores (raw logits, every label)")
    # Measuring toxicity before and after
    num_eval_samples: int = setting("test dialogues summarized and scored before and after PPO", min=1)
    eval_max_new_tokens: int = setting("the longest evaluation summary, in tokens", min=1)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_value(f.name, getattr(self, f.name), f.type, f.metadata)
        for first, relation, second in RELATIONS:
            a, b = getattr(self, first), getattr(self, second)
            if (relation == "below" and not a < b) or (relation == "divides" and b % a):
                want = "smaller than" if relation == "below" else "a divisor of"
                raise LabError(f"{first} is {a!r}; it must be {want} {second} ({b!r}).")


# (setting, relation, other setting): how two settings must relate.
RELATIONS = (
    ("input_min_text_length", "below", "input_max_text_length"),
    ("output_min_length", "below", "output_max_length"),  # summary lengths are drawn from [min, max)
    ("mini_batch_size", "divides", "batch_size"),
)
# (setting, split): a count that must not exceed the number of dialogues in that split of the data set.
DATA_FITS = (("batch_size", "train"), ("num_eval_samples", "test"))


def _check_value(name: str, value, kind: type, rule: dict) -> None:
    """Stop in one sentence when `value` is not of `kind` or breaks `rule`."""
    allowed_types = (int, float) if kind is float else kind
    of_kind = isinstance(value, allowed_types) and not isinstance(value, bool)  # True is an int to Python only
    bounds = [f"greater than {rule['above']}" if "above" in rule else None,
              f"at least {rule['min']}" if "min" in rule else None, f"at most {rule['max']}" if "max" in rule else None]
    allowed = _KINDS[kind] + (", " + " and ".join(b for b in bounds if b) if any(bounds) else "")
    if "choices" in rule:
        allowed = "one of " + ", ".join(map(repr, rule["choices"]))
    ok = of_kind
    if ok and isinstance(value, (int, float)):
        ok = (math.isfinite(value) and value > rule.get("above", -math.inf) and value >= rule.get("min", -math.inf)
              and value <= rule.get("max", math.inf))
    if ok and "choices" in rule:
        ok = value in rule["choices"]
    if not ok:
        given = "" if of_kind else ", " + _KINDS_OF_VALUE.get(type(value), f"a {type(value).__name__}")
        raise LabError(f"{name} is {value!r}{given}; it must be {allowed}.")


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
    num_eval_samples=200, eval_max_new_tokens=100, init_kl_coef=0.2, kl_control="adaptive", seed=42,
    dtype="bfloat16",  # the lecture's; halves the memory of the frozen weights (LoRA and value head stay float32);
    # `resolve_dtype` falls back to float32 where the hardware has no fast bfloat16
)
# The presets, as data. A folder of the lab is written relative to its folder (ROOT): the same on every machine.
PRESETS = {
    "full": dict(
        _LECTURE,
        model_name="google/flan-t5-base",
        adapter_dir="checkpoints/peft-dialogue-summary-checkpoint",
        missing_adapter="warn",
        toxicity_model_name="facebook/roberta-hate-speech-dynabench-r4-target",
        dataset_name="knkarthick/dialogsum",
    ),
    "tiny": dict(
        _LECTURE,
        model_name="checkpoints/tiny/flan-t5",
        adapter_dir="checkpoints/tiny/peft-dialogue-summary-checkpoint",
        missing_adapter="error",
        toxicity_model_name="checkpoints/tiny/roberta-hate",
        dataset_name="checkpoints/tiny/dialogsum",
        # Chosen over seeds 42, 1 and 2: tiny_world/README.md has the trials, and what they give on the shipped build.
        learning_rate=2e-4, ppo_epochs=2, mini_batch_size=16, batch_size=64, max_ppo_steps=100,
        output_min_length=30, output_max_length=50, num_eval_samples=600, eval_max_new_tokens=50,
        dtype="float32",
    ),
}

def located(value: str) -> str:
    """A source setting's value as a loader takes it: a folder of the lab made absolute, a Hub id unchanged."""
    return str(ROOT / value) if not Path(value).is_absolute() and (ROOT / value).exists() else value


def located_sources(values: dict) -> dict:
    """`values` (settings by name) with each source setting `located`."""
    return {k: located(v) if k in SOURCE_KEYS and isinstance(v, str) else v for k, v in values.items()}


def relative_to_lab(settings: dict) -> dict:
    """`settings` with each folder of the lab's checkout written relative to it: the same on every machine."""
    def relative(value):
        is_ours = isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(ROOT)
        return Path(value).relative_to(ROOT).as_posix() if is_ours else value
    return {k: relative(v) if k in SOURCE_KEYS else v for k, v in settings.items()}


def record(cfg: Settings) -> dict:
    """`cfg` as plain JSON data, its folders relative to the lab: what results.json and the checkpoints keep."""
    return json.loads(json.dumps(relative_to_lab(dataclasses.asdict(cfg))))


def preset(name: str) -> Settings:
    """The settings of the preset called `name`, its folders located in this checkout."""
    if name not in PRESETS:
        raise LabError(f"Unknown preset {name!r}: choose one of {', '.join(sorted(PRESETS))}.")
    return Settings(**located_sources(json.loads(json.dumps(PRESETS[name]))))  # a copy: the preset never changes


def checked_overrides(overrides: dict | str, source: str = "overrides") -> dict:
    """`overrides` (a dict, or JSON text as in LAB3_OVERRIDES), once every key is known to be a setting."""
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides or "{}")
        except json.JSONDecodeError as e:
            raise LabError(f"{source} is not valid JSON ({e.msg} at character {e.pos}): write a JSON object "
                           """such as '{"max_ppo_steps": 2}'.""") from None
    if not isinstance(overrides, dict):
        raise LabError(f"{source} must be a JSON object of settings, such as "
                       f"""'{{"max_ppo_steps": 2}}', not {overrides!r}.""")
    names = [f.name for f in dataclasses.fields(Settings)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise LabError(f"{source} names {', '.join(map(repr, unknown))}, which is not a setting of the lab; the "
                       f"settings are {', '.join(sorted(names))}.")
    return overrides


def resolve(preset_name: str, overrides: dict | str, device_type: str) -> tuple[str, Settings]:
    """The preset's name and settings, checked. Later sources win: the preset's values, then `overrides` (the
    notebook's parameters), then the environment's LAB3_PRESET and LAB3_OVERRIDES (how `accelerate launch` and
    scripts set them; it says so when they change anything). The dtype is the one `device_type` computes fast."""
    if os.environ.get("LAB3_PRESET", preset_name) != preset_name:
        print(f"LAB3_PRESET={os.environ['LAB3_PRESET']} replaces preset_name={preset_name!r}.")
        preset_name = os.environ["LAB3_PRESET"]
    cfg = preset(preset_name)
    changes = checked_overrides(overrides)
    from_environment = checked_overrides(os.environ.get("LAB3_OVERRIDES", "{}"), source="LAB3_OVERRIDES")
    if from_environment:
        print(f"LAB3_OVERRIDES changes {', '.join(sorted(from_environment))}.")
    cfg = dataclasses.replace(cfg, **located_sources({**changes, **from_environment}))
    from lab3.speedups import resolve_dtype  # torch: only once the settings are known to be good
    return preset_name, dataclasses.replace(cfg, dtype=resolve_dtype(cfg.dtype, device_type))


def described(cfg: Settings) -> list[tuple[str, object, str]]:
    """(setting, value, meaning) for each setting of `cfg`, folders relative to the lab: the table the lab prints."""
    values = record(cfg)
    return [(f.name, values[f.name], f.metadata["meaning"]) for f in dataclasses.fields(cfg)]


def check_data_fits(cfg: Settings, dataset) -> None:
    """Stop in one sentence when a count of `cfg` asks for more dialogues than a split of `dataset` holds."""
    for name, split in DATA_FITS:
        if getattr(cfg, name) > len(dataset[split]):
            raise LabError(f"{name} is {getattr(cfg, name)!r}; it must be at most {len(dataset[split])}, the number "
                           f"of dialogues in the {split} split within the length bounds.")
