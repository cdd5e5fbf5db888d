"""Offline stand-ins for the full preset: random-weight models of the real architectures, and a Hub cache."""

import hashlib
import shutil
from pathlib import Path

import torch
from transformers import RobertaConfig, RobertaForSequenceClassification, T5Config, T5ForConditionalGeneration

FLAN_T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12,
                    num_heads=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
                    pad_token_id=0, eos_token_id=1)


def save_flan_t5_base_architecture(path: Path, seed: int = 0) -> Path:
    """A random-weight FLAN-T5-base checkpoint with its own `lm_head.weight`, like the real one."""
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(T5Config(**FLAN_T5_BASE))
    # Built from a config, transformers ties the head to the shared embedding; the real checkpoint carries its own,
    # with other values, and from_pretrained keeps a head whose values differ from the embedding's separate.
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * model.config.d_model ** -0.5)
    model.save_pretrained(path)
    return path


def save_roberta_base_classifier(path: Path, seed: int = 0) -> Path:
    """A random-weight RoBERTa-base-sized classifier with the real reward model's labels."""
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                           id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1})
    RobertaForSequenceClassification(config).save_pretrained(path)
    return path


def add_to_hub_cache(hub_cache: Path, repo_id: str, folder: Path) -> Path:
    """Put the files of `folder` into a Hugging Face Hub cache as the main revision of model `repo_id`."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def add_to_datasets_cache(datasets_cache: Path, repo_id: str, folder: Path) -> Path:
    """Put the JSON-lines splits of `folder` into a `datasets` cache as the prepared data set `repo_id`, so that
    `load_dataset(repo_id)` finds it offline (HF_DATASETS_OFFLINE=1) as it finds a data set loaded once online."""
    import json

    from datasets import load_dataset

    splits = sorted(p.stem for p in folder.glob("*.jsonl"))
    load_dataset("json", data_files={s: str(folder / f"{s}.jsonl") for s in splits}, cache_dir=str(datasets_cache))
    prepared = next(p.parent for p in (datasets_cache / "json").glob("*/0.0.0/*/dataset_info.json"))
    name = repo_id.split("/")[-1]
    target = datasets_cache / repo_id.replace("/", "___") / "default" / "0.0.0" / prepared.name
    shutil.copytree(prepared, target)
    for split in splits:  # the arrow files are named for the builder
        (target / f"json-{split}.arrow").rename(target / f"{name}-{split}.arrow")
    info = json.loads((target / "dataset_info.json").read_text())
    (target / "dataset_info.json").write_text(json.dumps(dict(info, builder_name=name, dataset_name=name)))
    return target
