"""Build Lab 3 as an assignment from the lecture, its one source: the student's folder and the autograder.

    python -m grading.assignment.build [DIST]     (`make assign`; default: dist)

DIST/student/ is what a student gets: the lecture's notebook with each exercise's function replaced by a stub (its
signature and docstring, and a `NotImplementedError` that names the exercise) followed by its public check
(`grader.check(...)`, otter-grader's, whose tests the notebook's metadata holds), each written answer by a space to
write it in, and the lab's files it runs on; no solution is in any of them. DIST/autograder/lab3-autograder.zip is
what a course uploads to Gradescope (`grading.autograder_zip`, its course file's `hand_in` "notebook": the
submissions are graded by `grading.assignment.autograde`).
"""

import ast
import copy
import json
import shutil
import sys
from pathlib import Path

import nbformat

from grading import autograder_zip
from grading.assignment.exercises import EXERCISES
from grading.autograder_zip import tracked
from grading.course import course as load_course
from lab3 import NOTEBOOK, ROOT
from lab3.solutions import TAG

OTTER = "otter-grader==7.0.0"  # also in requirements-dev.txt: the instructor's and the student's are the same
GRADER_CELL = f'import otter  # the public checks of the exercises\n\ngrader = otter.Notebook("{NOTEBOOK}")'
ANSWER_TAG = "otter_answer_cell"  # otter's tag of the cells a student writes
ANSWER_PROMPT = "_Type your answer here, replacing this text._"
# What a student's folder holds besides the notebook: what the notebook runs on (the tiny preset among it).
STUDENT_FILES = ("lab3", "rlhf_helpers.py", "requirements.txt", "requirements-trackers.txt", "tiny_world",
                 "checkpoints/tiny", "checkpoints/README.md")


def stub(source: str, exercise) -> str:
    """The student's cell of `exercise`: the lecture's function with its body replaced by a `NotImplementedError`
    that names the exercise (its signature and docstring kept)."""
    lines = source.splitlines()
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    first = function.body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
    kept = lines[function.lineno - 1:(first.end_lineno if has_docstring else first.lineno - 1)]
    indent = " " * function.body[0].col_offset
    return "\n".join([*kept, f'{indent}raise NotImplementedError("Exercise {exercise.name}: write '
                                f'{exercise.function} ({exercise.section}).")'])


def _code_cell(source: str, tags: list[str] | None = None, **metadata) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(metadata, **({"tags": tags} if tags else {}))
    return cell


def _defined(source: str) -> str | None:
    """The name of the function a cell defines."""
    return next((n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)), None)


def student_notebook(lecture: nbformat.NotebookNode, exercises=EXERCISES) -> nbformat.NotebookNode:
    """The lecture with the stubs, public checks and answer spaces of the assigned `exercises` in place of their
    solutions; an exercise left out keeps the lecture's code."""
    by_function = {e.function: e for e in exercises}
    nb = copy.deepcopy(lecture)
    cells = []
    for cell in lecture.cells:
        tags = cell.metadata.get("tags", [])
        exercise = by_function.get(_defined(cell.source)) if cell.cell_type == "code" and TAG in tags else None
        if exercise:
            cells += [_code_cell(stub(cell.source, exercise), [ANSWER_TAG]),
                      _code_cell(f'grader.check("{exercise.name}")', deletable=False, editable=False)]
        elif cell.cell_type == "markdown" and "answer" in tags:
            cells.append(nbformat.v4.new_markdown_cell(ANSWER_PROMPT, metadata={"tags": [ANSWER_TAG]}))
        else:
            cells.append(copy.deepcopy(cell))
            if cell.cell_type == "code" and "setup.prepare(" in cell.source:  # otter is installed by then
                cells.append(_code_cell(GRADER_CELL))
    nb.cells = cells
    nb.metadata["otter"] = {"OK_FORMAT": False, "assignment_name": "lab3-rlhf-detox",
                            "tests": {e.name: e.checks.read_text() for e in exercises}}
    nb.metadata.pop("jupytext", None)  # the student's notebook has no script twin
    return nb


def build_student(folder: Path, exercises=EXERCISES) -> Path:
    """The student's folder: the lab's files, the requirements with otter, and the notebook with stubs."""
    for name in tracked(*STUDENT_FILES):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, folder / name)
    with open(folder / "requirements.txt", "a") as requirements:
        requirements.write(f"# The assignment's public checks.\n{OTTER}\n")
    nb = student_notebook(nbformat.read(ROOT / NOTEBOOK, as_version=4), exercises)
    nbformat.write(nb, folder / NOTEBOOK)
    return folder / NOTEBOOK


def main(dist: str = "dist", course: str | None = None) -> Path:
    """Build `dist`/student and `dist`/autograder/lab3-autograder.zip (with the course file `course`, if given)."""
    out = Path(dist).resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "student").mkdir(parents=True)
    (out / "autograder").mkdir()
    the_course = load_course(Path(course) if course else None, hand_in="notebook")
    build_student(out / "student", the_course.exercises)
    course_file = dict(json.loads(Path(course).read_text()) if course else {}, hand_in="notebook")
    zip_path = autograder_zip.build(out / "autograder" / "lab3-autograder.zip", course_file, out / "student")
    print(f"student notebook and files: {out / 'student'}\nautograder: {zip_path}")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
