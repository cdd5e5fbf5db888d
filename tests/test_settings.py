"""Every setting's value is checked where it is defined, before anything loads, and a bad one is one sentence naming
it."""

import dataclasses

import pytest

from lab3 import settings
from lab3.errors import LabError
from lab3.settings import PRESETS, Settings

# One bad value per setting, and what the lab says of it.
BAD = {
    "input_min_text_length": (-1, "input_min_text_length is -1; it must be a whole number, at least 0."),
    "input_max_text_length": ("1000", "input_max_text_length is '1000', a text; it must be a whole number, at "
                                      "least 1."),
    "learning_rate": ("3e-4", "learning_rate is '3e-4', a text; it must be a number, greater than 0 and at most 1."),
    "ppo_epochs": (0, "ppo_epochs is 0; it must be a whole number, at least 1."),
    "mini_batch_size": (0, "mini_batch_size is 0; it must be a whole number, at least 1."),
    "batch_size": (0, "batch_size is 0; it must be a whole number, at least 1."),
    "max_ppo_steps": (2.5, "max_ppo_steps is 2.5, a number; it must be a whole number, at least 1."),
    "output_min_length": (0, "output_min_length is 0; it must be a whole number, at least 1."),
    "output_max_length": (None, "output_max_length is None, nothing; it must be a whole number, at least 2."),
    "generation_kwargs": ("top_k=0", "generation_kwargs is 'top_k=0', a text; it must be a dictionary of keyword "
                                     "arguments."),
    "reward_kwargs": ([], "reward_kwargs is [], a list; it must be a dictionary of keyword arguments."),
    "num_eval_samples": (-5, "num_eval_samples is -5; it must be a whole number, at least 1."),
    "eval_max_new_tokens": (0, "eval_max_new_tokens is 0; it must be a whole number, at least 1."),
    "init_kl_coef": (float("nan"), "init_kl_coef is nan; it must be a number, at least 0."),
    "kl_control": (False, "kl_control is False, a yes/no value; it must be one of 'adaptive', 'fixed'."),
    "seed": (True, "seed is True, a yes/no value; it must be a whole number, at least 0 and at most 4294967295."),
    "dtype": ("float16", "dtype is 'float16'; it must be one of 'float32', 'bfloat16'."),
    "model_name": (5, "model_name is 5, a whole number; it must be a text."),
    "adapter_dir": (None, "adapter_dir is None, nothing; it must be a text."),
    "missing_adapter": ("ignore", "missing_adapter is 'ignore'; it must be one of 'error', 'warn'."),
    "toxicity_model_name": (["a"], "toxicity_model_name is ['a'], a list; it must be a text."),
    "dataset_name": (0, "dataset_name is 0, a whole number; it must be a text."),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_setting_has_a_meaning_and_a_bad_value_here(preset):
    fields = dataclasses.fields(Settings)
    assert set(PRESETS[preset]) == {f.name for f in fields} == set(BAD)
    assert all(f.metadata["meaning"] for f in fields)
    assert settings.record(settings.preset(preset)) == PRESETS[preset]  # stored as the preset writes it


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_is_one_sentence_naming_the_setting(preset, name):
    with pytest.raises(LabError) as error:
        dataclasses.replace(settings.preset(preset), **{name: BAD[name][0]})
    assert str(error.value) == BAD[name][1]


@pytest.mark.parametrize("changes,expected", [
    ({"input_min_text_length": 1000, "input_max_text_length": 1000},
     "input_min_text_length is 1000; it must be smaller than input_max_text_length (1000)."),
    ({"output_min_length": 50, "output_max_length": 50}, "output_min_length is 50; it must be smaller than "
                                                         "output_max_length (50)."),
    ({"batch_size": 40, "mini_batch_size": 16}, "mini_batch_size is 16; it must be a divisor of batch_size (40)."),
])
def test_settings_that_must_agree(changes, expected):
    with pytest.raises(LabError) as error:
        dataclasses.replace(settings.preset("tiny"), **changes)
    assert str(error.value) == expected


def test_an_unknown_setting_is_one_sentence_listing_the_settings():
    with pytest.raises(LabError, match=r"^overrides names 'temperature', which is not a setting of the lab; the "
                                       r"settings are adapter_dir, batch_size, "):
        settings.checked_overrides({"temperature": 0.7})


@pytest.mark.parametrize("name,split", [("batch_size", "train"), ("num_eval_samples", "test")])
def test_counts_must_fit_the_data(tiny, tiny_dataset, name, split):
    size = len(tiny_dataset[split])
    settings.check_data_fits(dataclasses.replace(tiny, **{name: size, "mini_batch_size": 1}), tiny_dataset)
    with pytest.raises(LabError) as error:
        settings.check_data_fits(dataclasses.replace(tiny, **{name: size + 1, "mini_batch_size": 1}), tiny_dataset)
    assert str(error.value) == (f"{name} is {size + 1}; it must be at most {size}, the number of dialogues in the "
                                f"{split} split within the length bounds.")


def test_resolve_takes_the_preset_then_the_parameters_then_the_environment_and_says_so(tiny, monkeypatch, capsys):
    monkeypatch.delenv("LAB3_PRESET", raising=False)
    monkeypatch.delenv("LAB3_OVERRIDES", raising=False)
    name, cfg = settings.resolve("tiny", {"max_ppo_steps": 5, "seed": 7}, "cpu")
    assert name == "tiny" and cfg == dataclasses.replace(tiny, max_ppo_steps=5, seed=7)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("LAB3_OVERRIDES", '{"max_ppo_steps": 3}')
    name, cfg = settings.resolve("tiny", {"max_ppo_steps": 5, "seed": 7}, "cpu")
    assert (cfg.max_ppo_steps, cfg.seed) == (3, 7)
    assert capsys.readouterr().out == "LAB3_OVERRIDES changes max_ppo_steps.\n"
    monkeypatch.setenv("LAB3_PRESET", "nano")
    with pytest.raises(LabError, match=r"^Unknown preset 'nano': choose one of full, tiny\.$"):
        settings.resolve("tiny", {}, "cpu")
    assert capsys.readouterr().out == "LAB3_PRESET=nano replaces preset_name='tiny'.\n"


def test_resolve_stops_at_a_bad_value_before_anything_loads(tiny, monkeypatch):
    monkeypatch.delenv("LAB3_PRESET", raising=False)
    monkeypatch.delenv("LAB3_OVERRIDES", raising=False)
    with pytest.raises(LabError, match=r"^batch_size is 0; it must be a whole number, at least 1\.$"):
        settings.resolve("tiny", {"batch_size": 0}, "cpu")
