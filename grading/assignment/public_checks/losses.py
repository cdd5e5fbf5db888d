"""Public checks of the exercise `losses` (3.3), run in the student's kernel by `grader.check("losses")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "losses"
points = 2


def _losses(ppo_losses, torch, ratio, advantage, value=0.0, old_value=0.0, ret=0.0):
    """The losses of one token whose probability ratio, advantage, value, old value and return are given."""
    one = torch.ones(1, 1)
    return ppo_losses(torch.zeros(1, 1), torch.log(one * ratio), one * advantage, one * old_value, one * value,
                      one * ret, one, 0.2, 0.2, 0.1)


@test_case()
def test_the_update_gains_nothing_beyond_the_clip_range(ppo_losses, torch):
    policy, _ = _losses(ppo_losses, torch, ratio=1.5, advantage=1.0)
    assert abs(policy.item() + 1.2) < 1e-6, \
        "With an advantage of 1 and a ratio of 1.5 (past 1 + cliprange = 1.2), the policy loss must be -1.2: PPO " \
        "takes the larger (more pessimistic) of -advantage * ratio and -advantage * clipped ratio, so a token gains " \
        "nothing for leaving [1 - cliprange, 1 + cliprange]. Taking the smaller lets each update run away."
    policy, _ = _losses(ppo_losses, torch, ratio=0.5, advantage=1.0)
    assert abs(policy.item() + 0.5) < 1e-6, \
        "With an advantage of 1 and a ratio of 0.5, the loss must be -0.5: clipping only ever holds back a gain."


@test_case()
def test_the_value_loss_is_clipped_too(ppo_losses, torch):
    _, value = _losses(ppo_losses, torch, ratio=1.0, advantage=0.0, value=1.0, old_value=0.0, ret=1.0)
    assert abs(value.item() - 0.1 * 0.5 * 0.8 ** 2) < 1e-6, \
        "A value that moved from 0 to 1 toward a return of 1 is clipped to 0.2 (cliprange_value): the value loss " \
        "takes the larger of (value - return)**2 and (clipped value - return)**2, halves it, averages it over the " \
        "mask and weighs it by vf_coef (here 0.1 * 0.5 * 0.8**2)."


@test_case(success_message="public checks passed; the autograder runs more, on batches of its own")
def test_they_are_trl_s(ppo_losses, ppo_trainer, torch):
    g = torch.Generator().manual_seed(2)
    masks = torch.zeros(4, 6)
    for row, length in enumerate([4, 1, 5, 2]):
        masks[row, 1:1 + length] = 1
    old, new = -torch.rand(4, 6, generator=g) * 2, -torch.rand(4, 6, generator=g) * 2
    advantages, values, vpreds, returns = (torch.randn(4, 6, generator=g) for _ in range(4))
    c = ppo_trainer.config
    policy, value = ppo_losses(old, new, advantages, values, vpreds, returns, masks, c.cliprange, c.cliprange_value,
                               c.vf_coef)
    trl_policy, trl_value, _ = ppo_trainer.loss(old, values, torch.randn(4, 6, 5, generator=g), vpreds, new, masks,
                                                advantages, returns)
    assert abs(policy.item() - trl_policy.item()) < 1e-5, \
        f"Your policy loss {policy.item():.5f} is not TRL's {trl_policy.item():.5f} on this mini-batch."
    assert abs(value.item() - trl_value.item()) < 1e-5, \
        f"Your value loss {value.item():.5f} is not TRL's {trl_value.item():.5f} (vf_coef times the clipped value " \
        "loss)."
