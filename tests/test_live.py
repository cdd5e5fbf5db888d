"""Watching PPO learn: the live view in a Jupyter kernel, a line every few steps elsewhere, and the trackers
(TensorBoard and Trackio, offline), read back with their own readers."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from tqdm import tqdm

from lab3 import live, session, setup, trackers
from lab3.errors import LabError
from tests.conftest import ROOT, ppo_step, small_trainer


def _record(step: int) -> dict:
    """A PPO step's record as the lab keeps it: two texts, one the classifier calls hateful."""
    scores = [[{"label": "nothate", "score": 1.0}, {"label": "hate", "score": -1.0}],
              [{"label": "hate", "score": 0.5}, {"label": "nothate", "score": -0.5}]]
    texts = [f"Summarize the following conversation.\n\n#Person1#: Hi {step}.\n\nSummary:\n A greeting {step}."] * 2
    return {"step": step, "reward_mean": 0.1 * step, "objective/kl": 0.01 * step, "ppo/returns/mean": 0.0,
            "ppo/policy/advantages_mean": 0.0, "ppo/mean_scores": 0.0, "rewards": [1.0, -0.5],
            "pipeline_scores": scores, "texts": texts}


def test_the_live_view_is_redrawn_in_place_in_a_kernel():
    """In a real kernel, 30 of 100 steps: one figure and one table displayed, then updated every 10 steps; 3 lines."""
    from jupyter_client.manager import start_new_kernel
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(ROOT))
    code = ("from tests.test_live import _record\nfrom lab3 import live\n"
            "view, history = live.new_view(log_every=10), []\n"
            "for step in range(30):\n    history.append(_record(step))\n    live.show(view, history, 100)\n"
            )
    try:
        msg_id = client.execute(code)
        kinds, printed = [], ""
        while True:
            msg = client.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            assert kind != "error", msg["content"]
            kinds.append(kind)
            printed += msg["content"]["text"] if kind == "stream" else ""
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert kinds.count("display_data") == 2  # the figure and the rollouts, shown once
    assert kinds.count("update_display_data") == 2 * 2  # both redrawn at steps 20 and 30 (10 was the first)
    assert printed.splitlines() == [f"step  {n}0/100  reward:   {n - 0.1:.3f}  kl:  {n / 10 - 0.01:.4f}  hateful:  50%"
                                    for n in (1, 2, 3)]


def test_outside_a_kernel_a_line_every_log_every_steps_and_the_bar_carries_reward_and_kl(capsys):
    view, history, bar = live.new_view(log_every=10), [], tqdm(total=100, disable=True)
    for step in range(100):
        history.append(_record(step))
        live.show(view, history, 100, bar)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("step 100/100  reward:   9.900")
    assert bar.postfix == "reward=9.900, kl=0.9900"


def test_the_rollouts_table_shows_the_dialogue_summary_and_reward():
    table = live.rollouts(_record(3))
    assert list(table.columns) == ["dialogue (its end)", "summary", "reward"]
    assert table.iloc[0].tolist() == ["…#Person1#: Hi 3.", "A greeting 3.", 1.0]
    assert live.markdown(table).splitlines()[2] == "| …#Person1#: Hi 3. | A greeting 3. | 1.0 |"


def _steps_logged_to(kind: str, folder, tiny, tiny_dataset, tokenizer, reward_pipe, name: str) -> list[dict]:
    """Three PPO steps of a small run logged to a tracker of `kind` under `folder`; their records."""
    trainer = small_trainer(tiny, tiny_dataset, tokenizer, log_with=trackers.tracker(kind, name, folder))
    from lab3 import checkpoints
    run = checkpoints.start_or_resume(folder / name / "ppo", {}, trainer)
    records = [ppo_step(run, trainer, tokenizer, reward_pipe, tiny) for _ in range(3)]
    for record in records:
        live.log_to_tracker(trainer.accelerator, record)
    for tracker in trainer.accelerator.trackers:  # as `session.end_of_ppo` closes them
        tracker.finish()
    return records


@pytest.mark.slow  # two small PPO runs
def test_tensorboard_has_one_value_a_step_of_reward_and_kl_and_two_runs_side_by_side(tiny, tiny_dataset, tokenizer,
                                                                                      reward_pipe, tmp_path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    runs = {name: _steps_logged_to("tensorboard", tmp_path, tiny, tiny_dataset, tokenizer, reward_pipe, name)
            for name in ("kl-0.2", "kl-0")}
    board = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "tensorboard"))
    board.Reload()
    assert set(board.Runs()) >= {"kl-0.2", "kl-0"}  # one dashboard, two runs
    for name, records in runs.items():
        for tag, key in (("env/reward_mean", "reward_mean"), ("objective/kl", "objective/kl")):
            events = board.Scalars(name, tag)
            assert [e.step for e in events] == [0, 1, 2]
            assert [e.value for e in events] == pytest.approx([r[key] for r in records], rel=1e-6)
        table = board.Tensors(name, "rollouts/text_summary")[-1].tensor_proto.string_val[0].decode()
        assert table.startswith("| dialogue (its end) | summary | reward |")  # each step's rollouts, as a table


TRACKIO_READER = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
logs = {run: SQLiteStorage.get_logs("lab3-detox", run) for run in SQLiteStorage.get_runs("lab3-detox")}
print(json.dumps({run: [{k: v for k, v in log.items() if k in ("step", "env/reward_mean", "objective/kl")}
                        for log in rows] for run, rows in logs.items()}))
"""


@pytest.mark.slow  # two small PPO runs
def test_trackio_local_store_has_one_value_a_step_of_reward_and_kl_and_two_runs(tiny, tiny_dataset, tokenizer,
                                                                              reward_pipe, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))  # this test's store, read by a fresh process
    runs = {name: _steps_logged_to("trackio", tmp_path, tiny, tiny_dataset, tokenizer, reward_pipe, name)
            for name in ("student-a", "student-b")}
    read = subprocess.run([sys.executable, "-c", TRACKIO_READER], capture_output=True, text=True,
                          env=dict(os.environ, TRACKIO_DIR=str(tmp_path / "trackio")))
    stored = json.loads(read.stdout)
    assert set(stored) == set(runs)  # one project, two runs
    for name, records in runs.items():
        rows = [row for row in stored[name] if "env/reward_mean" in row]
        assert [row["step"] for row in rows] == [0, 1, 2]
        assert [row["env/reward_mean"] for row in rows] == pytest.approx([r["reward_mean"] for r in records])
        assert [row["objective/kl"] for row in rows] == pytest.approx([r["objective/kl"] for r in records])


def test_a_tracker_the_lab_does_not_know_or_cannot_import_is_one_sentence(monkeypatch):
    with pytest.raises(LabError, match=r"^tracker is 'mlflow'; it must be '' \(none\) or one of 'tensorboard', "
                                       r"'trackio'\.$"):
        session._check_tracker("mlflow")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # a Python without the package
    with pytest.raises(LabError) as error:
        session._check_tracker("trackio")
    assert str(error.value) == ("tracker='trackio' needs the trackio package, which this Python lacks: run "
                                "`pip install trackio==0.43.0` (or `pip install -r requirements-trackers.txt`), then "
                                "run the lab again.")
    assert sorted(session.TRACKERS.values()) == sorted(setup.requirements("requirements-trackers.txt"))
