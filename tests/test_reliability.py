"""What a student meets when something goes wrong: one sentence, and nothing mixed or lost."""

import gc
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from lab3 import checkpoints, files
from lab3.checksums import manifest_mismatches
from lab3.errors import LabError
from tests.conftest import ROOT, one_sentence_error, ppo_step, printed, run_lab, small_trainer


@pytest.mark.slow  # the notebook, until its settings stop it
def test_a_bad_setting_stops_the_notebook_in_one_sentence(tiny, tmp_path):
    with pytest.raises(papermill.PapermillExecutionError):
        run_lab(tmp_path, overrides={"learning_rate": "3e-4"})
    assert one_sentence_error(printed(tmp_path / "lab.ipynb")) == \
        "learning_rate is '3e-4', a text; it must be a number, greater than 0 and at most 1."


def _locker(run_dir: Path, output_dir: Path) -> subprocess.Popen:
    """Another process that locks the run's folders as a run of the lab does, and holds them until it is killed."""
    code = (f"import sys; from lab3 import files; files.lock_run({str(run_dir)!r}, {str(output_dir)!r}); "
            "print('locked', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_a_second_run_on_the_same_folders_stops_until_the_first_ends(tmp_path):
    run_dir, out = tmp_path / "checkpoints" / "ppo-tiny", tmp_path / "outputs"
    first = _locker(run_dir, out)
    try:
        with pytest.raises(LabError) as error:
            files.lock_run(run_dir, out)
        message = str(error.value)
        assert message.startswith(f"The checkpoint folder {run_dir} is in use by another run of the lab (process "
                                  f"{first.pid} on ")
        assert message.endswith("): let that run finish or stop it, or give this run another checkpoint_dir and "
                                "output_dir.")
    finally:
        first.kill()  # as a crash ends it: the system drops its locks
        first.wait()
    files.lock_run(run_dir, out)  # the first run's end lets the next one in
    run_dir.mkdir(parents=True)
    checkpoints.finish_run(checkpoints.Progress(run_dir, {}))  # and finishing a run lets the next one in


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
    gc.collect()  # a failed write's traceback may still hold a file open there
    for path in mounted:
        subprocess.run(["umount", str(path)], check=True)


def _pages(folder: Path) -> int:
    """Bytes that `folder`'s files take on a file system of 4 KiB pages."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def test_a_full_checkpoint_disk_is_one_sentence_and_the_previous_checkpoint_stays(tiny, tiny_dataset, tokenizer,
                                                                                 reward_pipe, tmp_path, small_disks):
    trainer = small_trainer(tiny, tiny_dataset, tokenizer)
    first = checkpoints.start_or_resume(tmp_path / "measure" / "ppo-tiny", {}, trainer)
    ppo_step(first, trainer, tokenizer, reward_pipe, tiny)
    size = _pages(checkpoints.latest_checkpoint(first.dir))  # room for two checkpoints and part of a third
    run_dir = small_disks(tmp_path / "disk", int(2.5 * size) + 8192) / "ppo-tiny"
    trainer = small_trainer(tiny, tiny_dataset, tokenizer)
    run = checkpoints.start_or_resume(run_dir, {}, trainer)
    with pytest.raises(LabError) as error:
        for _ in range(4):
            ppo_step(run, trainer, tokenizer, reward_pipe, tiny)
    kept = checkpoints.complete_checkpoints(run_dir)
    step = int(kept[0].name.removeprefix("step-")) + 1
    assert str(error.value).startswith(f"The checkpoint of PPO step {step} could not be written to {run_dir} (No space "
                                       "left on device): it needs about ")
    assert str(error.value).endswith(f" MB there; free some space or choose another folder, and run again (the "
                                     f"checkpoint of step {step - 1} is intact and the run resumes from it).")
    assert not list(run_dir.glob("*.tmp")) and manifest_mismatches(kept[0]) == []


def test_a_full_output_disk_is_one_sentence_and_leaves_no_half_file(tmp_path, small_disks):
    out = small_disks(tmp_path / "disk", 64 * 1024)
    with pytest.raises(LabError) as error:
        files.write_json({"texts": ["a summary"] * 20_000}, out / "results.json")
    assert str(error.value).startswith(f"results.json could not be written to {out} (No space left on device): it "
                                       "needs about 0.")
    assert str(error.value).endswith("(the PPO checkpoints are intact: the run resumes after its last PPO step).")
    assert list(out.iterdir()) == []
