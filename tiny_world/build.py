"""Build the tiny preset offline: corpus, T5 tokenizer and summarizer, Lab 2 style LoRA adapter, hate classifier.

Run `python -m tiny_world.build [OUT_DIR]`: fixed seeds and a fixed thread count give the same files on every machine
whose CPU runs the same kernels.
"""

import os

os.environ.setdefault("MKL_DYNAMIC", "FALSE")  # MKL would use fewer threads than asked on a machine with fewer cores

import argparse
import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from datasets import load_dataset
from peft import LoraConfig, get_peft_model
from rouge_score import rouge_scorer
from tokenizers import ByteLevelBPETokenizer
from tqdm.auto import tqdm
from transformers import (RobertaConfig, RobertaForSequenceClassification, RobertaTokenizer, T5Config,
                          T5ForConditionalGeneration, T5Tokenizer)

from lab3.checksums import MANIFEST, build_inputs_sha256, write_manifest
from lab3.settings import LAB2_LORA, PRESETS, PROMPT_TEMPLATE
from tiny_world.corpus import classifier_sentences, make_corpus
from tiny_world.quality import (corpus_vocabulary, grammar_sentences, non_word_share, sampled_summaries,
                                shared_sentence_share, stutter_share, well_formed_share)

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
BUILD_THREADS = 2
_PUNCTUATION = ".,?!:;\"'()"
SPLITS = {"train": 3000, "validation": 200, "test": 400}
DIALOGSUM_FIELDS = ("id", "dialogue", "summary", "topic")
REMARK_SHARE = 0.6  # how often a summary reports a rude remark: make_corpus's share, redrawn in every epoch


def write_corpus(out: Path) -> dict[str, list[dict]]:
    """DialogSum-schema JSON-lines files, one per split, under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = {}
    for i, (split, n) in enumerate(SPLITS.items()):
        corpus[split] = make_corpus(n, seed=SEED + i)
        with open(out / f"{split}.jsonl", "w") as f:
            for ex in corpus[split]:
                f.write(json.dumps({k: ex[k] for k in DIALOGSUM_FIELDS}) + "\n")
    return corpus


def train_t5_tokenizer(texts: list[str]) -> T5Tokenizer:
    """A T5 tokenizer (pad 0, eos 1, unk 2) whose pieces are the corpus's whole words and punctuation marks.

    With whole words as pieces, a summary sampled from the model is made of corpus words: the model cannot glue
    sub-word pieces into non-words (with a 2000-piece SentencePiece vocabulary, 8.6% of sampled words were such).
    Single characters stay in the vocabulary, scored far below any word, so that an unseen word is still encoded.
    """
    counts = Counter()
    for text in texts:
        for chunk in text.split():
            word = chunk.strip(_PUNCTUATION)
            start = chunk.index(word) if word else len(chunk)
            counts.update(chunk[:start])  # leading and trailing punctuation marks, one piece each
            counts.update(chunk[start + len(word):])
            if word:
                counts["\u2581" + word] += 1
    total = sum(counts.values())
    pieces = [(piece, math.log(n / total)) for piece, n in counts.most_common()]
    known = {p for p, _ in pieces}
    chars = sorted({c for text in texts for c in text if not c.isspace()})
    fallback = [(c, -30.0) for c in chars if c not in known] + [("\u2581" + c, -30.0) for c in chars
                                                               if "\u2581" + c not in known]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -30.0)] + pieces + fallback
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def train_roberta_tokenizer(texts: list[str]) -> RobertaTokenizer:
    """A byte-level BPE tokenizer with RoBERTa's special tokens."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=1500, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                            show_progress=False)
    model = json.loads(bpe.to_str())["model"]
    # model_max_length as the real reward model's tokenizer: 512 tokens fill the 514 positions (2 are RoBERTa's offset).
    return RobertaTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], model_max_length=512)


def _batches(rng: random.Random, items: list, size: int, key=None):
    """Shuffled mini-batches of `items`; with `key`, items of similar `key` length share a batch (less padding)."""
    items = items[:]
    rng.shuffle(items)
    if key is not None:
        chunks = [sorted(items[i:i + 8 * size], key=lambda e: len(key(e))) for i in range(0, len(items), 8 * size)]
        items = [e for c in chunks for e in c]
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    rng.shuffle(batches)
    yield from batches


def training_summary(rng: random.Random, example: dict, share: float) -> str:
    """The summary to learn for `example`: its rude remark, if it has one, reported a `share` of the time, drawn anew
    each time (a summarizer that learned each dialogue's draw by heart would no longer hesitate, and PPO could not
    find out that leaving the remark out pays)."""
    remark = example.get("remark")
    if remark is None:
        return example["summary"]
    plain = example["summary"].removesuffix(" " + remark)
    return f"{plain} {remark}" if rng.random() < share else plain


def train_seq2seq(model, tok, examples: list[dict], epochs: int, lr: float, desc: str, remark_share: float) -> None:
    """Supervised summarization on (prompt, summary) pairs, the summaries' rude remarks as `training_summary` says."""
    rng, coin = random.Random(SEED), random.Random(SEED + 1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    steps = epochs * ((len(examples) + 31) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    bar = tqdm(total=steps, desc=desc)
    for _ in range(epochs):
        for batch in _batches(rng, examples, 32, key=lambda e: e["dialogue"]):
            enc = tok([PROMPT_TEMPLATE.format(dialogue=e["dialogue"]) for e in batch], return_tensors="pt",
                      padding=True)
            labels = tok([training_summary(coin, e, remark_share) for e in batch], return_tensors="pt",
                         padding=True).input_ids
            labels[labels == tok.pad_token_id] = -100
            loss = model(**enc, labels=labels).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()


def sort_target_modules(config_file: Path) -> None:
    """Write the adapter config's target_modules sorted: PEFT keeps them as a set, in the order of the string hashes of
    the process that saved them, which differs from run to run."""
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps(dict(config, target_modules=sorted(config["target_modules"])), indent=2,
                                      sort_keys=True))


def build_policy(corpus: dict, out: Path) -> None:
    """The FLAN-T5 stand-in (base model + tokenizer) and a Lab 2 style LoRA adapter trained on top of it."""
    texts = [e[k] for e in corpus["train"] for k in ("dialogue", "summary")]
    tok = train_t5_tokenizer(texts + [PROMPT_TEMPLATE.format(dialogue="")] * 20)
    config = T5Config(vocab_size=len(tok), d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2,
                      num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=0)
    torch.manual_seed(SEED)
    model = T5ForConditionalGeneration(config)
    train = corpus["train"]
    # Why these epochs and this noise: tiny_world/README.md.
    train_seq2seq(model, tok, train, epochs=13, lr=3e-3, desc="base summarizer", remark_share=REMARK_SHARE)
    model.save_pretrained(out / "flan-t5")
    tok.save_pretrained(out / "flan-t5")
    peft_model = get_peft_model(model, LoraConfig(**LAB2_LORA))
    train_seq2seq(peft_model, tok, train, epochs=1, lr=3e-3, desc="Lab 2 LoRA adapter", remark_share=REMARK_SHARE)
    peft_model.save_pretrained(out / "peft-dialogue-summary-checkpoint")
    sort_target_modules(out / "peft-dialogue-summary-checkpoint" / "adapter_config.json")
    tok.save_pretrained(out / "peft-dialogue-summary-checkpoint")


def build_classifier(corpus: dict, out: Path) -> float:
    """A RoBERTa hate classifier with the real model's labels; returns its held-out accuracy."""
    rng = random.Random(SEED)
    data = classifier_sentences(rng, 5000, PROMPT_TEMPLATE)
    train, held_out = data[:4200], data[4200:]
    texts = [t for t, _ in train] + [e["dialogue"] for e in corpus["train"][:500]]
    tok = train_roberta_tokenizer(texts)
    config = RobertaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=128, max_position_embeddings=514, pad_token_id=tok.pad_token_id,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1})
    torch.manual_seed(SEED)
    model = RobertaForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for epoch in range(2):  # held-out accuracy 0.999 after 3 epochs, 2 are enough
        for batch in tqdm(list(_batches(rng, train, 32)), desc=f"hate classifier epoch {epoch + 1}"):
            enc = tok([t for t, _ in batch], return_tensors="pt", padding=True, truncation=True)
            # Soft targets: each rude remark makes a text more surely hateful, P(hate) = 1 - 0.95 * 0.3**n_rude,
            # so that the logits count rude remarks (a rude summary after a rude dialogue still lowers the reward).
            p_hate = 1 - 0.95 * 0.3 ** torch.tensor([float(n) for _, n in batch])
            logits = model(**enc).logits
            loss = torch.nn.functional.cross_entropy(logits, torch.stack([1 - p_hate, p_hate], dim=1))
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    with torch.no_grad():
        enc = tok([t for t, _ in held_out], return_tensors="pt", padding=True, truncation=True)
        pred = model(**enc).logits.argmax(-1)
    accuracy = (pred == torch.tensor([int(n > 0) for _, n in held_out])).float().mean().item()
    model.save_pretrained(out / "roberta-hate")
    tok.save_pretrained(out / "roberta-hate")
    return accuracy


def measure_summarizer(out: Path, corpus: dict[str, list[dict]], split: str = "validation") -> dict[str, float]:
    """What the Lab 2 summarizer under `out` writes with the lecture's sampling: ROUGE-L, well-formed summaries,
    non-words, stutter."""
    tiny = PRESETS["tiny"]
    examples = corpus[split]
    summaries = sampled_summaries(out, [e["dialogue"] for e in examples],
                                  dict(tiny["generation_kwargs"], max_new_tokens=tiny["eval_max_new_tokens"]))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge_l = [scorer.score(e["summary"], s)["rougeL"].fmeasure for e, s in zip(examples, summaries)]
    known = corpus_vocabulary(corpus)
    return {"rougeL": float(np.mean(rouge_l)), "well_formed_share": well_formed_share(summaries, grammar_sentences()),
            "non_word_share": non_word_share(summaries, known), "stutter_share": stutter_share(summaries)}


def read_corpus(folder: Path) -> dict[str, list[dict]]:
    """The corpus `write_corpus` wrote, split by split."""
    return {split: [json.loads(line) for line in open(folder / f"{split}.jsonl")] for split in SPLITS}


def build(out: Path, classifier_only: bool = False) -> None:
    """Build every file of the tiny preset under `out` (or only its corpus and hate classifier, the quick part)."""
    start = time.time()
    # Two threads on every machine: a sum split over another number of threads adds in another order, and the files
    # would differ in their last bits from machine to machine.
    torch.set_num_threads(BUILD_THREADS)
    corpus = write_corpus(out / "dialogsum")
    load_dataset(str(out / "dialogsum"))  # fail now, not in the lab, if the files are not readable
    if classifier_only:
        print(f"hate classifier held-out accuracy: {build_classifier(corpus, out):.3f}")
        return
    build_policy(corpus, out)
    accuracy = build_classifier(corpus, out)
    print(f"hate classifier held-out accuracy: {accuracy:.3f}")
    quality = measure_summarizer(out, corpus)
    quality["shared_sentence_share"] = shared_sentence_share(corpus["train"])
    print(f"corpus: two dialogues of a topic share {quality['shared_sentence_share']:.1%} of their sentences")
    print(f"Lab 2 summarizer on the validation split, the lecture's sampling: ROUGE-L {quality['rougeL']:.3f}, "
          f"{quality['well_formed_share']:.1%} of summaries well-formed, {quality['non_word_share']:.2%} of words not "
          f"in the corpus, {quality['stutter_share']:.1%} of summaries repeat a word three times in a row")
    if accuracy < 0.95:
        raise SystemExit(f"the hate classifier reached only {accuracy:.3f} held-out accuracy (needs 0.95)")
    # Other CPU kernels (AVX-512 instead of AVX2, say) sum in another order: a rebuild matches only on the same kind.
    (out / "BUILT").write_text(json.dumps({"seed": SEED, "classifier_accuracy": accuracy, **quality,
                                           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                           "inputs_sha256": build_inputs_sha256(ROOT)}) + "\n")
    write_manifest(out)
    print(f"tiny preset built in {time.time() - start:.0f} s under {out}; the SHA-256 of each file is in "
          f"{out / MANIFEST}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tiny_world.build", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("checkpoints/tiny"))
    parser.add_argument("--classifier-only", action="store_true", help="build only the corpus and the classifier")
    args = parser.parse_args()
    build(args.out, args.classifier_only)
