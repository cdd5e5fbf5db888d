"""The fast generation path (static KV cache, one compiled decoding step) samples what the default path samples."""

import time

import pytest
import torch
from transformers import CompileConfig, T5Config, T5ForConditionalGeneration
from trl import AutoModelForSeq2SeqLMWithValueHead, PPOConfig, PPOTrainer
from trl.trainer.utils import disable_dropout_in_model

import rlhf_helpers as lab
from lab3 import speedups
from tiny_world.standins import FLAN_T5_BASE

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _policy(summarizer, device: str):
    """The notebook's policy: the summarizer with a fresh LoRA adapter (made non-zero, as after some PPO steps) and a
    value head, without dropout, in float32 (bfloat16 near-ties could flip a greedy token on either path)."""
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(lab.add_fresh_lora(summarizer), is_trainable=True)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    disable_dropout_in_model(model)
    speedups.prepare_for_ppo(model, "cuda")  # the GPU's settings (gradient checkpointing), whatever the device
    return model.to(device)


@pytest.fixture(scope="module", params=["tiny", "flan-t5-base-width"])
def architecture(request, tiny, tokenizer):
    """(policy maker, prompts of different lengths) for the tiny summarizer and for FLAN-T5-base's widths, vocabulary
    and heads with two layers a side (random weights): compiling all twelve on a CPU takes minutes and checks no more,
    since each layer compiles to the same code."""
    if request.param == "tiny":
        def policy(device):
            return _policy(lab.load_summarizer(tiny.model_name, tiny.adapter_dir), device)
        vocab = len(tokenizer)
    else:
        torch.manual_seed(0)
        base = T5ForConditionalGeneration(T5Config(**dict(FLAN_T5_BASE, num_layers=2, num_decoder_layers=2),
                                                   dropout_rate=0.0, dense_act_fn="gelu_pytorch_tanh"))

        def policy(device):
            return _policy(base, device)
        vocab = FLAN_T5_BASE["vocab_size"]
    # FLAN-T5-base's random weights make text out of any ids; the tiny summarizer needs its own prompts.
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, vocab, (n,), generator=generator) for n in (37, 5, 60, 22)]
    return request.param, policy, prompts


def _compiled_everywhere(kwargs: dict, device: str) -> dict:
    """`kwargs` as the notebook gets them on a GPU; on a CPU, with transformers told to compile there too."""
    if device == "cpu":
        config = CompileConfig()
        config._compile_all_devices = True  # transformers' switch for testing compilation on a CPU
        kwargs = dict(kwargs, compile_config=config)
    return kwargs


@pytest.mark.parametrize("device", DEVICES)
def test_fast_path_gives_the_default_paths_greedy_tokens_and_log_probabilities(architecture, tokenizer, device):
    name, make_policy, prompts = architecture
    model = make_policy(device)
    prompts = [p.to(device) for p in prompts]
    fast = {"cache_implementation": "static", "max_cache_len": 40, "pad_to_multiple_of": 64}  # as on a GPU
    if device == "cuda":
        assert speedups.fast_generation_kwargs(device, 40, max(len(p) for p in prompts)) == fast
    fast = _compiled_everywhere(fast, device)
    greedy = {"do_sample": False, "max_new_tokens": 24}

    # Through PPOTrainer.generate, as the PPO loop calls it (pad_to_multiple_of is its own setting).
    config = PPOConfig(batch_size=len(prompts), mini_batch_size=len(prompts),
                       accelerator_kwargs={"cpu": device == "cpu"})
    trainer = PPOTrainer(config=config, model=model, ref_model=None, tokenizer=tokenizer)
    default_tokens = trainer.generate(prompts, batch_size=len(prompts), return_prompt=False, **greedy)
    stats = torch._dynamo.utils.counters["stats"]
    graphs, breaks = stats["unique_graphs"], sum(torch._dynamo.utils.counters["graph_break"].values())
    start = time.time()
    fast_tokens = trainer.generate(prompts, batch_size=len(prompts), return_prompt=False, **greedy, **fast)
    print(f"{name} on {device}: first fast generation (compiling) {time.time() - start:.1f} s")
    assert [t.tolist() for t in fast_tokens] == [t.tolist() for t in default_tokens]
    assert max(len(t) for t in default_tokens) > 5  # something was generated
    # One graph for the whole decoding step: a graph break would leave parts in Python and defeat the CUDA graph.
    assert stats["unique_graphs"] == graphs + 1
    assert sum(torch._dynamo.utils.counters["graph_break"].values()) == breaks

    # A PPO step, as in the loop: it leaves the policy in training mode with new adapter weights.
    trainer.step(prompts, fast_tokens, [torch.tensor(float(i)) for i in range(len(prompts))])

    # The log-probabilities of every generated token, padded batch, both paths; the fast calls after the PPO step, one
    # of them shorter, reuse the compiled step (LengthSampler changes max_new_tokens every PPO step).
    pad_to = fast.pop("pad_to_multiple_of")
    batch = tokenizer.pad({"input_ids": prompts}, pad_to_multiple_of=pad_to, return_tensors="pt").to(device)
    assert batch["attention_mask"].sum(dim=1).tolist() == [37, 5, 60, 22] and batch["input_ids"].shape[1] == pad_to
    scores = {"output_scores": True, "return_dict_in_generate": True}
    graphs = stats["unique_graphs"]
    for max_new_tokens in (24, 17):
        kwargs = dict(greedy, max_new_tokens=max_new_tokens, **scores)
        default = model.generate(**batch, **kwargs)
        compiled = model.generate(**batch, **kwargs, **fast)
        assert torch.equal(compiled.sequences, default.sequences)
        default_lp = torch.stack(default.scores).float().log_softmax(-1)
        compiled_lp = torch.stack(compiled.scores).float().log_softmax(-1)
        finite = default_lp.isfinite()
        assert torch.equal(finite, compiled_lp.isfinite())  # the same tokens forbidden (min_length, padding)
        # float32 rounding only: FLAN-T5-base-width random weights give log-probabilities down to about -200
        torch.testing.assert_close(compiled_lp[finite], default_lp[finite], rtol=1e-5, atol=1e-4)
    assert stats["unique_graphs"] == graphs  # no recompilation after a PPO step or for a new length


def test_fast_generation_runs_on_cuda_gpus_that_compile_and_says_which_path_runs(monkeypatch, capsys):
    assert speedups.fast_generation_kwargs("cpu", 400, 300) == {}
    assert "default (dynamic) KV cache" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))
    assert speedups.fast_generation_kwargs("cuda", 400, 300) == {}
    assert "compute capability 6.1" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr("torch.utils._triton.has_triton", lambda: True)
    # One cache size for the run; every prompt padded to the multiple of 64 that holds the longest.
    assert speedups.fast_generation_kwargs("cuda", 400, 300) == {"cache_implementation": "static", "max_cache_len": 400,
                                                            "pad_to_multiple_of": 320}
    assert "compiled" in capsys.readouterr().out
    monkeypatch.setattr("torch.utils._triton.has_triton", lambda: False)
    assert speedups.fast_generation_kwargs("cuda", 400, 300) == {}
    assert "no Triton" in capsys.readouterr().out


def test_generate_summaries_pads_prompts_as_ppo_trainer_does(tiny, tokenizer):
    model = _policy(lab.load_summarizer(tiny.model_name, tiny.adapter_dir), "cpu")
    prompts = [torch.randint(3, len(tokenizer), (n,), generator=torch.Generator().manual_seed(n)) for n in (9, 30)]
    kwargs = {"do_sample": False, "max_new_tokens": 12}
    plain = lab.generate_summaries(model, tokenizer, prompts, kwargs)
    padded = lab.generate_summaries(model, tokenizer, prompts, dict(kwargs, pad_to_multiple_of=64,
                                                                      cache_implementation="static", max_cache_len=20))
    assert padded == plain and any(plain)
