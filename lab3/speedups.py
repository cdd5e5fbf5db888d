"""Device settings that change no result, only the speed or the memory: the dtype a device computes fast, PPO steps
without padding on a CPU or with recomputed activations on a GPU, and compiled generation on a GPU."""

import torch


def resolve_dtype(dtype: str, device: str) -> str:
    """`dtype`, or "float32" when it is "bfloat16" and `device` has no native bfloat16 arithmetic (it says so)."""
    if dtype != "bfloat16":
        return dtype
    if device == "cuda":
        # Not the default `including_emulation=True`: emulated bfloat16 (a T4, a V100) is slow, and Inductor cannot
        # compile it below compute capability 8.0.
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return dtype
        major, minor = torch.cuda.get_device_capability()
        print(f"This GPU (compute capability {major}.{minor}) has no native bfloat16, which needs 8.0: the models run "
              "in float32.")
        return "float32"
    # Without AVX512-BF16 or AMX, CPU bfloat16 matrix products take a slow path (benchmarks/bf16_matmul.py).
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        return dtype
    print(f"This {device.upper()} has no fast bfloat16 (AVX512-BF16 or AMX): the models run in float32.")
    return "float32"


def drop_padding_columns(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Forward pre-hook: the call without the encoder-input columns that are padding in every row of the batch."""
    mask = kwargs.get("attention_mask")
    if kwargs.get("input_ids") is None or mask is None or mask.dim() != 2:
        return None
    # PPOTrainer pads each step's queries to the longest of the whole batch and runs its mini-batches on slices of
    # that; T5's attention is relative and masked, so dropping all-padding columns changes no result, only the cost.
    keep = mask.bool().any(dim=0)
    if keep.all():
        return None
    return args, dict(kwargs, input_ids=kwargs["input_ids"][:, keep], attention_mask=mask[:, keep])


def train_mode_while_recording_gradients(module: torch.nn.Module, args: tuple) -> None:
    """Forward pre-hook: `module` in training mode exactly while autograd records (checkpointing acts in training)."""
    # PPOTrainer.step runs its gradient forward in eval mode (so checkpointing would never act) and ends in training
    # mode (so the next generation would trace checkpointing's branches and break the compiled decoding step). Under
    # torch.compile both flags are guarded constants: the branch is decided at trace time and leaves no graph break.
    if module.training != torch.is_grad_enabled():
        module.train(torch.is_grad_enabled())


def prepare_for_ppo(ppo_model: torch.nn.Module, device: torch.device | str) -> str:
    """Apply the device's PPO settings that change no result (CPU: skip padding; GPU: recompute activations)."""
    if torch.device(device).type == "cpu":
        # On a CPU the padding a PPO mini-batch carries costs real arithmetic; on a GPU this hook costs more than it
        # saves (its `.all()` and boolean indexing make the host wait for the GPU every forward; benchmarks/README.md).
        ppo_model.register_forward_pre_hook(drop_padding_columns, with_kwargs=True)
        return "PPO steps skip all-padding prompt columns"
    # On a GPU arithmetic is cheap and memory is not: recompute each T5 block in the backward pass instead of keeping
    # its activations (benchmarks/ppo_memory.py).
    t5 = ppo_model.pretrained_model.get_base_model()
    t5.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    # Only re-entrant checkpointing needs inputs that require gradients; the hook transformers adds for it calls
    # `requires_grad_()` in every decoding step, which torch.compile cannot trace without breaking the compiled graph.
    t5.disable_input_require_grads()
    t5.register_forward_pre_hook(train_mode_while_recording_gradients)  # dropout is off: the mode changes nothing else
    # One mode for every module from the start (a fresh adapter's modules come in training mode, T5's in eval mode), so
    # that the first compiled generation sees the flags every later one sees and no PPO step forces a recompilation.
    t5.eval()
    return "PPO steps recompute T5's activations in the backward pass (gradient checkpointing)"


def _why_no_fast_generation(device: torch.device, dtype: str) -> str:
    """'' where the compiled static-cache generation applies on `device` in `dtype`, else why not, in a few words."""
    if device.type != "cuda":
        return f"compiled generation pays off on a CUDA GPU, and this is {device.type}"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (7, 0):
        return f"this GPU (compute capability {major}.{minor}) is older than torch.compile's kernels support (7.0)"
    if dtype == "bfloat16" and (major, minor) < (8, 0):
        return f"Inductor cannot compile bfloat16 below compute capability 8.0 (this GPU: {major}.{minor})"
    from torch.utils._triton import has_triton
    if not has_triton():
        return "torch.compile has no Triton on this machine"
    return ""


def fast_generation_for(cfg, device: torch.device | str, dataset, dtype: str) -> dict:
    """`fast_generation_kwargs` sized once for a run of settings `cfg`: its longest summary, and the longest prompt of
    every split of `dataset`."""
    longest_prompt = max(len(ids) for split in dataset.values() for ids in split["input_ids"])
    return fast_generation_kwargs(device, max_new_tokens=max(cfg.output_max_length, cfg.eval_max_new_tokens),
                                  max_prompt_tokens=longest_prompt, dtype=dtype)


def fast_generation_kwargs(device: torch.device | str, max_new_tokens: int, max_prompt_tokens: int,
                           dtype: str = "float32") -> dict:
    """Extra `PPOTrainer.generate` settings that compile generation on a GPU ({} elsewhere); prints which path runs."""
    # transformers compiles the decoding step (torch.compile, replayed as a CUDA graph) when the KV cache is static. One
    # compiled graph serves the whole run only if shapes never change: the cache is sized once for the longest summary
    # (LengthSampler draws a new length every step) and every prompt is padded to one length (`pad_to_multiple_of` is
    # PPOTrainer.generate's own; a multiple of at least the longest prompt pads every batch to exactly that length).
    why_not = _why_no_fast_generation(torch.device(device), dtype)
    if why_not:
        print(f"generation: transformers' default (dynamic) KV cache, no compilation: {why_not}")
        return {}
    prompt_length = -(-max_prompt_tokens // 64) * 64
    print(f"generation: static KV cache of {max_new_tokens} tokens, prompts padded to {prompt_length} tokens, decoding "
          "step compiled by transformers (the first generation compiles it: expect a wait of tens of seconds)")
    return {"cache_implementation": "static", "max_cache_len": max_new_tokens, "pad_to_multiple_of": prompt_length}
