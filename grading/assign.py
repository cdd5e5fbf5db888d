"""Builds Lab 3 as an assignment with Otter Assign, from the complete notebook (the master: its raw cells mark the
questions, solutions and tests): the student's folder and the autograder.

    python -m grading.assign [DIST]     (default: dist)

DIST/student/ is what a student gets: the notebook with each solution replaced by a stub that stops with the
exercise's name, its public checks (`grader.check("reward")`), and the lab's files it runs on, none of which holds a
solved exercise. DIST/autograder/ holds the solutions notebook, the hidden tests and the Gradescope zip.
"""

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

from grading.exercises import RUN_CHECKS
from lab3.settings import POINTS

ROOT = Path(__file__).resolve().parents[1]
MASTER = "lab3_rlhf_detox.ipynb"
OTTER = "otter-grader==7.0.0"  # also in requirements-dev.txt: the instructor's and the student's are the same
GRADER_CELL = f'import otter  # the public checks of the exercises\n\ngrader = otter.Notebook("{MASTER}")'
GRADESCOPE = Path(__file__).resolve().parent / "gradescope"
RUN_TEST = """from otter.test_files import test_case

OK_FORMAT = False

name = "run_{check}"
points = {points}

@test_case(points=None, hidden=True)
def test_run_{check}(env):
    from grading import exercises  # the run check {check!r} on the run this execution made
    exercises.run_check({check!r}, env)
"""


def staged(folder: Path) -> Path:
    """The lab's files that git does not ignore, copied into `folder`: no run, output or checkpoint of PPO reaches the
    assignment."""
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder / MASTER


def add_grader_cell(notebook: Path) -> None:
    """Put otter's `grader` after the set-up cell, which installs otter: a first cell would import it too early."""
    nb = nbformat.read(notebook, as_version=4)
    set_up = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "setup.prepare(" in c.source)
    nb.cells.insert(set_up + 1, nbformat.v4.new_code_cell(GRADER_CELL))
    nbformat.write(nb, notebook)


def finish_autograder(out: Path, released: Path) -> Path:
    """The autograder zip, completed: the released student notebook (what `notebook` compares with), a hidden test
    per run check, and the lab's own set-up and run scripts (pip, offline; not otter's conda image)."""
    zip_path = next((out / "autograder").glob("*.zip"))
    shutil.copy(released, out / "autograder" / "grading" / "released.ipynb")
    with zipfile.ZipFile(zip_path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    entries["files/grading/released.ipynb"] = released.read_bytes()
    for check in RUN_CHECKS:
        entries[f"tests/run_{check}.py"] = RUN_TEST.format(check=check, points=POINTS[check]).encode()
    for script in ("setup.sh", "run_autograder"):
        entries[script] = (GRADESCOPE / f"assignment_{script}").read_bytes()
    entries.pop("environment.yml", None)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name in ("setup.sh", "run_autograder") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return zip_path


def main(dist: str = "dist") -> Path:
    """Run Otter Assign on the staged master into `dist`; give the student's copy its checks and otter to install."""
    out = Path(dist).resolve()
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as stage:
        master = staged(Path(stage))
        subprocess.run([sys.executable, "-m", "otter", "assign", str(master), str(out)], check=True, cwd=stage)
    add_grader_cell(out / "student" / MASTER)
    with open(out / "student" / "requirements.txt", "a") as requirements:
        requirements.write(f"{OTTER}\n")
    zip_path = finish_autograder(out, out / "student" / MASTER)
    print(f"student notebook and files: {out / 'student'}\nautograder: {zip_path}")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
