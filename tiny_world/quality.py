"""How readable sampled summaries are: the share of words that are not words of the corpus, and stuttering."""

import re

_TAG = re.compile(r"#person\d+#")
_WORD = re.compile(r"[a-z]+")
_STUTTER = re.compile(r"\b(\w+)(?:\s+\1\b){2}")  # a word three times in a row


def words(text: str) -> list[str]:
    """The lower-cased alphabetic words of `text`, speaker tags left out."""
    return _WORD.findall(_TAG.sub(" ", text.lower()))


def vocabulary(texts: list[str]) -> set[str]:
    """Every word that occurs in `texts`."""
    return {w for text in texts for w in words(text)}


def non_word_share(summaries: list[str], known: set[str]) -> float:
    """The share of the summaries' words that are not in `known`."""
    all_words = [w for s in summaries for w in words(s)]
    return sum(w not in known for w in all_words) / max(1, len(all_words))


def stutter_share(summaries: list[str]) -> float:
    """The share of summaries that repeat a word three times in a row."""
    return sum(bool(_STUTTER.search(s.lower())) for s in summaries) / max(1, len(summaries))
