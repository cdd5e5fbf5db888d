"""One run of the lab, as the notebook sees it: `start` does the set-up cell's work (processes, settings, seed, locks)
and returns a `Run`, whose methods the notebook calls in turn: the sampling settings, the data order and tracker PPO
needs, the PPO loop's steps and their records (checkpoints, live view), and the results file.
"""

import importlib.util
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from trl.core import set_seed

from lab3 import checkpoints, files, live, replay, results, settings, setup, sources, speedups, trackers
from lab3.errors import LabError
from lab3.settings import Settings

# The trackers the lab logs to, each with its pinned requirement (the optional `requirements-trackers.txt`).
TRACKERS = {setup.requirement_name(line): line for line in setup.requirements("requirements-trackers.txt")}


def process_state() -> PartialState:
    """The processes running the lab: one in Jupyter, several under `accelerate launch` (its CPU flag read as
    Accelerate's own `Accelerator` reads it, so that PPOTrainer's accelerator finds the same state)."""
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def check_split(cfg: Settings, num_processes: int) -> None:
    """Stop in one sentence when a batch or mini-batch cannot be split evenly over the processes (each takes its share
    of every batch)."""
    for what, size in (("batch size", cfg.batch_size), ("mini-batch size", cfg.mini_batch_size)):
        if size % num_processes:
            raise LabError(f"The {what} ({size}) cannot be split evenly over {num_processes} processes: launch a "
                           f"number of processes that divides it.")


@dataclass
class Run:
    """One run of the lab: its settings, processes and folders, and how far its PPO loop has come."""

    preset_name: str
    cfg: Settings
    state: PartialState  # the processes (one in Jupyter)
    output_dir: Path  # plots, results.json, the trained adapter
    run_dir: Path  # the PPO checkpoints
    reward_label: str
    reward_mode: str
    resume: bool
    tracker_name: str
    view: live.View
    started: float = field(default_factory=time.time)
    timings: dict = field(default_factory=dict)
    fast_generation: dict | None = None  # the sampling settings of this device, sized for the data set
    ppo: checkpoints.Progress | None = None  # the PPO loop's progress, once it starts
    after_ppo: float = 0.0

    @property
    def device(self):
        return self.state.device

    @property
    def processes(self) -> int:
        """How many processes share each batch (one in Jupyter; several under `accelerate launch`)."""
        return self.state.num_processes

    @property
    def name(self) -> str:
        """The run's name in a tracker: what tells two runs of a sweep, or of two students, apart."""
        cfg = self.cfg
        fixed = "-fixed" if cfg.kl_control == "fixed" else ""
        return (f"{self.preset_name}-kl{cfg.init_kl_coef:g}{fixed}-lr{cfg.learning_rate:g}-seed{cfg.seed}"
                f"-{self.reward_mode}-{self.reward_label}")

    def settings_table(self) -> pd.DataFrame:
        """Each setting of the run with its value and meaning, folders relative to the lab."""
        rows = settings.described(self.cfg)
        return pd.DataFrame([(v, m) for _, v, m in rows], index=[n for n, _, _ in rows],
                            columns=[self.preset_name, "meaning"])

    def generation_kwargs(self, dataset, **changes) -> dict:
        """The preset's sampling settings with `changes`, and on a GPU the compiled static-cache path sized for every
        prompt of `dataset`; the first call stops in one sentence if `dataset` is too small for the settings."""
        cfg = self.cfg
        if self.fast_generation is None:
            settings.check_data_fits(cfg, dataset)  # enough dialogues for a batch and for the evaluation
            self.fast_generation = speedups.fast_generation_for(cfg, self.device, dataset, cfg.dtype)
        return dict(cfg.generation_kwargs, **changes, **self.fast_generation)

    def prepare_for_ppo(self, ppo_model) -> str:
        """Set `ppo_model` up for PPO on this run's device (`speedups.prepare_for_ppo`); what it did, in a line."""
        return speedups.prepare_for_ppo(ppo_model, self.device)

    def data_order(self) -> dict:
        """`PPOConfig(accelerator_kwargs=...)`: the data order a resumed run finds again."""
        return checkpoints.data_order(self.cfg.seed)

    def tracker(self):
        """`PPOConfig(log_with=...)`: the run's tracker, writing under `<output_dir>/trackers/` (None without one)."""
        if not self.tracker_name:
            return None
        return trackers.tracker(self.tracker_name, self.name, self.output_dir / "trackers")

    def steps(self, trainer) -> Iterator[dict]:
        """The batch of each PPO step still to take: from the start, or after the last step of an interrupted run."""
        self.timings["setup_and_eval_before_s"] = time.time() - self.started
        identity = checkpoints.run_settings(self.preset_name, settings.record(self.cfg), self.reward_label,
                                            self.reward_mode, self.processes)
        self.ppo = checkpoints.start_or_resume(self.run_dir, identity, trainer, self.resume)
        return checkpoints.ppo_steps(self.ppo, trainer, self.cfg.max_ppo_steps)

    def record(self, trainer, texts: list[str], scores: list[list[dict]], rewards: list, stats: dict) -> None:
        """Keep what the step did (the texts scored, the classifier's outputs for them, the rewards and PPO's
        statistics), checkpoint the run and show its progress."""
        record = results.ppo_step_record(len(self.ppo.history), stats, scores, rewards, texts)
        checkpoints.record_step(self.ppo, trainer, record)
        if trainer.accelerator.is_main_process:
            live.log_to_tracker(trainer.accelerator, record)
            live.show(self.view, self.ppo.history, self.cfg.max_ppo_steps, self.ppo.bar)

    def end_of_ppo(self, trainer) -> list[dict]:
        """The run's PPO steps, once every process has taken them; only the main process goes on from here."""
        history = checkpoints.end_of_ppo(self.ppo, trainer)
        for tracker in trainer.accelerator.trackers:  # not end_training(): it ends the processes' group too
            tracker.finish()
        self.after_ppo = time.time()
        return history

    def replay_last_step(self, trainer, tokenizer, train_split) -> replay.Replay:
        """The last PPO step's batch as tensors, and TRL's forward pass of it under the policy before and after the
        step's update and under the reference (`lab3.replay`)."""
        return replay.last_step(self.ppo, trainer, tokenizer, train_split)

    def save_results(self, ppo_history: list[dict], summaries_before: pd.DataFrame, summaries_after: pd.DataFrame,
                     toxicity_change_ci: tuple[float, float], rouge_before: dict, rouge_after: dict,
                     comparison: pd.DataFrame, figure) -> Path:
        """Write results.json, the trained adapter and the matplotlib `figure` (detox.png) into the output folder, and
        mark the run finished; returns the results file."""
        files.save_figure(figure, self.output_dir / "detox.png")
        self.timings.update(eval_after_s=time.time() - self.after_ppo, ppo_s=self.ppo.ppo_s)
        adapter = checkpoints.export_adapter(self.run_dir, self.output_dir)
        record = results.results_record(
            preset_name=self.preset_name, cfg=settings.record(self.cfg), reward_label=self.reward_label,
            reward_mode=self.reward_mode, ppo_history=ppo_history, summaries_before=summaries_before,
            summaries_after=summaries_after, toxicity_change_ci=toxicity_change_ci, rouge_before=rouge_before,
            rouge_after=rouge_after, comparison=comparison, timings=self.timings, adapter=adapter,
            device=self.device.type, resumed_from=self.ppo.resumed_from, num_processes=self.processes)
        path = self.output_dir / "results.json"
        files.write_json(record, path)
        checkpoints.finish_run(self.ppo)  # a later run of the notebook starts anew and keeps this one aside
        print(f"wrote {path} and the trained adapter {adapter}")
        return path


def start(preset_name: str, overrides: dict | str, output_dir: str, checkpoint_dir: str, reward_label: str,
          reward_mode: str, resume: bool = True, log_every: int = 10, tracker: str = "") -> Run:
    """The run the notebook's parameters describe: settings checked, seed set, its folders locked."""
    _check_tracker(tracker)
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise LabError(f"log_every is {log_every!r}; it must be a whole number of PPO steps, at least 1.")
    for notice in (".*PPOv2.*", ".*past_key_values.*"):  # trl 0.11.4 is pinned on purpose (docs/maintainers.md)
        warnings.filterwarnings("ignore", message=notice, category=FutureWarning)
    state = process_state()  # one process in Jupyter; several under `accelerate launch` (docs/lab.md)
    preset_name, cfg = settings.resolve(preset_name, overrides, state.device.type)
    check_split(cfg, state.num_processes)
    sources.check(cfg)
    set_seed(cfg.seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(checkpoint_dir) / f"ppo-{preset_name}"
    files.lock_run(run_dir, output_dir)  # a second run of the lab on the same folders stops here
    return Run(preset_name, cfg, state, output_dir, run_dir, reward_label, reward_mode, resume, tracker,
               live.new_view(log_every))


def _check_tracker(tracker: str) -> None:
    """Stop in one sentence when `tracker` is not one the lab logs to, or its package is not installed."""
    if tracker and tracker not in TRACKERS:
        raise LabError(f"tracker is {tracker!r}; it must be '' (none) or one of {', '.join(map(repr, TRACKERS))}.")
    if tracker and importlib.util.find_spec(tracker) is None:
        raise LabError(f"tracker={tracker!r} needs the {tracker} package, which this Python lacks: run "
                       f"`pip install {TRACKERS[tracker]}` (or `pip install -r requirements-trackers.txt`), "
                       "then run the lab again.")
