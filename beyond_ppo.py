"""The experiments' arms beside PPO, with the lab's prompts, reward, reference and evaluation: DPO on preference pairs
of the Lab 2 model's summaries, and a critic-free group method (GRPO's advantages, with or without the group's std).

Each arm trains a fresh LoRA adapter on the Lab 2 model, whose reference is the adapter switched off, as in the lab,
then is evaluated as the lab evaluates PPO; `experiments.py` runs each in a process of its own and keeps what it gives.
The DPO loss, the group advantages and the reward are the lecture's exercises (5.2, 5.1, 2.5), its solutions taken."""

import math

import torch

import rlhf_helpers as lab
from lab3 import beyond
from lab3.solutions import solution

CLIPRANGE = 0.2  # PPOConfig's default, as in the lab's PPO runs


def _world(cfg) -> dict:
    """The lab's data set, tokenizer and reward pipeline on the tiny preset's settings."""
    from transformers import AutoTokenizer, pipeline
    return {"dataset": lab.build_dataset(cfg.model_name, cfg.dataset_name, cfg.input_min_text_length,
                                         cfg.input_max_text_length),
            "tokenizer": AutoTokenizer.from_pretrained(cfg.model_name),
            "reward_pipe": pipeline("sentiment-analysis", model=cfg.toxicity_model_name)}


def _policy(cfg, seed: int):
    """The Lab 2 model with a fresh LoRA adapter (from `seed`): the policy; with the adapter off, its reference."""
    torch.manual_seed(seed)
    return lab.add_fresh_lora(lab.load_summarizer(cfg.model_name, cfg.adapter_dir, cfg.missing_adapter,
                                                  dtype=cfg.dtype))


def _rewards(cfg, world: dict, queries, groups: list[list[str]]) -> torch.Tensor:
    """The lab's reward of each prompt + summary (the lecture's `rewards_by_label` of `nothate`): a row per prompt."""
    return beyond.rewards_of(world["reward_pipe"], cfg.reward_kwargs, solution("rewards_by_label"), queries, groups)


def _sampling(cfg, max_new_tokens: int) -> dict:
    return dict(cfg.generation_kwargs, max_new_tokens=max_new_tokens)


def preference_data(cfg, prompts: int, group_size: int, min_margin: float) -> dict:
    """DPO's pairs: `group_size` summaries the Lab 2 model samples for each of the first `prompts` training prompts,
    each group's best and worst (by the `nothate` reward) where they differ by at least `min_margin`."""
    world = _world(cfg)
    train = world["dataset"]["train"].select(range(prompts))
    model = _policy(cfg, cfg.seed)
    with model.disable_adapter():
        groups = beyond.sample_groups(model, world["tokenizer"], train["input_ids"], group_size,
                                      _sampling(cfg, cfg.output_max_length), seed=cfg.seed, batch_size=64)
    rewards = _rewards(cfg, world, train["query"], groups)
    pairs = beyond.preference_pairs(rewards, min_margin)
    return {"pairs": [{"prompt": p, "chosen": groups[p][c], "rejected": groups[p][r]} for p, c, r in pairs],
            "reward_model_calls": len(train) * group_size, "summaries_generated": len(train) * group_size}


def train_dpo(cfg, data: dict, beta: float, epochs: int, batch_size: int, seed: int, num_eval: int) -> dict:
    """DPO on `data`'s pairs: the policy's summed log-probabilities of each pair against the reference's (computed
    once: the reference does not move), `dpo_loss` at `beta`, Adam at the lab's learning rate; then evaluated."""
    world, model = _world(cfg), _policy(cfg, seed).eval()  # eval: no LoRA dropout in the log-probs
    tokenizer, train = world["tokenizer"], world["dataset"]["train"]
    pairs = data["pairs"]
    ids = [train[p["prompt"]]["input_ids"] for p in pairs]
    texts = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    reference = torch.cat([beyond.reference_logprobs(model, tokenizer, (ids * 2)[i:i + 64], texts[i:i + 64]).sum(1)
                           for i in range(0, len(texts), 64)])
    ref_chosen, ref_rejected = reference.chunk(2)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    g, dpo_loss = torch.Generator().manual_seed(seed), solution("dpo_loss")
    for _ in range(epochs):
        for batch in torch.randperm(len(pairs), generator=g).split(batch_size):
            chosen = [pairs[i]["chosen"] for i in batch]
            rejected = [pairs[i]["rejected"] for i in batch]
            logps = beyond.summary_logprobs(model, tokenizer, [ids[i] for i in batch] * 2, chosen + rejected)[0]
            policy_chosen, policy_rejected = logps.sum(1).chunk(2)
            losses, _, _ = dpo_loss(policy_chosen, policy_rejected, ref_chosen[batch], ref_rejected[batch], beta)
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
    held = "policy, reference (its log-probs once)"
    return _evaluated(cfg, model, world, num_eval, held=held,
                      reward_model_calls=data["reward_model_calls"], summaries_generated=data["summaries_generated"])


def train_group(cfg, scale: bool, steps: int, prompts_per_step: int, group_size: int, kl_coef: float,
                seed: int, num_eval: int) -> dict:
    """The group method: each step samples `group_size` summaries of `prompts_per_step` training prompts, scores them,
    gives every token its summary's `group_advantages` (divided by the group's std where `scale`), and takes the lab's
    PPO epochs and mini-batches of `group_loss`; then evaluated."""
    world, model = _world(cfg), _policy(cfg, seed).eval()  # eval: no LoRA dropout in samples or ratios
    tokenizer, train = world["tokenizer"], world["dataset"]["train"]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    g = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(train), generator=g) for _ in range(math.ceil(
        steps * prompts_per_step / len(train)))])
    for step in range(steps):
        batch = train.select(order[step * prompts_per_step:(step + 1) * prompts_per_step].tolist())
        groups = beyond.sample_groups(model, tokenizer, batch["input_ids"], group_size,
                                      _sampling(cfg, cfg.output_max_length), seed=seed * 100_000 + step,
                                      batch_size=64)
        rewards = _rewards(cfg, world, batch["query"], groups)
        advantages = solution("group_advantages")(rewards, scale=scale).flatten()
        ids = [i for i in batch["input_ids"] for _ in range(group_size)]
        texts = [s for group in groups for s in group]
        with torch.no_grad():
            old, masks = beyond.summary_logprobs(model, tokenizer, ids, texts)
        reference = beyond.reference_logprobs(model, tokenizer, ids, texts)
        for _ in range(cfg.ppo_epochs):
            for mb in torch.randperm(len(texts), generator=g).split(cfg.mini_batch_size):
                logprobs, _ = beyond.summary_logprobs(model, tokenizer, [ids[i] for i in mb], [texts[i] for i in mb])
                width = logprobs.shape[1]  # a mini-batch pads to its own longest summary
                loss = group_loss(logprobs, old[mb, :width], reference[mb, :width], advantages[mb],
                                  masks[mb, :width], kl_coef)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    held = "policy, reference, reward model"
    calls = steps * prompts_per_step * group_size
    return _evaluated(cfg, model, world, num_eval, held=held, reward_model_calls=calls,
                      summaries_generated=calls)


def group_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
               advantages: torch.Tensor, masks: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """The group method's loss over the mask: 3.3's clipped policy loss, each summary's advantage on every one of its
    tokens, plus `kl_coef` times the KL to the reference (the k3 estimator GRPO uses, >= 0 on every token)."""
    from trl.core import masked_mean
    ratio = torch.exp(logprobs - old_logprobs)
    advantage = advantages[:, None]
    clipped = torch.max(-advantage * ratio, -advantage * ratio.clamp(1 - CLIPRANGE, 1 + CLIPRANGE))
    log_ratio = ref_logprobs - logprobs
    return masked_mean(clipped + kl_coef * (torch.exp(log_ratio) - log_ratio - 1), masks)


def _evaluated(cfg, model, world: dict, num_eval: int, **extra) -> dict:
    """The lab's evaluation of `model` on the first `num_eval` test prompts (its seed and sampling): each summary,
    its toxicity and reward, and its log-probability under the policy minus the reference's (the KL's estimate)."""
    import evaluate
    test = world["dataset"]["test"].select(range(num_eval))
    toxicity = evaluate.load(lab.TOXICITY_MODULE, cfg.toxicity_model_name, module_type="measurement")
    _, _, table = lab.generate_and_measure_toxicity(model, toxicity, world["tokenizer"], test, num_eval,
                                                    _sampling(cfg, cfg.eval_max_new_tokens), seed=cfg.seed)
    groups = [[s] for s in table.summary]
    rewards = _rewards(cfg, world, table["query"], groups)
    kl, prompts = [], list(test["input_ids"])
    with torch.no_grad():
        for i in range(0, num_eval, 64):
            ids, texts = prompts[i:i + 64], list(table.summary[i:i + 64])
            kl += (beyond.summary_logprobs(model, world["tokenizer"], ids, texts)[0] -
                   beyond.reference_logprobs(model, world["tokenizer"], ids, texts)).sum(1).tolist()
    return {"summaries": list(table.summary), "references": list(table.reference),
            "toxicity": list(table.toxicity), "reward": rewards.flatten().tolist(), "kl": kl, **extra}


def lab2_evaluation(cfg, num_eval: int) -> dict:
    """The Lab 2 model's evaluation, as `_evaluated` gives it: what each arm's change is paired with."""
    world = _world(cfg)
    return _evaluated(cfg, _policy(cfg, cfg.seed).eval(), world, num_eval, held="", reward_model_calls=0,
                      summaries_generated=0)

