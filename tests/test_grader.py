"""The grader passes a correct run of the lab and fails the two classic reward mistakes."""

import json

import pytest

import grader
from conftest import run_lab

SHORT = {"max_ppo_steps": 10, "num_eval_samples": 40}


def test_grader_passes_the_correct_run(executed, capsys):
    assert grader.main([str(executed / "lab.ipynb")]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS ") == 6 and out.strip().endswith("PASSED")


@pytest.mark.parametrize("parameters", [{"reward_label": "hate"}, {"reward_mode": "by_index"}],
                         ids=["optimizes-hate", "reward-by-position"])
def test_grader_fails_a_wrong_reward(tiny, tmp_path, parameters, capsys):
    notebook = run_lab(tmp_path, overrides=SHORT, **parameters)
    assert grader.main([str(notebook)]) == 1
    out = capsys.readouterr().out
    assert "FAIL reward:" in out and "were not the 'nothate' score" in out
    assert "PASS cells:" in out and "PASS steps: 10 of 10" in out


def _results(**changes) -> dict:
    results = {
        "preset": {"max_ppo_steps": 2},
        "ppo_steps": [{"objective/kl": 0.0, "rewards": [1.5],
                       "pipeline_scores": [[{"label": "nothate", "score": 1.5}, {"label": "hate", "score": -1.0}]]},
                      {"objective/kl": 0.5, "rewards": [-0.5],
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
    (grader.check_toxicity, {"toxicity": {"before": {"mean": 0.3}, "after": {"mean": 0.2}, "change_ci95": [-0.2, 0.01]}}),
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
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "outputs": []}]}
    (tmp_path / "lab.ipynb").write_text(json.dumps(nb))
    assert grader.main([str(tmp_path / "lab.ipynb")]) == 1
    assert "FAIL results: no results file" in capsys.readouterr().out
