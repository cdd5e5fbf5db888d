"""Every command the docs show exists: its module, its options, its make target, its script; every link leads to a
file."""

import importlib.util
import re
import shlex

import pytest

from lab3 import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("*/README.md"))]
PYTHON = re.compile(r"^python3?$")


def _commands(text: str) -> list[str]:
    """The shell commands of a Markdown text: each line of its bash blocks, and each inline code span that starts
    with python, make or bash."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        found += [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    found += [span for span in re.findall(r"`([^`\n]+)`", text) if re.match(r"(python3? |make |bash )", span)]
    return found


def _words(command: str) -> list[str]:
    """The words of `command` before any comment, without leading environment assignments."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote in a span that shows part of a command
        words = command.split("#")[0].split()
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]
    return words


def _module_source(module: str) -> str | None:
    """The source of `module` in this checkout (its `__main__` for a package), None when it is not the checkout's;
    raises when it is nowhere."""
    path = ROOT / module.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__main__.py"):
        if candidate.is_file():
            return candidate.read_text()
    top = ROOT / module.split(".")[0]
    if top.is_dir() or top.with_suffix(".py").is_file() or importlib.util.find_spec(module) is None:
        raise AssertionError(f"no module {module}")
    return None


def problems(command: str, makefile: str) -> list[str]:
    """What does not exist of what `command` names: a module, an option, a make target, a script."""
    words = _words(command)
    if not words:
        return []
    found = []
    if PYTHON.match(words[0]) and len(words) > 2 and words[1] == "-m":
        try:
            source = _module_source(words[2])
        except AssertionError as e:
            return [str(e)]
        options = {w.split("=")[0] for w in words[3:] if w.startswith("--")}
        found += [f"{words[2]} has no option {o}" for o in sorted(options) if source is not None
                  and f'"{o}"' not in source]
    elif PYTHON.match(words[0]) and len(words) > 1 and words[1].endswith(".py"):
        found += [] if (ROOT / words[1]).is_file() else [f"no script {words[1]}"]
    elif words[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
        found += [f"no make target {w}" for w in words[1:] if "=" not in w and w not in targets]
    elif words[0] == "bash" and len(words) > 1 and not words[1].startswith(("ROOT", "$")):
        found += [] if (ROOT / words[1]).is_file() else [f"no script {words[1]}"]
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_the_docs_show_exists(doc):
    makefile = (ROOT / "Makefile").read_text()
    missing = {c: p for c in _commands(doc.read_text()) if (p := problems(c, makefile))}
    assert not missing


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_the_docs_leads_to_a_file(doc):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    assert not [link for link in links if not link.startswith("http") and not (doc.parent / link).exists()]


def test_the_check_of_commands_finds_what_does_not_exist():
    makefile = (ROOT / "Makefile").read_text()
    assert problems("python -m grading submissions/ --course c.json --csv grades.csv", makefile) == []
    assert problems("python -m grading submissions/ --no-such-option", makefile) == [
        "grading has no option --no-such-option"]
    assert problems("python -m lab3.no_such_module", makefile) == ["no module lab3.no_such_module"]
    assert problems("HF_HUB_OFFLINE=0 make lab PRESET=full", makefile) == []
    assert problems("make grade", makefile) == ["no make target grade"]
    assert problems("python benchmarks/gone.py", makefile) == ["no script benchmarks/gone.py"]
    assert problems("python -m papermill lab3_experiments.ipynb out.ipynb   # in Jupyter", makefile) == []
    assert _commands("run `python -m lab3 test`, not `pytest.ini`\n```bash\nmake lab\n```\n") == [
        "make lab", "python -m lab3 test"]
