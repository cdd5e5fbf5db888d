"""Lab 3 as an assignment: the student's folder holds no solution, the public checks teach, the hidden tests and the
autograder give full marks to the solutions and take exactly an exercise's points for each planted mistake."""

import ast
import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from otter.test_files import ExceptionTestFile

from conftest import ROOT, SHORT, policy, printed
from grading import assign
from grading.exercises import RUN_CHECKS
from lab3.settings import POINTS

EXERCISES = ("reference", "reward", "loop", "bootstrap")  # in the notebook's order, each worth 2 points
ANSWER, SOLUTION = "otter_answer_cell", "otter_assign_solution_cell"
# Lines only a solution holds: none may reach the student.
SOLUTION_LINES = ['for d in out if d["label"] == label', "with ppo_model.pretrained_model.disable_adapter():\n",
                  "rng.integers(0, len(diffs)", "reward_tensors = reward_function(rewards, reward_label)",
                  "stats = ppo_trainer.step(prompt_tensors", "A model answer", "exercises."]
# The planted mistakes: (exercise, a line of its solution, what replaces it).
PLANTED = {
    "reward by position": ("reward", 'return [torch.tensor(next(d["score"] for d in out if d["label"] == label)) '
                           'for out in outputs]', 'return [torch.tensor(out[nothate_index]["score"]) for out in outputs]'),
    "reward of hate": ("reward", 'if d["label"] == label', 'if d["label"] == "hate"'),
    "reference = plain model": (
        "reference", "with ppo_model.pretrained_model.disable_adapter():\n"
        "        reference_logits = ppo_model(**check, decoder_input_ids=decoder_input_ids)[0]",
        "from transformers import AutoModelForSeq2SeqLM\n"
        "    plain = AutoModelForSeq2SeqLM.from_pretrained(cfg.model_name).to(device)\n"
        "    reference_logits = plain(**check, decoder_input_ids=decoder_input_ids)[0]"),
    "bootstrap resamples before and after apart": (
        "bootstrap", "means = diffs[rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))].mean(axis=1)",
        "draw = lambda x: np.asarray(x, dtype=float)[rng.integers(0, len(x), size=(n_resamples, len(x)))]\n"
        "    means = draw(after).mean(axis=1) - draw(before).mean(axis=1)"),
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The assignment as `python -m grading.assign` builds it."""
    out = tmp_path_factory.mktemp("assignment") / "dist"
    subprocess.run([sys.executable, "-m", "grading.assign", str(out)], cwd=ROOT, check=True, capture_output=True)
    return out


def _cells(nb: dict, tag: str) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and tag in c["metadata"].get("tags", [])]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def submission(dist: Path, mistake: str | None = None, parameters: str | None = None) -> dict:
    """The student notebook with every exercise answered by its solution, but for one planted `mistake`."""
    nb = json.loads((dist / "student" / assign.MASTER).read_text())
    solutions = _cells(json.loads((dist / "autograder" / assign.MASTER).read_text()), SOLUTION)
    for exercise, answer, solution in zip(EXERCISES, _cells(nb, ANSWER), solutions, strict=True):
        source = _source(solution)
        if mistake and PLANTED[mistake][0] == exercise:
            _, line, wrong = PLANTED[mistake]
            assert line in source
            source = source.replace(line, wrong)
        answer["source"] = source
    if parameters:
        cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
        cell["source"] = _source(cell) + parameters
    return nb


def test_the_student_gets_no_solution_and_no_hidden_test(dist):
    student = dist / "student"
    texts = {p: p.read_text(errors="replace") for p in student.rglob("*") if p.is_file()
             and p.suffix in (".py", ".ipynb", ".txt", ".json", ".md")}
    assert student / assign.MASTER in texts and student / "rlhf_helpers.py" in texts
    leaks = [(str(p.relative_to(student)), line) for p, text in texts.items() for line in SOLUTION_LINES if line in text]
    assert not leaks
    assert not (student / "grading").exists() and not (student / "tests").exists()
    nb = json.loads((student / assign.MASTER).read_text())
    tests = nb["metadata"]["otter"]["tests"]
    assert set(tests) == set(EXERCISES) and not any("hidden=True" in t for t in tests.values())
    assert len(_cells(nb, ANSWER)) == len(EXERCISES)


def test_the_student_notebook_is_the_masters_but_for_answers_and_checks(dist):
    """Generated, never edited: its other code cells are the complete notebook's, test cells aside."""
    master = json.loads((ROOT / assign.MASTER).read_text())
    ours = [_source(c) for c in master["cells"] if c["cell_type"] == "code" and SOLUTION not in _source(c)
            and "# BEGIN SOLUTION" not in _source(c) and "# BEGIN TEST CONFIG" not in _source(c)]
    nb = json.loads((dist / "student" / assign.MASTER).read_text())
    theirs = [_source(c) for c in nb["cells"] if c["cell_type"] == "code" and ANSWER not in c["metadata"].get("tags", [])
              and not _source(c).startswith("grader.check(") and _source(c) != assign.GRADER_CELL]
    assert theirs == ours


def _tests(dist: Path) -> dict[str, str]:
    """The autograder's test files (public and hidden), by question."""
    with zipfile.ZipFile(next((dist / "autograder").glob("*.zip"))) as z:
        return {Path(n).stem: z.read(n).decode() for n in z.namelist() if n.startswith("tests/")}


def test_the_autograder_has_a_test_per_exercise_and_per_run_check(dist):
    tests = _tests(dist)
    assert set(tests) == set(EXERCISES) | {f"run_{check}" for check in RUN_CHECKS}
    for check in RUN_CHECKS:
        assert ExceptionTestFile.from_string(tests[f"run_{check}"]).test_cases[0].points == POINTS[check]
    with zipfile.ZipFile(next((dist / "autograder").glob("*.zip"))) as z:
        names = set(z.namelist())
    assert {"setup.sh", "run_autograder", "files/grading/released.ipynb", "files/lab3/setup.py"} <= names


def _function(source: str, name: str) -> dict:
    """The variables `name` (a function an answer cell defines) runs with."""
    tree = ast.parse(source)
    env = {"torch": torch, "np": __import__("numpy"), "nothate_index": 0}
    exec(compile(ast.Module([n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name], []),
                 "answer", "exec"), env)
    return env


def _score(test_source: str, env: dict) -> tuple[float, str]:
    test_file = ExceptionTestFile.from_string(test_source)
    test_file.run(env)
    return test_file.score, test_file.summary()


TEACHING = {"reference": "plain\nFLAN-T5 lacks the Lab 2 adapter", "reward": "take the entry whose label is `label`",
            "loop": "take its rewards\nwith reward_function", "bootstrap": "Resample pairs, not two lists"}


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_public_checks_fail_on_the_stubs_and_teach(dist, exercise):
    """Unanswered, each exercise stops with its name, and its public check fails with a message that teaches."""
    nb = json.loads((dist / "student" / assign.MASTER).read_text())
    stub = _source(_cells(nb, ANSWER)[EXERCISES.index(exercise)])
    function = {"reward": "rewards_by_label", "bootstrap": "paired_bootstrap_ci"}.get(exercise)
    if function:  # the stub defines the function, which stops when called
        env = _function(stub, function)
        with pytest.raises(NotImplementedError, match=f"Exercise {exercise}:"):
            env[function](*([[]] * 2))
    else:  # the stub stops the cell itself, before it defines what the check reads
        assert f'raise NotImplementedError("Exercise {exercise}:' in stub
        env = {"torch": torch, "policy_logits": torch.zeros(1), "ppo_history": [], "cfg": None}
    score, summary = _score(nb["metadata"]["otter"]["tests"][exercise], env)
    assert score == 0 and " ".join(TEACHING[exercise].split()) in " ".join(summary.split())


@pytest.mark.parametrize("mistake", [m for m in PLANTED if PLANTED[m][0] in ("reward", "bootstrap")])
def test_each_planted_mistake_costs_its_exercise_s_points(dist, mistake):
    exercise = PLANTED[mistake][0]
    function = {"reward": "rewards_by_label", "bootstrap": "paired_bootstrap_ci"}[exercise]
    test = _tests(dist)[exercise]
    right = _source(_cells(submission(dist), ANSWER)[EXERCISES.index(exercise)])
    wrong = _source(_cells(submission(dist, mistake), ANSWER)[EXERCISES.index(exercise)])
    assert _score(test, _function(right, function))[0] == 2
    score, summary = _score(test, _function(wrong, function))
    assert score == 0, summary
    if exercise == "reward":  # the public check's message names the trap
        assert "an entry taken by its position is the winning label's score" in summary


def test_the_reference_exercise_fails_on_plain_flan_t5(dist, tiny, tokenizer, tiny_dataset):
    test = _tests(dist)["reference"]
    env = {"torch": torch, "tokenizer": tokenizer, "dataset": tiny_dataset, "device": "cpu", "cfg": tiny,
           "ppo_model": policy(tiny)}
    for mistake, points in ((None, 2), ("reference = plain model", 0)):
        cell = _source(_cells(submission(dist, mistake), ANSWER)[EXERCISES.index("reference")])
        answered = dict(env)
        exec(cell, answered)
        assert (answered["difference"] < 1e-5) == (mistake is None)
        assert _score(test, answered)[0] == points


@pytest.mark.slow
def test_the_student_notebook_runs_to_the_first_exercise_s_message(dist, tmp_path):
    """Run all, unanswered: the set-up installs otter, and the first exercise stops the run with its name."""
    folder = tmp_path / "student"
    shutil.copytree(dist / "student", folder)
    done = subprocess.run([sys.executable, "-m", "papermill", assign.MASTER, "out.ipynb", "-p", "output_dir", "out"],
                          cwd=folder, capture_output=True, text=True)
    assert done.returncode != 0
    text = printed(folder / "out.ipynb")
    nb = json.loads((folder / "out.ipynb").read_text())
    error = next(o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error")
    assert (error["ename"], error["evalue"]) == ("NotImplementedError",
                                                 "Exercise reference: compute reference_logits (2.3).")
    assert "PEFT model parameters to be updated" in text  # the cells before it ran


@pytest.mark.slow
def test_a_class_autograded_locally_full_marks_and_each_planted_mistake_costs_exactly_its_points(dist, tmp_path):
    """Short runs (the course assigned SHORT), graded by the autograder zip as on Gradescope: the solutions score every
    point of the exercises and the run checks; a planted mistake loses its exercise's points and nothing else (the
    run checks that rest on that exercise are not charged again)."""
    mistakes = {"alice": None, "bob": "reward of hate"}  # the others' points: the unit tests above
    for name, mistake in mistakes.items():
        (tmp_path / "class" / name).mkdir(parents=True)
        nb = submission(dist, mistake, parameters=f"\noverrides = {SHORT!r}\n")
        (tmp_path / "class" / name / assign.MASTER).write_text(json.dumps(nb))
    zip_path = next((dist / "autograder").glob("*.zip"))
    subprocess.run([sys.executable, "-m", "grading.autograde", str(zip_path), str(tmp_path / "class"), "--csv",
                    str(tmp_path / "grades.csv")], cwd=ROOT, check=True, env=dict(os.environ, LAB3_ASSIGNED=json.dumps(SHORT)))
    rows = {r["submission"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    possible = 2 * len(EXERCISES) + sum(POINTS[c] for c in RUN_CHECKS)
    assert {r["possible"] for r in rows.values()} == {str(possible)}
    assert rows["alice"]["score"] == str(possible), rows["alice"]["lost"]
    assert rows["bob"]["score"] == str(possible - 2), rows["bob"]["lost"]
    assert rows["bob"]["reward"] == "0" and rows["bob"]["lost"].startswith("reward: ")
