"""The notebook as a hosted notebook meets it: copied alone into an empty folder, in a bare kernel.

The kernel is a fresh virtual environment holding what a host has before the lab (this machine's torch, Jupyter,
ipykernel, papermill) and, as hosts preinstall them, a pinned package at another version (tqdm) and a compiled package
in the pins' range (pandas). It builds that environment, and the lone notebook fetches the lab, installs it into the
kernel and builds the tiny preset, then stops at its settings (a refused one): the lab's run in the lone layout is
conftest's `lab_run`, in this Python with the same pins. About six minutes on two cores, in the `slow` tier.
"""

import json
import os
import re
import shutil
import subprocess
import time
import venv
from pathlib import Path

import pytest

from lab3 import setup as lab_setup
from lab3.checksums import MANIFEST
from tests.conftest import ROOT, rounds_as_the_build_machine

HOST = [f"torch=={lab_setup.installed_version('torch')}", "jupyter==1.1.1", "ipykernel==7.4.0", "papermill==2.7.0",
        "tqdm==4.67.1", "pandas==2.2.3"]


def _python(env_dir: Path) -> Path:
    """The Python of the virtual environment `env_dir`."""
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _installed(env_dir: Path, distribution: str) -> str:
    """The version of `distribution` installed in the virtual environment `env_dir`."""
    return subprocess.run([_python(env_dir), "-c", f"from lab3 import setup; print(setup.installed_version("
                           f"{distribution!r}))"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _run_notebook(env_dir: Path, folder: Path, source: str, ipython_dir: Path | None = None,
                  overrides: dict | None = None) -> subprocess.CompletedProcess:
    """Run the lone notebook in `folder` with papermill in the kernel of `env_dir`; the lab's files from `source`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER", "LAB3_"))}
    path = f"{_python(env_dir).parent}{os.pathsep}{env['PATH']}"
    env.update(lab_setup.LAB_ENVIRONMENT, LAB3_SOURCE=source, PATH=path)
    if ipython_dir:  # its profile's start-up files run when the kernel starts, as a host's imports do
        env["IPYTHONDIR"] = str(ipython_dir)
    return subprocess.run([_python(env_dir), "-m", "papermill", "--no-progress-bar", "lab3_rlhf_detox.ipynb",
                           "out.ipynb", "-y", json.dumps({"overrides": overrides or {}})], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=1800)


def _cells(notebook: Path) -> list[dict]:
    """The code cells of the executed `notebook`."""
    return [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]


def _setup_cell(notebook: Path) -> dict:
    """The executed set-up cell of `notebook`."""
    return next(c for c in _cells(notebook) if "setup.prepare(" in "".join(c["source"]))


@pytest.fixture(scope="module")
def bare_kernel(tmp_path_factory) -> dict:
    """A bare kernel's environment, a git source of the lab, and the lone notebook's first run in it."""
    work = tmp_path_factory.mktemp("hosted")
    start = time.time()
    venv.create(work / "env", with_pip=True)
    subprocess.run([_python(work / "env"), "-m", "pip", "install", "-q", *HOST], check=True, capture_output=True)
    host_s = time.time() - start
    source = work / "source"
    subprocess.run(["git", "clone", "-q", str(ROOT), source], check=True)
    # A course that hands out the lab without the built tiny preset, tags each version, then goes on working: the
    # notebook must fetch its own version's files and build the preset.
    git = ["git", "-C", str(source), "-c", "user.name=course", "-c", "user.email=course@example.org"]
    subprocess.run([*git, "rm", "-r", "-q", "checkpoints/tiny"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the lab without its built files"], check=True)
    subprocess.run([*git, "tag", f"v{lab_setup.LAB_VERSION}"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the course's later work"], check=True)
    student = work / "student"
    student.mkdir()
    shutil.copy(ROOT / "lab3_rlhf_detox.ipynb", student)
    start = time.time()
    first = _run_notebook(work / "env", student, f"file://{work / 'source'}", overrides={"batch_size": 0})
    print(f"\nhost environment {host_s:.0f} s; first run of the lone notebook {time.time() - start:.0f} s")
    return {"work": work, "env": work / "env", "student": student, "first": first}


def _errors(notebook: Path) -> list[list[str]]:
    """The tracebacks of the errors in the executed `notebook`."""
    return [o["traceback"] for c in _cells(notebook) for o in c.get("outputs", []) if o["output_type"] == "error"]


def test_bare_kernel_run_all_fetches_installs_and_builds_the_lab(bare_kernel):
    first, student = bare_kernel["first"], bare_kernel["student"]
    assert first.returncode != 0 and _errors(student / "out.ipynb") == [
        ["LabError: batch_size is 0; it must be a whole number, at least 1."]], first.stderr[-3000:]
    setup_out = "".join("".join(o.get("text", "")) for o in _setup_cell(student / "out.ipynb")["outputs"])
    print(setup_out)
    installed = re.search(r"Installing \d+ packages into \S+: (.*) \.\.\.", setup_out).group(1).split(", ")
    assert "tqdm==4.70.1" in installed and "transformers==5.24.0" in installed and "Set-up done in" in setup_out
    assert "Building the tiny preset" in setup_out and "Built the tiny preset in" in setup_out
    _assert_the_shipped_build(student / "lab3_files")
    assert "torch" not in installed and "pandas>=2.2,<4" not in installed  # the host's own, kept
    assert not any(line.split("==")[0] in lab_setup.KERNEL_OWN for line in installed)  # the kernel's Jupyter
    tag = subprocess.run(["git", "-C", str(bare_kernel["work"] / "source"), "rev-parse", f"v{lab_setup.LAB_VERSION}"],
                         capture_output=True, text=True).stdout
    fetched = subprocess.run(["git", "-C", str(student / "lab3_files"), "rev-parse", "HEAD"], capture_output=True,
                             text=True).stdout
    assert fetched == tag != ""  # this notebook's version, not the newer work after it
    env = bare_kernel["env"]
    assert _installed(env, "transformers") == "5.24.0" and _installed(env, "tqdm") == "4.70.1"
    assert _installed(env, "pandas") == "2.2.3"  # the host's compiled build, within the pins' range, kept


def test_bare_kernel_second_run_has_nothing_to_set_up(bare_kernel):
    student = bare_kernel["student"]
    again = _run_notebook(bare_kernel["env"], student, f"file://{bare_kernel['work'] / 'source'}",
                          overrides={"batch_size": 0})
    assert again.returncode != 0 and _errors(student / "out.ipynb") == [
        ["LabError: batch_size is 0; it must be a whole number, at least 1."]]
    cell = _setup_cell(student / "out.ipynb")
    lines = "".join("".join(o.get("text", "")) for o in cell["outputs"]).splitlines()
    assert len(lines) == 1 and lines[0].startswith("Set-up: nothing to do (lab version"), lines


def test_bare_kernel_that_imported_a_package_to_replace_is_told_to_restart(bare_kernel, tmp_path):
    """A host that imports tqdm at start-up, at another version than the pinned one: one sentence, no traceback."""
    env = bare_kernel["env"]
    subprocess.run([_python(env), "-m", "pip", "install", "-q", "tqdm==4.67.1"], check=True, capture_output=True)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-host.py").write_text("import tqdm\n")
    shutil.copy(ROOT / "lab3_rlhf_detox.ipynb", tmp_path)
    done = _run_notebook(env, tmp_path, str(bare_kernel["student"] / "lab3_files"), ipython_dir=tmp_path / "ipython")
    assert done.returncode != 0
    errors = [o for c in _cells(tmp_path / "out.ipynb") for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["traceback"] == [
        "LabError: Restart the runtime (Colab: Runtime > Restart session; Jupyter: Kernel > Restart) and run all "
        "again: tqdm had already been imported in this kernel at the version that was just replaced."]
    assert _installed(env, "tqdm") == "4.70.1"  # installed: the run after the restart finds it in place
    assert (tmp_path / "lab3_files" / "lab3" / "setup.py").is_file()  # fetched from a folder this time


def test_python_only_set_up_installs_the_test_requirements_and_keeps_the_shipped_preset(bare_kernel):
    """`python -m lab3` (what `make lab` and `make test` do first) in a fresh checkout, in the bare kernel's Python:
    the notebook installed the lab's packages, this adds the tests' and builds nothing (the preset is shipped; building
    it when missing is the notebook's test above, by the same `prepare`)."""
    checkout = bare_kernel["work"] / "checkout"
    subprocess.run(["git", "clone", "-q", str(ROOT), checkout], check=True)
    done = subprocess.run([_python(bare_kernel["env"]), "-m", "lab3"], cwd=checkout, capture_output=True,
                          text=True, env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "pytest==" in done.stdout and "Building the tiny preset" not in done.stdout
    assert _installed(bare_kernel["env"], "pytest") == lab_setup.requirements("requirements-dev.txt")[0].split("==")[1]
    assert subprocess.run(["git", "-C", str(checkout), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == ""  # the shipped files untouched


def _assert_the_shipped_build(lab_dir: Path) -> None:
    """The tiny preset built in `lab_dir` has the shipped files, byte for byte where this CPU's kernels allow."""
    built = json.loads((lab_dir / "checkpoints" / "tiny" / MANIFEST).read_text())
    shipped = json.loads((ROOT / "checkpoints" / "tiny" / MANIFEST).read_text())
    assert built.keys() == shipped.keys()
    corpus = {name: sha for name, sha in built.items() if name.startswith("dialogsum/")}
    assert corpus == {name: shipped[name] for name in corpus}  # plain Python: the same on every CPU
    if rounds_as_the_build_machine():
        assert built == shipped  # the builder makes the shipped bytes on a CPU that rounds as the build machine did
