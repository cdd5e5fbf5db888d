"""The strict grader (`python -m grading`): an honest run passes; every verdict rests on numbers the grader computed
itself, so forged, copied, broken and hostile submissions fail, each as its own row, and never stop a class."""

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rlhf_helpers as lab
from grading import checks, copies, evidence
from grading.course import POINTS, Course, CourseError, course, student_seed
from grading.gradebook import gradescope_results
from grading.isolated import grade_isolated
from grading.submission import Refused, read_bytes, read_results, shown, strict_json
from lab3 import NOTEBOOK, checkpoints
from lab3.solutions import solution
from tests.conftest import ROOT, SHORT, WRONG_REWARDS, results, with_rewards

ASSIGNED = ["--assigned", json.dumps(SHORT)]  # the course assigned the short run the tests can afford
TIME_LIMIT = 300  # a submission of the short run grades in about 10 s here


def _copy(lab_run: Path, folder: Path) -> Path:
    """An honest submission: the run's notebook, results and adapter, as a student hands them in."""
    folder.mkdir(parents=True)
    shutil.copy(lab_run / "lab.ipynb", folder / "lab3_rlhf_detox.ipynb")
    for name in ("results.json", "ppo_adapter.safetensors"):
        shutil.copy(lab_run / name, folder / name)
    return folder


def _write_results(folder: Path, run: dict) -> None:
    (folder / "results.json").write_text(json.dumps(run))


def _printed_lines(nb: dict, tox: dict) -> dict:
    """`nb` with its four printed toxicity lines made to say what `tox` records."""
    b, a, ci = tox["before"], tox["after"], tox["change_ci95"]
    lines = {"toxicity [mean, std] before": f"toxicity [mean, std] before detox: [{b['mean']:.4f}, {b['std']:.4f}]",
             "toxicity [mean, std] after": f"toxicity [mean, std] after detox: [{a['mean']:.4f}, {a['std']:.4f}]",
             "mean: ": f"mean: {(b['mean'] - a['mean']) / b['mean'] * 100:.2f}%",
             "change in mean toxicity": f"change in mean toxicity: {a['mean'] - b['mean']:+.4f}, 95% CI "
                                        f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("name") == "stdout":
                out["text"] = "".join(next((new + "\n" for start, new in lines.items() if line.startswith(start)), line)
                                      for line in "".join(out["text"]).splitlines(keepends=True))
    return nb


def _fabricated(lab_run: Path, folder: Path, tiny, tiny_dataset, toxicity_evaluator) -> None:
    """A forger's submission: a one-cell notebook that prints the four toxicity lines, and results whose summaries
    after PPO are the data set's own summaries (no model wrote them), each truly scored by the shipped classifier, the
    means, CI and ROUGE computed from them, with a real run's adapter and PPO steps."""
    folder.mkdir()
    shutil.copy(lab_run / "ppo_adapter.safetensors", folder)
    run = results(lab_run)
    after = list(tiny_dataset["test"].select(range(SHORT["num_eval_samples"]))["summary"])
    per_sample = toxicity_evaluator.compute(predictions=after, toxic_label="hate")["toxicity"]
    run["toxicity"]["after"] = {"mean": float(np.mean(per_sample)), "std": float(np.std(per_sample)),
                                "per_sample": per_sample, "summaries": after}
    ci = solution("paired_bootstrap_ci")(run["toxicity"]["before"]["per_sample"], per_sample, seed=tiny.seed)
    run["toxicity"]["change_ci95"] = list(ci)
    run["rouge"]["after"] = lab.rouge(after, after)
    _write_results(folder, run)
    cell = {"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {}, "source": "import rlhf_helpers",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "toxicity [mean, std] before\n"
                                                                              "toxicity [mean, std] after\nmean: \n"
                                                                              "change in mean toxicity\n"}]}
    nb = _printed_lines({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, run["toxicity"])
    (folder / "lab3_rlhf_detox.ipynb").write_text(json.dumps(nb))


def _untrained(lab_run: Path, folder: Path) -> None:
    """The forgery of an untrained adapter: an honest run's adapter zeroed (it writes exactly what the Lab 2 model
    writes) with its SHA-256 updated, its first PPO step recorded for every step with KL 0, the most toxic summary after
    PPO rewritten (what the 2% a grader might forgive allows here) to fake a drop, and the means, stds, CI and the
    printed lines recomputed from those."""
    from safetensors.torch import load_file, save_file
    _copy(lab_run, folder)
    tensors = load_file(folder / "ppo_adapter.safetensors")
    save_file({k: v * 0 if "lora_B" in k else v for k, v in tensors.items()}, folder / "ppo_adapter.safetensors")
    run = results(lab_run)
    run["adapter_sha256"] = hashlib.sha256((folder / "ppo_adapter.safetensors").read_bytes()).hexdigest()
    first = run["ppo_steps"][0]
    run["ppo_steps"] = [dict(first, step=k, **{"objective/kl": 0.0}) for k in range(SHORT["max_ppo_steps"])]
    tox = run["toxicity"]
    worst = max(range(len(tox["after"]["per_sample"])), key=tox["after"]["per_sample"].__getitem__)
    clean = min(range(len(tox["before"]["per_sample"])), key=tox["before"]["per_sample"].__getitem__)
    tox["after"]["summaries"][worst] = tox["before"]["summaries"][clean]
    tox["after"]["per_sample"][worst] = tox["before"]["per_sample"][clean]
    for phase in ("before", "after"):
        tox[phase].update(mean=float(np.mean(tox[phase]["per_sample"])), std=float(np.std(tox[phase]["per_sample"])))
    ci = solution("paired_bootstrap_ci")(tox["before"]["per_sample"], tox["after"]["per_sample"], seed=run["seed"])
    tox["change_ci95"] = list(ci)
    _write_results(folder, run)
    nb = _printed_lines(json.loads((folder / "lab3_rlhf_detox.ipynb").read_text()), tox)
    (folder / "lab3_rlhf_detox.ipynb").write_text(json.dumps(nb))


class _Trap:
    """Unpickled, it leaves a file behind: proof that the grader ran a student's pickle."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "the grader unpickled a student's file"))


def _own_classifier(lab_run: Path, folder: Path, trap: Path) -> None:
    """An honest run that names a classifier in its own folder: a config that asks for remote code, and pickled
    weights that would run code when loaded."""
    import pickle
    _copy(lab_run, folder)
    mine = folder / "my-classifier"
    mine.mkdir()
    (mine / "config.json").write_text(json.dumps({"model_type": "roberta", "auto_map": {
        "AutoModelForSequenceClassification": "evil.Model"}}))
    (mine / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(trap)))
    run = results(lab_run)
    run["preset"]["toxicity_model_name"] = str(mine)
    _write_results(folder, run)


def _edited(lab_run: Path, folder: Path) -> None:
    """An honest run with its most toxic summary after PPO recorded as clean, and the mean lowered to suit."""
    _copy(lab_run, folder)
    run = results(lab_run)
    after = run["toxicity"]["after"]
    worst = max(range(len(after["per_sample"])), key=after["per_sample"].__getitem__)
    after["mean"] -= (after["per_sample"][worst] - 0.01) / len(after["per_sample"])
    after["per_sample"][worst] = 0.01
    _write_results(folder, run)


def _other_parameters(lab_run: Path, folder: Path) -> None:
    """An honest run whose notebook's injected parameters say it ran other settings than its results record."""
    _copy(lab_run, folder)
    nb = json.loads((folder / "lab3_rlhf_detox.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    cell["source"] = "".join(cell["source"]).replace('"max_ppo_steps": 6', '"max_ppo_steps": 5')
    (folder / "lab3_rlhf_detox.ipynb").write_text(json.dumps(nb))


def _huge_adapter(lab_run: Path, folder: Path) -> None:
    """An honest run whose adapter holds finite weights so large that sampling from it fails, its hash made to agree."""
    import torch
    from safetensors.torch import load_file, save_file
    _copy(lab_run, folder)
    tensors = load_file(folder / "ppo_adapter.safetensors")
    save_file({k: torch.full_like(v, 1e30) for k, v in tensors.items()}, folder / "ppo_adapter.safetensors")
    run = results(lab_run)
    run["adapter_sha256"] = hashlib.sha256((folder / "ppo_adapter.safetensors").read_bytes()).hexdigest()
    _write_results(folder, run)


def _with(lab_run: Path, folder: Path, **files) -> None:
    """An honest submission whose files named in `files` are replaced: bytes, or a function that makes the file."""
    _copy(lab_run, folder)
    for name, content in files.items():
        (folder / name).unlink()
        content(folder / name) if callable(content) else (folder / name).write_bytes(content)


@pytest.fixture(scope="module")
def graded_class(lab_run, tiny, tiny_dataset, toxicity_evaluator, tmp_path_factory):
    """A class of two students handing in the same honest run (alice, and eve, whose folder's name is crafted), the
    forgeries and every kind of hostile submission, graded: (rows of the CSV, what the grader printed,
    the trap file a pickle would have written)."""
    klass = tmp_path_factory.mktemp("class") / "submissions"
    trap = klass.parent / "trap"
    for name in ("alice", "eve\x1b[2J"):  # eve's name would clear the instructor's terminal
        _copy(lab_run, klass / name)
    _fabricated(lab_run, klass / "forger", tiny, tiny_dataset, toxicity_evaluator)
    _untrained(lab_run, klass / "untrained")
    _own_classifier(lab_run, klass / "own-classifier", trap)
    _edited(lab_run, klass / "edited")
    _other_parameters(lab_run, klass / "other-parameters")
    _huge_adapter(lab_run, klass / "huge-adapter")
    nb = json.loads((lab_run / "lab.ipynb").read_text())
    _with(lab_run, klass / "cells-one", **{"lab3_rlhf_detox.ipynb": json.dumps(dict(nb, cells=[1])).encode()})
    _with(lab_run, klass / "no-cell-type", **{"lab3_rlhf_detox.ipynb": json.dumps(dict(nb, cells=[
        {k: v for k, v in c.items() if k != "cell_type"} for c in nb["cells"]])).encode()})
    _with(lab_run, klass / "fifo", **{"results.json": os.mkfifo})
    _with(lab_run, klass / "zeros", **{"results.json": lambda p: p.symlink_to("/dev/zero")})
    _with(lab_run, klass / "folder", **{"results.json": Path.mkdir})
    _with(lab_run, klass / "huge", **{"lab3_rlhf_detox.ipynb": b'{"cells": [], "x": "' + b"a" * (60 << 20) + b'"}'})
    _with(lab_run, klass / "deep", **{"results.json": b"[" * 200_000 + b"]" * 200_000})
    _with(lab_run, klass / "nan", **{"results.json": (lab_run / "results.json").read_bytes().replace(
        b'"objective/kl": ', b'"objective/kl": NaN, "x": ', 1)})
    code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and not c["metadata"].get("tags"))
    long_cell = dict(nb["cells"][code], source="import" + " rlhf_helpers" * 200_000)  # 2.6 MB on one line
    _with(lab_run, klass / "long-source", **{"lab3_rlhf_detox.ipynb": json.dumps(dict(nb, cells=[
        *nb["cells"][:code], long_cell, *nb["cells"][code + 1:]])).encode()})
    (klass / "long-source" / "results.json").unlink()  # the notebook alone is what this one tries
    out = subprocess.run([sys.executable, "-m", "grading", str(klass), "--csv", str(klass.parent / "grades.csv"),
                          "--time-limit", str(TIME_LIMIT), *ASSIGNED], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {r["submission"]: r for r in csv.DictReader(open(klass.parent / "grades.csv"))}
    assert len(rows) == 17
    return rows, out.stdout, trap


def _passed(row: dict) -> set[str]:
    return {check for check in checks.CHECKS if row[check] == "PASS"}


def test_honest_students_pass_every_check_and_the_same_work_shows(graded_class):
    rows, out, _ = graded_class
    for student in ("alice", "eve\\x1b[2J"):
        assert _passed(rows[student]) == set(checks.CHECKS), rows[student]
    same = "(the same adapter, 100% of PPO texts, 100% of summaries)"
    eve = "eve\\x1b[2J"
    assert f"{eve} {same}" in rows["alice"]["same_work_as"] and f"alice {same}" in rows[eve]["same_work_as"]
    assert "forger (the same adapter, 100% of PPO texts)" in rows["alice"]["same_work_as"]  # its summaries differ
    assert "2 of 17 submissions passed" in out
    assert "\x1b" not in out  # the name reached the terminal escaped
    assert not any("could not be graded" in r["reasons"] for r in rows.values())


def test_an_untrained_adapter_with_forged_records_is_not_credited(graded_class):
    """The forgery of an untrained adapter: the toxicity is the grader's own (the adapter writes the Lab 2 model's
    summaries: no change), and each forged record is found out."""
    row = graded_class[0]["untrained"]
    assert row["toxicity"] == "FAIL" and "(+0.0%)" in row["reasons"] and "no significant change" in row["reasons"]
    assert "steps: 5 of 6 PPO steps (the first: step 1) were not taken on the prompts the run's seed draws" in \
        row["reasons"]
    assert row["summaries"] == "FAIL" and "summaries after PPO (the first: number" in row["reasons"]
    assert "the results file records other numbers: mean after" in row["reasons"]
    assert _passed(row) == {"notebook", "cells", "results", "config", "rescore"}


def test_a_fabricated_submission_fails_and_scores_only_what_it_truly_passes(graded_class):
    forger = graded_class[0]["forger"]
    assert forger["notebook"] == "FAIL" and "not the released Lab 3 notebook" in forger["reasons"]
    assert forger["summaries"] == "FAIL" and "summaries after PPO (the first: number" in forger["reasons"]
    assert "toxicity: " in forger["reasons"] and "but the results file records other numbers" in forger["reasons"]
    # What it truly has: a cell that ran, the results' shape and settings, and a real run's PPO steps and scores.
    assert _passed(forger) == {"cells", "results", "config", "steps", "rescore", "reward"}


def test_a_classifier_of_the_students_is_never_loaded(graded_class):
    rows, _, trap = graded_class
    row = rows["own-classifier"]
    assert not trap.exists()
    assert row["config"] == "FAIL" and "toxicity_model_name" in row["reasons"]
    assert row["rescore"] == "PASS"  # by the grader's own classifier, whatever the results name


def test_an_edited_score_fails_the_rescore_and_the_toxicity(graded_class):
    edited = graded_class[0]["edited"]
    assert (edited["summaries"], edited["rescore"], edited["toxicity"]) == ("PASS", "FAIL", "FAIL")
    assert "1 summaries after PPO score otherwise than recorded" in edited["reasons"]
    assert "but the results file records other numbers: mean after" in edited["reasons"]


def test_the_notebook_s_parameters_must_be_the_run_s(graded_class):
    row = graded_class[0]["other-parameters"]
    assert _passed(row) == set(checks.CHECKS) - {"config"}
    assert "the notebook's parameters are not the run's: setting max_ppo_steps 5 in the notebook, 6 in " \
           "results.json" in row["reasons"]


@pytest.mark.parametrize("name,check,why", [
    ("cells-one", "notebook", "is not a Jupyter notebook"),
    ("no-cell-type", "notebook", "is not a Jupyter notebook"),
    ("fifo", "results", "results.json: results.json is not a regular file"),
    ("zeros", "results", "results.json: results.json is a symbolic link"),
    ("folder", "results", "results.json: results.json is not a regular file"),
    ("huge", "notebook", "is larger than 16 MB"),
    ("deep", "results", "nested too deeply"),
    ("nan", "results", "NaN is not a number JSON allows"),
    ("long-source", "notebook", "not the released Lab 3 notebook"),
    ("huge-adapter", "summaries", "ppo_adapter.safetensors could not write summaries: probability tensor contains"),
])
def test_each_broken_submission_is_a_row_that_says_which_file_is_wrong(graded_class, name, check, why):
    row = graded_class[0][name]
    assert row["passed"] == "false" and row[check] == "FAIL" and why in row["reasons"], row
    assert "could not be graded" not in row["reasons"]


def _limits(**changes) -> argparse.Namespace:
    return argparse.Namespace(**{**dict(classifier=None, released=None, the_course=course(assigned=SHORT),
                                        time_limit=TIME_LIMIT, memory_limit_gb=12), **changes})


def test_a_submission_past_its_time_or_memory_limit_is_a_row_that_says_why(lab_run, tmp_path):
    submission = _copy(lab_run, tmp_path / "s")
    (tmp_path / "work").mkdir()
    report, _ = grade_isolated(submission, "s", _limits(time_limit=1), tmp_path / "work")
    assert {status for _, status, _ in report} == {"NOT RUN"}
    assert report[0][2] == "could not be graded: grading it took more than the limit of 1 s"
    report, _ = grade_isolated(submission, "s", _limits(memory_limit_gb=0.3), tmp_path / "work")
    assert report[0][2].startswith("could not be graded: the grading process failed (")


def test_a_course_s_seed_salt_gives_each_student_a_seed_and_refuses_another_s(lab_run, tmp_path):
    """With a seed salt, a run must have its student's seed: the honest run of seed 42 is not alice's."""
    salted = Course(assigned=SHORT, seed_salt="the course's secret")
    assert salted.seed("alice") == student_seed("the course's secret", "alice") != salted.seed("bob")
    assert salted.settings("alice").seed == salted.seed("alice") and salted.seed("alice") < 2 ** 32
    ok, reason = checks.check_config(results(lab_run), salted, salted.settings("alice"), None)
    assert not ok and f"seed 42 (the course's: {salted.seed('alice')})" in reason


def _autograde(root: Path, submission: Path, zipped: bool = False, **env) -> dict:
    """Gradescope's results for `submission`, graded by run_autograder: from the autograder's zip for a course that
    assigned the short run (`zipped`), else from this checkout with the settings in LAB3_ASSIGNED."""
    shutil.copytree(submission, root / "submission")
    script = ROOT / "grading" / "gradescope" / "run_autograder"
    if zipped:
        (root / "course.json").write_text(json.dumps({"assigned": SHORT}))
        subprocess.run([sys.executable, "-m", "grading.autograder_zip", str(root / "autograder.zip"),
                        str(root / "course.json")], cwd=ROOT, check=True, capture_output=True)
        with zipfile.ZipFile(root / "autograder.zip") as z:
            z.extractall(root / "source")
        assert json.loads((root / "source" / "course.json").read_text()) == {"assigned": SHORT, "hand_in": "run"}
        assert not (root / "source" / "student").exists() and (root / "source" / "lab" / NOTEBOOK).is_file()
        script = root / "source" / "run_autograder"
    subprocess.run(["bash", str(script), str(root)], check=True, capture_output=True,
                   env=dict(os.environ, **({} if zipped else {"LAB3_ASSIGNED": json.dumps(SHORT)}), **env))
    return json.loads((root / "results" / "results.json").read_text())


def test_the_autograder_zip_of_runs_refuses_an_assignment_s_course(tmp_path):
    (tmp_path / "course.json").write_text(json.dumps({"hand_in": "notebook"}))
    done = subprocess.run([sys.executable, "-m", "grading.autograder_zip", str(tmp_path / "a.zip"),
                           str(tmp_path / "course.json")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "python -m grading.assignment.build" in done.stdout
    assert not (tmp_path / "a.zip").exists()


def test_run_autograder_scores_an_honest_run_and_says_why_it_could_not_grade_one(lab_run, tmp_path):
    honest = _autograde(tmp_path / "honest", _copy(lab_run, tmp_path / "a"), zipped=True)
    assert honest["score"] == sum(POINTS.values()) and [t["name"] for t in honest["tests"]] == list(checks.CHECKS)
    assert all(t["status"] == "passed" and t["output"] for t in honest["tests"])
    slow = _autograde(tmp_path / "slow", tmp_path / "a", LAB3_TIME_LIMIT="1")
    assert slow["score"] == 0 and slow["output"] == "could not be graded: grading it took more than the limit of 1 s"


@pytest.mark.parametrize("name", WRONG_REWARDS)
def test_the_classic_reward_mistakes_fail_the_reward_check(lab_run, name):
    run = results(lab_run)
    outputs = [out for step in run["ppo_steps"] for out in step["pipeline_scores"]]
    own = evidence.Scores({}, outputs, [next(d["score"] for d in out if d["label"] == "nothate") for out in outputs])
    ok, reason = checks.check_reward(with_rewards(run, WRONG_REWARDS[name]), own)
    assert not ok and "rewards were not the 'nothate' score of their text" in reason
    assert checks.check_reward(run, own)[0]


def test_each_step_s_prompts_are_those_its_seed_draws(lab_run, tiny_dataset):
    run = results(lab_run)
    queries, steps = list(tiny_dataset["train"]["query"]), len(run["ppo_steps"])
    drawn = checkpoints.step_prompts(queries, 64, 1, run["seed"], steps)
    assert checks.check_steps(run, course(assigned=SHORT).settings(), drawn)[0]
    other = checkpoints.step_prompts(queries, 64, 1, run["seed"] + 1, steps)
    ok, reason = checks.check_steps(run, course(assigned=SHORT).settings(), other)
    assert not ok and reason.startswith(f"{SHORT['max_ppo_steps']} of {SHORT['max_ppo_steps']} PPO steps (the first: "
                                        "step 0) were not taken on the prompts")


def test_the_notebook_check_reads_which_cells_may_change_from_the_released_notebook(lab_run):
    """Only the released parameters cell (and papermill's injected cell right after it) may differ, and only by
    assigning values; a submission's own tags exempt nothing, outside the assignment or in it."""
    nb = json.loads((lab_run / "lab.ipynb").read_text())
    assert checks.check_notebook(nb)[0]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    loop = next(c for c in code if "run.steps(ppo_trainer)" in "".join(c["source"]))
    for tag in ("parameters", "otter_answer_cell"):
        tampered = json.loads(json.dumps(nb))
        cell = next(c for c in tampered["cells"] if c.get("id") == loop.get("id"))
        cell["source"], cell["metadata"]["tags"] = "reward_label = 'hate'", [tag]
        ok, reason = checks.check_notebook(tampered)
        assert not ok and "differs" in reason
    injected = next(c for c in code if "injected-parameters" in c["metadata"].get("tags", []))
    injected["source"] += "\nimport os"
    assert checks.check_notebook(nb) == (False, "the injected parameters cell does more than assign values")


@pytest.mark.parametrize("source,ok", [
    ('preset_name = "tiny"\noverrides = {"max_ppo_steps": 6}  # a comment\nresume = True\nx = None', True),
    ("import os", False), ("preset_name = __import__('os').system('id')", False), ("a.b = 1", False),
])
def test_a_parameters_cell_may_only_assign_values(source, ok):
    assert (checks._literal_assignments(source) is not None) is ok


def test_copies_are_told_apart_from_honest_runs_of_other_seeds():
    base = copies.fingerprint("a" * 64, [f"text {i}" for i in range(100)], [f"summary {i % 7}" for i in range(50)])
    honest = copies.fingerprint("b" * 64, [f"other {i}" for i in range(100)], [f"summary {i % 7}" for i in range(50)])
    honest["summaries"][:3] = ["x"] * 3  # formulaic summaries: most are the same, as in the tiny world
    tweaked = dict(base, adapter="c" * 64)  # a copy whose adapter was changed by a hair
    found = copies.same_work({"a": base, "b": honest, "c": tweaked, "d": None})
    assert found == {"a": ["c (100% of PPO texts, 100% of summaries)"], "b": [],
                     "c": ["a (100% of PPO texts, 100% of summaries)"], "d": []}


def test_a_course_file_is_checked_and_the_command_line_wins(tmp_path):
    path = tmp_path / "course.json"
    path.write_text(json.dumps({"preset": "tiny", "assigned": {"max_ppo_steps": 20}, "points": {"summaries": 5}}))
    assert course(path) == Course(assigned={"max_ppo_steps": 20}, points=dict(POINTS, summaries=5))
    assert course(path, assigned=SHORT).assigned == SHORT
    path.write_text(json.dumps({"preset": "huge"}))
    with pytest.raises(CourseError, match="the course's preset 'huge' is none of full, tiny"):
        course(path)
    path.write_text(json.dumps({"salt": 1}))
    with pytest.raises(CourseError, match="the course names salt, which the grader does not know"):
        course(path)


def test_gradescope_points_follow_the_checks_that_passed():
    report = [(c, "FAIL" if c in ("rescore", "toxicity") else "PASS", "why") for c in checks.CHECKS]
    result = gradescope_results(report, POINTS)
    assert result["score"] == sum(POINTS.values()) - POINTS["rescore"] - POINTS["toxicity"]
    assert result["output"] == f"{len(checks.CHECKS) - 2} of {len(checks.CHECKS)} checks passed"


def test_a_check_not_run_scores_nothing_and_says_why():
    report = [("rescore", "NOT RUN", "the classifier is not on this machine"), ("kl", "PASS", "largest KL 1.0")]
    result = gradescope_results(report, {"rescore": 3, "kl": 2})
    assert result["score"] == 2 and result["tests"][0] == {
        "name": "rescore", "score": 0, "max_score": 3, "status": "failed",
        "output": "not run: the classifier is not on this machine", "visibility": "visible"}


def test_the_grader_imports_no_torch_until_a_run_is_valid():
    code = ("import sys, grading.__main__; "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


@pytest.mark.parametrize("text,why", [(b'{"a": NaN}', "NaN is not a number"), (b'[1e999]', "is not finite"),
                                      (b'{"a": -Infinity}', "-Infinity is not a number"), (b"\xff", "not UTF-8")])
def test_strict_json_refuses_what_is_not_a_finite_number(text, why):
    with pytest.raises(Refused, match=why):
        strict_json(text, "results.json")


def test_a_results_file_is_checked_against_the_schema(lab_run, tmp_path):
    run = results(lab_run)
    run["ppo_steps"][2]["rewards"][5] = "1.5"
    _write_results(tmp_path, run)
    with pytest.raises(Refused, match=r"at ppo_steps/2/rewards/5: '1.5' is not of type 'number'"):
        read_results(tmp_path / "results.json")


def test_only_regular_files_within_their_size_are_read(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * ((16 << 20) + 1))
    with pytest.raises(Refused, match="larger than 16 MB"):
        read_bytes(tmp_path / "big", "notebook")
    (tmp_path / "link").symlink_to(tmp_path / "big")
    with pytest.raises(Refused, match="symbolic link"):
        read_bytes(tmp_path / "link", "results")
    (tmp_path / "folder").mkdir()
    with pytest.raises(Refused, match="folder is not a regular file"):
        read_bytes(tmp_path / "folder", "results")
    assert read_bytes(tmp_path / "big", "results") == b"x" * ((16 << 20) + 1)


def test_student_text_is_escaped_and_bounded():
    assert shown("eve\x1b[2J\n") == "eve\\x1b[2J\\n"
    assert shown("x" * 500, 10) == "x" * 10 + "..."


def test_toxicity_criteria_follow_the_preset():
    def run(ci, before=0.02, after=0.021):
        tox = {"before": {"mean": before, "std": 0.1}, "after": {"mean": after, "std": 0.1}, "change_ci95": ci}
        return {"preset": {"dtype": "float32"}, "toxicity": tox}, json.loads(json.dumps(tox))
    full, tiny = Course(preset="full").criteria, Course().criteria
    assert checks.check_toxicity(*run([-0.004, 0.006]), full) == (
        True, "mean toxicity 0.0200 -> 0.0210 (+5.0%), 95% CI of the change [-0.0040, +0.0060]: no significant change, "
              "as expected after so few steps")
    ok, reason = checks.check_toxicity(*run([0.01, 0.05], after=0.05), full)
    assert not ok and reason.endswith("a significant rise: PPO made the summaries more toxic (a passing run shows no "
                                      "significant rise)")
    ok, reason = checks.check_toxicity(*run([-0.004, 0.006]), tiny)
    assert not ok and reason.endswith("no significant change (a passing run shows a significant drop)")
    recorded, own = run([-0.3, -0.1], after=0.01)
    own["change_ci95"] = [-0.3, -0.2]  # the recorded interval is not the one computed here
    ok, reason = checks.check_toxicity(recorded, own, tiny)
    assert not ok and reason.endswith("but the results file records other numbers: CI high -0.1000 recorded, "
                                      "-0.2000 here")


def test_one_command_line_grades_runs_or_notebooks_by_what_the_course_says_students_hand_in(tmp_path):
    """`python -m grading` takes what students hand in from the course file (or --hand-in): notebooks are graded
    against the student folder handed out, and a folder that is not one stops it in one sentence."""
    (tmp_path / "course.json").write_text(json.dumps({"hand_in": "notebook"}))
    (tmp_path / "alice").mkdir()
    for how in (["--course", str(tmp_path / "course.json")], ["--hand-in", "notebook"]):
        done = subprocess.run([sys.executable, "-m", "grading", str(tmp_path / "alice"), *how, "--handed-out",
                               str(tmp_path / "nothing")], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stdout.strip().splitlines() == [
            f"grading: {tmp_path / 'nothing'} is not the student folder `make assign` wrote (--handed-out)"]
    done = subprocess.run([sys.executable, "-m", "grading", str(tmp_path / "alice"), "--hand-in", "notebook",
                           "--preset", "full"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "executed on the tiny preset" in done.stdout


def _sleep_then_answer(seconds: float) -> int:
    import time
    time.sleep(seconds)
    return 1


def test_a_grading_process_of_its_own_answers_stops_at_its_limit_and_dies_with_its_grader(tmp_path):
    from grading import isolated
    assert isolated.call(_sleep_then_answer, {"seconds": 0}, 60, 4, tmp_path / "a.log") == (1, "")
    assert isolated.call(_sleep_then_answer, {"seconds": 30}, 1, 4, tmp_path / "b.log") == (
        None, "took more than the limit of 1 s")
    grader = ("import sys, time; from pathlib import Path; from grading import isolated; "
              "from tests.test_grader import _sleep_then_answer; "
              "isolated.call(_sleep_then_answer, {'seconds': 60}, 120, 4, Path(sys.argv[1]))")
    process = subprocess.Popen([sys.executable, "-c", grader, str(tmp_path / "c.log")], cwd=ROOT)
    deadline = time.time() + 60
    while not (tmp_path / "c.log").exists() and time.time() < deadline:
        time.sleep(0.2)
    children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == process.pid]
    process.kill()
    process.wait()
    time.sleep(2)
    assert children and not any(p.exists() and _parent(p) is not None for p in children)


def _parent(proc: Path) -> int | None:
    """The parent pid of the process at /proc/PID, or None once it is gone (or a zombie)."""
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[1])
