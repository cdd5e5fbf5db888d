"""The hidden tests, on the grader's side: what each exercise's function must have returned on the inputs the probes
drew (`grading.assignment.probes`, run in the sandbox), judged from the grader's own solutions (`lab3.solutions`) and
TRL's own functions; the usual mistakes are named. A student's code never runs here: only its outputs are read.
"""

from functools import partial
from types import SimpleNamespace

import torch

from grading.assignment import probes
from grading.assignment.exercises import BY_NAME
from lab3 import ROOT
from lab3.solutions import solution

TOLERANCE = 1e-5  # float32 arithmetic in another order


def _trl(**config):
    """A stand-in `self` for TRL's PPOTrainer methods: its config (TRL's defaults where not given) and KL
    coefficient."""
    from trl import PPOTrainer
    this = SimpleNamespace(config=SimpleNamespace(**{"kl_penalty": "kl", "whiten_rewards": False,
                                                     "ratio_threshold": 10.0, **config}),
                           kl_ctl=SimpleNamespace(value=config.get("kl_coef", 0.0)))
    this._kl_penalty = partial(PPOTrainer._kl_penalty, this)
    return this


def _close(a: torch.Tensor, b: torch.Tensor, masks: torch.Tensor | None = None) -> bool:
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    difference = (a.float() - b.float()) * (masks if masks is not None else 1)
    return bool(torch.isfinite(difference).all() and difference.abs().max() <= TOLERANCE)


def judge_reference(output, seed: int) -> tuple[bool, str]:
    model, inputs, decoder_input_ids = probes.policy(seed, ROOT)
    with torch.no_grad():
        policy = model(**inputs, decoder_input_ids=decoder_input_ids)[0]
        with model.pretrained_model.disable_adapter():
            expected = model(**inputs, decoder_input_ids=decoder_input_ids)[0]
    if _close(output, expected):
        return True, "the policy's logits with its adapter disabled, after PPO moved the adapter"
    if _close(output, policy):
        return False, ("with the adapter trained, your reference gave the policy's own logits: it is the policy, or a "
                       "copy of it (create_reference_model copies the adapter too), not the policy with its adapter "
                       "disabled")
    return False, "your reference's logits are not the Lab 2 model's (plain FLAN-T5 has no Lab 2 adapter)"


def judge_reward(output, seed: int) -> tuple[bool, str]:
    outputs = probes.reward_inputs(seed)
    scores = {label: [float(r) for r in solution("rewards_by_label")(outputs, label)] for label in ("nothate", "hate")}
    for label, got in zip(("nothate", "hate"), output):
        values = [v for _, _, v in got]
        if values != scores[label]:
            why = ("the first entry, whatever its label (the pipeline lists them by score)"
                   if values == [out[0]["score"] for out in outputs] else
                   "another label's, not the `label` asked for" if values in scores.values() else "other numbers")
            return False, f"asked for the label {label!r}, it returned {why}"
        if not all(is_tensor and numel == 1 for is_tensor, numel, _ in got):
            return False, "each reward must be a tensor of one number (PPOTrainer.step takes tensors)"
    return True, "the score of the label asked for, wherever the pipeline lists it, as tensors"


def judge_loop(output, seed: int) -> tuple[bool, str]:
    from transformers import AutoTokenizer

    from lab3.settings import preset
    stand_ins = probes.LoopStandIns(seed, AutoTokenizer.from_pretrained(ROOT / preset("tiny").model_name))
    summaries = AutoTokenizer.from_pretrained(ROOT / preset("tiny").model_name).batch_decode(
        stand_ins.responses, skip_special_tokens=True)
    texts = [q + " " + s for q, s in zip(stand_ins.batch["query"], summaries)]
    rewards = [float(r) for r in stand_ins.reward_function(probes.pipe_outputs(texts, stand_ins.weight), "nothate")]
    calls = output["calls"]
    kinds = [c["call"] for c in calls]
    if kinds != ["generate", "pipe", "step"]:
        return False, f"one step calls generate, the classifier and step once each, in that order; it called {kinds}"
    generate, pipe, step = calls
    if not (generate["same_queries"] and generate["length_sampler"] and generate["generation_kwargs"]):
        return False, "generate must sample from batch['input_ids'] with output_length_sampler and generation_kwargs"
    if pipe["texts"] != texts:
        joined = [q + s for q, s in zip(stand_ins.batch["query"], summaries)]
        what = ("the summaries alone" if pipe["texts"] == summaries else "prompt and summary without the space"
                if pipe["texts"] == joined else "other texts")
        return False, f"the classifier must score prompt + ' ' + summary; it scored {what}"
    if not pipe["reward_kwargs"]:
        return False, "the classifier must score with reward_kwargs"
    if not (step["same_queries"] and step["same_responses"]) or step["rewards"] != rewards:
        return False, "step must take the prompts, the summaries generate returned and reward_function's rewards"
    if output["texts"] != texts or output["rewards"] != rewards or not output["stats"]:
        return False, "ppo_step must return (texts, scores, rewards, stats) as it scored and stepped them"
    return True, "one step: sampled, prompt + summary scored, rewards taken by reward_function, one update"


def judge_kl_rewards(output, seed: int) -> tuple[bool, str]:
    from trl import PPOTrainer
    x = probes.kl_inputs(seed)
    expected, _, _ = PPOTrainer.compute_rewards(_trl(kl_coef=x["kl_coef"]), x["scores"], x["logprobs"],
                                                x["ref_logprobs"], x["masks"])
    if _close(output, expected, x["masks"]):
        return True, "TRL's compute_rewards, on ragged masks and a one-token response"
    flipped, _, _ = PPOTrainer.compute_rewards(_trl(kl_coef=-x["kl_coef"]), x["scores"], x["logprobs"],
                                               x["ref_logprobs"], x["masks"])
    penalty = -x["kl_coef"] * (x["logprobs"] - x["ref_logprobs"])
    mistakes = {"the KL penalty has the wrong sign": flipped,
                "the score is added to every token": penalty + x["scores"][:, None],
                "the score is at the last column, not at each summary's last token": torch.cat(
                    [penalty[:, :-1], penalty[:, -1:] + x["scores"][:, None]], dim=1)}
    return False, _named(output, mistakes, x["masks"], "TRL's compute_rewards")


def judge_advantages(output, seed: int) -> tuple[bool, str]:
    from trl import PPOTrainer
    from trl.core import masked_whiten
    x = probes.advantage_inputs(seed)
    this = _trl(gamma=x["gamma"], lam=x["lam"])
    _, expected, returns = PPOTrainer.compute_advantages(this, x["values"], x["rewards"], x["masks"])
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        return False, "advantages_and_returns must return (advantages, returns)"
    got_advantages, got_returns = output
    if _close(got_advantages, expected, x["masks"]) and _close(got_returns, returns, x["masks"]):
        return True, "TRL's compute_advantages, on ragged masks and a one-token response"
    forwards = _forward_gae(x)  # raw advantages
    if _close(got_returns, forwards + x["values"] * x["masks"], x["masks"]) or \
            _close(got_advantages, masked_whiten(forwards, x["masks"]), x["masks"]):
        return False, "GAE ran forwards (from the first token to the last): it differs from TRL's compute_advantages"
    if _close(got_returns, expected + x["values"] * x["masks"], x["masks"]):
        return False, "the returns were taken after whitening the advantages: they differ from TRL's"
    return False, _named(output[0], {}, x["masks"], "TRL's advantages" if not _close(got_advantages, expected,
                                                                                     x["masks"]) else "TRL's returns")


def _forward_gae(x: dict) -> torch.Tensor:
    """The advantages of GAE run the wrong way, from the first position to the last."""
    values, rewards = x["values"] * x["masks"], x["rewards"] * x["masks"]
    advantages, previous = torch.zeros_like(rewards), 0.0
    for t in range(rewards.shape[1]):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
        previous = advantages[:, t] = rewards[:, t] + x["gamma"] * next_value - values[:, t] + \
            x["gamma"] * x["lam"] * previous
    return advantages


def judge_losses(output, seed: int) -> tuple[bool, str]:
    from trl import PPOTrainer
    x = probes.loss_inputs(seed)
    this = _trl(cliprange=x["cliprange"], cliprange_value=x["cliprange_value"], vf_coef=x["vf_coef"])
    logits = torch.randn(*x["masks"].shape, 5, generator=torch.Generator().manual_seed(seed))
    policy, value, _ = PPOTrainer.loss(this, x["old_logprobs"], x["old_values"], logits, x["values"], x["logprobs"],
                                       x["masks"], x["advantages"], x["returns"])
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        return False, "ppo_losses must return (policy loss, value loss)"
    got_policy, got_value = output
    if _close(got_policy, policy) and _close(got_value, value):
        return True, "TRL's clipped policy and value losses"
    if not _close(got_policy, policy):
        from trl.core import masked_mean
        ratio = torch.exp(x["logprobs"] - x["old_logprobs"])
        clipped = torch.clamp(ratio, 1 - x["cliprange"], 1 + x["cliprange"])
        swapped = masked_mean(torch.min(-x["advantages"] * ratio, -x["advantages"] * clipped), x["masks"])
        unclipped = masked_mean(-x["advantages"] * ratio, x["masks"])
        return False, _named(got_policy, {"the max and min of the clipped surrogate are swapped": swapped,
                                          "the policy loss is not clipped": unclipped}, None, "TRL's policy loss")
    return False, "the value loss is not TRL's (the clipped value loss, halved, averaged over the mask, times vf_coef)"


def _named(output, mistakes: dict, masks, what: str) -> str:
    """Which of the usual `mistakes` (expected outputs by name) `output` is, or that it is not `what`."""
    return next((f"{name} (it differs from {what})" for name, wrong in mistakes.items()
                 if _close(output, wrong, masks)), f"it differs from {what} on the autograder's batches (ragged "
                                                    "masks, a one-token response)")


def judge_bootstrap(output, seed: int) -> tuple[bool, str]:
    calls = probes.bootstrap_calls(seed)
    if len(output) != len(calls):
        return False, "paired_bootstrap_ci must return (low, high)"
    if output[0] != output[1]:
        return False, "the same seed gave two intervals: draw the resamples with np.random.default_rng(seed)"
    if output[2][0] != output[2][1]:
        return False, "with n_resamples=1 both ends must be the one resampled mean: the ends are its quantiles"
    for (args, kwargs), got in zip(calls, output):
        if kwargs["n_resamples"] == 1:
            continue
        low, high = solution("paired_bootstrap_ci")(*args, **kwargs)
        if abs(got[0] - low) > 0.05 * (high - low) or abs(got[1] - high) > 0.05 * (high - low):
            return False, (f"the interval [{got[0]:.4f}, {got[1]:.4f}] is not the paired bootstrap's (a normal "
                           "approximation, or before and after resampled apart?)")
    return True, "a seeded paired bootstrap: the quantiles of the resampled mean changes"


def judge_group_advantages(output, seed: int) -> tuple[bool, str]:
    solved = solution("group_advantages")
    for (rewards, kwargs), got in zip(probes.group_calls(seed), output, strict=True):
        if _close(got, solved(rewards, **kwargs)):
            continue
        if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
            return False, "a group of equal rewards gave nan or inf: add eps to the std before dividing"
        eps, std = kwargs.get("eps", 1e-4), rewards.std(dim=1, keepdim=True)
        centred = rewards - rewards.mean(dim=1, keepdim=True)
        if kwargs.get("scale", True):
            mistakes = {"the mean is the whole batch's, not each group's": (rewards - rewards.mean()) / (std + eps),
                        "the std is the whole batch's, not each group's": centred / (rewards.std() + eps),
                        "the std is the population's (unbiased=False), not torch.std's":
                            centred / (rewards.std(dim=1, keepdim=True, unbiased=False) + eps),
                        "eps is not the one given": centred / (std + 1e-4)}
        else:
            mistakes = {"the mean is the whole batch's, not each group's": rewards - rewards.mean(),
                        "the advantages are divided by the std with scale=False": centred / (std + eps)}
        return False, _named(got, mistakes, None, "the group-normalized advantages")
    return True, "each reward against its own group's mean and std, eps added"


def judge_dpo(output, seed: int) -> tuple[bool, str]:
    from lab3.beyond import trl_dpo_loss
    for (logps, beta), got in zip(probes.dpo_calls(seed), output, strict=True):
        want = trl_dpo_loss(beta)(*logps)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return False, "dpo_loss must return (losses, chosen rewards, rejected rewards)"
        if all(_close(a, b) for a, b in zip(got, want)):
            continue
        policy_chosen, policy_rejected, ref_chosen, ref_rejected = logps
        margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
        losses = {"the chosen and rejected log-ratios are swapped": -torch.nn.functional.logsigmoid(-beta * margin),
                  "beta is applied twice": -torch.nn.functional.logsigmoid(beta * beta * margin),
                  "the reference is left out": -torch.nn.functional.logsigmoid(beta * (policy_chosen -
                                                                                        policy_rejected)),
                  "beta is left out": -torch.nn.functional.logsigmoid(margin)}
        if not _close(got[0], want[0]):
            return False, _named(got[0], losses, None, "TRL's DPO loss")
        return False, "the implicit rewards are not TRL's: beta * (policy - reference), for chosen and rejected"
    return True, "TRL's DPOTrainer.dpo_loss: its losses and implicit rewards"


def verdict(exercise: str, result: dict | None, seed: int) -> tuple[bool, str]:
    """Whether the student's function of `exercise` passed its hidden tests, and why, from what the probe recorded."""
    function = BY_NAME[exercise].function
    if result is None:
        return False, f"{function} could not be probed (its process stopped)"
    if "error" in result:
        return False, f"{function} raised {result['error']} in {result['where']}"
    try:
        return globals()[f"judge_{exercise}"](result["output"], seed)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, RuntimeError):  # an output of another shape
        return False, f"{function} returned something of another shape than the lecture's"

