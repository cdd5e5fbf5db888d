"""Imports point down: the notebook -> rlhf_helpers -> lab3 -> the libraries, and the grader -> lab3."""

import ast

import pytest

from lab3 import ROOT

# What each layer may not import: a module of a layer above it, or beside it.
ABOVE = {"lab3": {"rlhf_helpers", "experiments", "beyond_ppo", "tiny_world", "grading", "tests", "benchmarks"},
         "grading": {"rlhf_helpers", "experiments", "beyond_ppo", "tiny_world", "tests", "benchmarks"},
         "rlhf_helpers": {"experiments", "beyond_ppo", "tiny_world", "grading", "tests", "benchmarks"},
         "beyond_ppo": {"experiments", "tiny_world", "grading", "tests", "benchmarks"}}


def imported(path) -> set[str]:
    """The top-level packages the module at `path` imports, wherever in it."""
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_module_imports_a_layer_above_its_own(layer):
    paths = [ROOT / f"{layer}.py"] if (ROOT / f"{layer}.py").is_file() else sorted((ROOT / layer).rglob("*.py"))
    assert paths
    climbing = {p.relative_to(ROOT).as_posix(): sorted(imported(p) & ABOVE[layer]) for p in paths}
    assert not {path: names for path, names in climbing.items() if names}


def test_the_import_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from tiny_world import quality\n    import rlhf_helpers as lab\n")
    assert imported(module) == {"os", "tiny_world", "rlhf_helpers"}
