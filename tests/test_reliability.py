"""What a student meets when something goes wrong, on the real lab: one sentence, and nothing mixed or lost."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

import run_files
from checksums import manifest_mismatches
from conftest import ROOT, SHORT, printed, run_lab


def _failed_run(out: Path, **parameters) -> str:
    """What the lab printed when it stopped, run with `parameters`; the run must stop."""
    with pytest.raises(papermill.PapermillExecutionError):
        run_lab(out, **parameters)
    return printed(out / "lab.ipynb")


def _one_sentence_error(text: str) -> str:
    """The error the notebook showed, which must be a one-line LabSetupError, no traceback."""
    errors = [line for line in text.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("LabSetupError: "), text[-2000:]
    return errors[0].removeprefix("LabSetupError: ")


@pytest.mark.parametrize("overrides,expected", [
    ({"learning_rate": "3e-4"}, "learning_rate is '3e-4', a text; it must be a number, greater than 0 and at most 1."),
    ({"batch_size": 0}, "batch_size is 0; it must be a whole number, at least 1."),
    ({"num_eval_samples": 5000}, "num_eval_samples is 5000; it must be at most {test}, the number of dialogues in the "
                                 "test split within the length bounds."),
])
def test_a_bad_setting_stops_the_lab_in_one_sentence(tiny_dataset, tmp_path, overrides, expected):
    expected = expected.format(test=len(tiny_dataset["test"]))
    assert _one_sentence_error(_failed_run(tmp_path, overrides=overrides)) == expected


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _same_run(results: dict, reference: dict) -> None:
    """`results` are those of the uninterrupted `reference` run, every PPO step and evaluation summary."""
    rewards = [[r for s in run["ppo_steps"] for r in s["rewards"]] for run in (results, reference)]
    assert len(results["ppo_steps"]) == len(reference["ppo_steps"])
    assert rewards[0] == pytest.approx(rewards[1], abs=1e-5)
    assert results["toxicity"]["after"]["summaries"] == reference["toxicity"]["after"]["summaries"]
    assert results["toxicity"]["after"]["per_sample"] == pytest.approx(reference["toxicity"]["after"]["per_sample"],
                                                                       abs=1e-5)


def test_two_runs_at_once_on_one_folder_one_finishes_the_other_stops(tiny, tmp_path):
    out, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    runs = {}
    for seed in (1, 2):
        overrides = json.dumps(dict(max_ppo_steps=3, num_eval_samples=24, seed=seed))
        command = [sys.executable, "-m", "papermill", "--no-progress-bar", str(ROOT / "lab3_rlhf_detox.ipynb"),
                   str(tmp_path / f"seed-{seed}.ipynb"), "-p", "output_dir", str(out), "-p", "checkpoint_dir",
                   str(checkpoints), "-y", f"overrides: {overrides}"]
        runs[seed] = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    codes = {seed: proc.wait(timeout=900) for seed, proc in runs.items()}
    assert sorted(codes.values())[0] == 0 and sorted(codes.values())[1] != 0  # exactly one finished
    winner = next(seed for seed, code in codes.items() if code == 0)
    loser = 3 - winner
    error = _one_sentence_error(printed(tmp_path / f"seed-{loser}.ipynb"))
    assert error.startswith(f"The checkpoint folder {checkpoints / 'ppo-tiny'} is in use by another run of the lab "
                            "(process ") and " on " in error
    assert error.endswith("): let that run finish or stop it, or give this run another checkpoint_dir and output_dir.")
    assert _results(out)["seed"] == winner
    kept = run_files.complete_checkpoints(checkpoints / "ppo-tiny")
    assert [p.name for p in kept] == ["step-00003", "step-00002"] and (checkpoints / "ppo-tiny" / "FINISHED").is_file()
    assert all(json.loads((p / "state.json").read_text())["settings"]["seed"] == winner for p in kept)


def _interrupted_copy(short_run: Path, tmp_path: Path) -> Path:
    """The checkpoint folder of the SHORT run as an interruption after its last PPO step leaves it."""
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(short_run / "checkpoints" / "ppo-tiny", checkpoints / "ppo-tiny")
    (checkpoints / "ppo-tiny" / "FINISHED").unlink()
    return checkpoints


def test_a_truncated_newest_checkpoint_resumes_from_the_one_before(short_run, tmp_path):
    checkpoints = _interrupted_copy(short_run, tmp_path)
    adapter = checkpoints / "ppo-tiny" / "step-00012" / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    notebook = run_lab(tmp_path / "out", overrides=SHORT, checkpoint_dir=str(checkpoints))
    text = printed(notebook)
    assert f"The newest checkpoint cannot be read ({adapter} is damaged): resuming from the one before it." in text
    assert "Resuming from step 11 (steps done before the interruption)" in text
    assert [line for line in text.splitlines() if line.startswith("step ")][0].startswith("step  12/12")
    _same_run(_results(tmp_path / "out"), _results(short_run))


def _tmpfs(path: Path, size: int) -> Path:
    """A folder at `path` on a RAM file system of `size` bytes (a disk that fills up), or skip where it cannot be."""
    path.mkdir(parents=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mount.returncode:
        pytest.skip("this machine cannot mount a small file system (needs root)")
    return path


@pytest.fixture
def small_disks():
    mounted = []
    yield lambda path, size: mounted.append(_tmpfs(path, size)) or path
    for path in mounted:
        subprocess.run(["umount", str(path)], check=True)


def _pages(folder: Path) -> int:
    """Bytes that `folder`'s files take on a file system of 4 KiB pages."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def test_a_full_checkpoint_disk_is_one_sentence_and_the_previous_checkpoint_stays(short_run, tmp_path, small_disks):
    # Room for about five checkpoints in all: with two kept and a third being written, the disk fills within steps.
    done = short_run / "checkpoints" / "ppo-tiny"
    last, before_last = _pages(done / "step-00012"), _pages(done / "step-00011")
    growth = last - before_last
    base = last - 12 * growth
    checkpoints = small_disks(tmp_path / "disk", 3 * base + 13 * growth + 8192)
    text = _failed_run(tmp_path / "out", overrides=SHORT, checkpoint_dir=str(checkpoints))
    error = _one_sentence_error(text)
    run_dir = checkpoints / "ppo-tiny"
    kept = run_files.complete_checkpoints(run_dir)
    step = int(kept[0].name.removeprefix("step-")) + 1
    assert 3 <= step <= 11, error
    assert error.startswith(f"The checkpoint of PPO step {step} could not be written to {run_dir} (No space left on "
                            "device): it needs about ")
    assert error.endswith(f" MB there; free some space or choose another folder, and run again (the checkpoint of step "
                          f"{step - 1} is intact and the run resumes from it).")
    assert not list(run_dir.glob("*.tmp")) and manifest_mismatches(kept[0]) == []


def test_a_full_output_disk_is_one_sentence_and_the_next_run_redoes_no_ppo_step(short_run, tmp_path, small_disks):
    out = small_disks(tmp_path / "disk", 256 * 1024)  # the plot fits, results.json (12 steps of 64 texts) does not
    checkpoints = _interrupted_copy(short_run, tmp_path)  # PPO is done; the evaluation and the results are not
    error = _one_sentence_error(_failed_run(tmp_path / "first", overrides=SHORT, output_dir=str(out),
                                            checkpoint_dir=str(checkpoints)))
    assert error.startswith(f"results.json could not be written to {out} (No space left on device): it needs about ")
    assert error.endswith("(the PPO checkpoints are intact: the run resumes after its last PPO step).")
    assert not (out / "results.json").exists() and not (out / "results.json.tmp").exists()

    text = printed(run_lab(tmp_path / "second", overrides=SHORT, checkpoint_dir=str(checkpoints)))
    assert "Resuming from step 12 (steps done before the interruption)" in text
    assert not [line for line in text.splitlines() if line.startswith("step ")]  # no PPO step ran again
    _same_run(_results(tmp_path / "second"), _results(short_run))
