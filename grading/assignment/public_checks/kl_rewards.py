"""Public checks of the exercise `kl_rewards` (3.3), run in the student's kernel by `grader.check("kl_rewards")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "kl_rewards"
points = 2


def _batch(torch):
    """Five responses of 1 to 6 tokens, masked as TRL masks a decoder's positions (its first position never counts)."""
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(5, 8)
    for row, length in enumerate([6, 3, 1, 4, 2]):
        masks[row, 1:1 + length] = 1
    return torch.randn(5, generator=g), -torch.rand(5, 8, generator=g) * 3, -torch.rand(5, 8, generator=g) * 3, masks


@test_case()
def test_the_penalty_costs_reward_where_the_policy_moved(kl_shaped_rewards, torch):
    scores, _, ref, masks = _batch(torch)
    rewards = kl_shaped_rewards(torch.zeros(5), ref + 0.5, ref, masks, 0.2)
    assert (rewards[masks.bool()] < 0).all(), \
        "The KL penalty has the wrong sign: where the policy gives a token more probability than the reference " \
        "(logprob > ref_logprob), drifting from it must cost reward: -kl_coef * (logprob - ref_logprob)."


@test_case()
def test_the_score_is_added_once_at_the_last_token(kl_shaped_rewards, torch):
    scores, _, ref, masks = _batch(torch)
    rewards = kl_shaped_rewards(scores, ref, ref, masks, 0.2)  # no drift: only the score is left
    last = masks.shape[1] - 1 - masks.flip(dims=[1]).argmax(dim=1)
    at_last = rewards[torch.arange(5), last]
    assert torch.allclose(at_last, scores), \
        "The classifier's score must be at each summary's last token: the last position its mask keeps (each " \
        "row's last 1), not the last column, since shorter summaries are padded."
    assert (rewards * masks).abs().sum() - at_last.abs().sum() < 1e-6, \
        "The score was added to more than one token: the classifier judged the whole summary once, so it belongs " \
        "at its last token only; on every token a long summary would earn it many times over."


@test_case(success_message="public checks passed; the autograder runs more, on batches of its own")
def test_the_rewards_are_trl_s(kl_shaped_rewards, ppo_trainer, torch):
    scores, logprobs, ref, masks = _batch(torch)
    ours = kl_shaped_rewards(scores, logprobs, ref, masks, ppo_trainer.kl_ctl.value)
    trl, _, _ = ppo_trainer.compute_rewards(scores, logprobs, ref, masks)
    assert ((ours - trl) * masks).abs().max() < 1e-5, \
        f"On the summaries' tokens your rewards differ from TRL's compute_rewards by up to " \
        f"{((ours - trl) * masks).abs().max().item():.3g}."
