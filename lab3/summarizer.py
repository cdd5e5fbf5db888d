"""The lab's data and summarizer, as the lecture and the grader both use them: the data set's prompts, the Lab 2
model, a fresh LoRA adapter, summaries sampled from a seed, ROUGE, and the classifier's `nothate` label."""

import pickle
from pathlib import Path

import pandas as pd
import torch
from datasets import DatasetDict, load_dataset
from peft import LoraConfig, PeftModel, get_peft_model
from rouge_score import rouge_scorer
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from lab3.errors import LabError
from lab3.settings import LAB2_LORA, NOT_HATE_NAMES, PROMPT_TEMPLATE

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


def not_hate_index(model_or_config) -> int:
    """The class index of the `nothate` label, read from `config.id2label`."""
    config = getattr(model_or_config, "config", model_or_config)
    for index, label in config.id2label.items():
        if str(label).lower() in NOT_HATE_NAMES:
            return int(index)
    raise LabError(f"The reward model has no 'nothate' label (its labels are {sorted(config.id2label.values())}).")


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


def rouge_per_summary(predictions: list[str], references: list[str]) -> pd.DataFrame:
    """ROUGE-1/2/L F-measures of each prediction against its reference, one row per summary."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p) for p, r in zip(predictions, references)]
    return pd.DataFrame([{k: s[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")} for s in scores])


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures of `predictions` against `references`."""
    return {k: float(v) for k, v in rouge_per_summary(predictions, references).mean().items()}
