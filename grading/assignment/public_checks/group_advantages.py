"""Public checks of the exercise `group_advantages` (5.1), run in the student's kernel by
`grader.check("group_advantages")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "group_advantages"
points = 2


@test_case()
def test_each_prompt_is_its_own_baseline(group_advantages, torch):
    rewards = torch.tensor([[1.0, 2.0, 3.0], [10.0, 10.0, 13.0]])
    got = group_advantages(rewards, scale=False)
    assert torch.allclose(got, torch.tensor([[-1.0, 0.0, 1.0], [-1.0, -1.0, 2.0]])), \
        "Without scale, each advantage is its reward minus the mean of its own group (its row): the mean of the " \
        "whole batch would make every summary of an easy prompt look good and every one of a hard prompt look bad."


@test_case()
def test_a_group_of_equal_rewards_has_no_advantage(group_advantages, torch):
    got = group_advantages(torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.0, 1.0, 0.0, 1.0]]))
    assert torch.isfinite(got).all() and got[0].abs().max() < 1e-6, \
        "Four equal rewards must give advantages of 0, not nan: add eps to the group's std before dividing " \
        "(0 / 0 is nan, and one nan spoils the whole update)."


@test_case(success_message="public checks passed; the autograder runs more, on groups of its own")
def test_scaled_by_the_group_s_own_std(group_advantages, torch):
    rewards = torch.tensor([[0.0, 1.0, 2.0, 5.0], [1.0, 1.0, 1.0, 3.0]])
    got = group_advantages(rewards, eps=0.5)
    for row, want in enumerate([[-2.0, -1.0, 0.0, 3.0], [-0.5, -0.5, -0.5, 1.5]]):
        spread = rewards[row].std().item() + 0.5
        assert torch.allclose(got[row], torch.tensor(want) / spread, atol=1e-5), \
            f"Group {row}'s advantages must be (reward - its mean) / (its std + eps), with torch.std (the " \
            "unbiased one, as TRL's GRPOTrainer), the eps given, and each group's own std, not the batch's."
