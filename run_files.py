"""The run's files: PPO checkpoints and resuming from them (with the PPO loop's bookkeeping around each step), the locks
that keep two runs apart, the results on disk.

TRL 0.11's PPOTrainer has no checkpointing, so after every step the lab saves what the next step depends on: the
trainable weights, the optimizer, the KL coefficient and the random-number states. The data order needs no saving:
Accelerate's seedable sampler shuffles each pass over the data from the seed and the pass's number, and a resumed run
skips the batches it used. A run folder holds the two newest checkpoints (`step-NNNNN/`, each with a MANIFEST.json of
its files' SHA-256) and, once results.json is written, FINISHED.
"""

import itertools
import json
import os
import random
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from accelerate import DataLoaderConfiguration, PartialState
from accelerate.utils import gather_object
from peft import set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from checksums import manifest_mismatches, write_manifest
from lab_setup import LabSetupError

try:
    import fcntl
except ImportError:  # Windows: runs there are not kept apart
    fcntl = None

KEPT_CHECKPOINTS = 2  # the newest may be damaged (a full disk, a synced folder): the one before it is then resumed
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
        raise LabSetupError(f"{what} is in use by another run of the lab ({holder}): let that run finish or stop it, "
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


def _release_locks() -> None:
    """Let other runs use the folders this process locked."""
    for f in _HELD_LOCKS.values():
        f.close()
    _HELD_LOCKS.clear()


AFTER_PPO = "the PPO checkpoints are intact: the run resumes after its last PPO step"
# What writing a file raises when it fails: the OS's error, or torch's and safetensors' own wrapping of it.
WRITE_ERRORS = (OSError, RuntimeError, SafetensorError)


def _unwritable(what: str, folder: Path, error: Exception, needed_bytes: int, intact: str) -> LabSetupError:
    """The one sentence for a file that could not be written (a full disk, a read-only folder)."""
    full = shutil.disk_usage(folder).free < needed_bytes
    why = "No space left on device" if full else (getattr(error, "strerror", None) or str(error).splitlines()[0])
    return LabSetupError(f"{what} could not be written to {folder} ({why}): it needs about "
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
        error = _unwritable(path.name, path.parent, e, len(text.encode()), AFTER_PPO)  # while the disk is still full
        tmp.unlink(missing_ok=True)
        raise error from None


def save_figure(fig, path: str | Path) -> None:
    """Save the matplotlib figure `fig` as `path`, or stop in one sentence if it cannot be written."""
    path = Path(path)
    try:
        fig.savefig(path, dpi=100)
    except WRITE_ERRORS as e:
        error = _unwritable(path.name, path.parent, e, 100_000, AFTER_PPO)
        path.unlink(missing_ok=True)
        raise error from None


def run_settings(preset_name: str, cfg: dict, reward_label: str, reward_mode: str, num_processes: int = 1) -> dict:
    """The settings that make two PPO runs the same run, as plain JSON data."""
    settings = {"preset_name": preset_name, "reward_label": reward_label, "reward_mode": reward_mode,
                "num_processes": num_processes, **cfg}
    return json.loads(json.dumps(settings, default=str))


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """The complete checkpoint folders in `run_dir`, newest first (a half-written `.tmp` one never counts)."""
    return sorted((p for p in Path(run_dir).glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")), reverse=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder in `run_dir`, or None."""
    return next(iter(complete_checkpoints(run_dir)), None)


def _rng_states() -> dict:
    """Python's, NumPy's and torch's random-number states, in types that torch.load(weights_only=True) reads."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_states(states: dict) -> None:
    """Restore what `_rng_states` returned."""
    random.setstate(states["python"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def _move_aside(run_dir: Path, why: str) -> Path:
    """Rename `run_dir` to a free `<name>-<why>-<time>` beside it; returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = run_dir.with_name(f"{run_dir.name}-{why}-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir.with_name(f"{run_dir.name}-{why}-{stamp}-{n}")
    return run_dir.rename(aside)


def _settings_difference(saved: dict, settings: dict) -> str:
    """'' when equal, else which settings differ and how."""
    keys = sorted(k for k in saved.keys() | settings.keys() if saved.get(k) != settings.get(k))
    return "; ".join(f"{k} was {saved.get(k)!r}, now {settings.get(k)!r}" for k in keys)


def data_order(seed: int) -> dict:
    """`PPOConfig(accelerator_kwargs=...)` for a data order that depends only on `seed` and the pass over the data."""
    return {"dataloader_config": DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed)}


def _passes(trainer, step: int) -> Iterator[dict]:
    """The batches of PPO steps `step`, `step` + 1, ...: pass after pass over the data, each shuffled anew."""
    loader = trainer.dataloader
    first_pass, skip = divmod(step, len(loader))
    for number in itertools.count(first_pass):
        loader.set_epoch(number)  # the seedable sampler shuffles pass `number` from the seed plus `number`
        yield from trainer.accelerator.skip_first_batches(loader, skip) if skip else loader
        skip = 0


def batches_from(trainer, step: int) -> Iterator[dict]:
    """`_passes`, leaving torch's global random numbers as they were."""
    # Each pass starts by drawing a seed from torch's global generator, and a resumed run starts one mid-pass where the
    # interrupted run did not: without the fork, the summaries sampled after a resume would differ.
    batches = _passes(trainer, step)
    while True:
        with torch.random.fork_rng(devices=[]):
            batch = next(batches)
        yield batch


class _DamagedCheckpoint(Exception):
    """A checkpoint file that cannot be read; `args[0]` is its path."""


def _read_checkpoint(folder: Path) -> dict:
    """Everything checkpoint `folder` holds, read into memory before any of it is used."""
    wrong = manifest_mismatches(folder) if (folder / "MANIFEST.json").is_file() else ["MANIFEST.json"]
    if wrong:
        raise _DamagedCheckpoint(folder / wrong[0])
    files = {"state": "state.json", "adapter": "adapter/adapter_model.safetensors",
             "value_head": "value_head.safetensors", "optimizer": "optimizer.pt", "rng": "rng.pt"}
    read = {}
    for key, name in files.items():
        path = folder / name
        try:
            if name.endswith(".json"):
                read[key] = json.loads(path.read_text())
            elif name.endswith(".safetensors"):
                read[key] = load_file(path)
            else:  # tensors and numbers only: a pickled object is refused, never run
                read[key] = torch.load(path, weights_only=True)
        except Exception:  # an unreadable file raises what its reader raises: OSError, SafetensorError, pickle's, ...
            raise _DamagedCheckpoint(path) from None
    return read


def _readable_checkpoint(run_dir: Path) -> tuple[Path | None, dict | None]:
    """The newest checkpoint of `run_dir` that can be read, and what it holds; says which were passed over."""
    damaged = []
    for checkpoint in complete_checkpoints(run_dir):
        try:
            saved = _read_checkpoint(checkpoint)
        except _DamagedCheckpoint as e:
            damaged.append(e.args[0])
            continue
        if damaged:
            print(f"The newest checkpoint cannot be read ({damaged[0]} is damaged): resuming from the one before it.")
        return checkpoint, saved
    if damaged:
        print(f"No checkpoint in {run_dir} can be read ({', '.join(map(str, damaged))} damaged): a new run starts; "
              f"the damaged run is kept in {_move_aside(run_dir, 'damaged')}.")
    return None, None


def start_or_resume(run_dir: str | Path, settings: dict, trainer, resume: bool = True) -> dict:
    """The PPO run to continue: its next step, history and remaining batches, restored from `run_dir` if interrupted."""
    run_dir = Path(run_dir)
    accelerator = trainer.accelerator
    checkpoint = saved = None
    with accelerator.main_process_first():  # the main process moves an old run aside before the others look
        if accelerator.is_main_process and ((run_dir / "FINISHED").is_file() or (latest_checkpoint(run_dir) and
                                                                                   not resume)):
            why = "finished" if (run_dir / "FINISHED").is_file() else "interrupted"
            print(f"A new run starts; the {why} run that was in {run_dir} is kept in {_move_aside(run_dir, why)}.")
        if accelerator.is_main_process:
            checkpoint, saved = _readable_checkpoint(run_dir)
    # Every process resumes from the checkpoint the main process chose.
    name = gather_object([checkpoint.name if checkpoint else None])[0]
    if name is not None and not accelerator.is_main_process:
        checkpoint = run_dir / name
        saved = _read_checkpoint(checkpoint)
    state = {"step": 0, "history": [], "ppo_s": 0.0, "resumed_from": []}
    if saved is not None:
        state = saved["state"]
        difference = _settings_difference(state.pop("settings"), settings)
        if difference:
            raise LabSetupError(f"The checkpoint in {checkpoint} was written with other settings ({difference}): "
                                "run with those settings to resume it, or with resume=False to keep it aside and "
                                "start anew.")
        model = accelerator.unwrap_model(trainer.model)
        set_peft_model_state_dict(model.pretrained_model, saved["adapter"])
        model.v_head.load_state_dict(saved["value_head"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        # TRL 0.11 has no public way to restore these: its adaptive KL controller, reward statistics and step count.
        trainer.kl_ctl.value = state.pop("kl_coef")
        for key, value in state.pop("running_moments").items():
            setattr(trainer.running, key, value)
        trainer.current_step = state["step"]
        state["resumed_from"].append(state["step"])
        _set_rng_states(saved["rng"]["global"][accelerator.process_index])  # the next step samples exactly what the
        # interrupted run would have
        if accelerator.is_main_process:
            print(f"Resuming from step {state['step']} (steps done before the interruption) with the checkpoint in "
                  f"{checkpoint}; resume=False starts a new run instead.")
    return dict(state, dir=run_dir, settings=settings, batches=batches_from(trainer, state["step"]))


def _checkpoint_bytes(trainer, history: list[dict]) -> int:
    """About how many bytes a checkpoint takes: the trainable weights and two Adam moments each, and the history."""
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters() if p.requires_grad)
    return 3 * params + len(json.dumps(history, default=str)) + 100_000


def ppo_steps(run: dict, trainer, max_steps: int) -> Iterator[tuple[int, dict]]:
    """Each PPO step still to take, with its batch, under a progress bar; `record_step` then keeps what it did."""
    run["max_steps"], run["started"] = max_steps, time.time() - run["ppo_s"]  # PPO time before an interruption counts
    steps = tqdm(range(run["step"], max_steps), initial=run["step"], total=max_steps, desc="PPO steps",
                 disable=not trainer.accelerator.is_main_process)
    yield from zip(steps, run["batches"])


def record_step(run: dict, trainer, record: dict) -> None:
    """Add the step's `record` to the run's history, checkpoint the run, and print the step's line (main process)."""
    run["history"].append(record)
    run["ppo_s"] = time.time() - run["started"]
    save_checkpoint(run, trainer)
    if trainer.accelerator.is_main_process:
        print(f'step {record["step"] + 1:>3}/{run["max_steps"]}  objective/kl: {record["objective/kl"]:8.4f}  '
              f'ppo/returns/mean: {record["ppo/returns/mean"]:8.4f}  '
              f'ppo/policy/advantages_mean: {record["ppo/policy/advantages_mean"]:.2e}')


def end_of_ppo(run: dict, trainer) -> list[dict]:
    """The run's PPO steps, once every process has taken them; other processes than the main one end here (the
    evaluation, the plots and the results file are the main process's work)."""
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        sys.exit(0)
    return run["history"]


def save_checkpoint(run: dict, trainer) -> Path | None:
    """Write what resuming after `run["history"]`'s last step needs, atomically (by the main process; it returns the
    checkpoint folder, the others None)."""
    rng_states = gather_object([_rng_states()])  # one per process; the other state is the same on every process
    if not trainer.accelerator.is_main_process:
        return None
    steps = len(run["history"])
    final = run["dir"] / f"step-{steps:05d}"
    tmp = final.with_name(final.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.pretrained_model.save_pretrained(tmp / "adapter")  # the detoxifying LoRA adapter, as safetensors
        save_file({k: v.contiguous() for k, v in model.v_head.state_dict().items()}, tmp / "value_head.safetensors")
        torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"global": rng_states}, tmp / "rng.pt")
        running = {k: float(getattr(trainer.running, k)) for k in ("mean", "std", "var", "count")}
        state = {"settings": run["settings"], "step": steps, "kl_coef": float(trainer.kl_ctl.value),
                 "running_moments": running, "ppo_s": run["ppo_s"], "resumed_from": run["resumed_from"],
                 "history": run["history"]}
        (tmp / "state.json").write_text(json.dumps(state, default=str))
        write_manifest(tmp)
        for path in tmp.rglob("*"):  # on disk before the rename makes the checkpoint count
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        if final.exists():  # a damaged checkpoint of this step, passed over when the run resumed
            shutil.rmtree(final)
        tmp.rename(final)
    except WRITE_ERRORS as e:
        previous = latest_checkpoint(run["dir"])
        intact = (f"the checkpoint of step {int(previous.name.removeprefix('step-'))} is intact and the run resumes "
                  "from it" if previous else "no earlier checkpoint was written")
        error = _unwritable(f"The checkpoint of PPO step {steps}", run["dir"], e,
                            _checkpoint_bytes(trainer, run["history"]), intact)
        shutil.rmtree(tmp, ignore_errors=True)
        raise error from None
    for old in complete_checkpoints(run["dir"])[KEPT_CHECKPOINTS:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


ADAPTER_FILE = "ppo_adapter.safetensors"  # the trained adapter, handed in with results.json for grading


def export_adapter(run_dir: str | Path, output_dir: str | Path) -> Path:
    """Copy the newest checkpoint's PPO adapter weights to `output_dir`, beside the results; returns the copy."""
    path = Path(output_dir) / ADAPTER_FILE
    source = latest_checkpoint(run_dir) / "adapter" / "adapter_model.safetensors"
    try:
        shutil.copyfile(source, path)
    except WRITE_ERRORS as e:
        error = _unwritable(path.name, path.parent, e, source.stat().st_size, AFTER_PPO)
        path.unlink(missing_ok=True)
        raise error from None
    return path


def finish_run(run: dict) -> None:
    """Mark the run finished (a later run of the lab starts anew and keeps this one aside) and unlock its folders."""
    (run["dir"] / "FINISHED").write_text(json.dumps({"steps": len(run["history"])}) + "\n")
    _release_locks()
