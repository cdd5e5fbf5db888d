"""The full preset's real loading path, offline: stand-ins under the real Hub ids in a Hugging Face cache."""

import dataclasses
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer
from trl import AutoModelForSeq2SeqLMWithValueHead

import rlhf_helpers as lab
from grading.checks import CHECKS
from lab3 import settings, speedups, summarizer
from lab3.errors import LabError
from lab3.settings import PROMPT_TEMPLATE
from tests.conftest import FULL_SHORT, ROOT, offline_env, printed, results
from tiny_world.standins import FLAN_T5_BASE

FULL = settings.preset("full")


def _grade(notebook, env: dict) -> dict:
    """The grader's verdicts on `notebook` (a run with FULL_SHORT), graded with the environment `env`."""
    command = [sys.executable, "-m", "grading", str(notebook), "--preset", "full", "--assigned", json.dumps(FULL_SHORT)]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    return {line.split(":")[0].split()[-1]: line for line in out.splitlines()
            if line.startswith(("PASS ", "FAIL ", "NOT RUN "))}


def test_full_preset_at_the_lectures_settings_runs_offline_and_passes_the_grader(full_run, hub_home):
    """Every lecture hyperparameter as it is (batch 16, mini-batch 4, summaries of 100-400 tokens, its sampling and
    dtype) but the number of PPO steps and evaluation summaries; the models and data are the stand-ins under the real
    ids."""
    text = printed(full_run / "lab.ipynb")
    assert "No Lab 2 adapter in" in text and "the 'before' model is plain google/flan-t5-base" in text
    run = results(full_run)
    assert run["preset_name"] == "full"
    assert run["preset"] == settings.record(dataclasses.replace(
        FULL, **FULL_SHORT, dtype=speedups.resolve_dtype(FULL.dtype, "cpu")))
    assert run["preset"]["adapter_dir"] == "checkpoints/peft-dialogue-summary-checkpoint"  # the same on every machine
    steps = run["ppo_steps"]
    assert len(steps) == FULL_SHORT["max_ppo_steps"] and all(len(s["rewards"]) == FULL.batch_size for s in steps)
    assert abs(steps[0]["objective/kl"]) < 1e-3 and all(math.isfinite(s["objective/kl"]) for s in steps)
    assert len(run["toxicity"]["after"]["per_sample"]) == len(run["comparison"]) == FULL_SHORT["num_eval_samples"]
    verdicts = _grade(full_run / "lab.ipynb", offline_env(hub_home))
    assert all(line.startswith("PASS") for line in verdicts.values()) and set(verdicts) == set(CHECKS), verdicts
    assert "significant" in verdicts["toxicity"]  # said in words: a drop, a rise, or no significant change


def test_full_preset_asks_load_dataset_for_dialogsum(tiny, monkeypatch):
    calls = []
    real_tokenizer = AutoTokenizer.from_pretrained(tiny.model_name)

    def fake_load_dataset(name, split):
        calls.append((name, split))
        from datasets import load_dataset
        return load_dataset(tiny.dataset_name, split=split)

    monkeypatch.setattr(summarizer, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(summarizer.AutoTokenizer, "from_pretrained", lambda name: real_tokenizer)
    lab.build_dataset(FULL.model_name, FULL.dataset_name, FULL.input_min_text_length,
                      FULL.input_max_text_length)
    assert calls == [("knkarthick/dialogsum", "train")]


@pytest.mark.parametrize("hub,expected", [
    ("offline", "google/flan-t5-base, facebook/roberta-hate-speech-dynabench-r4-target cannot be loaded: "
                "HF_HUB_OFFLINE is set and they are not in the Hugging Face cache; run the tiny preset (`make lab`), "
                "or fill the cache on a machine that reaches the Hub."),
    ("unreachable", "google/flan-t5-base, facebook/roberta-hate-speech-dynabench-r4-target, knkarthick/dialogsum "
                    "cannot be loaded: the Hugging Face Hub (http://127.0.0.1:9) is unreachable"),
])
def test_full_preset_without_its_models_stops_at_once_in_one_sentence(tmp_path, hub, expected):
    """An empty Hugging Face cache, and the Hub either switched off or out of reach (an endpoint nobody answers)."""
    code = ("from lab3 import settings, sources\nfrom lab3.errors import LabError\n"
            "try:\n    sources.check(settings.resolve('full', {}, 'cpu')[1])\n"
            "except LabError as e:\n    print(e._render_traceback_()[0])\n")
    hub_settings = {"offline": {"HF_HUB_OFFLINE": "1"},
                    "unreachable": {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}}[hub]
    env = {"HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", **hub_settings}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60).stdout.strip().splitlines()
    out = [line for line in out if "has no fast bfloat16" not in line]  # a note on this CPU, not the error
    assert len(out) == 1 and out[0].startswith("LabError: " + expected)


def test_lecture_parameter_counts_on_the_flan_t5_base_architecture():
    with torch.device("meta"):  # the architecture's shapes, without its 1 GB of weights
        model = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model("t5", **FLAN_T5_BASE))
        # Built from a config, the head is tied to the embedding; the real checkpoint carries a head of its own.
        model.lm_head.weight = torch.nn.Parameter(torch.empty_like(model.shared.weight))
        peft_model = lab.add_fresh_lora(model)
        assert lab.describe_trainable_parameters(peft_model) == (
            "\ntrainable model parameters: 3538944\nall model parameters: 251116800\n"
            "percentage of trainable model parameters: 1.41%")
        ppo_model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(peft_model, is_trainable=True)
    assert lab.describe_trainable_parameters(ppo_model) == (
        "\ntrainable model parameters: 3539713\nall model parameters: 251117569\n"
        "percentage of trainable model parameters: 1.41%")


def test_the_courses_bin_adapter_loads_as_its_safetensors_twin_and_a_pickled_object_is_refused(tiny, tokenizer,
                                                                                                 tmp_path, capsys):
    """The course hands out its Lab 2 checkpoint as adapter_config.json + adapter_model.bin: copied as it is, it loads
    (torch.load with weights_only=True) and gives the logits of the same adapter saved as safetensors."""
    course = shutil.copytree(tiny.adapter_dir, tmp_path / "peft-dialogue-summary-checkpoint")
    weights = load_file(course / "adapter_model.safetensors")
    (course / "adapter_model.safetensors").unlink()
    torch.save(weights, course / "adapter_model.bin")
    from_bin = lab.load_summarizer(tiny.model_name, str(course))
    assert f"Lab 2 adapter: {course / 'adapter_model.bin'} (read as tensors only (torch weights_only=True))" in \
        capsys.readouterr().out
    twin = lab.load_summarizer(tiny.model_name, tiny.adapter_dir)
    inputs = tokenizer([PROMPT_TEMPLATE.format(dialogue="#Person1#: Hello.")], return_tensors="pt")
    decoder_input_ids = torch.zeros((1, 4), dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(from_bin(**inputs, decoder_input_ids=decoder_input_ids).logits,
                           twin(**inputs, decoder_input_ids=decoder_input_ids).logits)

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Payload()}, course / "adapter_model.bin")
    with pytest.raises(LabError) as error:
        lab.load_summarizer(tiny.model_name, str(course))
    assert str(error.value) == (f"{course / 'adapter_model.bin'} holds more than tensors, so it was not loaded: use "
                                "the course's original adapter file, or its adapter_model.safetensors.")
    assert "pwned" not in capsys.readouterr().out
