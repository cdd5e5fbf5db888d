"""PPO checkpoints and resuming from them, with the PPO loop's bookkeeping around each step.

TRL 0.11's PPOTrainer has no checkpointing, so after every step the lab saves what the next step depends on: the
trainable weights, the optimizer, the KL coefficient and the random-number states. The data order needs no saving:
Accelerate's seedable sampler shuffles each pass over the data from the seed and the pass's number, and a resumed run
skips the batches it used. A run folder holds the two newest checkpoints (`step-NNNNN/`, each with a MANIFEST.json of
its files' SHA-256), `history.jsonl` (one line per step, appended as the run goes: a checkpoint records how many bytes
of it are its own) and, once results.json is written, FINISHED.
"""

import dataclasses
import hashlib
import itertools
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import DataLoaderConfiguration
from accelerate.data_loader import prepare_data_loader
from accelerate.utils import gather_object
from peft import set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lab3.checksums import manifest_mismatches, write_manifest
from lab3.errors import LabError
from lab3.files import AFTER_PPO, WRITE_ERRORS, release_locks, unwritable

KEPT_CHECKPOINTS = 2  # the newest may be damaged (a full disk, a synced folder): the one before it is then resumed
HISTORY = "history.jsonl"  # the run's PPO steps, one JSON line each
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass
class Progress:
    """How far a PPO run in `dir` has come: its steps' records, and what its next checkpoint saves besides the weights.
    The fields up to `history_last_sha256` are the checkpoint's `state.json`."""

    dir: Path
    settings: dict  # what makes two runs the same run (`run_settings`)
    step: int = 0  # steps done
    ppo_s: float = 0.0  # seconds of PPO so far, an interrupted run's included
    resumed_from: list[int] = field(default_factory=list)  # the steps at which the run was continued
    history_bytes: int = 0  # how much of the history file is this run's
    history_last_sha256: str = EMPTY_SHA256  # of its last line
    history: list[dict] = field(default_factory=list)  # each step's record
    batches: Iterator[dict] | None = None  # the batches of the steps still to take
    bar: object = None  # the progress bar (tqdm)
    started: float = 0.0  # when PPO started, an interrupted run's time counted
    max_steps: int = 0

    def state(self, trainer) -> dict:
        """What the checkpoint of this moment records in `state.json`."""
        running = {k: float(getattr(trainer.running, k)) for k in ("mean", "std", "var", "count")}
        return {"settings": self.settings, "step": len(self.history), "kl_coef": float(trainer.kl_ctl.value),
                "running_moments": running, "ppo_s": self.ppo_s, "resumed_from": self.resumed_from,
                "history_bytes": self.history_bytes, "history_last_sha256": self.history_last_sha256}

def run_settings(preset_name: str, cfg: dict, reward_label: str, reward_mode: str, num_processes: int = 1) -> dict:
    """The settings that make two PPO runs the same run, as plain JSON data (`cfg` as `lab3.settings.record` gives
    it: folders relative to the lab, so a run moved to another machine resumes there)."""
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


def step_prompts(train_queries: list[str], batch_size: int, num_processes: int, seed: int,
                 steps: int) -> list[list[str]]:
    """The prompts of each of `steps` PPO steps in the order `data_order(seed)` gives PPOTrainer's data loader, drawn
    without a trainer (for the grader): batches of the training split in the order Accelerate's seedable sampler gives
    from `seed` and the pass's number, each process taking its share."""
    share = batch_size // num_processes
    loaders = [prepare_data_loader(DataLoader(range(len(train_queries)), batch_size=share, shuffle=True,
                                              drop_last=True, collate_fn=list),
                                   num_processes=num_processes, process_index=i, put_on_device=False,
                                   use_seedable_sampler=True, data_seed=seed)
               for i in range(num_processes)]
    prompts, number = [], 0
    while len(prompts) < steps:
        for loader in loaders:
            loader.set_epoch(number)
        with torch.random.fork_rng(devices=[]):  # each pass draws a worker seed from torch's generator
            for batches in zip(*loaders):
                prompts.append([train_queries[i] for batch in batches for i in batch])
        number += 1
    return prompts[:steps]


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
    read["history"] = _read_history(folder.parent / HISTORY, read["state"])
    return read


def _read_history(path: Path, state: dict) -> list[dict]:
    """The steps a checkpoint's `state` counts, read from the start of the run's history file `path`."""
    try:
        with open(path, "rb") as f:
            data = f.read(state["history_bytes"])
        lines = data.splitlines()
        last = hashlib.sha256(lines[-1] if lines else b"").hexdigest()
        if len(data) != state["history_bytes"] or len(lines) != state["step"] or last != state["history_last_sha256"]:
            raise ValueError("not the checkpoint's steps")
        return [json.loads(line) for line in lines]
    except (OSError, KeyError, ValueError):  # missing, cut short, or other steps than the checkpoint's
        raise _DamagedCheckpoint(path) from None


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


def start_or_resume(run_dir: str | Path, settings: dict, trainer, resume: bool = True) -> Progress:
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
    progress = Progress(dir=run_dir, settings=settings)
    if saved is not None:
        state = dict(saved["state"])
        difference = _settings_difference(state.pop("settings"), settings)
        if difference:
            raise LabError(f"The checkpoint in {checkpoint} was written with other settings ({difference}): "
                           "run with those settings to resume it, or with resume=False to keep it aside and "
                           "start anew.")
        kl_coef, running = state.pop("kl_coef"), state.pop("running_moments")
        progress = dataclasses.replace(progress, **state, history=saved["history"])
    if accelerator.is_main_process:  # the history file keeps only the steps of the checkpoint resumed (or none)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / HISTORY, "ab") as f:
            f.truncate(progress.history_bytes)
    if saved is not None:
        model = accelerator.unwrap_model(trainer.model)
        set_peft_model_state_dict(model.pretrained_model, saved["adapter"])
        model.v_head.load_state_dict(saved["value_head"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        # TRL 0.11 has no public way to restore these: its adaptive KL controller, reward statistics and step count.
        trainer.kl_ctl.value = kl_coef
        for key, value in running.items():
            setattr(trainer.running, key, value)
        trainer.current_step = progress.step
        progress.resumed_from.append(progress.step)
        _set_rng_states(saved["rng"]["global"][accelerator.process_index])  # the next step samples exactly what the
        # interrupted run would have
        if accelerator.is_main_process:
            print(f"Resuming from step {progress.step} (steps done before the interruption) with the checkpoint in "
                  f"{checkpoint}; resume=False starts a new run instead.")
    progress.batches = batches_from(trainer, progress.step)
    return progress


def _checkpoint_bytes(trainer) -> int:
    """About how many bytes a checkpoint takes: the trainable weights and two Adam moments each, and its state."""
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters() if p.requires_grad)
    return 3 * params + 100_000


def ppo_steps(run: Progress, trainer, max_steps: int) -> Iterator[dict]:
    """The batch of each PPO step still to take, under a progress bar; `record_step` then keeps what it did."""
    run.max_steps, run.started = max_steps, time.time() - run.ppo_s  # PPO time before an interruption counts
    run.bar = tqdm(range(run.step, max_steps), initial=run.step, total=max_steps, desc="PPO steps",
                   disable=not trainer.accelerator.is_main_process)
    for _, batch in zip(run.bar, run.batches):
        yield batch


def record_step(run: Progress, trainer, record: dict) -> None:
    """Add the step's `record` to the run's history and checkpoint the run."""
    run.history.append(record)
    run.ppo_s = time.time() - run.started
    if trainer.accelerator.is_main_process:
        _append_to_history(run, record)
    save_checkpoint(run, trainer)


def _append_to_history(run: Progress, record: dict) -> None:
    """Append the step's `record` to the run's history file, on disk before the step's checkpoint names it."""
    line = json.dumps(record, default=str).encode() + b"\n"
    path = run.dir / HISTORY
    try:
        with open(path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except WRITE_ERRORS as e:
        with open(path, "ab") as f:  # what was written of the line goes: the history stays whole lines
            f.truncate(run.history_bytes)
        raise unwritable(f"The history of PPO step {len(run.history)}", run.dir, e, len(line),
                         _intact(run.dir)) from None
    run.history_bytes += len(line)
    run.history_last_sha256 = hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _intact(run_dir: Path) -> str:
    """What is left to resume from in `run_dir`, for the one sentence of a failed write."""
    previous = latest_checkpoint(run_dir)
    return (f"the checkpoint of step {int(previous.name.removeprefix('step-'))} is intact and the run resumes from it"
            if previous else "no earlier checkpoint was written")


def end_of_ppo(run: Progress, trainer) -> list[dict]:
    """The run's PPO steps, once every process has taken them; other processes than the main one end here (the
    evaluation, the plots and the results file are the main process's work)."""
    trainer.accelerator.wait_for_everyone()
    # Every process leaves the group together, now that no collective is left: a process that exits while still in it
    # can abort in Gloo's threads as the interpreter shuts down ("terminate called without an active exception").
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if not trainer.accelerator.is_main_process:
        sys.exit(0)
    return run.history


def save_checkpoint(run: Progress, trainer) -> Path | None:
    """Write what resuming after `run.history`'s last step needs, atomically (by the main process; it returns the
    checkpoint folder, the others None)."""
    rng_states = gather_object([_rng_states()])  # one per process; the other state is the same on every process
    if not trainer.accelerator.is_main_process:
        return None
    steps = len(run.history)
    final = run.dir / f"step-{steps:05d}"
    tmp = final.with_name(final.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.pretrained_model.save_pretrained(tmp / "adapter")  # the detoxifying LoRA adapter, as safetensors
        save_file({k: v.contiguous() for k, v in model.v_head.state_dict().items()}, tmp / "value_head.safetensors")
        torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"global": rng_states}, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(run.state(trainer), default=str))
        write_manifest(tmp)
        for path in tmp.rglob("*"):  # on disk before the rename makes the checkpoint count
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        if final.exists():  # a damaged checkpoint of this step, passed over when the run resumed
            shutil.rmtree(final)
        tmp.rename(final)
    except WRITE_ERRORS as e:
        error = unwritable(f"The checkpoint of PPO step {steps}", run.dir, e, _checkpoint_bytes(trainer),
                           _intact(run.dir))
        shutil.rmtree(tmp, ignore_errors=True)
        raise error from None
    for old in complete_checkpoints(run.dir)[KEPT_CHECKPOINTS:]:
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
        error = unwritable(path.name, path.parent, e, source.stat().st_size, AFTER_PPO)
        path.unlink(missing_ok=True)
        raise error from None
    return path


def finish_run(run: Progress) -> None:
    """Mark the run finished (a later run of the lab starts anew and keeps this one aside) and unlock its folders."""
    (run.dir / "FINISHED").write_text(json.dumps({"steps": len(run.history)}) + "\n")
    release_locks()
