"""The exercises' solutions: the lecture's own code, its cells tagged `exercise`, loaded as functions. The lecture is
the one copy of each (the student's notebook has a stub in its place); the grader, the tests, the experiments and the
benchmarks load them from here.

    from lab3.solutions import solution
    paired_bootstrap_ci = solution("paired_bootstrap_ci")

Each cell defines one function, which may use the names of `base_namespace()` (the lecture imports them at its top)
and, when called, the lecture's globals that the caller puts in `namespace()` (the loop's trainer, say).
"""

import functools
import json

from lab3 import NOTEBOOK, ROOT

LECTURE = ROOT / NOTEBOOK
TAG = "exercise"


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@functools.cache
def cells() -> dict[str, str]:
    """The source of each exercise cell of the lecture, by the name of the function it defines."""
    import ast
    found = {}
    for cell in json.loads(LECTURE.read_text())["cells"]:
        if TAG in cell.get("metadata", {}).get("tags", []):
            source = _source(cell)
            found[next(n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))] = source
    return found


def base_namespace() -> dict:
    """The names an exercise cell may use when it is defined: what the lecture's imports cell imports for them."""
    import numpy as np
    import torch
    from trl.core import masked_mean, masked_whiten
    return {"np": np, "torch": torch, "masked_mean": masked_mean, "masked_whiten": masked_whiten}


def namespace(**lecture_globals) -> dict:
    """A namespace in which every exercise cell of the lecture ran, with `lecture_globals` for its functions to use."""
    space = {**base_namespace(), **lecture_globals}
    for name, source in cells().items():
        exec(compile(source, f"{NOTEBOOK} ({name})", "exec"), space)
    return space


@functools.cache
def _solved() -> dict:
    return namespace()


def solution(name: str):
    """The lecture's solution of the exercise whose function is `name`."""
    if name not in cells():
        raise KeyError(f"the lecture has no exercise cell defining {name}")
    return _solved()[name]
