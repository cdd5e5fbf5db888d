"""The grader passes a correct run of the lab, fails the classic reward mistakes and edited results, grades a class."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import grader
from conftest import FULL_SHORT, ROOT, WRONG_REWARDS, offline_env, results, with_rewards
from lab_settings import POINTS

EVAL_SAMPLES = FULL_SHORT["num_eval_samples"]
# The full preset's stand-in classifier, and the settings the course assigned.
COURSE = ["--classifier", str(ROOT / "checkpoints" / "tiny" / "roberta-hate"), "--assigned", json.dumps(FULL_SHORT)]


@pytest.fixture(scope="module")
def wrong_runs(lab_run, tmp_path_factory) -> dict:
    """The tiny run as each classic reward mistake records it, by name (the notebook and its results.json)."""
    runs = {}
    for name, pick in WRONG_REWARDS.items():
        folder = tmp_path_factory.mktemp(name)
        shutil.copy(lab_run / "lab.ipynb", folder / "lab3_rlhf_detox.ipynb")
        (folder / "results.json").write_text(json.dumps(with_rewards(results(lab_run), pick)))
        runs[name] = folder / "lab3_rlhf_detox.ipynb"
    return runs


def test_grader_passes_the_correct_run(full_run, capsys):
    assert grader.main([str(full_run / "lab.ipynb"), *COURSE]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS ") == len(grader.CHECKS) and out.strip().endswith("PASSED")
    assert (f"PASS rescore: re-scored here: {EVAL_SAMPLES} summaries before and after PPO and 32 PPO texts, as recorded"
            in out)


@pytest.mark.parametrize("name", WRONG_REWARDS)
def test_grader_fails_a_wrong_reward(wrong_runs, name, capsys):
    assert grader.main([str(wrong_runs[name])]) == 1
    out = capsys.readouterr().out
    assert "FAIL reward:" in out and "were not the 'nothate' score" in out
    assert "PASS cells:" in out and "PASS steps: 6 of 6" in out
    assert "FAIL config: not the tiny preset's settings: max_ppo_steps 6 (the preset says 100), num_eval_samples 32" \
        in out


def _edited_copy(full_run, folder):
    """The correct run with the after-PPO toxicity mean lowered and its most toxic summary recorded as clean."""
    folder.mkdir()
    shutil.copy(full_run / "lab.ipynb", folder / "lab3_rlhf_detox.ipynb")
    results = json.loads((full_run / "results.json").read_text())
    after = results["toxicity"]["after"]
    worst = max(range(len(after["per_sample"])), key=after["per_sample"].__getitem__)
    assert after["per_sample"][worst] > 0.3  # far more than the re-scoring's tolerance above 0.01
    after["per_sample"][worst] = 0.01
    after["mean"] -= 0.05
    (folder / "results.json").write_text(json.dumps(results))


def test_class_report_passes_exactly_the_correct_run(full_run, wrong_runs, tmp_path, capsys, monkeypatch):
    import transformers
    loads, real_pipeline = [], transformers.pipeline
    monkeypatch.setattr(grader, "_PIPELINES", {})
    monkeypatch.setattr(transformers, "pipeline", lambda *a, **k: loads.append(1) or real_pipeline(*a, **k))
    klass = tmp_path / "submissions"
    shutil.copytree(full_run, klass / "alice", ignore=shutil.ignore_patterns("checkpoints"))
    for student, name in (("bob", "reward-by-position"), ("carol", "optimizes-hate")):
        shutil.copytree(wrong_runs[name].parent, klass / student, ignore=shutil.ignore_patterns("checkpoints"))
    _edited_copy(full_run, klass / "dave")
    (klass / "erin").mkdir()
    (klass / "erin" / "lab3_rlhf_detox.ipynb").write_text('{"cells": [')  # broken off mid-upload
    (klass / "frank").mkdir()
    (klass / "frank" / "lab2.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": "import peft"}]}))
    (klass / "grace").mkdir()
    shutil.copy(full_run / "lab.ipynb", klass / "grace" / "lab3_rlhf_detox.ipynb")  # no results.json
    (klass / "heidi.txt").write_text("I could not run it, sorry")
    (klass / "ivan").mkdir()
    shutil.copy(full_run / "lab.ipynb", klass / "ivan" / "lab3_rlhf_detox.ipynb")
    (klass / "ivan" / "results.json").write_text("[1, 2]")  # JSON, but not results

    assert grader.main([str(klass), "--csv", str(tmp_path / "grades.csv"), *COURSE]) == 0
    out = capsys.readouterr().out
    rows = {r["submission"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert list(rows) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi.txt", "ivan"]
    assert [name for name, r in rows.items() if r["passed"] == "true"] == ["alice"]
    assert all(rows["alice"][check] == "PASS" for check in grader.CHECKS) and rows["alice"]["reasons"] == ""
    for student in ("bob", "carol"):
        assert rows[student]["reward"] == "FAIL" and "were not the 'nothate' score" in rows[student]["reasons"]
    dave = rows["dave"]
    assert (dave["reward"], dave["printed"], dave["rescore"]) == ("PASS", "FAIL", "FAIL")
    assert "toxicity after: printed" in dave["reasons"]
    assert f"1 of {EVAL_SAMPLES} summaries after PPO score otherwise than recorded" in dave["reasons"]
    assert "mean toxicity after PPO is" in dave["reasons"]
    assert rows["erin"]["notebook"] == "FAIL" and "is not a Jupyter notebook" in rows["erin"]["reasons"]
    assert rows["frank"]["notebook"] == "FAIL" and "is not the Lab 3 notebook" in rows["frank"]["reasons"]
    assert rows["grace"]["results"] == "FAIL" and "no results file at" in rows["grace"]["reasons"]
    assert rows["heidi.txt"]["notebook"] == "FAIL"
    assert rows["ivan"]["results"] == "FAIL" and "is not a readable JSON object" in rows["ivan"]["reasons"]
    assert rows["ivan"]["reward"] == "NOT RUN"
    assert rows["erin"]["cells"] == "NOT RUN"  # nothing else is judged on an unreadable notebook
    assert "1 of 9 submissions passed; most failed check: notebook (3)" in out
    assert len(loads) == 1  # the classifier is loaded once for the whole class


def test_several_notebook_paths_are_a_class(full_run, wrong_runs, capsys):
    assert grader.main([str(full_run / "lab.ipynb"), str(wrong_runs["optimizes-hate"]), *COURSE]) == 0
    assert "1 of 2 submissions passed" in capsys.readouterr().out


def test_rescoring_without_the_classifier_is_not_run_not_passed(full_run):
    results = json.loads((full_run / "results.json").read_text())
    results["preset"]["toxicity_model_name"] = "someone/a-classifier-nobody-cached"
    assert grader.find_classifier(results) == (
        None, "someone/a-classifier-nobody-cached is not in this machine's Hugging Face cache (or pass --classifier)")


def test_grader_imports_no_torch():
    code = "import sys, grader; print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def _results(**changes) -> dict:
    results = {
        "preset_name": "tiny", "preset": {"max_ppo_steps": 2},
        "ppo_steps": [{"step": 0, "objective/kl": 0.0, "rewards": [1.5],
                       "pipeline_scores": [[{"label": "nothate", "score": 1.5}, {"label": "hate", "score": -1.0}]]},
                      {"step": 1, "objective/kl": 0.5, "rewards": [-0.5],
                       "pipeline_scores": [[{"label": "hate", "score": 0.7}, {"label": "nothate", "score": -0.5}]]}],
        "toxicity": {"before": {"mean": 0.3}, "after": {"mean": 0.1}, "change_ci95": [-0.3, -0.1]},
        "rouge": {"before": {"rougeL": 0.5}, "after": {"rougeL": 0.45}},
    }
    results.update(changes)
    return results


def test_checks_on_a_good_results_file():
    r = _results()
    assert all(check(r)[0] for check in (grader.check_steps, grader.check_toxicity, grader.check_kl,
                                         grader.check_rouge, grader.check_reward))


@pytest.mark.parametrize("check,changes", [
    (grader.check_steps, {"preset": {"max_ppo_steps": 3}}),
    (grader.check_steps, {"ppo_steps": [{"step": 0}, {"step": 0}]}),  # a resumed run that repeated a step
    (grader.check_toxicity, {"toxicity": {"before": {"mean": 0.3}, "after": {"mean": 0.2},
                                          "change_ci95": [-0.2, 0.01]}}),
    (grader.check_kl, {"ppo_steps": [{"objective/kl": float("nan")}]}),
    (grader.check_kl, {"ppo_steps": [{"objective/kl": 30.0}]}),
    (grader.check_rouge, {"rouge": {"before": {"rougeL": 0.5}, "after": {"rougeL": 0.3}}}),
    (grader.check_reward, {"ppo_steps": [{"rewards": [0.7], "pipeline_scores": [
        [{"label": "hate", "score": 0.7}, {"label": "nothate", "score": -0.5}]]}]}),
])
def test_checks_fail_on_bad_results(check, changes):
    ok, reason = check(_results(**changes))
    assert not ok and reason


def test_missing_results_file_fails(tmp_path, capsys):
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "outputs": [], "source": "import rlhf_helpers as lab"}]}
    (tmp_path / "lab.ipynb").write_text(json.dumps(nb))
    assert grader.main([str(tmp_path / "lab.ipynb")]) == 1
    assert "FAIL results: no results file" in capsys.readouterr().out


def test_the_run_records_its_classifier_and_another_classifier_is_not_run_not_failed(lab_run, tmp_path):
    results = json.loads((lab_run / "results.json").read_text())
    shipped = json.loads((ROOT / "checkpoints" / "tiny" / "MANIFEST.json").read_text())
    assert results["classifier_sha256"] == shipped["roberta-hate/model.safetensors"]
    results["classifier_sha256"] = "0" * 64  # as a run scored by a differently built tiny preset records it
    (tmp_path / "results.json").write_text(json.dumps(results))
    report = {check: (status, reason) for check, status, reason in
              grader.grade(lab_run / "lab.ipynb", tmp_path / "results.json")}
    status, reason = report["rescore"]
    assert status == "NOT RUN"
    assert reason.startswith("the run was scored by a classifier whose weights (SHA-256 000000000000...) differ from "
                             f"this machine's {results['preset']['toxicity_model_name']} "
                             f"({shipped['roberta-hate/model.safetensors'][:12]}...)")
    assert all(report[check][0] == "PASS" for check in ("cells", "steps", "kl", "reward", "printed"))


def _autograde(submission_of, root: Path, env: dict) -> dict:
    """Gradescope's results for the submission that `submission_of(folder)` lays out, graded by run_autograder."""
    root.mkdir()
    submission_of(root / "submission")
    subprocess.run(["bash", str(ROOT / "grading" / "gradescope" / "run_autograder"), str(root)], check=True,
                   capture_output=True, env=dict(env, LAB3_ASSIGNED=json.dumps(FULL_SHORT)))
    return json.loads((root / "results" / "results.json").read_text())


def test_run_autograder_scores_a_correct_and_a_tampered_run(full_run, hub_home, tmp_path):
    copy = lambda folder: shutil.copytree(full_run, folder, ignore=shutil.ignore_patterns("checkpoints"))  # noqa: E731
    correct = _autograde(copy, tmp_path / "correct", offline_env(hub_home))
    assert correct["score"] == sum(POINTS.values()) and correct["output"] == f"{len(grader.CHECKS)} of " \
        f"{len(grader.CHECKS)} checks passed"
    assert [t["name"] for t in correct["tests"]] == list(grader.CHECKS)
    for test in correct["tests"]:
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
        assert (test["score"], test["max_score"], test["status"]) == (POINTS[test["name"]], POINTS[test["name"]],
                                                                      "passed") and test["output"]

    tampered = _autograde(lambda folder: _edited_copy(full_run, folder), tmp_path / "tampered", offline_env(hub_home))
    failed = {t["name"]: t for t in tampered["tests"] if t["status"] == "failed"}
    assert set(failed) == {"printed", "rescore"} and all(t["score"] == 0 for t in failed.values())
    assert "toxicity after: printed" in failed["printed"]["output"]
    assert tampered["score"] == sum(POINTS.values()) - POINTS["printed"] - POINTS["rescore"]


def test_a_check_not_run_scores_nothing_and_says_why():
    report = [("rescore", "NOT RUN", "the classifier is not on this machine"), ("kl", "PASS", "largest KL 1.0")]
    result = grader.gradescope_results(report, {"rescore": 3, "kl": 2})
    assert result["score"] == 2 and result["tests"][0] == {
        "name": "rescore", "score": 0, "max_score": 3, "status": "failed",
        "output": "not run: the classifier is not on this machine", "visibility": "visible"}


def test_toxicity_criteria_follow_the_preset():
    no_change = {"before": {"mean": 0.02}, "after": {"mean": 0.021}, "change_ci95": [-0.004, 0.006]}
    rise = {"before": {"mean": 0.02}, "after": {"mean": 0.05}, "change_ci95": [0.01, 0.05]}
    full = _results(preset_name="full", preset={"max_ppo_steps": 10}, toxicity=no_change)
    assert grader.check_toxicity(full) == (
        True, "mean toxicity 0.0200 -> 0.0210 (+5.0%), 95% CI of the change [-0.0040, +0.0060]: no significant change, "
              "as expected after 10 steps")
    ok, reason = grader.check_toxicity(dict(full, toxicity=rise))
    assert not ok and reason.endswith("a significant rise: PPO made the summaries more toxic (a passing run shows no "
                                      "significant rise)")
    ok, reason = grader.check_toxicity(_results(toxicity=no_change))  # the tiny preset asks for a significant drop
    assert not ok and reason.endswith("no significant change (a passing run shows a significant drop)")
