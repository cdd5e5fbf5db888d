"""What the experiments notebook runs and measures: the lab's own notebook executed at other settings (each run kept
under its folder and reused, an interrupted one resumed by the lab itself), best-of-N sampling from the Lab 2 model,
and each run's or choice's row: reward, KL, toxicity with its interval, ROUGE-L and how well the summaries read.

The reward and the confidence interval are exercises of the lab: the experiments notebook hands their solutions in."""

import functools
import json
import math
import multiprocessing
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import rlhf_helpers as lab
from lab3 import NOTEBOOK, ROOT
from lab3.errors import LabError
from tiny_world import quality

RESULTS = "results.json"
COST = "cost.json"  # a run's wall time and peak memory, beside its results
PPO_HELD = "policy + value head, reference, reward model"  # the reference: the policy with its adapter off
Interval = Callable[..., tuple[float, float]]  # paired_bootstrap_ci(before, after, seed=...)


def run(name: str, overrides: dict, folder: Path) -> dict:
    """The results of the lab's notebook run with `overrides` in `folder/name`, with what the run cost (`cost`, None
    for a run kept from before it was measured): a finished run's are reused, an interrupted run resumes from its
    checkpoint, a new one runs (minutes on the tiny preset) in a process of its own."""
    out = Path(folder) / name
    if not (out / RESULTS).is_file():
        out.mkdir(parents=True, exist_ok=True)
        (out / COST).write_text(json.dumps(measured(_execute, out=str(out), overrides=overrides)))
    results = json.loads((out / RESULTS).read_text())
    differ = {k: v for k, v in overrides.items() if results["preset"].get(k) != v}
    if differ:
        raise LabError(f"{out} holds a run with other settings than {differ}: remove the folder to run it anew.")
    return dict(results, cost=json.loads((out / COST).read_text()) if (out / COST).is_file() else None)


def _execute(out: str, overrides: dict) -> None:
    """The lab's notebook, executed by papermill into `out` with `overrides`."""
    import papermill
    papermill.execute_notebook(str(ROOT / NOTEBOOK), str(Path(out) / NOTEBOOK), cwd=str(ROOT), progress_bar=False,
                               parameters={"overrides": overrides, "output_dir": out, "log_every": 1000,
                                           "checkpoint_dir": str(Path(out) / "checkpoints")})


def measured(function: Callable, **kwargs) -> dict:
    """`function(**kwargs)` run in a fresh process: its result, its wall time and its peak resident memory (its own
    and that of any process it waited for, such as a notebook's kernel)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure, function, kwargs).result()


def _measure(function: Callable, kwargs: dict) -> dict:
    started = time.time()
    result = function(**kwargs)
    peak_kb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"result": result, "wall_s": time.time() - started, "peak_mb": peak_kb / 1024}


def kept(path: Path, function: Callable, **kwargs) -> dict:
    """`measured(function, **kwargs)`, kept at `path` (JSON) with the settings it ran with, and reused."""
    settings = {k: v for k, v in kwargs.items() if k not in ("cfg", "data")}
    if not path.is_file():
        out = measured(function, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(out, settings=settings)))
    out = json.loads(path.read_text())
    if out.get("settings") != json.loads(json.dumps(settings)):
        raise LabError(f"{path} was made with other settings than {settings}: remove it to run it anew.")
    return out


@functools.cache
def _grammar() -> frozenset[str]:
    """Every sentence the tiny world's grammar writes (built once)."""
    return frozenset(quality.grammar_sentences())


def readability(summaries: list[str]) -> dict[str, float]:
    """How well summaries read in the tiny world: the share whose every sentence its grammar makes, and the share that
    repeat a word three times in a row."""
    return {"well_formed": quality.well_formed_share(summaries, _grammar()),
            "stutter": quality.stutter_share(summaries)}


def row(results: dict, phase: str = "after") -> dict:
    """A run's measures: the reward of its evaluation summaries (the `nothate` logit of prompt + summary), the KL of
    its last ten PPO steps, their toxicity, its change with the paired interval, ROUGE-L, and readability."""
    tox = results["toxicity"]
    change = tox[phase]["mean"] - tox["before"]["mean"]
    low, high = tox["change_ci95"] if phase == "after" else (0.0, 0.0)
    kl = float(np.mean([s["objective/kl"] for s in results["ppo_steps"][-10:]])) if phase == "after" else 0.0
    return {"reward": float(np.mean([r[f"reward_{phase}"] for r in results["comparison"]])), "kl": kl,
            "toxicity": tox[phase]["mean"], "change": change, "ci_low": low, "ci_high": high,
            "rougeL": results["rouge"][phase]["rougeL"], **readability(tox[phase]["summaries"])}


def best_of_n_kl(n: int) -> float:
    """The KL from the sampling model of keeping the best of `n` samples: log n - (n - 1) / n."""
    return math.log(n) - (n - 1) / n


def best_of_n(rewards: np.ndarray, ns: list[int]) -> dict[int, np.ndarray]:
    """For each n, which of the first n samples of each prompt scores highest (`rewards`: prompts x samples)."""
    return {n: rewards[:, :n].argmax(axis=1) for n in ns}


def best_of_n_rows(samples: pd.DataFrame, ns: list[int], seed: int, interval: Interval) -> pd.DataFrame:
    """A row per n: the measures of the summaries that best-of-n keeps (`samples`: a row per prompt and sample, with
    `prompt`, `sample`, `summary`, `reference`, `reward` and `toxicity`), the change paired with n = 1 and its
    `interval` (the paired bootstrap's)."""
    by_prompt = samples.sort_values(["prompt", "sample"])
    shape = (by_prompt.prompt.nunique(), by_prompt["sample"].nunique())
    picks = best_of_n(by_prompt.reward.to_numpy().reshape(shape), ns)
    first = by_prompt[by_prompt["sample"] == 0].reset_index(drop=True)
    rows = []
    for n, pick in picks.items():
        chosen = by_prompt.iloc[np.arange(shape[0]) * shape[1] + pick].reset_index(drop=True)
        low, high = interval(first.toxicity, chosen.toxicity, seed=seed)
        rows.append({"n": n, "reward": chosen.reward.mean(), "kl": best_of_n_kl(n), "toxicity": chosen.toxicity.mean(),
                     "change": chosen.toxicity.mean() - first.toxicity.mean(), "ci_low": low, "ci_high": high,
                     "rougeL": lab.rouge(list(chosen.summary), list(chosen.reference))["rougeL"],
                     **readability(list(chosen.summary))})
    return pd.DataFrame(rows).set_index("n")


def spread(rows: pd.DataFrame) -> dict[str, float]:
    """The toxicity change over seeds: its mean, standard deviation and range, beside one run's mean interval width."""
    return {"mean change": rows.change.mean(), "std over seeds": rows.change.std(ddof=1),
            "range": rows.change.max() - rows.change.min(), "one run's CI width": (rows.ci_high - rows.ci_low).mean()}


def samples(cfg, n: int, folder: Path, rewards_by_label: Callable) -> pd.DataFrame:
    """`n` summaries the Lab 2 model samples (as the lab's evaluation does) for each of the first `cfg.num_eval_samples`
    test prompts, each with its reward (`rewards_by_label` of the `nothate` label) and toxicity; kept in `folder` and
    reused."""
    path = Path(folder) / f"best_of_{n}.json"
    if path.is_file():
        return pd.read_json(path, orient="records")
    import evaluate
    from transformers import AutoTokenizer, pipeline

    test = lab.build_dataset(cfg.model_name, cfg.dataset_name, cfg.input_min_text_length,
                             cfg.input_max_text_length)["test"].select(range(cfg.num_eval_samples))
    model = lab.load_summarizer(cfg.model_name, cfg.adapter_dir, cfg.missing_adapter, dtype=cfg.dtype)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name)
    ids = [ids for ids in test["input_ids"] for _ in range(n)]
    kwargs = dict(cfg.generation_kwargs, max_new_tokens=cfg.eval_max_new_tokens)
    summaries = lab.generate_summaries(model, tokenizer, ids, kwargs, seed=cfg.seed)
    queries = [q for q in test["query"] for _ in range(n)]
    reward_pipe = pipeline("sentiment-analysis", model=cfg.toxicity_model_name)
    rewards = rewards_by_label(reward_pipe([q + " " + s for q, s in zip(queries, summaries)], **cfg.reward_kwargs),
                               "nothate")
    toxicity = evaluate.load(lab.TOXICITY_MODULE, cfg.toxicity_model_name, module_type="measurement")
    table = pd.DataFrame({"prompt": np.repeat(np.arange(len(test)), n), "sample": np.tile(np.arange(n), len(test)),
                          "summary": summaries, "reference": [r for r in test["summary"] for _ in range(n)],
                          "reward": [float(r) for r in rewards],
                          "toxicity": toxicity.compute(predictions=summaries, toxic_label="hate")["toxicity"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_json(path, orient="records")
    return table


def arm_row(out: dict, before: dict, interval: Interval, seed: int, data: dict | None = None) -> dict:
    """A row of an arm of `beyond_ppo` (`out`, measured), with what it cost: its measures as `row` gives a PPO run's,
    its change paired with the Lab 2 model's evaluation `before`; `data` (measured) is what it trained on, if made
    apart (DPO's pairs), whose time and memory count too."""
    result = out["result"]
    after, first = np.array(result["toxicity"]), np.array(before["result"]["toxicity"])
    low, high = interval(first, after, seed=seed)
    return {"reward": float(np.mean(result["reward"])), "kl": float(np.mean(result["kl"])),
            "toxicity": after.mean(), "change": after.mean() - first.mean(), "ci_low": low, "ci_high": high,
            "rougeL": lab.rouge(result["summaries"], result["references"])["rougeL"],
            **readability(result["summaries"]), **cost(result, out, data)}


def cost(result: dict, out: dict, data: dict | None = None) -> dict:
    """What a run cost: reward-model calls and summaries generated while training, models held, wall time, peak
    memory."""
    return {"reward-model calls": result["reward_model_calls"], "summaries generated": result["summaries_generated"],
            "models held": result["held"], "wall time (s)": out["wall_s"] + (data["wall_s"] if data else 0),
            "peak memory (MB)": max(out["peak_mb"], data["peak_mb"] if data else 0)}


def ppo_cost(results: dict) -> dict:
    """What a PPO run of the lab cost, as `cost` gives it (its time and memory NaN for a run kept from before)."""
    preset, measured_cost = results["preset"], results["cost"] or {"wall_s": math.nan, "peak_mb": math.nan}
    calls = preset["max_ppo_steps"] * preset["batch_size"]
    return cost({"reward_model_calls": calls, "summaries_generated": calls, "held": PPO_HELD}, measured_cost)


def arms(cfg, folder: Path, betas: list[float], scales: list[bool], seeds: list[int], dpo: dict, group: dict,
         interval: Interval) -> pd.DataFrame:
    """A row per arm of `beyond_ppo` and seed: DPO at each beta (its pairs and training as `dpo` says), the group
    method with and without the group's std (as `group` says); each run in a process of its own, kept in `folder`."""
    import beyond_ppo
    folder, n = Path(folder), cfg.num_eval_samples
    before = kept(folder / "lab2_model.json", beyond_ppo.lab2_evaluation, cfg=cfg, num_eval=n)
    pairs = kept(folder / "dpo_pairs.json", beyond_ppo.preference_data, cfg=cfg, prompts=dpo["prompts"],
                 group_size=dpo["group_size"], min_margin=dpo["min_margin"])
    rows = {}
    for seed in seeds:
        for beta in betas:
            out = kept(folder / f"dpo{beta:g}-seed{seed}.json", beyond_ppo.train_dpo, cfg=cfg, data=pairs["result"],
                       beta=beta, epochs=dpo["epochs"], batch_size=dpo["batch_size"], seed=seed, num_eval=n)
            rows[f"DPO, β={beta:g}", seed] = arm_row(out, before, interval, cfg.seed, pairs)
        for scale in scales:
            out = kept(folder / f"group-{'std' if scale else 'no-std'}-seed{seed}.json", beyond_ppo.train_group,
                       cfg=cfg, scale=scale, **group, seed=seed, num_eval=n)
            rows["group, ÷ std (GRPO)" if scale else "group, no std (Dr. GRPO)", seed] = arm_row(out, before,
                                                                                                 interval, cfg.seed)
    table = pd.DataFrame(rows).T.infer_objects()
    table.index.names = ["arm", "seed"]
    return table
