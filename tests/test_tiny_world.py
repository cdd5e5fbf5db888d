"""The tiny preset reads like DialogSum: its Lab 2 summarizer writes the corpus's sentences, without stuttering."""

import dataclasses
import json
import platform
import shutil
from pathlib import Path

import pytest

from lab3 import sources
from lab3.checksums import MANIFEST, build_inputs_sha256, folder_sha256s, manifest_mismatches
from lab3.errors import LabError
from lab3.settings import SOURCE_KEYS
from tests.conftest import ROOT, classifier_build, shipped_build_kernels, this_cpus_kernels
from tiny_world.build import measure_summarizer, read_corpus
from tiny_world.quality import (
    corpus_vocabulary,
    grammar_sentences,
    non_word_share,
    shared_sentence_share,
    stutter_share,
    well_formed_share,
)

TINY = ROOT / "checkpoints" / "tiny"


@pytest.fixture(scope="module")
def corpus(tiny) -> dict:
    return read_corpus(TINY / "dialogsum")


def test_sampled_summaries_are_sentences_and_summarize(corpus):
    """The built summarizer, sampled as the lecture samples (top_k 0, top_p 1) on the 400 test dialogues: at least 60%
    of its summaries are well-formed, every sentence one the corpus's grammar makes."""
    quality = measure_summarizer(TINY, corpus, split="test")
    print(quality)
    assert quality["well_formed_share"] >= 0.6
    assert quality["non_word_share"] < 0.01
    assert quality["rougeL"] >= 0.75
    # Under 2% is the goal after PPO; 400 summaries carry +-0.7% of sampling noise at that share.
    assert quality["stutter_share"] < 0.03
    built = json.loads((TINY / "BUILT").read_text())  # what the build printed for the validation split
    assert built["well_formed_share"] >= 0.6 and built["non_word_share"] < 0.01


def test_the_well_formed_measure_knows_the_grammar_s_sentences(corpus):
    grammar = grammar_sentences()
    assert well_formed_share([e["summary"] for split in corpus.values() for e in split], grammar) == 1.0
    whole = corpus["test"][0]["summary"]
    dropped = " ".join(w for i, w in enumerate(whole.split()) if i != 2)  # a word left out
    assert well_formed_share([whole, dropped, whole.rstrip("."), ""], grammar) == 0.25


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


def test_the_shipped_files_are_those_of_the_manifest(tiny):
    assert set(json.loads((TINY / MANIFEST).read_text())) == set(folder_sha256s(TINY))  # every file is listed
    assert manifest_mismatches(TINY) == []
    sources.check_tiny_files(tiny)  # what the lab checks at start-up


def test_a_damaged_tiny_file_stops_the_lab_in_one_sentence(tiny, tmp_path):
    copy = shutil.copytree(TINY, tmp_path / "tiny")
    cfg = dataclasses.replace(tiny, **{k: str(copy / Path(getattr(tiny, k)).relative_to(TINY)) for k in SOURCE_KEYS})
    sources.check_tiny_files(cfg, copy)
    weights = copy / "roberta-hate" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(LabError) as error:
        sources.check_tiny_files(cfg, copy)
    assert str(error.value) == (
        f"{weights} is not the tiny preset's file (it is missing, or its SHA-256 differs from {copy / MANIFEST}): "
        "restore the shipped files with `git checkout -- checkpoints/tiny`, or rebuild them with "
        "`python -m tiny_world.build`.")
    (copy / MANIFEST).unlink()
    with pytest.raises(LabError, match=f"The tiny preset has no {MANIFEST} in {copy}"):
        sources.check_tiny_files(cfg, copy)


def test_the_builder_makes_the_shipped_files_at_any_thread_count(tiny, tmp_path):
    """The quick part of the build (corpus and hate classifier), run with 1 and with 2 threads, gives the shipped bytes
    (the summarizer's part takes minutes: `python -m tiny_world.build OUT` and compare OUT/MANIFEST.json)."""
    if this_cpus_kernels() != shipped_build_kernels():
        pytest.skip(f"the shipped preset was built with {shipped_build_kernels()} kernels, this CPU runs "
                    f"{this_cpus_kernels()}: its sums round otherwise")
    shipped = json.loads((TINY / MANIFEST).read_text())
    builds = [classifier_build(threads) for threads in ("1", "2")]
    for build in builds:
        assert {"dialogsum/train.jsonl", "roberta-hate/model.safetensors"} <= set(build)
    assert builds[0] == builds[1]  # the thread count changes no byte
    corpus = {name: sha for name, sha in builds[0].items() if name.startswith("dialogsum/")}
    assert corpus == {name: shipped[name] for name in corpus}  # plain Python: the same on every CPU
    if builds[0] != {name: shipped[name] for name in builds[0]}:
        # Seen on an AVX512 CPU with AMX, same packages: its float sums round otherwise than the build machine's.
        pytest.skip(f"this CPU ({platform.processor() or 'unknown'}) trains a classifier whose bytes differ from the "
                    "shipped one's, though its kernels are the same kind: compare on the build machine's kind")


def test_the_shipped_build_is_of_this_checkout_s_prompt_lora_shape_and_builder(tiny):
    """A changed prompt, LoRA shape or builder leaves the shipped files stale: set-up then rebuilds them."""
    assert json.loads((TINY / "BUILT").read_text())["inputs_sha256"] == build_inputs_sha256(ROOT)
