"""The run's folders: the locks that keep two runs apart, files written whole or not at all, and one sentence when a
disk is full."""

import json
import os
import shutil
import socket
from pathlib import Path

from accelerate import PartialState
from safetensors import SafetensorError

from lab3.errors import LabError

try:
    import fcntl
except ImportError:  # Windows: runs there are not kept apart
    fcntl = None

_HELD_LOCKS: dict[str, object] = {}  # lock files this process holds, by path: Jupyter's "Run all" again re-enters


def _hold_lock(path: Path, what: str) -> None:
    """Hold an exclusive lock on the file `path` for the life of this process, or stop in one sentence."""
    key = str(path.resolve())
    if key in _HELD_LOCKS:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the kernel drops it when the process dies, even by kill -9
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "a process that is just starting"
        f.close()
        raise LabError(f"{what} is in use by another run of the lab ({holder}): let that run finish or stop it, "
                       "or give this run another checkpoint_dir and output_dir.") from None
    except OSError as e:  # a file system without locks (some network and synced folders)
        print(f"{what} cannot be locked ({e.strerror}): do not start a second run on it at the same time.")
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    _HELD_LOCKS[key] = f


def lock_run(run_dir: str | Path, output_dir: str | Path) -> None:
    """Keep other runs of the lab off `run_dir` (the PPO checkpoints) and `output_dir` until `finish_run`."""
    if fcntl is None:
        print("This system has no file locks (Windows): do not start a second run on the same folders at once.")
    elif PartialState().is_main_process:  # under `accelerate launch` the main process speaks for the others
        run_dir, output_dir = Path(run_dir), Path(output_dir)
        _hold_lock(run_dir.with_name(run_dir.name + ".lock"), f"The checkpoint folder {run_dir}")
        _hold_lock(output_dir / ".lab3.lock", f"The output folder {output_dir}")


def release_locks() -> None:
    """Let other runs use the folders this process locked."""
    for f in _HELD_LOCKS.values():
        f.close()
    _HELD_LOCKS.clear()


AFTER_PPO = "the PPO checkpoints are intact: the run resumes after its last PPO step"
# What writing a file raises when it fails: the OS's error, or torch's and safetensors' own wrapping of it.
WRITE_ERRORS = (OSError, RuntimeError, SafetensorError)


def unwritable(what: str, folder: Path, error: Exception, needed_bytes: int, intact: str) -> LabError:
    """The one sentence for a file that could not be written (a full disk, a read-only folder)."""
    full = shutil.disk_usage(folder).free < needed_bytes
    why = "No space left on device" if full else (getattr(error, "strerror", None) or str(error).splitlines()[0])
    return LabError(f"{what} could not be written to {folder} ({why}): it needs about "
                    f"{needed_bytes / 1e6:.1f} MB there; free some space or choose another folder, and run again "
                    f"({intact}).")


def write_json(record: dict, path: str | Path) -> None:
    """Write `record` as indented JSON, atomically (a crash never leaves half a file)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    text = json.dumps(record, indent=2, default=str) + "\n"
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except WRITE_ERRORS as e:
        error = unwritable(path.name, path.parent, e, len(text.encode()), AFTER_PPO)  # while the disk is still full
        tmp.unlink(missing_ok=True)
        raise error from None


def save_figure(fig, path: str | Path) -> None:
    """Save the matplotlib figure `fig` as `path`, or stop in one sentence if it cannot be written."""
    path = Path(path)
    try:
        fig.savefig(path, dpi=100)
    except WRITE_ERRORS as e:
        error = unwritable(path.name, path.parent, e, 100_000, AFTER_PPO)
        path.unlink(missing_ok=True)
        raise error from None
