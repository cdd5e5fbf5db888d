"""Inside one PPO step (the lecture's 3.3): a recorded step's batch replayed through TRL's forward pass, and the
lecture's KL-shaped rewards, advantages and clipped losses, which must equal TRL's own on it."""

import pytest
import torch
from peft import get_peft_model_state_dict

from lab3 import checkpoints, replay
from lab3.solutions import solution
from tests.conftest import ppo_step, small_trainer


@pytest.fixture(scope="module")
def replayed(tiny, tiny_dataset, tokenizer, reward_pipe, tmp_path_factory):
    """A two-step run of the small trainer, its last step replayed: (the trainer, the replay, the adapter's weights
    before the replay)."""
    trainer = small_trainer(tiny, tiny_dataset, tokenizer)
    run = checkpoints.start_or_resume(tmp_path_factory.mktemp("run") / "ppo-tiny", {}, trainer)
    for _ in range(2):
        ppo_step(run, trainer, tokenizer, reward_pipe, tiny)
    weights = {k: v.clone() for k, v in get_peft_model_state_dict(trainer.model.pretrained_model).items()}
    return trainer, replay.last_step(run, trainer, tokenizer, tiny_dataset["train"].select(range(32))), weights


def test_the_batch_is_the_last_step_s_under_the_policy_that_sampled_it(replayed):
    trainer, step, weights = replayed
    assert len(step.queries) == len(step.responses) == len(step.scores) == trainer.config.batch_size
    assert step.sampled_by_step == 1  # the policy after one update sampled the second step's batch
    on = step.masks.bool()
    assert (step.old_logprobs - step.logprobs)[on].abs().max() > 1e-4  # the step's update moved the policy
    assert (step.ref_logprobs - step.logprobs)[on].abs().max() > 1e-4  # and the reference stayed behind
    after = get_peft_model_state_dict(trainer.model.pretrained_model)
    assert all(torch.equal(after[k], v) for k, v in weights.items())  # the replay left the weights as they were


def test_the_lecture_s_three_pieces_are_trl_s_on_the_step(replayed):
    trainer, step, _ = replayed
    rewards = solution("kl_shaped_rewards")(step.scores, step.old_logprobs, step.ref_logprobs, step.masks, step.kl_coef)
    trl_rewards, _, _ = trainer.compute_rewards(step.scores, step.old_logprobs, step.ref_logprobs, step.masks)
    assert (rewards - trl_rewards).abs().max() <= 1e-6
    c = trainer.config
    advantages, returns = solution("advantages_and_returns")(step.old_values, rewards, step.masks, c.gamma, c.lam)
    _, trl_advantages, trl_returns = trainer.compute_advantages(step.old_values, trl_rewards, step.masks)
    assert (advantages - trl_advantages).abs().max() <= 1e-5 and (returns - trl_returns).abs().max() <= 1e-6
    mb = slice(0, c.mini_batch_size)
    ppo_losses = solution("ppo_losses")
    policy, value = ppo_losses(step.old_logprobs[mb], step.logprobs[mb], advantages[mb], step.old_values[mb],
                               step.values[mb], returns[mb], step.masks[mb], c.cliprange, c.cliprange_value, c.vf_coef)
    trl_policy, trl_value, stats = trainer.loss(step.old_logprobs[mb], step.old_values[mb], step.logits[mb],
                                                step.values[mb], step.logprobs[mb], step.masks[mb], advantages[mb],
                                                returns[mb])
    assert abs(policy.item() - trl_policy.item()) <= 1e-6 and abs(value.item() - trl_value.item()) <= 1e-6
    assert policy.item() != 0 and value.item() != 0
