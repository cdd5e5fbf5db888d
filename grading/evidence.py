"""What the grader computes itself, from its own models and data and the student's adapter: the summaries of the Lab 2
model and of the submitted adapter, each PPO step's prompts as the run's seed draws them, the classifier's scores of
every summary and every PPO text, and from those the means, the confidence interval and ROUGE that a grade rests on.

Nothing here loads a model, a data set or settings from the submission: the settings are the course's, the models the
grader's own; from the student only the adapter's tensors are read, with safetensors, into the lab's own LoRA shape.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from lab3 import summarizer
from lab3.checksums import file_sha256, manifest_mismatches, weights_file
from lab3.settings import TINY_DIR, Settings, record
from lab3.solutions import solution
from lab3.speedups import fast_generation_for, resolve_dtype

CLASSIFIER_PIN = Path(__file__).resolve().parent / "classifier.lock"  # written by setup.sh: the full preset's pin


class Unverifiable(Exception):
    """Evidence the grader cannot compute here; the message says why, in one sentence."""


@dataclass
class Regenerated:
    """The grader's own run of what the student's run measured."""

    queries: list[str]  # the evaluation prompts
    references: list[str]  # the data set's summaries of them
    before: list[str]  # the Lab 2 model's summaries
    after: list[str] | None  # the submitted adapter's, None when it could not write them
    adapter_problem: str  # why not, in a few words
    train_queries: list[str]  # the training split's prompts, in its order


def grader_device() -> torch.device:
    """Where the grader regenerates summaries: a GPU if it has one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def classifier_source(cfg: Settings, classifier: Path | None) -> tuple[str, str]:
    """The grader's reward classifier (a folder or a cached Hub id) and its weights' SHA-256: `--classifier`, else the
    preset's, checked against the shipped manifest (tiny) or the pin setup.sh wrote (full)."""
    source = str(classifier) if classifier is not None else cfg.toxicity_model_name
    if classifier is None and Path(source).is_relative_to(TINY_DIR) and manifest_mismatches(TINY_DIR):
        raise Unverifiable("this grader's tiny preset is not the shipped one (checkpoints/tiny/MANIFEST.json)")
    pin = json.loads(CLASSIFIER_PIN.read_text()) if classifier is None and CLASSIFIER_PIN.is_file() else {}
    if pin.get("repo") == source:
        source = pin["folder"]  # the snapshot of the pinned revision
    weights = weights_file(source)
    if weights is None or weights.suffix != ".safetensors":
        raise Unverifiable(f"the grader's classifier {source} has no model.safetensors on this machine (run "
                           "grading/gradescope/setup.sh, or pass --classifier FOLDER)")
    sha = file_sha256(weights)
    if pin.get("folder") == source and pin.get("sha256") != sha:
        raise Unverifiable(f"the cached {pin['repo']} is not the revision pinned in {CLASSIFIER_PIN.name}")
    return source, sha


def _adapter_into(model, adapter: bytes) -> None:
    """Load the student's adapter tensors into `model`'s fresh LoRA adapter, after checking that they are exactly its
    tensors (names, shapes, dtype) and finite."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    try:
        tensors = load_safetensors(adapter)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ValueError(f"it is not readable safetensors ({str(e)[:120]})") from None
    expected = get_peft_model_state_dict(model)
    if set(tensors) != set(expected):
        raise ValueError(f"it holds other tensors than the lab's LoRA adapter ({len(tensors)} tensors, the "
                         f"lab's has {len(expected)})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise ValueError("its tensors are not the shape of the lab's LoRA adapter")
        if not torch.isfinite(tensor).all():
            raise ValueError("it holds weights that are not finite")
    set_peft_model_state_dict(model, tensors)


def _cache_key(cfg: Settings, device: torch.device) -> str:
    """What the summaries before PPO depend on: the settings (the seed among them) and the device."""
    return hashlib.sha256(json.dumps([record(cfg), device.type], sort_keys=True).encode()).hexdigest()[:16]


def regenerate(cfg: Settings, run_device: str, adapter: bytes, cache: Path | None) -> Regenerated:
    """The grader's own run of what a run of settings `cfg` measured on `run_device`: its evaluation prompts, the
    Lab 2 model's summaries (cached in `cache` for runs of the same settings) and the student's adapter's."""
    from transformers import AutoTokenizer
    device = grader_device()
    dtype = resolve_dtype(cfg.dtype, device.type)
    if run_device != device.type:
        raise Unverifiable(f"the run generated on {run_device} and this grader generates on {device.type}: sampled "
                           "summaries are the same only on the same kind of device; grade this run on such a machine")
    dataset = summarizer.build_dataset(cfg.model_name, cfg.dataset_name, cfg.input_min_text_length,
                                       cfg.input_max_text_length)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name)
    lab2 = summarizer.load_summarizer(cfg.model_name, cfg.adapter_dir, cfg.missing_adapter, dtype=dtype)
    model = summarizer.add_fresh_lora(lab2).to(device).eval()
    samples = dataset["test"].select(range(cfg.num_eval_samples))
    prompts = list(samples["input_ids"])
    kwargs = dict(cfg.generation_kwargs, max_new_tokens=cfg.eval_max_new_tokens,
                  **fast_generation_for(cfg, device, dataset, dtype))
    cached = cache / f"before-{_cache_key(cfg, device)}.json" if cache else None
    if cached and cached.is_file():
        before = json.loads(cached.read_text())
    else:
        before = summarizer.generate_summaries(model, tokenizer, prompts, kwargs, seed=cfg.seed)
        if cached:
            cached.with_suffix(".tmp").write_text(json.dumps(before))
            cached.with_suffix(".tmp").replace(cached)
    try:
        _adapter_into(model, adapter)
        after, problem = summarizer.generate_summaries(model, tokenizer, prompts, kwargs, seed=cfg.seed), ""
    except (ValueError, RuntimeError) as e:  # RuntimeError: weights so large that sampling meets inf or NaN
        after, problem = None, str(e)[:200]
    return Regenerated(list(samples["query"]), list(samples["summary"]), before, after, problem,
                       list(dataset["train"]["query"]))


def _load_classifier(source: str):
    """A text-classification pipeline over the grader's classifier: local files, safetensors, no remote code."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    model = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=True, trust_remote_code=False,
                                                               use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    return pipeline("text-classification", model=model, tokenizer=tokenizer, device=grader_device())


@dataclass
class Scores:
    """The grader's classifier on a run: each summary's toxicity, and each PPO text's outputs and `nothate` reward."""

    toxicity: dict[str, list[float]]  # by phase, the probability of the label that is not `nothate`
    ppo_outputs: list[list[dict]]  # per PPO text, as the reward pipeline lists them
    ppo_rewards: list[float]  # per PPO text, the `nothate` logit


def rescore(source: str, summaries: dict[str, list[str]], ppo_texts: list[str], reward_kwargs: dict) -> Scores:
    """Score `summaries` (by phase) and every PPO text with the grader's classifier, as the lab scores them."""
    pipe = _load_classifier(source)
    nothate = pipe.model.config.id2label[summarizer.not_hate_index(pipe.model)]
    toxic_kwargs = dict(reward_kwargs, function_to_apply="softmax")
    toxicity = {phase: [1 - float(r) for r in solution("rewards_by_label")(pipe(texts, **toxic_kwargs), nothate)]
                if texts else [] for phase, texts in summaries.items()}  # a pipeline refuses an empty list
    outputs = pipe(ppo_texts, **reward_kwargs) if ppo_texts else []
    return Scores(toxicity, outputs, [float(r) for r in solution("rewards_by_label")(outputs, nothate)])


def measures(toxicity: dict[str, list[float]], summaries: dict[str, list[str]], references: list[str],
             seed: int) -> dict:
    """Mean and std of the toxicity before and after, the paired bootstrap 95% CI of the change, and ROUGE, computed
    here from the grader's own summaries and scores."""
    out = {phase: {"mean": float(np.mean(toxicity[phase])), "std": float(np.std(toxicity[phase]))}
           for phase in ("before", "after")}
    out["change_ci95"] = list(solution("paired_bootstrap_ci")(toxicity["before"], toxicity["after"], seed=seed))
    out["rouge"] = {phase: summarizer.rouge(summaries[phase], references) for phase in ("before", "after")}
    return out

