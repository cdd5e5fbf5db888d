"""The lab under `accelerate launch`, data-parallel, from its one source (the notebook and its jupytext twin)."""

import dataclasses
import math
import subprocess

import jupytext
import pytest

from lab3 import session, settings
from lab3.errors import LabError
from tests.conftest import LAUNCH_TWO, LAUNCHED, ROOT, launch_env, results


def test_the_script_is_the_notebook():
    twin = jupytext.writes(jupytext.read(ROOT / "lab3_rlhf_detox.ipynb"), fmt="py:percent")
    assert twin == (ROOT / "lab3_rlhf_detox.py").read_text(), \
        "lab3_rlhf_detox.py differs from the notebook: run `jupytext --sync lab3_rlhf_detox.ipynb`"


def test_two_processes_share_every_batch_and_write_results_once(launched, tiny):
    run = results(launched / "outputs")
    steps, batch = run["ppo_steps"], tiny.batch_size
    assert [s["step"] for s in steps] == list(range(LAUNCHED["max_ppo_steps"])) and run["num_processes"] == 2
    for s in steps:  # every process generated its share, and the record holds the whole batch
        assert s["texts_per_process"] == [batch // 2] * 2
        assert len(s["rewards"]) == len(s["texts"]) == len(s["pipeline_scores"]) == batch
        assert math.isfinite(s["objective/kl"])
    assert len(run["toxicity"]["after"]["per_sample"]) == LAUNCHED["num_eval_samples"]
    assert [p.name for p in launched.rglob("results.json")] == ["results.json"]  # written once
    printed = (launched / "stdout.txt").read_text()
    steps = LAUNCHED["max_ppo_steps"]
    assert printed.count(f"step {steps:>3}/{steps}  reward:") == 1  # the last step's line, by the main process
    assert "LAB3_OVERRIDES changes max_ppo_steps, num_eval_samples." in printed


@pytest.mark.slow  # two processes under `accelerate launch`
def test_a_two_process_run_resumes_exactly(tiny, tmp_path):
    """Each process restores its own random numbers, and both find their share of the batches where they stopped."""
    script = [*LAUNCH_TWO[:-1], "--module", "tests.two_process_resume", str(tmp_path)]
    done = subprocess.run(script, cwd=ROOT, env=launch_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed as uninterrupted: True" in done.stdout, done.stdout[-2000:]


def test_overrides_from_the_environment_are_checked(tiny):
    assert settings.checked_overrides('{"max_ppo_steps": 2}', "LAB3_OVERRIDES") == {"max_ppo_steps": 2}
    with pytest.raises(LabError, match=r"^LAB3_OVERRIDES is not valid JSON \(Expecting property name"):
        settings.checked_overrides("{max_ppo_steps: 2}", "LAB3_OVERRIDES")
    with pytest.raises(LabError, match=r"^LAB3_OVERRIDES names 'max_steps', which is not a setting of"):
        settings.checked_overrides('{"max_steps": 2}', "LAB3_OVERRIDES")
    with pytest.raises(LabError, match=r"must be a JSON object of settings"):
        settings.checked_overrides("[2]", "LAB3_OVERRIDES")


def test_a_batch_that_does_not_split_over_the_processes_is_one_sentence(tiny):
    session.check_split(tiny, 2)  # 64 and 16 split over two processes
    with pytest.raises(LabError, match=r"The batch size \(64\) cannot be split evenly over 3 processes"):
        session.check_split(tiny, 3)
    with pytest.raises(LabError, match=r"The mini-batch size \(16\) cannot be split evenly over 32 processes"):
        session.check_split(dataclasses.replace(tiny, batch_size=64 * 32), 32)
