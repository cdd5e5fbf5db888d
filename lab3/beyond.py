"""What the methods after PPO rest on, for the lecture's "Beyond PPO" and the experiments' arms: G summaries sampled
for each prompt and scored as the lab scores them, each summary's per-token log-probabilities under a policy and under
its reference, each group's best and worst summaries as a preference pair, and TRL's own DPO loss."""

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace

import torch

from lab3.summarizer import generate_summaries


def sample_groups(model, tokenizer, input_ids, group_size: int, generation_kwargs: dict, seed: int,
                  batch_size: int = 16) -> list[list[str]]:
    """`group_size` summaries of each prompt, sampled from `model` (in batches of the lab's evaluation, whose compiled
    generation a GPU reuses): a list per prompt."""
    repeated = [ids for ids in input_ids for _ in range(group_size)]
    summaries = generate_summaries(model, tokenizer, repeated, generation_kwargs, batch_size=batch_size, seed=seed)
    return [summaries[i:i + group_size] for i in range(0, len(summaries), group_size)]


def rewards_of(reward_pipe, reward_kwargs: dict, rewards_by_label: Callable, queries,
               groups: list[list[str]]) -> torch.Tensor:
    """Each prompt + summary's reward as the lab's PPO loop takes it, the `nothate` logit: a row per prompt."""
    texts = [q + " " + s for q, group in zip(queries, groups) for s in group]
    rewards = rewards_by_label(reward_pipe(texts, **reward_kwargs), "nothate")
    return torch.stack([torch.as_tensor(r, dtype=torch.float32) for r in rewards]).view(len(groups), -1)


def summary_logprobs(model, tokenizer, input_ids: list[torch.Tensor],
                     summaries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each summary token's log-probability given its prompt and the tokens before it (texts x tokens), and the mask
    of the summaries' tokens (their end-of-sequence token included, as `generate` writes it)."""
    device = next(model.parameters()).device
    batch = tokenizer.pad({"input_ids": input_ids}, return_tensors="pt").to(device)
    labels = tokenizer(text_target=summaries, padding=True, return_tensors="pt").input_ids.to(device)
    start = torch.full_like(labels[:, :1], model.config.decoder_start_token_id)
    logits = model(**batch, decoder_input_ids=torch.cat([start, labels[:, :-1]], dim=1)).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels[..., None]).squeeze(-1)
    mask = (labels != tokenizer.pad_token_id).float()
    return logprobs * mask, mask


def reference_logprobs(peft_model, tokenizer, input_ids: list[torch.Tensor], summaries: list[str]) -> torch.Tensor:
    """`summary_logprobs` under the reference: the policy with its adapter disabled, the Lab 2 model."""
    with torch.no_grad(), peft_model.disable_adapter():
        return summary_logprobs(peft_model, tokenizer, input_ids, summaries)[0]


def preference_pairs(rewards: torch.Tensor, min_margin: float) -> list[tuple[int, int, int]]:
    """For each prompt (a row of `rewards`, one column per sampled summary), its best and worst summaries as
    (prompt, chosen, rejected), where their rewards differ by at least `min_margin` (ties say nothing)."""
    best, worst = rewards.argmax(dim=1), rewards.argmin(dim=1)
    margins = rewards.max(dim=1).values - rewards.min(dim=1).values
    return [(p, int(best[p]), int(worst[p])) for p in range(len(rewards)) if margins[p] >= min_margin]


@torch.no_grad()
def pair_logprobs(peft_model, tokenizer, input_ids, groups: list[list[str]],
                  pairs: list[tuple[int, int, int]]) -> tuple[torch.Tensor, ...]:
    """The summed log-probabilities of each pair's chosen and rejected summaries under the policy, then under the
    reference: (policy chosen, policy rejected, reference chosen, reference rejected); empty without pairs."""
    if not pairs:  # a policy that writes one summary per prompt has none
        return (torch.zeros(0),) * 4
    ids = [input_ids[p] for p, _, _ in pairs] * 2
    texts = [groups[p][c] for p, c, _ in pairs] + [groups[p][r] for p, _, r in pairs]
    policy = summary_logprobs(peft_model, tokenizer, ids, texts)[0].sum(dim=1)
    reference = reference_logprobs(peft_model, tokenizer, ids, texts).sum(dim=1)
    return (*policy.cpu().chunk(2), *reference.cpu().chunk(2))


def trl_dpo_loss(beta: float) -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """TRL's `DPOTrainer.dpo_loss` at `beta` and DPOConfig's other defaults (the sigmoid loss, with a reference)."""
    import transformers.models.auto.modeling_auto as auto
    import trl.import_utils
    # TRL 0.11.4's DPO module imports a name transformers 5 renamed, and reads transformers 5's (bool, version)
    # answer for the optional `llm_blender` as "installed": both set right before it is imported.
    auto.MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES = getattr(auto, "MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES",
                                                        auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
    trl.import_utils._llmblender_available = False
    from trl import DPOConfig, DPOTrainer
    config = {f.name: f.default for f in dataclasses.fields(DPOConfig) if f.default is not dataclasses.MISSING}

    def dpo_loss(*logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        trainer = SimpleNamespace(**{**config, "beta": beta}, accelerator=SimpleNamespace(device=logps[0].device))
        return DPOTrainer.dpo_loss(trainer, *logps)
    return dpo_loss
