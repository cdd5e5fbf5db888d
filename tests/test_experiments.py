"""The experiments notebook: its helpers on small made-up runs, and the notebook end to end at its smallest settings."""

import dataclasses
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import experiments
from lab3 import settings
from lab3.errors import LabError
from lab3.solutions import solution
from tests.conftest import ROOT, SHORT, printed, results


def test_best_of_n_kl_is_zero_for_one_sample_and_grows_like_log_n():
    assert experiments.best_of_n_kl(1) == 0
    assert experiments.best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert experiments.best_of_n_kl(16) == pytest.approx(math.log(16) - 15 / 16)


def test_best_of_n_keeps_the_highest_reward_among_the_first_n():
    rewards = np.array([[0.1, 0.9, 0.5, 2.0], [3.0, 0.0, 1.0, 4.0]])
    picks = experiments.best_of_n(rewards, [1, 2, 4])
    assert [p.tolist() for p in picks.values()] == [[0, 0], [1, 0], [3, 3]]


def _samples(prompts: int = 40, n: int = 4) -> pd.DataFrame:
    """Made-up samples: the reward prefers the less toxic summary, the references are the summaries themselves."""
    rng = np.random.default_rng(0)
    toxicity = rng.uniform(0, 1, (prompts, n))
    summaries = [[f"#Person1# says {'rude' if t > 0.5 else 'kind'} things {p}." for t in row]
                 for p, row in enumerate(toxicity)]
    return pd.DataFrame({"prompt": np.repeat(np.arange(prompts), n), "sample": np.tile(np.arange(n), prompts),
                         "summary": sum(summaries, []), "reference": sum(summaries, []),
                         "reward": (1 - toxicity).ravel(), "toxicity": toxicity.ravel()})


def test_best_of_n_rows_lower_toxicity_as_n_grows_with_a_paired_interval():
    rows = experiments.best_of_n_rows(_samples(), [1, 2, 4], 0, solution("paired_bootstrap_ci"))
    assert rows.loc[1, "change"] == 0 and rows.loc[1, "ci_low"] == rows.loc[1, "ci_high"] == 0
    assert rows.reward.is_monotonic_increasing and rows.toxicity.is_monotonic_decreasing
    assert rows.loc[4, "ci_high"] < 0 and rows.loc[4, "kl"] == pytest.approx(math.log(4) - 0.75)
    assert set(rows.columns) >= {"rougeL", "well_formed", "stutter"}


def _results(before: float, after: float, preset: dict | None = None) -> dict:
    summaries = ["#Person1# and #Person2# talk.", "#Person2# talks talks talks."]
    return {"preset": preset or {"init_kl_coef": 0.2},
            "toxicity": {"before": {"mean": before, "summaries": summaries}, "after": {"mean": after,
                                                                                      "summaries": summaries},
                         "change_ci95": [after - before - 0.01, after - before + 0.01]},
            "ppo_steps": [{"objective/kl": k} for k in range(20)],
            "comparison": [{"reward_before": 0.0, "reward_after": 1.0}, {"reward_before": 1.0, "reward_after": 2.0}],
            "rouge": {"before": {"rougeL": 0.5}, "after": {"rougeL": 0.4}}}


def test_a_run_s_row_reads_its_results():
    row = experiments.row(_results(0.3, 0.1))
    assert row["reward"] == 1.5 and row["kl"] == np.mean(range(10, 20)) and row["rougeL"] == 0.4
    assert row["change"] == pytest.approx(-0.2) and row["ci_low"] == pytest.approx(-0.21)
    assert row["stutter"] == 0.5
    before = experiments.row(_results(0.3, 0.1), "before")
    assert before["kl"] == 0 and before["change"] == 0 and before["reward"] == 0.5


def test_spread_over_seeds_beside_one_run_s_interval():
    rows = pd.DataFrame({"change": [-0.2, -0.1, -0.15], "ci_low": [-0.25, -0.15, -0.2],
                         "ci_high": [-0.15, -0.05, -0.1]})
    spread = experiments.spread(rows)
    assert spread["range"] == pytest.approx(0.1) and spread["one run's CI width"] == pytest.approx(0.1)
    assert spread["std over seeds"] == pytest.approx(0.05)


def test_a_finished_run_is_reused_and_one_of_other_settings_is_refused(tmp_path, monkeypatch):
    (tmp_path / "kl0").mkdir()
    (tmp_path / "kl0" / "results.json").write_text(json.dumps(_results(0.3, 0.1, {"init_kl_coef": 0.0})))
    import papermill
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a finished run ran again"))
    assert experiments.run("kl0", {"init_kl_coef": 0.0}, tmp_path)["preset"] == {"init_kl_coef": 0.0}
    with pytest.raises(LabError, match="holds a run with other settings than {'init_kl_coef': 0.2}"):
        experiments.run("kl0", {"init_kl_coef": 0.2}, tmp_path)


# The DPO and group arms at their smallest: a few pairs and steps, the real settings otherwise.
SMALL_DPO = {"prompts": 24, "group_size": 4, "min_margin": 0.5, "epochs": 1, "batch_size": 16}
SMALL_GROUP = {"steps": 2, "prompts_per_step": 8, "group_size": 4, "kl_coef": 0.2}


def test_the_notebook_end_to_end_reusing_a_finished_run_then_every_run(lab_run, tmp_path):
    """At the suite's short settings: the seed-42 run is the suite's own lab run, reused (its settings are those), the
    unanchored one runs; run again, nothing runs."""
    folder = tmp_path / "experiments"
    (folder / "seed42").mkdir(parents=True)
    shutil.copy(lab_run / "results.json", folder / "seed42" / "results.json")
    command = [sys.executable, "-m", "papermill", "lab3_experiments.ipynb", str(tmp_path / "out.ipynb"),
               "-p", "experiments_dir", str(folder), "-y",
               f"kl_coefs: [0.0]\nseeds: [42]\nbest_of: [1, 2]\noverrides: {json.dumps(SHORT)}\n"
               f"dpo_betas: [0.1]\ngroup_scales: [true]\narm_seeds: [42]\ndpo_settings: {json.dumps(SMALL_DPO)}\n"
               f"group_settings: {json.dumps(SMALL_GROUP)}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    runs = sorted(p.name for p in folder.iterdir() if (p / "results.json").is_file())
    assert runs == ["kl0-fixed", "seed42"]
    assert (folder / "kl0-fixed" / "cost.json").is_file() and not (folder / "seed42" / "cost.json").is_file()
    arms = sorted(p.name for p in folder.glob("*.json"))
    assert arms == ["best_of_2.json", "dpo0.1-seed42.json", "dpo_pairs.json", "group-std-seed42.json",
                    "lab2_model.json"]
    assert json.loads((folder / "kl0-fixed" / "results.json").read_text())["preset"]["kl_control"] == "fixed"
    text = printed(tmp_path / "out.ipynb")
    assert "Error" not in text
    shown = json.dumps([o for c in json.loads((tmp_path / "out.ipynb").read_text())["cells"]
                        for o in c.get("outputs", [])], ensure_ascii=False)
    for arm in ("DPO, β=0.1", "group, ÷ std (GRPO)"):  # in the arms' table, the figure's legend and the costs
        assert shown.count(arm) >= 2
    stamps = {p: p.stat().st_mtime_ns for p in [*folder.rglob("results.json"), *folder.glob("*.json")]}
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing ran again


def _double(x: int) -> dict:
    return {"x": 2 * x}


def test_a_kept_result_is_measured_in_its_own_process_once_and_one_of_other_settings_is_refused(tmp_path):
    path = tmp_path / "double.json"
    first = experiments.kept(path, _double, x=3)
    assert first["result"] == {"x": 6} and first["wall_s"] >= 0 and first["peak_mb"] > 0
    stamp = path.stat().st_mtime_ns
    assert experiments.kept(path, _double, x=3) == first and path.stat().st_mtime_ns == stamp
    with pytest.raises(LabError, match="made with other settings than {'x': 4}"):
        experiments.kept(path, _double, x=4)


def test_an_arm_s_row_pairs_its_change_with_the_lab2_model_and_counts_what_its_data_cost():
    summaries = ["#Person1# goes home.", "#Person2# goes home.", "They talk."]
    before = {"result": {"toxicity": [0.5, 0.5, 0.1]}}
    out = {"result": {"toxicity": [0.2, 0.4, 0.1], "reward": [1.0, 2.0, 3.0], "kl": [0.1, 0.3, 0.2],
                      "summaries": summaries, "references": summaries, "reward_model_calls": 0,
                      "summaries_generated": 0, "held": "policy"}, "wall_s": 10.0, "peak_mb": 500.0}
    pairs = {"wall_s": 5.0, "peak_mb": 700.0}
    row = experiments.arm_row(out, before, solution("paired_bootstrap_ci"), 0, pairs)
    assert row["change"] == pytest.approx(-0.4 / 3) and row["ci_low"] <= row["change"] <= row["ci_high"] <= 0
    assert (row["reward"], row["kl"], row["rougeL"]) == (pytest.approx(2.0), pytest.approx(0.2), pytest.approx(1.0))
    assert (row["wall time (s)"], row["peak memory (MB)"]) == (15.0, 700.0)


def test_the_arms_start_from_the_lab_s_own_evaluation_of_the_lab2_model(lab_run):
    """DPO's and the group method's changes are paired with the very summaries the lab scored before PPO."""
    import beyond_ppo
    cfg = dataclasses.replace(settings.preset("tiny"), **SHORT)
    before = beyond_ppo.lab2_evaluation(cfg, SHORT["num_eval_samples"])
    lab = results(lab_run)["toxicity"]["before"]
    assert before["summaries"] == lab["summaries"] and before["kl"] == pytest.approx([0.0] * len(before["kl"]))
    assert before["toxicity"] == pytest.approx(lab["per_sample"], abs=1e-6)
