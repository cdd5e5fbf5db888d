"""What a lecture-sized PPO iteration keeps in memory, tensor by tensor: weights, optimizer, KV cache, activations.

Sizes of tensors, not a device's allocator (which adds its cache and fragmentation on top), so they hold on a CPU and a
GPU alike; measured on the FLAN-T5-base architecture (random weights, built by ppo_step.py) in the lecture's bfloat16.
The activations are the tensors autograd saves for one PPO mini-batch's backward pass (4 prompts of 250 tokens, 256
response tokens), with and without gradient checkpointing, including what TRL's loss computes from the float32 logits.

    python -m benchmarks.ppo_memory
"""


import torch
from transformers import AutoModelForSequenceClassification
from trl import AutoModelForSeq2SeqLMWithValueHead
from trl.core import entropy_from_logits, logprobs_from_logits
from trl.trainer.utils import disable_dropout_in_model

import rlhf_helpers as lab
from benchmarks.ppo_step import build_models
from lab3 import ROOT, speedups

MB = 2**20


def tensor_mb(tensors) -> float:
    """MB of the distinct storages behind `tensors`."""
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values()) / MB


def saved_activations_mb(model, checkpointing: bool, batch: int = 4, prompt: int = 250, response: int = 256) -> float:
    """MB autograd keeps for the backward pass of one PPO mini-batch (model forward plus TRL's loss terms)."""
    if checkpointing:
        speedups.prepare_for_ppo(model, "cuda")  # the GPU's setting, whatever runs this
    saved = []
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    encoder = torch.randint(3, 32000, (batch, prompt))
    decoder = torch.randint(3, 32000, (batch, response + 1))
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        logits, _, values = model.train()(input_ids=encoder, attention_mask=torch.ones_like(encoder),
                                           decoder_input_ids=decoder, decoder_attention_mask=torch.ones_like(decoder))
        logprobs_from_logits(logits[:, :-1, :], decoder[:, 1:]).sum() + entropy_from_logits(logits).sum()
    return tensor_mb(t for t in saved if t.untyped_storage().data_ptr() not in weights)


def main() -> None:
    work = ROOT / "checkpoints" / "bench"
    build_models(work)

    def policy():
        summarizer = lab.load_summarizer(str(work / "flan-t5-base"), str(work / "lab2-adapter"), dtype="bfloat16")
        model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(lab.add_fresh_lora(summarizer), is_trainable=True)
        disable_dropout_in_model(model)
        return model

    model = policy()
    frozen = tensor_mb(p for p in model.parameters() if not p.requires_grad)
    trainable = tensor_mb(p for p in model.parameters() if p.requires_grad)
    reward = {dtype: tensor_mb(AutoModelForSequenceClassification.from_pretrained(
        work / "roberta-base-hate", dtype=dtype).parameters()) for dtype in (torch.bfloat16, torch.float32)}
    config = model.pretrained_model.config
    # A static cache for the full preset: 16 summaries of up to 400 tokens, prompts padded to 256; keys and values of
    # every decoder layer's self-attention and cross-attention, in bfloat16.
    cache = 2 * config.num_decoder_layers * 16 * (400 + 256) * config.num_heads * config.d_kv * 2 / MB
    rows = [
        ("policy's frozen weights (bfloat16)", frozen),
        ("trainable LoRA + value head (float32)", trainable),
        ("their gradients + Adam's two moments", 3 * trainable),
        ("reward model, bfloat16 (this lab) / float32 (lecture)",
         f"{reward[torch.bfloat16]:.0f} / {reward[torch.float32]:.0f}"),
        ("lecture only: create_reference_model copy", frozen + trainable),
        ("static KV cache, batch 16, 400 + 256 positions", cache),
        ("saved for one mini-batch's backward", saved_activations_mb(model, checkpointing=False)),
        ("the same with gradient checkpointing", saved_activations_mb(policy(), checkpointing=True)),
    ]
    for name, mb in rows:
        print(f"{name:58} {mb if isinstance(mb, str) else f'{mb:.0f}':>12} MB")


if __name__ == "__main__":
    main()
