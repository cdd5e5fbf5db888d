"""The grader: an honest run passes; forged, broken and hostile submissions fail, each as its own row, and never stop
the grading of a class."""

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rlhf_helpers as lab
from conftest import ROOT, SHORT, WRONG_REWARDS, results, with_rewards
from grading import checks
from grading.evidence import paired_bootstrap_ci
from grading.__main__ import grade_isolated, gradescope_results
from grading.submission import Refused, read_bytes, read_results, shown, strict_json
from lab3.settings import POINTS

ASSIGNED = ["--assigned", json.dumps(SHORT)]  # the course assigned the short run the tests can afford
TIME_LIMIT = 300  # a submission of the short run grades in about 15 s here


def _copy(lab_run: Path, folder: Path) -> Path:
    """An honest submission: the run's notebook, results and adapter, as a student hands them in."""
    folder.mkdir(parents=True)
    shutil.copy(lab_run / "lab.ipynb", folder / "lab3_rlhf_detox.ipynb")
    for name in ("results.json", "ppo_adapter.safetensors"):
        shutil.copy(lab_run / name, folder / name)
    return folder


def _write_results(folder: Path, run: dict) -> None:
    (folder / "results.json").write_text(json.dumps(run))


def _fabricated(lab_run: Path, folder: Path, tiny: dict, tiny_dataset, toxicity_evaluator) -> None:
    """A forger's submission: a one-cell notebook that prints the four toxicity lines, and results whose summaries
    after PPO are the data set's own summaries (no model wrote them), each truly scored by the shipped classifier, the
    means, CI and ROUGE computed from them, with a real run's adapter and PPO steps."""
    folder.mkdir()
    shutil.copy(lab_run / "ppo_adapter.safetensors", folder)
    run = results(lab_run)
    after = list(tiny_dataset["test"].select(range(SHORT["num_eval_samples"]))["summary"])
    per_sample = toxicity_evaluator.compute(predictions=after, toxic_label="hate")["toxicity"]
    before = run["toxicity"]["before"]
    ci = paired_bootstrap_ci(before["per_sample"], per_sample, seed=tiny.seed)
    mean, std = float(sum(per_sample) / len(per_sample)), float(__import__("numpy").std(per_sample))
    run["toxicity"]["after"] = {"mean": mean, "std": std, "per_sample": per_sample, "summaries": after}
    run["toxicity"]["change_ci95"] = list(ci)
    run["rouge"]["after"] = lab.rouge(after, after)
    _write_results(folder, run)
    printed = (f"toxicity [mean, std] before detox: [{before['mean']:.4f}, {before['std']:.4f}]\n"
               f"toxicity [mean, std] after detox: [{mean:.4f}, {std:.4f}]\nmean: "
               f"{(before['mean'] - mean) / before['mean'] * 100:.2f}%\n"
               f"change in mean toxicity: {mean - before['mean']:+.4f}, 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}]\n")
    cell = {"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {}, "source": "import rlhf_helpers",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": printed}]}
    nb = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "lab3_rlhf_detox.ipynb").write_text(json.dumps(nb))


def _other_adapter(lab_run: Path, folder: Path) -> None:
    """An honest run's notebook and results, with an adapter that did not write its summaries (the untrained one: the
    Lab 2 model), the results file's adapter hash made to agree."""
    from safetensors.torch import load_file, save_file
    _copy(lab_run, folder)
    tensors = load_file(folder / "ppo_adapter.safetensors")
    save_file({k: v * 0 if "lora_B" in k else v for k, v in tensors.items()}, folder / "ppo_adapter.safetensors")
    run = results(lab_run)
    run["adapter_sha256"] = hashlib.sha256((folder / "ppo_adapter.safetensors").read_bytes()).hexdigest()
    _write_results(folder, run)


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


def _with(lab_run: Path, folder: Path, **files) -> None:
    """An honest submission whose files named in `files` are replaced: bytes, or a function that makes the file."""
    _copy(lab_run, folder)
    for name, content in files.items():
        (folder / name).unlink()
        content(folder / name) if callable(content) else (folder / name).write_bytes(content)


@pytest.fixture(scope="module")
def graded_class(lab_run, tiny, tiny_dataset, toxicity_evaluator, tmp_path_factory):
    """A class of two honest students (alice, and eve whose folder's name is crafted) and every kind of hostile submission, graded: (rows of the CSV, what the grader
    printed, the seconds it took, the trap file a pickle would have written)."""
    klass = tmp_path_factory.mktemp("class") / "submissions"
    trap = klass.parent / "trap"
    _copy(lab_run, klass / "alice")
    _fabricated(lab_run, klass / "forger", tiny, tiny_dataset, toxicity_evaluator)
    _own_classifier(lab_run, klass / "own-classifier", trap)
    _other_adapter(lab_run, klass / "other-adapter")
    _edited(lab_run, klass / "edited")
    nb = json.loads((lab_run / "lab.ipynb").read_text())
    _with(lab_run, klass / "cells-one", **{"lab3_rlhf_detox.ipynb": json.dumps(dict(nb, cells=[1])).encode()})
    _with(lab_run, klass / "no-cell-type", **{"lab3_rlhf_detox.ipynb": json.dumps(dict(nb, cells=[
        {k: v for k, v in c.items() if k != "cell_type"} for c in nb["cells"]])).encode()})
    _with(lab_run, klass / "fifo", **{"results.json": os.mkfifo})
    _with(lab_run, klass / "zeros", **{"results.json": lambda p: p.symlink_to("/dev/zero")})
    _with(lab_run, klass / "huge", **{"lab3_rlhf_detox.ipynb": b'{"cells": [], "x": "' + b"a" * (60 << 20) + b'"}'})
    _with(lab_run, klass / "deep", **{"results.json": b"[" * 200_000 + b"]" * 200_000})
    _with(lab_run, klass / "nan", **{"results.json": (lab_run / "results.json").read_bytes().replace(
        b'"objective/kl": ', b'"objective/kl": NaN, "x": ', 1)})
    code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and not c["metadata"].get("tags"))
    long_cell = dict(nb["cells"][code], source="import" + " rlhf_helpers" * 200_000)  # 2.6 MB on one line
    _with(lab_run, klass / "long-source", **{"lab3_rlhf_detox.ipynb": json.dumps(dict(nb, cells=[
        *nb["cells"][:code], long_cell, *nb["cells"][code + 1:]])).encode()})
    (klass / "long-source" / "results.json").unlink()  # the notebook alone is what this one tries
    _copy(lab_run, klass / "eve\x1b[2J")  # a name that would clear the instructor's terminal
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "grading", str(klass), "--csv", str(klass.parent / "grades.csv"),
                          "--time-limit", str(TIME_LIMIT), *ASSIGNED], cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - started
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {r["submission"]: r for r in csv.DictReader(open(klass.parent / "grades.csv"))}
    return rows, out.stdout, seconds, trap


def _points(row: dict) -> int:
    return sum(POINTS[check] for check in checks.CHECKS if row[check] == "PASS")


def test_honest_students_pass_every_check(graded_class):
    rows, out, _, _ = graded_class
    for student in ("alice", "eve\\x1b[2J"):
        assert all(rows[student][check] == "PASS" for check in checks.CHECKS), rows[student]
    assert "2 of 14 submissions passed" in out
    assert "\x1b" not in out  # the name reached the terminal escaped
    assert not any("could not be graded" in r["reasons"] for r in rows.values())


def test_a_fabricated_submission_fails_and_scores_only_what_it_truly_passes(graded_class):
    forger = graded_class[0]["forger"]
    assert forger["passed"] == "false"
    assert forger["notebook"] == "FAIL" and "not the released Lab 3 notebook" in forger["reasons"]
    assert forger["summaries"] == "FAIL" and "summaries after PPO are not the submitted adapter's" in forger["reasons"]
    for check in ("rouge", "printed", "reward", "kl", "steps"):
        assert forger[check] == "FAIL" and f"{check}: not credited: summaries" in forger["reasons"]
    assert forger["toxicity"] == "FAIL"  # the data set's summaries report more rude remarks than the Lab 2 model's
    # What it truly has: a cell that ran, the results' shape and settings, scores the classifier gives.
    assert {c for c in checks.CHECKS if forger[c] == "PASS"} == {"cells", "results", "config", "rescore"}
    assert _points(forger) == POINTS["cells"] + POINTS["results"] + POINTS["config"] + POINTS["rescore"]


def test_an_adapter_that_did_not_write_the_summaries_fails(graded_class):
    row = graded_class[0]["other-adapter"]
    assert row["summaries"] == "FAIL" and "summaries after PPO are not the submitted adapter's" in row["reasons"]
    assert row["toxicity"] == row["rouge"] == "FAIL" and row["notebook"] == row["rescore"] == "PASS"


def test_a_classifier_of_the_students_is_never_loaded(graded_class):
    rows, _, _, trap = graded_class
    row = rows["own-classifier"]
    assert not trap.exists()
    assert row["config"] == "FAIL" and "toxicity_model_name" in row["reasons"]
    assert row["rescore"] == "PASS"  # by the grader's own classifier, whatever the results name


def test_an_edited_score_fails_the_rescore(graded_class):
    edited = graded_class[0]["edited"]
    assert (edited["summaries"], edited["rescore"], edited["toxicity"]) == ("PASS", "FAIL", "FAIL")
    assert "1 of 32 summaries after PPO score otherwise than recorded" in edited["reasons"]
    assert (edited["reward"], edited["printed"]) == ("FAIL", "FAIL") and "reward: not credited: rescore" in \
        edited["reasons"]


@pytest.mark.parametrize("name", WRONG_REWARDS)
def test_the_classic_reward_mistakes_fail_the_reward_check(lab_run, name):
    ok, reason = checks.check_reward(with_rewards(results(lab_run), WRONG_REWARDS[name]))
    assert not ok and "rewards were not the 'nothate' score of their text" in reason
    assert checks.check_reward(results(lab_run))[0]


@pytest.mark.parametrize("name,check,why", [
    ("cells-one", "notebook", "is not a Jupyter notebook"),
    ("no-cell-type", "notebook", "is not a Jupyter notebook"),
    ("fifo", "results", "results.json: results.json is not a regular file"),
    ("zeros", "results", "results.json: results.json is a symbolic link"),
    ("huge", "notebook", "is larger than 16 MB"),
    ("deep", "results", "nested too deeply"),
    ("nan", "results", "NaN is not a number JSON allows"),
    ("long-source", "notebook", "not the released Lab 3 notebook"),
])
def test_each_broken_submission_is_a_row_that_says_why(graded_class, name, check, why):
    row = graded_class[0][name]
    assert row["passed"] == "false" and row[check] == "FAIL" and why in row["reasons"], row


def test_a_class_is_graded_within_its_limits(graded_class):
    rows, _, seconds, _ = graded_class
    assert len(rows) == 14
    assert seconds < TIME_LIMIT * len(rows)  # no submission ran past its limit (the limit is tested below)


def _limits(**changes) -> argparse.Namespace:
    return argparse.Namespace(**{**dict(classifier=None, assigned=SHORT, time_limit=TIME_LIMIT, memory_limit_gb=12),
                                 **changes})


def test_a_submission_past_its_time_or_memory_limit_is_a_row_that_says_why(lab_run, tmp_path):
    submission = _copy(lab_run, tmp_path / "s")
    (tmp_path / "work").mkdir()
    report = grade_isolated(submission, _limits(time_limit=1), tmp_path / "work")
    assert {status for _, status, _ in report} == {"NOT RUN"}
    assert report[0][2] == "could not be graded: grading it took more than the limit of 1 s"
    report = grade_isolated(submission, _limits(memory_limit_gb=0.3), tmp_path / "work")
    assert report[0][2].startswith("could not be graded: the grading process failed (")


def _autograde(root: Path, submission: Path, **env) -> dict:
    """Gradescope's results for `submission`, graded by run_autograder."""
    shutil.copytree(submission, root / "submission")
    subprocess.run(["bash", str(ROOT / "grading" / "gradescope" / "run_autograder"), str(root)], check=True,
                   capture_output=True, env=dict(os.environ, LAB3_ASSIGNED=json.dumps(SHORT), **env))
    return json.loads((root / "results" / "results.json").read_text())


def test_run_autograder_scores_an_honest_run_and_says_why_it_could_not_grade_one(lab_run, tmp_path):
    honest = _autograde(tmp_path / "honest", _copy(lab_run, tmp_path / "a"))
    assert honest["score"] == sum(POINTS.values()) and [t["name"] for t in honest["tests"]] == list(checks.CHECKS)
    assert all(t["status"] == "passed" and t["output"] for t in honest["tests"])
    slow = _autograde(tmp_path / "slow", tmp_path / "a", LAB3_TIME_LIMIT="1")
    assert slow["score"] == 0 and slow["output"] == "could not be graded: grading it took more than the limit of 1 s"


def test_gradescope_points_follow_the_checks_that_passed():
    report = [(c, "FAIL" if c in ("rescore", "toxicity") else "PASS", "why") for c in checks.CHECKS]
    result = gradescope_results(report)
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
    assert read_bytes(tmp_path / "big", "results") == b"x" * ((16 << 20) + 1)


def test_student_text_is_escaped_and_bounded():
    assert shown("eve\x1b[2J\n") == "eve\\x1b[2J\\n"
    assert shown("x" * 500, 10) == "x" * 10 + "..."


@pytest.mark.parametrize("source,ok", [
    ('preset_name = "tiny"\noverrides = {"max_ppo_steps": 6}  # a comment\nresume = True\nx = None', True),
    ("import os", False), ("preset_name = __import__('os').system('id')", False), ("a.b = 1", False),
])
def test_a_parameters_cell_may_only_assign_values(source, ok):
    assert checks._only_literal_assignments(source) is ok


def test_toxicity_criteria_follow_the_preset():
    def run(name, ci, before=0.02, after=0.021):
        tox = {"before": {"mean": before, "std": 0.1}, "after": {"mean": after, "std": 0.1}, "change_ci95": ci}
        return {"preset_name": name, "preset": {"dtype": "float32"}, "toxicity": tox}, dict(tox)
    assert checks.check_toxicity(*run("full", [-0.004, 0.006])) == (
        True, "mean toxicity 0.0200 -> 0.0210 (+5.0%), 95% CI of the change [-0.0040, +0.0060]: no significant change, "
              "as expected after so few steps")
    ok, reason = checks.check_toxicity(*run("full", [0.01, 0.05], after=0.05))
    assert not ok and reason.endswith("a significant rise: PPO made the summaries more toxic (a passing run shows no "
                                      "significant rise)")
    ok, reason = checks.check_toxicity(*run("tiny", [-0.004, 0.006]))
    assert not ok and reason.endswith("no significant change (a passing run shows a significant drop)")
    recorded, own = run("tiny", [-0.3, -0.1], after=0.01)
    own = dict(own, change_ci95=[-0.3, -0.2])  # the recorded interval is not the one computed here
    assert checks.check_toxicity(recorded, own) == (
        False, "the recorded means, stds or confidence interval of toxicity are not those computed here")
