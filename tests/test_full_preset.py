"""The full preset's real loading path, offline: stand-ins under the real Hub ids in a Hugging Face cache."""

import json
import math
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from trl import AutoModelForSeq2SeqLMWithValueHead

import grader
import rlhf_helpers as lab
from conftest import ROOT, printed, run_lab
from tiny_world.standins import add_to_datasets_cache, add_to_hub_cache, save_flan_t5_base_architecture
import speedups
import run_settings
from lab_setup import LabSetupError
from lab_settings import PROMPT_TEMPLATE

FULL = run_settings.get_preset("full")


@pytest.fixture(scope="module")
def hub_home(tiny, tmp_path_factory):
    """An HF_HOME whose caches hold the tiny models and corpus under the full preset's repo ids."""
    home = tmp_path_factory.mktemp("hf_home")
    add_to_hub_cache(home / "hub", FULL["model_name"], ROOT / "checkpoints" / "tiny" / "flan-t5")
    add_to_hub_cache(home / "hub", FULL["toxicity_model_name"], ROOT / "checkpoints" / "tiny" / "roberta-hate")
    add_to_datasets_cache(home / "datasets", FULL["dataset_name"], ROOT / "checkpoints" / "tiny" / "dialogsum")
    return home


def _offline(monkeypatch, hub_home) -> dict:
    """The environment of a machine whose Hugging Face caches are `hub_home`'s, with the Hub out of reach."""
    for name, value in {"HF_HOME": str(hub_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LAB3_PRESET", raising=False)
    return dict(os.environ)


def _grade(notebook, env: dict, results=None) -> dict:
    """The grader's verdicts on `notebook`, graded in a process of its own with the environment `env`."""
    command = [sys.executable, "-m", "grader", str(notebook)] + (["--results", str(results)] if results else [])
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    return {line.split(":")[0].split()[-1]: line for line in out.splitlines()
            if line.startswith(("PASS ", "FAIL ", "NOT RUN "))}


@pytest.fixture(scope="module")
def full_run(hub_home, tmp_path_factory):
    """A run of the full preset exactly at its settings, on the stand-ins (a correct run, as a course's would be)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = _offline(monkeypatch, hub_home)
        start = time.time()
        notebook = run_lab(tmp_path_factory.mktemp("full"), preset_name="full")
        print(f"full preset, every setting the preset's, on the stand-ins: {time.time() - start:.0f} s")
    return notebook, env


def test_full_preset_at_the_lectures_settings_runs_offline_and_passes_the_grader(full_run):
    """Every lecture hyperparameter as it is (batch 16, mini-batch 4, 10 PPO steps, summaries of 100-400 tokens, its
    sampling and dtype), with 200 evaluation summaries; the models and data are the stand-ins under the real ids."""
    notebook, env = full_run
    text = printed(notebook)
    assert "No Lab 2 adapter in" in text and "the 'before' model is plain google/flan-t5-base" in text
    results = json.loads((notebook.parent / "results.json").read_text())
    assert results["preset_name"] == "full"
    assert results["preset"] == json.loads(json.dumps(dict(FULL, dtype=speedups.resolve_dtype(FULL["dtype"], "cpu"))))
    steps = results["ppo_steps"]
    assert len(steps) == 10 and all(len(s["rewards"]) == FULL["batch_size"] for s in steps)
    assert abs(steps[0]["objective/kl"]) < 1e-3 and all(math.isfinite(s["objective/kl"]) for s in steps)
    assert len(results["toxicity"]["after"]["per_sample"]) == len(results["comparison"]) == 200
    verdicts = _grade(notebook, env)
    assert all(line.startswith("PASS") for line in verdicts.values()) and set(verdicts) == set(grader.CHECKS), verdicts
    assert "significant" in verdicts["toxicity"]  # said in words: a drop, a rise, or no significant change


def test_full_preset_grading_fails_a_rise_in_toxicity_and_the_lectures_reward_mistake(full_run, hub_home, tmp_path,
                                                                                     monkeypatch):
    notebook, env = full_run
    _offline(monkeypatch, hub_home)
    results = json.loads((notebook.parent / "results.json").read_text())
    tox = results["toxicity"]
    tox["after"]["mean"] = tox["before"]["mean"] + 0.2
    tox["change_ci95"] = [0.15, 0.25]
    (tmp_path / "raised.json").write_text(json.dumps(results))
    verdicts = _grade(notebook, env, tmp_path / "raised.json")
    assert verdicts["toxicity"].startswith("FAIL toxicity:") and \
        "a significant rise: PPO made the summaries more toxic (a passing run shows no significant rise)" in \
        verdicts["toxicity"]

    wrong = run_lab(tmp_path / "by-index", preset_name="full", reward_mode="by_index",
                    overrides={"max_ppo_steps": 2, "num_eval_samples": 16})
    verdicts = _grade(wrong, env)
    assert verdicts["reward"].startswith("FAIL reward:") and "were not the 'nothate' score" in verdicts["reward"]


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
            "try:\n    run_settings.check_sources(run_settings.get_preset('full'))\n"
            "except LabSetupError as e:\n    print(e._render_traceback_()[0])\n")
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


def test_the_courses_bin_adapter_loads_as_its_safetensors_twin_and_a_pickled_object_is_refused(tiny, tokenizer,
                                                                                                 tmp_path, capsys):
    """The course hands out its Lab 2 checkpoint as adapter_config.json + adapter_model.bin: copied as it is, it loads
    (torch.load with weights_only=True) and gives the logits of the same adapter saved as safetensors."""
    course = shutil.copytree(tiny["adapter_dir"], tmp_path / "peft-dialogue-summary-checkpoint")
    weights = load_file(course / "adapter_model.safetensors")
    (course / "adapter_model.safetensors").unlink()
    torch.save(weights, course / "adapter_model.bin")
    from_bin = lab.load_summarizer(tiny["model_name"], str(course))
    assert f"Lab 2 adapter: {course / 'adapter_model.bin'} (read as tensors only (torch weights_only=True))" in \
        capsys.readouterr().out
    twin = lab.load_summarizer(tiny["model_name"], tiny["adapter_dir"])
    inputs = tokenizer([PROMPT_TEMPLATE.format(dialogue="#Person1#: Hello.")], return_tensors="pt")
    decoder_input_ids = torch.zeros((1, 4), dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(from_bin(**inputs, decoder_input_ids=decoder_input_ids).logits,
                           twin(**inputs, decoder_input_ids=decoder_input_ids).logits)

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Payload()}, course / "adapter_model.bin")
    with pytest.raises(LabSetupError) as error:
        lab.load_summarizer(tiny["model_name"], str(course))
    assert str(error.value) == (f"{course / 'adapter_model.bin'} holds more than tensors, so it was not loaded: use "
                                "the course's original adapter file, or its adapter_model.safetensors.")
    assert "pwned" not in capsys.readouterr().out
