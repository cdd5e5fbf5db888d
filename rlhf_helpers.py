"""What a student reads beside the Lab 3 notebook: the data, the models, the rewards and the measurements."""

from collections.abc import Callable

import pandas as pd
import torch

from lab3 import ROOT

# What the methods after PPO rest on (section 5): groups of summaries, their log-probabilities, pairs, TRL's DPO loss.
from lab3.beyond import pair_logprobs, preference_pairs, rewards_of, sample_groups, trl_dpo_loss  # noqa: F401

# The data set, the Lab 2 model, a fresh LoRA adapter, sampled summaries, ROUGE and the `nothate` label: read them in
# lab3/summarizer.py, which the grader uses too; the notebook calls them as `lab.<name>`.
from lab3.summarizer import (  # noqa: F401
    add_fresh_lora,
    build_dataset,
    generate_summaries,
    load_summarizer,
    not_hate_index,
    rouge,
    rouge_per_summary,
)

TOXICITY_MODULE = str(ROOT / "lab3" / "toxicity")  # the local `evaluate` measurement: no Hub needed


def describe_trainable_parameters(model: torch.nn.Module) -> str:
    """The lecture's summary of trainable and total parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return (f"\ntrainable model parameters: {trainable}\nall model parameters: {total}\n"
            f"percentage of trainable model parameters: {100 * trainable / total:.2f}%")


def lecture_rewards(index: int) -> Callable[[list[list[dict]], str], list[torch.Tensor]]:
    """The lecture's reward: entry `index` of each text's pipeline output as listed (by score, not by class index),
    whatever its label; for the experiment of 2.5."""
    return lambda outputs, label: [torch.tensor(out[index]["score"]) for out in outputs]


def collator(data: list[dict]) -> dict:
    """Batch a list of samples into a dict of lists, as PPOTrainer expects, shortest prompt first."""
    # PPO does not care about the order within a batch; sorted, the mini-batches that PPOTrainer cuts from it and the
    # texts the reward model scores a few at a time need little padding.
    data = sorted(data, key=lambda d: len(d["input_ids"]))
    return {key: [d[key] for d in data] for key in data[0]}


def generate_and_measure_toxicity(model, toxicity_evaluator, tokenizer, dataset, num_samples: int,
                                  generation_kwargs: dict, seed: int = 0) -> tuple[float, float, pd.DataFrame]:
    """Generate summaries of the first `num_samples` prompts of `dataset`, and measure their toxicity: its mean and
    std, and the per-summary table."""
    if num_samples > len(dataset):
        raise ValueError(f"num_samples={num_samples} but the data set has only {len(dataset)} samples.")
    samples = dataset.select(range(num_samples))
    summaries = generate_summaries(model, tokenizer, list(samples["input_ids"]), generation_kwargs, seed=seed)
    queries = list(samples["query"])
    table = pd.DataFrame({
        "query": queries,
        "summary": summaries,
        "reference": list(samples["summary"]),
        "toxicity": toxicity_evaluator.compute(predictions=summaries, toxic_label="hate")["toxicity"],
        "toxicity_with_prompt": toxicity_evaluator.compute(
            predictions=[q + " " + s for q, s in zip(queries, summaries)], toxic_label="hate")["toxicity"],
    })
    return float(table.toxicity.mean()), float(table.toxicity.std(ddof=0)), table


def comparison_table(before: pd.DataFrame, after: pd.DataFrame, reward_pipe, reward_kwargs: dict,
                     rewards_by_label: Callable, label: str = "nothate") -> pd.DataFrame:
    """Side by side: each query's summary, toxicity, reward and ROUGE-L before and after PPO, by gain in reward."""
    def rewards(table: pd.DataFrame) -> list[float]:
        texts = [q + " " + s for q, s in zip(table["query"], table["summary"])]
        return [r.item() for r in rewards_by_label(reward_pipe(texts, **reward_kwargs), label)]

    df = pd.DataFrame({
        "query": before["query"], "response_before": before["summary"], "response_after": after["summary"],
        "toxic_before": before["toxicity"] >= 0.5,  # the classifier called the summary itself hateful
        "toxicity_before": before["toxicity"], "toxicity_after": after["toxicity"],
        "reward_before": rewards(before), "reward_after": rewards(after),
        "rougeL_before": rouge_per_summary(before["summary"], before["reference"])["rougeL"],
        "rougeL_after": rouge_per_summary(after["summary"], after["reference"])["rougeL"],
    })
    df["reward_gain"] = df.reward_after - df.reward_before
    return df.sort_values("reward_gain", ascending=False, ignore_index=True)


def _best_and_worst(scores: torch.Tensor) -> dict[str, int]:
    """The batch's best- and worst-scored texts, by index."""
    return {"best-scored": int(scores.argmax()), "worst-scored": int(scores.argmin())}


def reward_parts(step, token_rewards: torch.Tensor) -> pd.DataFrame:
    """For the best- and worst-scored summaries of a replayed PPO `step` (`lab3.replay.Replay`): the classifier's
    score, the KL penalty summed over the summary's tokens, and their sum, the summary's total reward."""
    rows = {}
    for name, i in _best_and_worst(step.scores).items():
        total = float((token_rewards[i] * step.masks[i]).sum())
        rows[name] = {"score": float(step.scores[i]), "KL penalty": total - float(step.scores[i]),
                      "total reward": total, "tokens": int(step.masks[i].sum())}
    return pd.DataFrame(rows).T


def plot_token_rewards(step, token_rewards: torch.Tensor, returns: torch.Tensor, tokenizer) -> None:
    """Per token of the best- and worst-scored summaries of a replayed PPO `step`: the reward (the KL penalty, and
    at the last token the score with it), the value head's prediction, and the return."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), sharey=True)
    for ax, (name, i) in zip(axes, _best_and_worst(step.scores).items()):
        kept = step.masks[i].bool().cpu()
        words = tokenizer.convert_ids_to_tokens(step.responses[i][1:].tolist())[:int(kept.sum())]
        x = range(len(words))
        ax.bar(x, token_rewards[i].cpu()[kept], color="C0", label="reward (KL penalty; score at the end)")
        ax.plot(x, step.old_values[i].cpu()[kept], "C1.-", label="value head's prediction")
        ax.plot(x, returns[i].cpu()[kept], "C2.--", label="return")
        ax.set_xticks(list(x), words, rotation=90, fontsize=7)
        ax.set_title(f"{name} summary: score {float(step.scores[i]):.2f}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plt.show()


def group_table(groups: list[list[str]], rewards: torch.Tensor, advantages: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Each sampled summary with its group (prompt), reward and advantages, the group's reward spread beside it."""
    size = len(groups[0])
    return pd.DataFrame({"prompt": [p for p in range(len(groups)) for _ in range(size)],
                         "summary": [s for group in groups for s in group], "reward": rewards.flatten(),
                         "group's std": rewards.std(dim=1).repeat_interleave(size),
                         **{f"advantage ({name})": a.flatten() for name, a in advantages.items()}}).round(3)


def pair_table(groups: list[list[str]], pairs: list[tuple[int, int, int]], losses: torch.Tensor,
               chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> pd.DataFrame:
    """Each preference pair: its chosen and rejected summaries, their implicit rewards, the margin and the loss."""
    return pd.DataFrame({"chosen": [groups[p][c] for p, c, _ in pairs], "rejected": [groups[p][r] for p, _, r in pairs],
                         "implicit reward, chosen": chosen_rewards, "implicit reward, rejected": rejected_rewards,
                         "margin": chosen_rewards - rejected_rewards, "DPO loss": losses}).round(3)
