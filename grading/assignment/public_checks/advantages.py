"""Public checks of the exercise `advantages` (3.3), run in the student's kernel by `grader.check("advantages")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "advantages"
points = 2


@test_case()
def test_gae_runs_backwards(advantages_and_returns, torch):
    masks = torch.tensor([[0.0, 1, 1, 1, 1]])
    rewards = torch.tensor([[0.0, 0, 0, 0, 2.0]])  # the score, at the last token
    _, returns = advantages_and_returns(torch.zeros(1, 5), rewards, masks, 1.0, 1.0)
    assert not torch.allclose(returns[0, 1:], torch.tensor([0.0, 0, 0, 2.0])), \
        "GAE ran forwards: a token's advantage must gather the rewards that come after it (t+1, t+2, ...), so the " \
        "loop goes from the last position to the first. Run forwards, the first tokens never see the score."
    assert torch.allclose(returns[0, 1:], torch.full((4,), 2.0)), \
        "With gamma = lam = 1, no value and a score of 2 at the last token, every token's return is 2."


@test_case()
def test_the_returns_are_taken_before_whitening(advantages_and_returns, torch):
    masks = torch.tensor([[0.0, 1, 1, 1], [0.0, 1, 1, 0]])
    values = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    rewards = torch.tensor([[0.0, 0, 0, 5.0], [0.0, 0, 3.0, 0]])
    advantages, returns = advantages_and_returns(values, rewards, masks, 1.0, 1.0)
    assert torch.allclose(returns[0, 1:], torch.tensor([5.0, 5.0, 5.0])), \
        "The returns were not the advantages + values: take them from the advantages before whitening them. " \
        "Whitening rescales the advantages for the policy loss; the value head must learn the returns themselves."
    on = masks.bool()
    assert abs(advantages[on].mean()) < 1e-5 and abs(advantages[on].std() - 1) < 1e-4, \
        "The advantages must be whitened over the mask (masked_whiten): mean 0 and variance 1 over the tokens."


@test_case(success_message="public checks passed; the autograder runs more, on batches of its own")
def test_they_are_trl_s(advantages_and_returns, ppo_trainer, torch):
    g = torch.Generator().manual_seed(1)
    masks = torch.zeros(4, 7)
    for row, length in enumerate([5, 2, 1, 6]):
        masks[row, 1:1 + length] = 1
    values, rewards = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g) * 0.1
    advantages, returns = advantages_and_returns(values, rewards, masks, ppo_trainer.config.gamma,
                                                 ppo_trainer.config.lam)
    _, trl_advantages, trl_returns = ppo_trainer.compute_advantages(values, rewards, masks)
    assert ((returns - trl_returns) * masks).abs().max() < 1e-5, \
        "Your returns differ from TRL's compute_advantages on the summaries' tokens."
    assert ((advantages - trl_advantages) * masks).abs().max() < 1e-5, \
        "Your advantages differ from TRL's compute_advantages on the summaries' tokens."
