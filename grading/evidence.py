"""What the grader computes itself, from its own models and data and the student's adapter, to check a run against:
the summaries regenerated before and after PPO, the classifier's scores, ROUGE and the confidence interval.

Nothing here loads a model, a data set or settings from the submission: the settings are the preset's (with what the
course assigned), the models the grader's own; from the student only the adapter's tensors are read, with safetensors,
into the lab's own LoRA shape.
"""

import hashlib
import json
import math
import secrets
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

import rlhf_helpers as lab
from lab3.checksums import file_sha256, manifest_mismatches, weights_file
from lab3.settings import NOT_HATE_NAMES, TINY_DIR, located_sources
from lab3.speedups import fast_generation_kwargs, resolve_dtype

RESCORED_PPO_TEXTS = 32  # how many of the recorded PPO texts the classifier scores again, drawn with a secret seed
CLASSIFIER_PIN = Path(__file__).resolve().parent / "classifier.lock"  # written by setup.sh: the full preset's pin


def paired_bootstrap_ci(before, after, n_resamples: int = 10000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """The grader's paired bootstrap confidence interval of mean(after) - mean(before) (the notebook's exercise 4.4,
    which students write themselves: this copy is not handed out)."""
    import numpy as np
    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def rewards_by_label(outputs: list[list[dict]], label: str) -> list[torch.Tensor]:
    """The grader's reward: the score of `label` in each text's pipeline output (the notebook's exercise 2.5)."""
    return [torch.tensor(next(d["score"] for d in out if d["label"] == label)) for out in outputs]


class Unverifiable(Exception):
    """Evidence the grader cannot compute here; the message says why, in one sentence."""


def grader_device() -> torch.device:
    """Where the grader regenerates summaries: a GPU if it has one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def classifier_source(cfg: dict, classifier: Path | None) -> tuple[str, str]:
    """The grader's reward classifier (a folder or a cached Hub id) and its weights' SHA-256: `--classifier`, else the
    preset's, checked against the shipped manifest (tiny) or the pin setup.sh wrote (full)."""
    cfg = located_sources(cfg)  # the grader's own files
    source = str(classifier) if classifier is not None else cfg["toxicity_model_name"]
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


def _load_classifier(source: str):
    """A text-classification pipeline over the grader's classifier: local files, safetensors, no remote code."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    model = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=True, trust_remote_code=False,
                                                               use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    return pipeline("text-classification", model=model, tokenizer=tokenizer)


def label_logits(pipe, texts: list[str]) -> list[dict[str, float]]:
    """The classifier's logit of each label for each text."""
    outputs = pipe(texts, top_k=None, function_to_apply="none", batch_size=8, truncation=True)
    return [{d["label"]: d["score"] for d in out} for out in outputs]


def toxicity(logits: dict[str, float]) -> float:
    """The probability of the label that is not `nothate` (what the lab's `toxicity` measurement gives)."""
    total = sum(math.exp(v) for v in logits.values())
    return next(math.exp(v) for k, v in logits.items() if k.lower() not in NOT_HATE_NAMES) / total


def nothate(logits: dict[str, float]) -> float | None:
    """The `nothate` logit, by label."""
    return next((v for k, v in logits.items() if k.lower() in NOT_HATE_NAMES), None)


def _adapter_into(model, adapter: bytes) -> None:
    """Load the student's adapter tensors into `model`'s fresh LoRA adapter, after checking that they are exactly its
    tensors (names, shapes, dtype) and finite."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    try:
        tensors = load_safetensors(adapter)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ValueError(f"the adapter file is not readable safetensors ({str(e)[:120]})") from None
    expected = get_peft_model_state_dict(model)
    if set(tensors) != set(expected):
        raise ValueError(f"the adapter holds other tensors than the lab's LoRA adapter ({len(tensors)} tensors, the "
                         f"lab's has {len(expected)})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise ValueError("the adapter's tensors are not the shape of the lab's LoRA adapter")
        if not torch.isfinite(tensor).all():
            raise ValueError("the adapter holds weights that are not finite")
    set_peft_model_state_dict(model, tensors)


def _cache_key(cfg: dict, device: torch.device) -> str:
    """What the summaries before PPO depend on: the settings and the device."""
    return hashlib.sha256(json.dumps([cfg, device.type], sort_keys=True, default=str).encode()).hexdigest()[:16]


def regenerate(cfg: dict, results: dict, adapter: bytes, cache: Path | None) -> dict:
    """The grader's own run of what the student's run measured: its evaluation prompts and references, the summaries of
    the Lab 2 model (cached per class in `cache`) and of the student's adapter, and the prompts PPO may have used."""
    from transformers import AutoTokenizer
    cfg = located_sources(cfg)  # the grader's own files
    device = grader_device()
    dtype = resolve_dtype(cfg["dtype"], device.type)
    if (results["device"], results["preset"].get("dtype")) != (device.type, dtype):
        raise Unverifiable(f"the run generated on {results['device']} in {results['preset'].get('dtype')} and this "
                           f"grader generates on {device.type} in {dtype}: sampled summaries are the same only on the "
                           "same kind of device; grade this run on such a machine")
    dataset = lab.build_dataset(cfg["model_name"], cfg["dataset_name"], cfg["input_min_text_length"],
                                cfg["input_max_text_length"])
    tokenizer = AutoTokenizer.from_pretrained(cfg["model_name"])
    model = lab.add_fresh_lora(lab.load_summarizer(cfg["model_name"], cfg["adapter_dir"], cfg["missing_adapter"],
                                                   dtype=dtype)).to(device).eval()
    samples = dataset["test"].select(range(cfg["num_eval_samples"]))
    prompts = list(samples["input_ids"])
    longest = max(len(ids) for split in dataset.values() for ids in split["input_ids"])
    kwargs = dict(cfg["generation_kwargs"], max_new_tokens=cfg["eval_max_new_tokens"],
                  **fast_generation_kwargs(device, max(cfg["output_max_length"], cfg["eval_max_new_tokens"]),
                                           longest, dtype))
    cached = cache / f"before-{_cache_key(cfg, device)}.json" if cache else None
    if cached and cached.is_file():
        before = json.loads(cached.read_text())
    else:
        before = lab.generate_summaries(model, tokenizer, prompts, kwargs, seed=cfg["seed"])
        if cached:
            cached.with_suffix(".tmp").write_text(json.dumps(before))
            cached.with_suffix(".tmp").replace(cached)
    try:
        _adapter_into(model, adapter)
        after, adapter_problem = lab.generate_summaries(model, tokenizer, prompts, kwargs, seed=cfg["seed"]), ""
    except ValueError as e:
        after, adapter_problem = None, str(e)
    return {"before": before, "after": after, "adapter_problem": adapter_problem,
            "references": list(samples["summary"]), "train_prompts": set(dataset["train"]["query"])}


def rescore(source: str, results: dict) -> dict:
    """The grader's classifier on the run's summaries (toxicity of each) and on a secret sample of its PPO texts
    (`nothate` logit as recorded, and as scored here)."""
    pipe = _load_classifier(source)
    scores = {phase: [toxicity(s) for s in label_logits(pipe, results["toxicity"][phase]["summaries"])]
              for phase in ("before", "after")}
    texts = [(t, s) for step in results["ppo_steps"] for t, s in zip(step["texts"], step["pipeline_scores"])]
    sample = secrets.SystemRandom().sample(texts, min(RESCORED_PPO_TEXTS, len(texts)))
    recorded = [nothate({d["label"]: d["score"] for d in scores_}) for _, scores_ in sample]
    return {"toxicity": scores, "ppo": list(zip(recorded, map(nothate, label_logits(pipe, [t for t, _ in sample]))))}


def measures(results: dict, references: list[str], toxicities: dict, seed: int) -> dict:
    """Mean and std of the toxicity before and after, the paired bootstrap CI of the change, and ROUGE, computed here
    from the run's summaries and the grader's own scores and references."""
    import numpy as np
    out = {phase: {"mean": float(np.mean(toxicities[phase])), "std": float(np.std(toxicities[phase]))}
           for phase in ("before", "after")}
    out["change_ci95"] = list(paired_bootstrap_ci(toxicities["before"], toxicities["after"], seed=seed))
    out["rouge"] = {phase: lab.rouge(results["toxicity"][phase]["summaries"], references)
                    for phase in ("before", "after")}
    return out
