"""The full preset's real loading path, offline: stand-ins under the real Hub ids in a Hugging Face cache."""

import json
import math
import subprocess
import sys
import time

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from trl import AutoModelForSeq2SeqLMWithValueHead

import rlhf_helpers as lab
from conftest import ROOT, run_lab
from tiny_world.standins import add_to_hub_cache, save_flan_t5_base_architecture

FULL = lab.get_preset("full")


@pytest.fixture(scope="module")
def hub_home(tiny, tmp_path_factory):
    """An HF_HOME whose cache holds the tiny models under the full preset's repo ids."""
    home = tmp_path_factory.mktemp("hf_home")
    add_to_hub_cache(home / "hub", FULL["model_name"], ROOT / "checkpoints" / "tiny" / "flan-t5")
    add_to_hub_cache(home / "hub", FULL["toxicity_model_name"], ROOT / "checkpoints" / "tiny" / "roberta-hate")
    return home


def test_full_preset_at_the_lectures_sizes_runs_offline_from_the_hub_cache(hub_home, tmp_path, monkeypatch):
    """Every lecture hyperparameter as it is (batch 16, mini-batch 4, summaries of 100-400 tokens, its sampling and
    dtype); only the number of PPO steps, the evaluation's size and the data set folder differ."""
    monkeypatch.setenv("HF_HOME", str(hub_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LAB3_PRESET", raising=False)
    # The data set is a local folder of DialogSum's schema (datasets cannot load a Hub id offline).
    changes = {"dataset_name": str(ROOT / "checkpoints" / "tiny" / "dialogsum"), "max_ppo_steps": 2,
               "num_eval_samples": 16}
    start = time.time()
    notebook = run_lab(tmp_path, preset_name="full", overrides=changes)
    print(f"full preset at the lecture's sizes, 2 PPO steps: {time.time() - start:.0f} s")
    nb = json.loads(notebook.read_text())
    text = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                   for c in nb["cells"] for o in c.get("outputs", []))
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert "No Lab 2 adapter in" in text and "the 'before' model is plain google/flan-t5-base" in text
    results = json.loads((tmp_path / "results.json").read_text())
    expected = dict(FULL, **changes, dtype=lab.resolve_dtype(FULL["dtype"], "cpu"))
    assert results["preset_name"] == "full" and results["preset"] == json.loads(json.dumps(expected))
    steps = results["ppo_steps"]
    assert len(steps) == 2 and all(len(s["rewards"]) == FULL["batch_size"] for s in steps)
    assert abs(steps[0]["objective/kl"]) < 1 and all(math.isfinite(s["objective/kl"]) for s in steps)
    assert len(results["comparison"]) == 16 and len(results["toxicity"]["after"]["per_sample"]) == 16


def test_full_preset_asks_load_dataset_for_dialogsum(tiny, monkeypatch):
    calls = []
    real_tokenizer = AutoTokenizer.from_pretrained(tiny["model_name"])

    def fake_load_dataset(name, split):
        calls.append((name, split))
        from datasets import load_dataset
        return load_dataset(tiny["dataset_name"], split=split)

    monkeypatch.setattr(lab, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(lab.AutoTokenizer, "from_pretrained", lambda name: real_tokenizer)
    lab.build_dataset(FULL["model_name"], FULL["dataset_name"], FULL["input_min_text_length"],
                      FULL["input_max_text_length"])
    assert calls == [("knkarthick/dialogsum", "train")]


def _notebook_error(notebook) -> list[str]:
    """The traceback lines of the executed notebook's error output."""
    nb = json.loads(notebook.read_text())
    return [line for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
            for line in o["traceback"]]


@pytest.mark.parametrize("preset,expected", [
    ("full", "LabSetupError: google/flan-t5-base, facebook/roberta-hate-speech-dynabench-r4-target cannot be loaded: "
             "HF_HUB_OFFLINE is set and they are not in the Hugging Face cache; run the tiny preset (`make lab`), or "
             "fill the cache on a machine that reaches the Hub."),
    ("huge", "LabSetupError: Unknown preset 'huge': choose one of full, tiny."),
])
def test_notebook_stops_at_once_with_one_sentence(tmp_path, monkeypatch, preset, expected):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LAB3_PRESET", preset)
    start = time.time()
    with pytest.raises(Exception):
        run_lab(tmp_path)
    print(f"LAB3_PRESET={preset} stopped after {time.time() - start:.1f} s")
    assert _notebook_error(tmp_path / "lab.ipynb") == [expected]


def test_hub_unreachable_is_one_sentence_without_traceback(tmp_path):
    """With networking off (an endpoint nobody answers), the check says so in one line, within seconds."""
    code = ("import rlhf_helpers as lab\n"
            "try:\n    lab.check_sources(lab.get_preset('full'))\n"
            "except lab.LabSetupError as e:\n    print(e._render_traceback_()[0])\n")
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60).stdout.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("LabSetupError: google/flan-t5-base, facebook/roberta-hate-speech-dynabench-r4-target, "
                             "knkarthick/dialogsum cannot be loaded: the Hugging Face Hub (http://127.0.0.1:9) is "
                             "unreachable")


def test_lecture_parameter_counts_on_the_flan_t5_base_architecture(tmp_path):
    save_flan_t5_base_architecture(tmp_path / "flan-t5-base")
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "flan-t5-base")
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()  # its own head, as in the checkpoint
    peft_model = lab.add_fresh_lora(model)
    assert lab.print_number_of_trainable_model_parameters(peft_model) == (
        "\ntrainable model parameters: 3538944\nall model parameters: 251116800\n"
        "percentage of trainable model parameters: 1.41%")
    ppo_model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(peft_model, is_trainable=True)
    assert lab.print_number_of_trainable_model_parameters(ppo_model) == (
        "\ntrainable model parameters: 3539713\nall model parameters: 251117569\n"
        "percentage of trainable model parameters: 1.41%")


def test_legacy_pickled_adapter_is_loaded_weights_only(tiny, tmp_path):
    """A legacy adapter_model.bin loads through torch.load(weights_only=True); a pickle with code is refused."""
    import shutil

    import torch
    from safetensors.torch import load_file

    legacy = tmp_path / "legacy"
    shutil.copytree(tiny["adapter_dir"], legacy)
    weights = load_file(legacy / "adapter_model.safetensors")
    (legacy / "adapter_model.safetensors").unlink()
    torch.save(weights, legacy / "adapter_model.bin")
    merged = lab.load_summarizer(tiny["model_name"], str(legacy))
    reference = lab.load_summarizer(tiny["model_name"], tiny["adapter_dir"])
    assert all(torch.equal(a, b) for a, b in zip(merged.state_dict().values(), reference.state_dict().values()))

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Payload()}, legacy / "adapter_model.bin")
    with pytest.raises(Exception, match="Weights only load failed|weights_only"):
        lab.load_summarizer(tiny["model_name"], str(legacy))
