"""An interrupted PPO run continues from its last completed step and ends as an uninterrupted run would."""

import hashlib
import json
import shutil
import subprocess
import sys
import time

import psutil
import pytest
import torch
from trl import AutoModelForSeq2SeqLMWithValueHead, PPOConfig, PPOTrainer

import grader
from checksums import write_manifest
import rlhf_helpers as lab
import run_files
from conftest import ROOT, SHORT
import lab_results
from trl.core import set_seed
from lab_setup import LabSetupError


def _trainer(tiny, tiny_dataset, tokenizer) -> PPOTrainer:
    """A fresh tiny PPO trainer, built from the same seed every time."""
    set_seed(0)
    policy = lab.add_fresh_lora(lab.load_summarizer(tiny["model_name"], tiny["adapter_dir"]))
    model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(policy, is_trainable=True)
    config = PPOConfig(learning_rate=tiny["learning_rate"], batch_size=8, mini_batch_size=4, ppo_epochs=2, seed=0)
    return PPOTrainer(config=config, model=model, ref_model=None, tokenizer=tokenizer,
                      dataset=tiny_dataset["train"].select(range(32)), data_collator=lab.collator)


def _step(run: dict, trainer, tokenizer, reward_pipe, tiny) -> dict:
    """One PPO step as the notebook takes it (sampled summaries, rewards by label), recorded and checkpointed."""
    batch = next(run["batches"])
    responses = trainer.generate(batch["input_ids"], batch_size=8, return_prompt=False, max_new_tokens=12,
                                 **tiny["generation_kwargs"])
    texts = [q + " " + r for q, r in zip(batch["query"], tokenizer.batch_decode(responses, skip_special_tokens=True))]
    scores = reward_pipe(texts, **tiny["reward_kwargs"])
    rewards = lab.rewards_from_pipeline(scores, "nothate")
    stats = trainer.step(batch["input_ids"], responses, rewards)
    run["history"].append(lab_results.ppo_step_record(len(run["history"]), stats, scores, rewards, texts))
    run["ppo_s"] = 0.0
    run_files.save_checkpoint(run, trainer)
    return run["history"][-1]


def _digest(folder) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def settings(tiny):
    return run_files.run_settings("tiny", tiny, "nothate", "by_label")


@pytest.fixture
def one_step_run(tiny, tiny_dataset, tokenizer, reward_pipe, settings, tmp_path):
    """A run folder whose run was interrupted after one step."""
    run_dir = tmp_path / "ppo-tiny"
    trainer = _trainer(tiny, tiny_dataset, tokenizer)
    run = run_files.start_or_resume(run_dir, settings, trainer)
    _step(run, trainer, tokenizer, reward_pipe, tiny)
    return run_dir, run, trainer


def test_restored_trainer_takes_the_same_next_step(tiny, tiny_dataset, tokenizer, reward_pipe, settings, one_step_run,
                                                   capsys):
    run_dir, run, trainer = one_step_run
    assert run_files.latest_checkpoint(run_dir).name == "step-00001"
    interrupted = shutil.copytree(run_dir, run_dir.with_name("interrupted"))  # as a crash during step 2 leaves it
    (interrupted / "step-00002.tmp").mkdir()  # what a crash in the middle of writing leaves behind: never read
    uninterrupted = _step(run, trainer, tokenizer, reward_pipe, tiny)
    assert sorted(p.name for p in run_dir.iterdir()) == ["step-00001", "step-00002"]

    kept_run_dir, run_dir = run_dir, interrupted
    fresh = _trainer(tiny, tiny_dataset, tokenizer)
    resumed_run = run_files.start_or_resume(run_dir, settings, fresh)
    assert f"Resuming from step 1 (steps done before the interruption) with the checkpoint in {run_dir}" in \
        capsys.readouterr().out
    assert resumed_run["step"] == 1 and len(resumed_run["history"]) == 1 and resumed_run["resumed_from"] == [1]
    resumed = _step(resumed_run, fresh, tokenizer, reward_pipe, tiny)
    assert resumed["rewards"] == pytest.approx(uninterrupted["rewards"], abs=1e-5)
    assert resumed["objective/kl"] == pytest.approx(uninterrupted["objective/kl"], abs=1e-5)
    assert resumed["ppo/returns/mean"] == pytest.approx(uninterrupted["ppo/returns/mean"], abs=1e-5)
    assert fresh.kl_ctl.value == pytest.approx(trainer.kl_ctl.value, rel=1e-9)
    for a, b in zip(fresh.model.parameters(), trainer.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    _step(run, trainer, tokenizer, reward_pipe, tiny)
    assert sorted(p.name for p in kept_run_dir.iterdir()) == ["step-00002", "step-00003"]  # the two newest are kept


def test_checkpoint_of_other_settings_is_refused_and_left_untouched(tiny, tiny_dataset, tokenizer, settings,
                                                                    one_step_run):
    run_dir = one_step_run[0]
    before = _digest(run_dir)
    other = dict(settings, learning_rate=1e-3, reward_label="hate")
    with pytest.raises(LabSetupError) as error:
        run_files.start_or_resume(run_dir, other, _trainer(tiny, tiny_dataset, tokenizer))
    assert error.value._render_traceback_() == [
        f"LabSetupError: The checkpoint in {run_dir / 'step-00001'} was written with other settings (learning_rate was "
        f"{settings['learning_rate']!r}, now 0.001; reward_label was 'nothate', now 'hate'): run with those "
        "settings to resume it, or with resume=False to keep it aside and start anew."]
    assert _digest(run_dir) == before


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "resume-off"])
def test_a_new_run_keeps_the_old_one_aside(tiny, tiny_dataset, tokenizer, settings, one_step_run, finished, capsys):
    run_dir, run, _ = one_step_run
    if finished:
        run_files.finish_run(run)
    before = _digest(run_dir)
    new = run_files.start_or_resume(run_dir, settings, _trainer(tiny, tiny_dataset, tokenizer), resume=finished)
    assert new["step"] == 0 and new["history"] == [] and not run_dir.exists()
    kept = [p for p in run_dir.parent.iterdir() if p.name.startswith("ppo-tiny-")]
    assert len(kept) == 1 and kept[0].name.startswith("ppo-tiny-" + ("finished" if finished else "interrupted"))
    assert _digest(kept[0]) == before
    assert f"A new run starts; the {'finished' if finished else 'interrupted'} run that was in {run_dir} is kept in " \
           f"{kept[0]}." in capsys.readouterr().out


def test_a_checkpoint_is_never_unpickled(tiny, tiny_dataset, tokenizer, settings, one_step_run, capsys):
    run_dir = one_step_run[0]

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state": Payload()}, run_dir / "step-00001" / "optimizer.pt")
    write_manifest(run_dir / "step-00001")  # as if the lab had written it: only the unpickler may refuse it
    new = run_files.start_or_resume(run_dir, settings, _trainer(tiny, tiny_dataset, tokenizer))
    out = capsys.readouterr().out
    assert "pwned" not in out and new["step"] == 0
    assert f"No checkpoint in {run_dir} can be read ({run_dir / 'step-00001' / 'optimizer.pt'} damaged): a new run " \
           "starts; the damaged run is kept in" in out


def test_a_damaged_newest_checkpoint_is_passed_over_for_the_one_before(tiny, tiny_dataset, tokenizer, reward_pipe,
                                                                       settings, one_step_run, capsys):
    run_dir, run, trainer = one_step_run
    _step(run, trainer, tokenizer, reward_pipe, tiny)
    value_head = run_dir / "step-00002" / "value_head.safetensors"
    value_head.write_bytes(value_head.read_bytes()[:-8])  # a synced folder cut the file short
    resumed = run_files.start_or_resume(run_dir, settings, _trainer(tiny, tiny_dataset, tokenizer))
    out = capsys.readouterr().out
    assert f"The newest checkpoint cannot be read ({value_head} is damaged): resuming from the one before it." in out
    assert resumed["step"] == 1 and "Resuming from step 1 (steps done before the interruption)" in out


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything it started (papermill and its Jupyter kernel), as a crash would."""
    tree = psutil.Process(proc.pid)
    for p in [*tree.children(recursive=True), tree]:
        p.kill()
    proc.wait()


def test_a_killed_lab_run_resumes_and_ends_as_an_uninterrupted_run(short_run, tmp_path):
    uninterrupted = short_run
    out, run_dir = tmp_path / "out", tmp_path / "checkpoints" / "ppo-tiny"
    out.mkdir()
    command = [sys.executable, "-m", "papermill", "--no-progress-bar", str(ROOT / "lab3_rlhf_detox.ipynb"),
               str(out / "lab.ipynb"), "-p", "preset_name", "tiny", "-p", "output_dir", str(out),
               "-p", "checkpoint_dir", str(tmp_path / "checkpoints"), "-y", f"overrides: {json.dumps(SHORT)}"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while (run_files.latest_checkpoint(run_dir) is None or run_files.latest_checkpoint(run_dir).name < "step-00003") \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    _kill_tree(proc)
    lock = tmp_path / "checkpoints" / "ppo-tiny.lock"
    assert lock.read_text().startswith("process ")  # left behind by the killed run: it must not block the next
    killed_at = int(run_files.latest_checkpoint(run_dir).name.removeprefix("step-"))
    reference = json.loads((uninterrupted / "results.json").read_text())
    steps = reference["preset"]["max_ppo_steps"]
    assert 3 <= killed_at < steps and not (out / "results.json").exists()

    subprocess.run(command, cwd=ROOT, check=True, timeout=900, capture_output=True)  # the same command again
    nb = json.loads((out / "lab.ipynb").read_text())
    printed = "".join(o["text"] if isinstance(o["text"], str) else "".join(o["text"])
                      for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert f"Resuming from step {killed_at} (steps done before the interruption)" in printed
    step_lines = [line for line in printed.splitlines() if line.startswith("step ") and "objective/kl" in line]
    assert len(step_lines) == steps - killed_at and step_lines[0].startswith(f"step {killed_at + 1:>3}/{steps}")

    results = json.loads((out / "results.json").read_text())
    assert results["resumed_from_steps"] == [killed_at]
    assert [s["step"] for s in results["ppo_steps"]] == list(range(steps))
    for resumed, uninterrupted in zip(results["ppo_steps"], reference["ppo_steps"]):
        assert resumed["rewards"] == pytest.approx(uninterrupted["rewards"], abs=1e-5)
        assert resumed["objective/kl"] == pytest.approx(uninterrupted["objective/kl"], abs=1e-5)
    assert results["toxicity"]["after"]["per_sample"] == pytest.approx(
        reference["toxicity"]["after"]["per_sample"], abs=1e-5)
    report = {check: (status, reason) for check, status, reason in grader.grade(out / "lab.ipynb")}
    assert report["steps"] == ("PASS", f"{steps} of {steps} PPO steps ran, resumed after step {killed_at}")
    assert all(report[check][0] == "PASS" for check in ("cells", "reward", "printed", "rescore"))


def test_batches_go_on_past_one_pass_over_the_data(tiny, tiny_dataset, tokenizer, settings, tmp_path):
    trainer = _trainer(tiny, tiny_dataset, tokenizer)  # 32 samples: 4 batches of 8 a pass
    run = run_files.start_or_resume(tmp_path / "ppo-tiny", settings, trainer)
    batches = [next(run["batches"])["query"] for _ in range(8)]
    first, second = sum(batches[:4], []), sum(batches[4:], [])
    assert sorted(first) == sorted(second) == sorted(tiny_dataset["train"].select(range(32))["query"])
    assert first != second  # each pass is shuffled anew
