"""Reading what a student hands in as hostile input: regular files only, bounded in size, strict JSON, validated
against a schema. What cannot be read is refused with one sentence (`Refused`), never raised past the grader."""

import errno
import json
import math
import os
import stat
from pathlib import Path

from lab3 import NOTEBOOK

RESULTS_NAME = "results.json"
ADAPTER_NAME = "ppo_adapter.safetensors"  # lab3.checkpoints.ADAPTER_FILE; the grader imports no torch
# The largest file of each kind the grader reads: a tiny run's notebook is about 0.1 MB, its results 7 MB, its adapter
# 0.4 MB; the full preset's adapter is about 14 MB in float32.
MAX_MB = {"notebook": 16, "results": 64, "adapter": 64}


class Refused(Exception):
    """A submitted file the grader does not grade; the message says why, in one sentence."""


def shown(text: object, limit: int = 300) -> str:
    """`text` as it may reach a terminal or a spreadsheet: control characters escaped, at most `limit` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else text[:limit] + "..."


def read_bytes(path: Path, kind: str) -> bytes:
    """The bytes of the regular file `path` (no link, no device, no FIFO), at most MAX_MB[kind] of them."""
    limit = MAX_MB[kind] << 20
    try:  # O_NOFOLLOW: a link is refused, not followed; O_NONBLOCK: opening a FIFO does not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Refused(f"there is no {shown(path.name)}") from None
    except OSError as e:
        why = "a symbolic link" if e.errno == errno.ELOOP else f"unreadable ({e.strerror})"
        raise Refused(f"{shown(path.name)} is {why}, which is not graded") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a folder with an error of its own
        os.close(fd)
        raise Refused(f"{shown(path.name)} is not a regular file, which is not graded")
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"{shown(path.name)} is larger than {MAX_MB[kind]} MB, more than any run of the lab writes")
    return data


def _finite(text: str) -> float:
    """A JSON number, refused unless finite (1e999 parses to infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is not finite")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def strict_json(data: bytes, name: str) -> object:
    """`data` parsed as JSON, with NaN and the infinities refused."""
    try:
        return json.loads(data.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Refused(f"{shown(name)} is not UTF-8 text") from None
    except RecursionError:
        raise Refused(f"{shown(name)} is nested too deeply to be what the lab writes") from None
    except ValueError as e:  # json.JSONDecodeError is one
        raise Refused(f"{shown(name)} is not valid JSON ({shown(e, 120)})") from None


def read_notebook(path: Path) -> dict:
    """The notebook at `path`, valid against Jupyter's notebook format 4."""
    import nbformat
    nb = strict_json(read_bytes(path, "notebook"), path.name)
    try:
        if not isinstance(nb, dict) or nb.get("nbformat") != 4:
            raise ValueError("it is not in Jupyter's notebook format 4")
        nbformat.validate(nb)
    except Exception as e:  # nbformat.ValidationError, or what a crafted document makes the validator raise
        where = "/".join(map(str, getattr(e, "absolute_path", []))) or "the top level"
        why = getattr(e, "message", None) or str(e)
        raise Refused(f"{shown(path.name)} is not a Jupyter notebook (at {shown(where, 60)}: {shown(why, 100)})") \
            from None
    return nb


_NUMBER = {"type": "number"}
_TEXTS = {"type": "array", "items": {"type": "string", "maxLength": 100_000}}
_NUMBERS = {"type": "array", "items": _NUMBER}
_LABEL_SCORES = {"type": "array", "items": {"type": "object", "required": ["label", "score"],
                                            "properties": {"label": {"type": "string"}, "score": _NUMBER}}}
_STEP = {"type": "object", "required": ["step", "objective/kl", "rewards", "pipeline_scores", "texts"],
         "properties": {"step": {"type": "integer"}, "objective/kl": _NUMBER, "rewards": _NUMBERS,
                        "pipeline_scores": {"type": "array", "items": _LABEL_SCORES}, "texts": _TEXTS}}
_PHASE = {"type": "object", "required": ["mean", "std", "per_sample", "summaries"],
          "properties": {"mean": _NUMBER, "std": _NUMBER, "per_sample": _NUMBERS, "summaries": _TEXTS}}
_ROUGE = {"type": "object", "required": ["rougeL"], "additionalProperties": _NUMBER}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
RESULTS_SCHEMA = {
    "type": "object",
    "required": ["preset_name", "preset", "seed", "device", "ppo_steps", "toxicity", "rouge", "classifier_sha256",
                 "adapter_sha256"],
    "properties": {
        "preset_name": {"type": "string"}, "preset": {"type": "object"}, "seed": {"type": "integer"},
        "device": {"enum": ["cpu", "cuda", "mps", "xpu"]},
        "resumed_from_steps": {"type": "array", "items": {"type": "integer"}},
        "num_processes": {"type": "integer", "minimum": 1, "maximum": 64},
        "ppo_steps": {"type": "array", "items": _STEP},
        "toxicity": {"type": "object", "required": ["before", "after", "change_ci95"],
                     "properties": {"before": _PHASE, "after": _PHASE,
                                    "change_ci95": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}}},
        "rouge": {"type": "object", "required": ["before", "after"], "properties": {"before": _ROUGE, "after": _ROUGE}},
        "classifier_sha256": _SHA256, "adapter_sha256": _SHA256,
    },
}


def read_results(path: Path) -> dict:
    """The results file at `path`, valid against RESULTS_SCHEMA."""
    import jsonschema
    results = strict_json(read_bytes(path, "results"), path.name)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(RESULTS_SCHEMA).iter_errors(results))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "the top level"
        raise Refused(f"{shown(path.name)} is not the lab's results file (at {shown(where, 80)}: "
                      f"{shown(error.message, 120)})")
    return results


def notebook_of(path: Path) -> Path:
    """The notebook of a submission: `path` itself when it is not a folder, else the lab's notebook in it, or its only
    notebook."""
    if not path.is_dir() or path.is_symlink():
        return path
    notebooks = sorted(p for p in path.iterdir() if p.suffix == ".ipynb")
    named = [p for p in notebooks if p.name == NOTEBOOK]
    return (named or (notebooks if len(notebooks) == 1 else []) or [path / NOTEBOOK])[0]


def submissions(paths: list[Path]) -> list[tuple[str, Path]]:
    """(name, path) of each submission: notebook files, submission folders, or class folders of those."""
    found = []
    for path in paths:
        if path.is_dir() and not path.is_symlink() and not any(p.suffix == ".ipynb" for p in path.iterdir()):
            found += [(p.name, p) for p in sorted(path.iterdir()) if not p.name.startswith(".")]  # a class folder
        else:
            found.append((path.name, path))
    return found
