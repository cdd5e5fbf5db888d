"""The lab under `accelerate launch`, data-parallel, from its one source (the notebook and its jupytext twin)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from conftest import ROOT
import run_settings
from lab_setup import LabSetupError

ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
# Accelerate 1.15 starts several CPU processes only through its multi-GPU launcher (torchrun) with ACCELERATE_USE_CPU
# set: `accelerate launch --cpu --num_processes 2` runs the script once, in one process, unless MPI is installed.
LAUNCH = {2: [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2"],
          1: [ACCELERATE, "launch", "--cpu", "--num_processes", "1"]}


def test_the_script_is_the_notebook():
    twin = jupytext.writes(jupytext.read(ROOT / "lab3_rlhf_detox.ipynb"), fmt="py:percent")
    assert twin == (ROOT / "lab3_rlhf_detox.py").read_text(), \
        "lab3_rlhf_detox.py differs from the notebook: run `jupytext --sync lab3_rlhf_detox.ipynb`"


@pytest.mark.parametrize("processes", [2, 1])
def test_accelerate_launch_runs_the_lab(tiny, tmp_path, processes):
    env = dict(os.environ, ACCELERATE_USE_CPU="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
               LAB3_OVERRIDES=json.dumps({"max_ppo_steps": 2, "num_eval_samples": 16}))
    done = subprocess.run([*LAUNCH[processes], str(ROOT / "lab3_rlhf_detox.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # a deadlock fails here
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "outputs" / "results.json").read_text())
    steps, batch = results["ppo_steps"], tiny["batch_size"]
    assert [s["step"] for s in steps] == [0, 1] and results["num_processes"] == processes
    for s in steps:  # every process generated its share, and the record holds the whole batch
        assert s["texts_per_process"] == [batch // processes] * processes
        assert len(s["rewards"]) == len(s["texts"]) == len(s["pipeline_scores"]) == batch
        assert math.isfinite(s["objective/kl"])
    assert len(results["toxicity"]["after"]["per_sample"]) == 16
    assert [p.name for p in tmp_path.rglob("results.json")] == ["results.json"]  # written once
    assert done.stdout.count("objective/kl") == 2  # the main process prints the steps


def test_overrides_from_the_environment_are_checked(tiny):
    cfg = run_settings.get_preset("tiny")
    assert run_settings.checked_overrides('{"max_ppo_steps": 2}', cfg, "LAB3_OVERRIDES") == {"max_ppo_steps": 2}
    with pytest.raises(LabSetupError, match=r"^LAB3_OVERRIDES is not valid JSON \(Expecting property name"):
        run_settings.checked_overrides("{max_ppo_steps: 2}", cfg, "LAB3_OVERRIDES")
    with pytest.raises(LabSetupError, match=r"^LAB3_OVERRIDES names 'max_steps', which is not a setting of"):
        run_settings.checked_overrides('{"max_steps": 2}', cfg, "LAB3_OVERRIDES")
    with pytest.raises(LabSetupError, match=r"must be a JSON object of settings"):
        run_settings.checked_overrides("[2]", cfg, "LAB3_OVERRIDES")


def test_a_batch_that_does_not_split_over_the_processes_is_one_sentence():
    assert run_settings.per_process(32, 2, "batch size") == 16
    with pytest.raises(LabSetupError, match=r"The batch size \(16\) cannot be split evenly over 3 processes"):
        run_settings.per_process(16, 3, "batch size")
