"""An interrupted PPO run continues from its last completed step and ends as an uninterrupted run would."""

import hashlib
import json
import shutil

import pytest
import torch

from lab3 import checkpoints
from lab3.checksums import write_manifest
from lab3.errors import LabError
from lab3.settings import record
from tests.conftest import ppo_step, small_trainer


def _digest(folder) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _settings(tiny) -> dict:
    return checkpoints.run_settings("tiny", record(tiny), "nothate", "by_label")


@pytest.fixture
def settings(tiny):
    return _settings(tiny)


@pytest.fixture(scope="module")
def uninterrupted(tiny, tiny_dataset, tokenizer, reward_pipe, tmp_path_factory) -> dict:
    """Five steps of one run (4 batches a pass over the data), with copies of its folder as interruptions after step 1
    (mid-pass) and step 4 (at the end of a pass) leave it, and the trainer after the last step."""
    work = tmp_path_factory.mktemp("uninterrupted")
    run_dir = work / "ppo-tiny"
    trainer = small_trainer(tiny, tiny_dataset, tokenizer)
    run = checkpoints.start_or_resume(run_dir, _settings(tiny), trainer)
    copies = {}
    for step in range(5):
        ppo_step(run, trainer, tokenizer, reward_pipe, tiny)
        if step + 1 in (1, 2, 4):
            copies[step + 1] = shutil.copytree(run_dir, work / f"after-{step + 1}")
    return {"run_dir": run_dir, "run": run, "trainer": trainer, "after": copies}


@pytest.fixture
def one_step_run(uninterrupted, tmp_path):
    """A run folder whose run was interrupted after one step."""
    return shutil.copytree(uninterrupted["after"][1], tmp_path / "ppo-tiny")


@pytest.mark.parametrize("done", [1, 4], ids=["mid-pass", "end-of-pass"])
def test_a_resumed_run_takes_the_uninterrupted_runs_next_step(tiny, tiny_dataset, tokenizer, reward_pipe, settings,
                                                              uninterrupted, done, tmp_path, capsys):
    run_dir = shutil.copytree(uninterrupted["after"][done], tmp_path / "ppo-tiny")
    (run_dir / f"step-{done + 1:05d}.tmp").mkdir()  # what a crash in the middle of writing leaves behind: never read
    trainer = small_trainer(tiny, tiny_dataset, tokenizer)
    run = checkpoints.start_or_resume(run_dir, settings, trainer)
    assert f"Resuming from step {done} (steps done before the interruption) with the checkpoint in {run_dir}" in \
        capsys.readouterr().out
    assert run.step == done and len(run.history) == done and run.resumed_from == [done]
    resumed = ppo_step(run, trainer, tokenizer, reward_pipe, tiny)
    expected = uninterrupted["run"].history[done]
    assert resumed["texts"] == expected["texts"]  # the same batch, the same sampled summaries
    assert resumed["rewards"] == pytest.approx(expected["rewards"], abs=1e-5)
    assert resumed["objective/kl"] == pytest.approx(expected["objective/kl"], abs=1e-5)
    assert resumed["ppo/returns/mean"] == pytest.approx(expected["ppo/returns/mean"], abs=1e-5)
    if done == 4:  # the last step of both runs: the same weights and KL coefficient
        assert trainer.kl_ctl.value == pytest.approx(uninterrupted["trainer"].kl_ctl.value, rel=1e-9)
        for a, b in zip(trainer.model.parameters(), uninterrupted["trainer"].model.parameters()):
            assert torch.allclose(a, b, atol=1e-6)


def test_the_two_newest_checkpoints_are_kept(uninterrupted):
    assert [p.name for p in checkpoints.complete_checkpoints(uninterrupted["run_dir"])] == ["step-00005", "step-00004"]
    assert sorted(p.name for p in uninterrupted["after"][1].iterdir()) == ["history.jsonl", "step-00001"]


def test_the_history_grows_a_line_a_step_and_a_checkpoint_stays_small(uninterrupted):
    run_dir = uninterrupted["run_dir"]
    lines = (run_dir / "history.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2, 3, 4]
    assert json.loads(lines[-1])["texts"] == uninterrupted["run"].history[-1]["texts"]
    states = [(run_dir / name / "state.json").read_bytes() for name in ("step-00004", "step-00005")]
    assert max(map(len, states)) < 2000  # no texts: a checkpoint does not grow with the run


def test_a_history_cut_short_is_passed_over_for_the_checkpoint_it_still_holds(tiny, tiny_dataset, tokenizer,
                                                                             settings, uninterrupted, tmp_path,
                                                                             capsys):
    run_dir = shutil.copytree(uninterrupted["after"][2], tmp_path / "ppo-tiny")
    history = run_dir / "history.jsonl"
    history.write_bytes(history.read_bytes()[:-20])  # the second step's line lost its end
    resumed = checkpoints.start_or_resume(run_dir, settings, small_trainer(tiny, tiny_dataset, tokenizer))
    out = capsys.readouterr().out
    assert f"The newest checkpoint cannot be read ({history} is damaged): resuming from the one before it." in out
    assert resumed.step == 1 and len(resumed.history) == 1
    assert history.read_bytes().count(b"\n") == 1  # the file holds the resumed steps only, ready to append to


def test_checkpoint_of_other_settings_is_refused_and_left_untouched(tiny, tiny_dataset, tokenizer, settings,
                                                                    one_step_run):
    run_dir = one_step_run
    before = _digest(run_dir)
    other = dict(settings, learning_rate=1e-3, reward_label="hate")
    with pytest.raises(LabError) as error:
        checkpoints.start_or_resume(run_dir, other, small_trainer(tiny, tiny_dataset, tokenizer))
    assert error.value._render_traceback_() == [
        f"LabError: The checkpoint in {run_dir / 'step-00001'} was written with other settings (learning_rate was "
        f"{settings['learning_rate']!r}, now 0.001; reward_label was 'nothate', now 'hate'): run with those "
        "settings to resume it, or with resume=False to keep it aside and start anew."]
    assert _digest(run_dir) == before


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "resume-off"])
def test_a_new_run_keeps_the_old_one_aside(tiny, tiny_dataset, tokenizer, settings, one_step_run, finished, capsys):
    run_dir = one_step_run
    if finished:
        checkpoints.finish_run(checkpoints.Progress(run_dir, {}, history=[{}]))
    before = _digest(run_dir)
    new = checkpoints.start_or_resume(run_dir, settings, small_trainer(tiny, tiny_dataset, tokenizer), resume=finished)
    assert new.step == 0 and new.history == []
    assert [p.name for p in run_dir.iterdir()] == ["history.jsonl"] and not (run_dir / "history.jsonl").stat().st_size
    kept = [p for p in run_dir.parent.iterdir() if p.name.startswith("ppo-tiny-")]
    assert len(kept) == 1 and kept[0].name.startswith("ppo-tiny-" + ("finished" if finished else "interrupted"))
    assert _digest(kept[0]) == before
    assert f"A new run starts; the {'finished' if finished else 'interrupted'} run that was in {run_dir} is kept in " \
           f"{kept[0]}." in capsys.readouterr().out


def test_a_checkpoint_is_never_unpickled(tiny, tiny_dataset, tokenizer, settings, one_step_run, capsys):
    run_dir = one_step_run

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state": Payload()}, run_dir / "step-00001" / "optimizer.pt")
    write_manifest(run_dir / "step-00001")  # as if the lab had written it: only the unpickler may refuse it
    new = checkpoints.start_or_resume(run_dir, settings, small_trainer(tiny, tiny_dataset, tokenizer))
    out = capsys.readouterr().out
    assert "pwned" not in out and new.step == 0
    assert f"No checkpoint in {run_dir} can be read ({run_dir / 'step-00001' / 'optimizer.pt'} damaged): a new run " \
           "starts; the damaged run is kept in" in out


def test_a_damaged_newest_checkpoint_is_passed_over_for_the_one_before(tiny, tiny_dataset, tokenizer, settings,
                                                                       uninterrupted, tmp_path, capsys):
    run_dir = shutil.copytree(uninterrupted["after"][2], tmp_path / "ppo-tiny")
    value_head = run_dir / "step-00002" / "value_head.safetensors"
    value_head.write_bytes(value_head.read_bytes()[:-8])  # a synced folder cut the file short
    resumed = checkpoints.start_or_resume(run_dir, settings, small_trainer(tiny, tiny_dataset, tokenizer))
    out = capsys.readouterr().out
    assert f"The newest checkpoint cannot be read ({value_head} is damaged): resuming from the one before it." in out
    assert resumed.step == 1 and "Resuming from step 1 (steps done before the interruption)" in out


def test_a_run_whose_ppo_steps_are_done_takes_no_step_again(tiny, tiny_dataset, tokenizer, settings, uninterrupted,
                                                           tmp_path):
    run_dir = shutil.copytree(uninterrupted["after"][4], tmp_path / "ppo-tiny")  # PPO done; evaluation not
    trainer = small_trainer(tiny, tiny_dataset, tokenizer)
    run = checkpoints.start_or_resume(run_dir, settings, trainer)
    assert list(checkpoints.ppo_steps(run, trainer, max_steps=4)) == []
    assert len(checkpoints.end_of_ppo(run, trainer)) == 4


def test_batches_go_on_past_one_pass_over_the_data(tiny, tiny_dataset, tokenizer, settings, tmp_path):
    trainer = small_trainer(tiny, tiny_dataset, tokenizer)  # 32 samples: 4 batches of 8 a pass
    run = checkpoints.start_or_resume(tmp_path / "ppo-tiny", settings, trainer)
    batches = [next(run.batches)["query"] for _ in range(8)]
    first, second = sum(batches[:4], []), sum(batches[4:], [])
    assert sorted(first) == sorted(second) == sorted(tiny_dataset["train"].select(range(32))["query"])
    assert first != second  # each pass is shuffled anew
