"""What a student reads beside the Lab 3 notebook: the data, the models, the rewards and the measurements."""

import pickle
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from datasets import DatasetDict, load_dataset
from peft import LoraConfig, PeftModel, get_peft_model
from rouge_score import rouge_scorer
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from lab3 import ROOT
from lab3.errors import LabError
from lab3.settings import LAB2_LORA, NOT_HATE_NAMES, PROMPT_TEMPLATE

TOXICITY_MODULE = str(ROOT / "lab3" / "toxicity")  # the local `evaluate` measurement: no Hub needed
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")  # the course's Lab 2 checkpoint is the .bin


def build_dataset(model_name: str, dataset_name: str, input_min_text_length: int, input_max_text_length: int,
                  test_size: float = 0.2, seed: int = 42) -> DatasetDict:
    """DialogSum-style dialogues within the length bounds, tokenized as summarization prompts, split train/test."""
    dataset = load_dataset(dataset_name, split="train")
    dataset = dataset.filter(lambda x: input_min_text_length < len(x["dialogue"]) <= input_max_text_length)
    if len(dataset) == 0:
        raise LabError(f"No dialogue in {dataset_name} is longer than {input_min_text_length} and at most "
                            f"{input_max_text_length} characters: widen input_min_text_length/input_max_text_length.")
    tokenizer = AutoTokenizer.from_pretrained(model_name)

    def tokenize(sample: dict) -> dict:
        sample["input_ids"] = tokenizer.encode(PROMPT_TEMPLATE.format(dialogue=sample["dialogue"]))
        sample["query"] = tokenizer.decode(sample["input_ids"])
        return sample

    dataset = dataset.map(tokenize, batched=False)
    dataset.set_format(type="torch")
    return dataset.train_test_split(test_size=test_size, shuffle=False, seed=seed)

def load_summarizer(model_name: str, adapter_dir: str | None, missing_adapter: str = "error",
                    dtype: torch.dtype | str = torch.float32) -> AutoModelForSeq2SeqLM:
    """The Lab 2 summarizer (base model with the Lab 2 LoRA adapter merged in), without dropout, fused GELU."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    # Dropout off: PPO's probability ratios and rollouts must not carry dropout noise (TRL's later trainers do the
    # same). FLAN-T5's "gelu_new" runs as five element-wise ops; "gelu_pytorch_tanh" is the same function in one.
    config = AutoConfig.from_pretrained(model_name, dropout_rate=0.0)
    if getattr(config, "dense_act_fn", None) == "gelu_new":
        config.dense_act_fn = "gelu_pytorch_tanh"
    model = AutoModelForSeq2SeqLM.from_pretrained(model_name, config=config, dtype=dtype)
    if adapter_dir is None:
        return model
    if not Path(adapter_dir, "adapter_config.json").is_file():
        message = f"No Lab 2 adapter in {adapter_dir} (no adapter_config.json there)"
        if missing_adapter == "error":
            raise LabError(message + ": build the tiny preset with `python -m tiny_world.build`.")
        print(message + f": starting from a fresh LoRA adapter, so the 'before' model is plain {model_name} "
              "and the numbers will differ from the lecture's.")
        return model
    weights = next((Path(adapter_dir, n) for n in ADAPTER_FILES if Path(adapter_dir, n).is_file()), None)
    if weights is None:
        raise LabError(f"The Lab 2 adapter in {adapter_dir} has no weights: put {' or '.join(ADAPTER_FILES)} "
                            "beside its adapter_config.json.")
    how = "safetensors" if weights.suffix == ".safetensors" else "read as tensors only (torch weights_only=True)"
    print(f"Lab 2 adapter: {weights} ({how})")
    try:  # PEFT reads a .bin with torch.load(weights_only=True): a pickled object in it is refused, never run
        return PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    except pickle.UnpicklingError:
        raise LabError(f"{weights} holds more than tensors, so it was not loaded: use the course's original "
                            "adapter file, or its adapter_model.safetensors.") from None


def add_fresh_lora(model: AutoModelForSeq2SeqLM) -> PeftModel:
    """`model` with a new trainable LoRA adapter of the lecture's shape; with the adapter disabled it is `model`."""
    return get_peft_model(model, LoraConfig(**LAB2_LORA))


def describe_trainable_parameters(model: torch.nn.Module) -> str:
    """The lecture's summary of trainable and total parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return (f"\ntrainable model parameters: {trainable}\nall model parameters: {total}\n"
            f"percentage of trainable model parameters: {100 * trainable / total:.2f}%")


def not_hate_index(model_or_config) -> int:
    """The class index of the `nothate` label, read from `config.id2label`."""
    config = getattr(model_or_config, "config", model_or_config)
    for index, label in config.id2label.items():
        if str(label).lower() in NOT_HATE_NAMES:
            return int(index)
    raise LabError(f"The reward model has no 'nothate' label (its labels are {sorted(config.id2label.values())}).")


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


@torch.no_grad()
def generate_summaries(model, tokenizer, input_ids: list[torch.Tensor], generation_kwargs: dict,
                       batch_size: int = 16, seed: int = 0) -> list[str]:
    """Decoded summaries of the prompts `input_ids`, generated in padded batches from a fixed seed."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    generation_kwargs = dict(generation_kwargs)
    pad_to_multiple_of = generation_kwargs.pop("pad_to_multiple_of", None)  # as PPOTrainer.generate takes it
    texts = []
    for i in tqdm(range(0, len(input_ids), batch_size), desc="summaries", unit="batch"):
        batch = tokenizer.pad({"input_ids": input_ids[i:i + batch_size]}, pad_to_multiple_of=pad_to_multiple_of,
                              return_tensors="pt").to(device)
        out = model.generate(**batch, **generation_kwargs)
        texts += tokenizer.batch_decode(out, skip_special_tokens=True)
    return texts


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


def rouge_per_summary(predictions: list[str], references: list[str]) -> pd.DataFrame:
    """ROUGE-1/2/L F-measures of each prediction against its reference, one row per summary."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p) for p, r in zip(predictions, references)]
    return pd.DataFrame([{k: s[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")} for s in scores])


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures of `predictions` against `references`."""
    return {k: float(v) for k, v in rouge_per_summary(predictions, references).mean().items()}


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
