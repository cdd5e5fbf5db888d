"""What a run of the lab records: each PPO step, and the results file an instructor grades."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate.utils import gather_object

from lab3.checksums import file_sha256, weights_sha256
from lab3.settings import located


def ppo_step_record(step: int, stats: dict, pipeline_scores: list[list[dict]], rewards: list[torch.Tensor],
                    texts: list[str]) -> dict:
    """What the lab keeps of one PPO step: the lecture's statistics, the texts scored, their scores and rewards."""
    # Under `accelerate launch` each process holds its share of the batch: gather them (one process: unchanged).
    # `stats` are already the mean over the processes (PPOTrainer.step gathers them).
    keys = ("objective/kl", "ppo/returns/mean", "ppo/policy/advantages_mean", "ppo/mean_scores")
    rewards = gather_object([float(r) for r in rewards])
    return {"step": step, "reward_mean": float(np.mean(rewards)), **{k: float(stats[k]) for k in keys},
            "rewards": rewards, "pipeline_scores": gather_object(list(pipeline_scores)),
            "texts": gather_object(list(texts)), "texts_per_process": gather_object([len(texts)])}


def library_versions() -> dict[str, str]:
    """Versions of the libraries the lab depends on."""
    import datasets
    import evaluate
    import peft
    import transformers
    import trl
    return {m.__name__: m.__version__ for m in (torch, transformers, trl, peft, datasets, evaluate, np, pd)}


def results_record(preset_name: str, cfg: dict, reward_label: str, reward_mode: str, ppo_history: list[dict],
                   summaries_before: pd.DataFrame, summaries_after: pd.DataFrame,
                   toxicity_change_ci: tuple[float, float], rouge_before: dict, rouge_after: dict,
                   comparison: pd.DataFrame, timings: dict, adapter: Path, device: str,
                   resumed_from: list[int] = (), num_processes: int = 1) -> dict:
    """Everything a grader needs about one run of the lab, as plain JSON-ready data; `cfg` is the settings' record
    (`lab3.settings.record`), `adapter` the trained LoRA adapter's file, which the grader regenerates the summaries
    after PPO with."""
    def stats(table: pd.DataFrame) -> dict:
        return {"mean": float(table.toxicity.mean()), "std": float(table.toxicity.std(ddof=0)),
                "per_sample": table.toxicity.tolist(), "summaries": table.summary.tolist()}

    return {
        "preset_name": preset_name, "preset": cfg, "seed": cfg["seed"],
        "device": device,  # where the summaries were generated: the grader regenerates them on the same kind
        "reward": {"label": reward_label, "mode": reward_mode},
        "num_processes": num_processes,  # how many processes shared each PPO batch (accelerate launch)
        "resumed_from_steps": list(resumed_from),  # the steps at which an interrupted run was continued, if any
        "versions": library_versions(),
        "classifier_sha256": weights_sha256(located(cfg["toxicity_model_name"])),  # which classifier scored this run
        "adapter_sha256": file_sha256(adapter),  # the adapter handed in beside this file
        "ppo_steps": ppo_history,
        "toxicity": {"before": stats(summaries_before), "after": stats(summaries_after),
                     "change_ci95": list(toxicity_change_ci)},
        "rouge": {"before": rouge_before, "after": rouge_after},
        "comparison": comparison.to_dict(orient="records"),
        "timings_s": timings,
    }
