"""The tiny preset reads like DialogSum: its Lab 2 summarizer writes corpus words that summarize, without stuttering."""

import json

import pytest

from conftest import ROOT
from tiny_world.build import measure_summarizer, read_corpus
from tiny_world.quality import corpus_vocabulary, non_word_share, shared_sentence_share, stutter_share

TINY = ROOT / "checkpoints" / "tiny"


@pytest.fixture(scope="module")
def corpus(tiny) -> dict:
    return read_corpus(TINY / "dialogsum")


def test_sampled_summaries_are_readable_and_summarize(corpus):
    """The goal, measured again on the 400 test dialogues with the lecture's sampling (top_k 0, top_p 1)."""
    quality = measure_summarizer(TINY, corpus, split="test")
    print(quality)
    assert quality["non_word_share"] < 0.01
    assert quality["rougeL"] >= 0.55
    # The goal is under 2%; the build reaches 1.0% on the validation split and 1.25% on the test split, but 400
    # summaries carry +-0.6% of sampling noise, so the test guards against a regression rather than flip on a machine
    # whose arithmetic differs in the last bits.
    assert quality["stutter_share"] < 0.04
    built = json.loads((TINY / "BUILT").read_text())  # what the build printed for the validation split
    assert built["non_word_share"] < 0.01 and built["rougeL"] >= 0.55


def test_corpus_has_fifty_everyday_topics_in_varied_wording(corpus):
    assert len({e["topic"] for e in corpus["train"]}) >= 52
    # two dialogues of a topic rarely share a sentence (of 4 words or more): 25% before the wording was varied
    assert shared_sentence_share(corpus["train"]) < 0.10
    assert all(200 <= len(e["dialogue"]) <= 1000 for split in corpus.values() for e in split)


def test_the_quality_measures_catch_what_they_measure(corpus):
    known = corpus_vocabulary(corpus)
    assert non_word_share(["#Person1# calls #Person2# insuls and andlls."], known) == 0.5  # 2 of 4 words
    assert non_word_share([corpus["test"][0]["summary"]], known) == 0.0
    assert stutter_share(["mor mor mor", "#Person1# asks #Person2# about the the train."]) == 0.5
    same = "#Person1#: Which platform is it? #Person2#: Platform four, on the left."
    pairs = [{"topic": "t", "dialogue": same}, {"topic": "t", "dialogue": same.replace("four", "nine")},
             {"topic": "u", "dialogue": same}]
    assert shared_sentence_share(pairs) == 0.5  # in topic t, each dialogue shares 1 of its 2 sentences with the other
