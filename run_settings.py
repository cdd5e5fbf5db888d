"""The settings of one run of the lab: a preset, changed by the notebook's parameters and the environment, checked
before anything loads. A bad value, or a model that cannot be loaded, stops the lab in one sentence."""

import json
import math
import os
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from datasets import DatasetDict
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache

from checksums import MANIFEST, manifest_mismatches
from lab_setup import LabSetupError
from lab_settings import (PRESETS, SETTING_DATA_FITS, SETTING_KINDS, SETTING_RELATIONS, SETTING_RULES, SOURCE_KEYS,
                          TINY_DIR)
from speedups import resolve_dtype


def resolve(preset_name: str, overrides: dict | str, device_type: str) -> tuple[str, dict]:
    """The preset's name and settings, checked. Later sources win: the preset's values, then `overrides` (the
    notebook's parameters), then the environment's LAB3_PRESET and LAB3_OVERRIDES (how `accelerate launch` and
    scripts set them; it says so when they change anything). The dtype is the one `device_type` computes fast."""
    if os.environ.get("LAB3_PRESET", preset_name) != preset_name:
        print(f"LAB3_PRESET={os.environ['LAB3_PRESET']} replaces preset_name={preset_name!r}.")
        preset_name = os.environ["LAB3_PRESET"]
    cfg = get_preset(preset_name)
    cfg.update(checked_overrides(overrides, cfg))
    from_environment = checked_overrides(os.environ.get("LAB3_OVERRIDES", "{}"), cfg, source="LAB3_OVERRIDES")
    if from_environment:
        print(f"LAB3_OVERRIDES changes {', '.join(sorted(from_environment))}.")
    cfg.update(from_environment)
    check_settings(cfg)
    check_sources(cfg)
    cfg["dtype"] = resolve_dtype(cfg["dtype"], device_type)
    return preset_name, cfg


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
