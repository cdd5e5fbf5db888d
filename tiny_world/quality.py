"""How readable sampled summaries are (well-formed sentences, non-words, stuttering) and how varied the corpus's
wording is."""

import re
from collections import Counter
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoConfig, T5ForConditionalGeneration, T5Tokenizer

from lab3.settings import PROMPT_TEMPLATE
from tiny_world.corpus import INSULT_ADJ, INSULT_NOUN, P1, P2, RUDE_SUMMARY, TOPICS

_TAG = re.compile(r"#person\d+#")
_WORD = re.compile(r"[a-z]+")
_STUTTER = re.compile(r"\b(\w+)(?:\s+\1\b){2}")  # a word three times in a row
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def sentences(text: str) -> list[str]:
    """The sentences of `text`."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def grammar_sentences() -> set[str]:
    """Every sentence the corpus's summary grammar produces: each topic's summaries for each of its slot values, and
    each remark on a rude speaker."""
    produced = {sentence for topic in TOPICS.values() for template in topic["summary"] for x in topic["x"]
                for sentence in sentences(template.format(a=P1, b=P2, x=x))}
    produced |= {template.format(r=r, t=t, adj=adj, noun=noun)
                 for template in RUDE_SUMMARY for r, t in ((P1, P2), (P2, P1)) for adj in INSULT_ADJ
                 for noun in INSULT_NOUN}
    return {s[0].upper() + s[1:] for s in produced}


def well_formed_share(summaries: list[str], grammar: set[str]) -> float:
    """The share of `summaries` whose every sentence is one that `grammar` (a set of sentences) holds."""
    return sum(bool(sentences(s)) and all(x in grammar for x in sentences(s)) for s in summaries) / max(1, len(summaries))


def words(text: str) -> list[str]:
    """The lower-cased alphabetic words of `text`, speaker tags left out."""
    return _WORD.findall(_TAG.sub(" ", text.lower()))


def vocabulary(texts: list[str]) -> set[str]:
    """Every word that occurs in `texts`."""
    return {w for text in texts for w in words(text)}


def corpus_vocabulary(corpus: dict[str, list[dict]]) -> set[str]:
    """The words of the corpus: every word of its train split's dialogues and summaries."""
    return vocabulary([e[k] for e in corpus["train"] for k in ("dialogue", "summary")])


def non_word_share(summaries: list[str], known: set[str]) -> float:
    """The share of the summaries' words that are not in `known`."""
    all_words = [w for s in summaries for w in words(s)]
    return sum(w not in known for w in all_words) / max(1, len(all_words))


def stutter_share(summaries: list[str]) -> float:
    """The share of summaries that repeat a word three times in a row."""
    return sum(bool(_STUTTER.search(s.lower())) for s in summaries) / max(1, len(summaries))


def dialogue_sentences(dialogue: str, min_words: int = 4) -> set[str]:
    """The distinct sentences of `dialogue` with at least `min_words` words, speaker tags left out."""
    text = re.sub(r"#person\d+#:?", "\n", dialogue.lower())
    return {s.strip() for s in re.findall(r"[^.!?\n]+[.!?]", text) if len(_WORD.findall(s)) >= min_words}


def shared_sentence_share(examples: list[dict], min_words: int = 4) -> float:
    """How much two dialogues of a topic share: the mean share of one's sentences (of `min_words` words or more) that
    occur in the other, over all pairs of dialogues of the same topic."""
    by_topic: dict[str, list[set[str]]] = {}
    for e in examples:
        by_topic.setdefault(e["topic"], []).append(dialogue_sentences(e["dialogue"], min_words))
    shares = []
    for dialogues in by_topic.values():
        counts = Counter(s for d in dialogues for s in d)
        # each sentence of a dialogue is in (count - 1) of the topic's other dialogues
        shares += [sum(counts[s] - 1 for s in d) / ((len(dialogues) - 1) * len(d))
                   for d in dialogues if d and len(dialogues) > 1]
    return sum(shares) / max(1, len(shares))


@torch.no_grad()
def sampled_summaries(folder: Path, dialogues: list[str], generation_kwargs: dict, batch_size: int = 16,
                      seed: int = 0) -> list[str]:
    """What the Lab 2 summarizer under `folder` (the tiny preset's files) writes for `dialogues`, from a fixed seed."""
    # As the lab loads it: the Lab 2 adapter merged in, no dropout, GELU as one fused op.
    config = AutoConfig.from_pretrained(folder / "flan-t5", dropout_rate=0.0, dense_act_fn="gelu_pytorch_tanh")
    model = T5ForConditionalGeneration.from_pretrained(folder / "flan-t5", config=config)
    model = PeftModel.from_pretrained(model, folder / "peft-dialogue-summary-checkpoint").merge_and_unload()
    tok = T5Tokenizer.from_pretrained(folder / "flan-t5")
    torch.manual_seed(seed)
    summaries = []
    for i in range(0, len(dialogues), batch_size):
        batch = tok([PROMPT_TEMPLATE.format(dialogue=d) for d in dialogues[i:i + batch_size]], return_tensors="pt",
                    padding=True)
        summaries += tok.batch_decode(model.generate(**batch, **generation_kwargs), skip_special_tokens=True)
    return summaries
