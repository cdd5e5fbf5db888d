"""One run of the lab, as the notebook sees it: the set-up cell's work (processes, settings, seed, locks), the sizes,
data order and tracker PPO needs, the fast generation path, the PPO loop's bookkeeping and live view, and the results
file.

`start` returns the run as a dict that the notebook hands back to the other functions here.
"""

import importlib.util
import time
import warnings
from pathlib import Path

import pandas as pd
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from trl.core import set_seed

from lab3 import checkpoints, files, live, results, settings, setup, speedups, trackers
from lab3.errors import LabError


def process_state() -> PartialState:
    """The processes running the lab: one in Jupyter, several under `accelerate launch` (its CPU flag read as
    Accelerate's own `Accelerator` reads it, so that PPOTrainer's accelerator finds the same state)."""
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def per_process(size: int, num_processes: int, what: str) -> int:
    """`size` split evenly over `num_processes` (each process takes its share of every batch)."""
    if size % num_processes:
        raise LabError(f"The {what} ({size}) cannot be split evenly over {num_processes} processes: launch a "
                       f"number of processes that divides it.")
    return size // num_processes


# The trackers the lab logs to, each with its pinned requirement (the optional `requirements-trackers.txt`).
TRACKERS = {setup.requirement_name(line): line for line in setup.requirements("requirements-trackers.txt")}


def start(preset_name: str, overrides: dict | str, output_dir: str, checkpoint_dir: str, reward_label: str,
          reward_mode: str, resume: bool = True, log_every: int = 10, tracker: str = "") -> dict:
    """The run the notebook's parameters describe: settings checked, seed set, its folders locked."""
    _check_tracker(tracker)
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise LabError(f"log_every is {log_every!r}; it must be a whole number of PPO steps, at least 1.")
    for notice in (".*PPOv2.*", ".*past_key_values.*"):  # trl 0.11.4 is pinned on purpose (README)
        warnings.filterwarnings("ignore", message=notice, category=FutureWarning)
    state = process_state()  # one process in Jupyter; several under `accelerate launch` (README)
    preset_name, cfg = settings.resolve(preset_name, overrides, state.device.type)
    set_seed(cfg.seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(checkpoint_dir) / f"ppo-{preset_name}"
    files.lock_run(run_dir, output_dir)  # a second run of the lab on the same folders stops here
    return {"preset_name": preset_name, "cfg": cfg, "state": state, "device": state.device, "output_dir": output_dir,
            "run_dir": run_dir, "reward_label": reward_label, "reward_mode": reward_mode, "resume": resume,
            "started": time.time(), "timings": {}, "live": live.start(log_every), "tracker": tracker}


def _check_tracker(tracker: str) -> None:
    """Stop in one sentence when `tracker` is not one the lab logs to, or its package is not installed."""
    if tracker and tracker not in TRACKERS:
        raise LabError(f"tracker is {tracker!r}; it must be '' (none) or one of {', '.join(map(repr, TRACKERS))}.")
    if tracker and importlib.util.find_spec(tracker) is None:
        raise LabError(f"tracker={tracker!r} needs the {tracker} package, which this Python lacks: run "
                       f"`pip install {TRACKERS[tracker]}` (or `pip install -r requirements-trackers.txt`), "
                       "then run the lab again.")


def run_name(run: dict) -> str:
    """The run's name in a tracker: what tells two runs of a sweep, or of two students, apart."""
    cfg = run["cfg"]
    fixed = "-fixed" if cfg.kl_control == "fixed" else ""
    return (f"{run['preset_name']}-kl{cfg.init_kl_coef:g}{fixed}-lr{cfg.learning_rate:g}-seed{cfg.seed}"
            f"-{run['reward_mode']}-{run['reward_label']}")


def settings_table(run: dict) -> pd.DataFrame:
    """Each setting of the run with its value and meaning, folders relative to the lab."""
    rows = settings.described(run["cfg"])
    return pd.DataFrame([(v, m) for _, v, m in rows], index=[n for n, _, _ in rows],
                        columns=[run["preset_name"], "meaning"])


def generation_kwargs(run: dict, dataset, **changes) -> dict:
    """The preset's sampling settings with `changes`, and on a GPU the compiled static-cache path sized for every
    prompt of `dataset`; the first call stops in one sentence if `dataset` is too small for the settings."""
    cfg = run["cfg"]
    if "fast_generation" not in run:
        settings.check_data_fits(cfg, dataset)  # enough dialogues for a batch and for the evaluation
        longest_prompt = max(len(ids) for split in dataset.values() for ids in split["input_ids"])
        run["fast_generation"] = speedups.fast_generation_kwargs(
            run["device"], max_new_tokens=max(cfg.output_max_length, cfg.eval_max_new_tokens),
            max_prompt_tokens=longest_prompt, dtype=cfg.dtype)
    return dict(cfg.generation_kwargs, **changes, **run["fast_generation"])


def process_settings(run: dict) -> dict:
    """`PPOConfig` arguments of the processes: each one's share of a batch, and the data order a resumed run finds."""
    cfg, processes = run["cfg"], run["state"].num_processes
    kwargs = {"batch_size": per_process(cfg.batch_size, processes, "batch size"),
              "mini_batch_size": per_process(cfg.mini_batch_size, processes, "mini-batch size"),
              "accelerator_kwargs": checkpoints.data_order(cfg.seed)}
    return dict(kwargs, **_tracker_settings(run))


def _tracker_settings(run: dict) -> dict:
    """`PPOConfig` arguments of the run's tracker, writing under `<output_dir>/trackers/` ({} without one)."""
    if not run["tracker"]:
        return {}
    return {"log_with": trackers.tracker(run["tracker"], run_name(run), run["output_dir"] / "trackers")}


def ppo_steps(run: dict, trainer):
    """Each PPO step still to take, with its batch: from the start, or after the last step of an interrupted run."""
    run["timings"]["setup_and_eval_before_s"] = time.time() - run["started"]
    identity = checkpoints.run_settings(run["preset_name"], settings.record(run["cfg"]), run["reward_label"],
                                        run["reward_mode"], run["state"].num_processes)
    run["ppo"] = checkpoints.start_or_resume(run["run_dir"], identity, trainer, run["resume"])
    return checkpoints.ppo_steps(run["ppo"], trainer, run["cfg"].max_ppo_steps)


def record_step(run: dict, trainer, stats: dict, scores: list[list[dict]], rewards: list, texts: list[str]) -> None:
    """Keep what the step did (its statistics, texts, scores and rewards) and checkpoint the run."""
    step = len(run["ppo"]["history"])
    record = results.ppo_step_record(step, stats, scores, rewards, texts)
    checkpoints.record_step(run["ppo"], trainer, record)
    if trainer.accelerator.is_main_process:
        live.log_to_tracker(trainer.accelerator, record)
        live.show(run["live"], run["ppo"]["history"], run["cfg"].max_ppo_steps, run["ppo"]["bar"])


def end_of_ppo(run: dict, trainer) -> list[dict]:
    """The run's PPO steps, once every process has taken them; only the main process goes on from here."""
    history = checkpoints.end_of_ppo(run["ppo"], trainer)
    for tracker in trainer.accelerator.trackers:  # not end_training(): it ends the processes' group too
        tracker.finish()
    run["after_ppo"] = time.time()
    return history


def save_results(run: dict, ppo_history: list[dict], summaries_before: pd.DataFrame, summaries_after: pd.DataFrame,
                 toxicity_change_ci: tuple[float, float], rouge_before: dict, rouge_after: dict,
                 comparison: pd.DataFrame, figure) -> Path:
    """Write results.json, the trained adapter and the matplotlib `figure` (detox.png) into the output folder, and
    mark the run finished; returns the results file."""
    files.save_figure(figure, run["output_dir"] / "detox.png")
    run["timings"].update(eval_after_s=time.time() - run["after_ppo"], ppo_s=run["ppo"]["ppo_s"])
    adapter = checkpoints.export_adapter(run["run_dir"], run["output_dir"])
    record = results.results_record(
        preset_name=run["preset_name"], cfg=settings.record(run["cfg"]), reward_label=run["reward_label"],
        reward_mode=run["reward_mode"], ppo_history=ppo_history, summaries_before=summaries_before,
        summaries_after=summaries_after, toxicity_change_ci=toxicity_change_ci, rouge_before=rouge_before,
        rouge_after=rouge_after, comparison=comparison, timings=run["timings"], adapter=adapter,
        device=run["device"].type, resumed_from=run["ppo"]["resumed_from"],
        num_processes=run["state"].num_processes)
    path = run["output_dir"] / "results.json"
    files.write_json(record, path)
    checkpoints.finish_run(run["ppo"])  # a later run of the notebook starts anew and keeps this one aside
    print(f"wrote {path} and the trained adapter {adapter}")
    return path
