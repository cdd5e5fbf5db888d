"""Public checks of the exercise `dpo` (5.2), run in the student's kernel by `grader.check("dpo")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "dpo"
points = 2


@test_case()
def test_at_the_reference_the_loss_is_log_2(dpo_loss, torch):
    logps = torch.tensor([-3.0, -7.5])
    losses, chosen, rejected = dpo_loss(logps, logps - 1, logps, logps - 1, beta=0.1)
    assert torch.allclose(losses, torch.full((2,), 0.6931), atol=1e-4), \
        "Where the policy gives each summary the reference's log-probability, the loss is -log sigmoid(0) = " \
        "log 2 = 0.6931: the log-ratios are taken against the reference, policy minus reference."
    assert chosen.abs().max() < 1e-6 and rejected.abs().max() < 1e-6, \
        "At the reference the implicit rewards, beta * (policy - reference), are 0."


@test_case()
def test_raising_the_chosen_summary_lowers_the_loss(dpo_loss, torch):
    zero = torch.zeros(1)
    losses, chosen, rejected = dpo_loss(zero + 2.0, zero, zero, zero, beta=0.5)
    assert losses.item() < 0.6931, \
        "The policy raised the chosen summary's log-probability by 2 nats over the reference's: the loss must fall " \
        "below log 2. Are the chosen and rejected log-ratios swapped?"
    assert abs(losses.item() - 0.3133) < 1e-4, \
        "With beta = 0.5 and a margin of 2 nats the loss is -log sigmoid(0.5 * 2) = 0.3133: beta multiplies the " \
        "log-ratios once."
    assert abs(chosen.item() - 1.0) < 1e-6 and abs(rejected.item()) < 1e-6, \
        "The chosen summary's implicit reward is beta * (policy - reference) = 0.5 * 2 = 1."


@test_case(success_message="public checks passed; the autograder runs more, on pairs of its own")
def test_they_are_trl_s(dpo_loss, lab, torch):
    g = torch.Generator().manual_seed(3)
    logps = [-torch.rand(5, generator=g) * 20 for _ in range(4)]
    mine, theirs = dpo_loss(*logps, beta=0.3), lab.trl_dpo_loss(beta=0.3)(*logps)
    for what, a, b in zip(("losses", "chosen rewards", "rejected rewards"), mine, theirs):
        assert torch.allclose(a, b, atol=1e-5), f"Your {what} are not TRL's DPOTrainer.dpo_loss's on five pairs."
