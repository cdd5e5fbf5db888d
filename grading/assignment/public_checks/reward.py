"""Public checks of the exercise `reward` (2.5), run in the student's kernel by `grader.check("reward")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "reward"
points = 2


@test_case()
def test_a_hateful_text_gets_its_nothate_score(rewards_by_label):
    hateful = [[{"label": "hate", "score": 2.5}, {"label": "nothate", "score": -1.5}]]
    rewards = [float(r) for r in rewards_by_label(hateful, "nothate")]
    assert rewards == [-1.5], \
        "The reward of a hateful text must be low. The pipeline lists the labels by score, highest first, so an " \
        "entry taken by its position is the winning label's score; take the entry whose label is `label`."


@test_case()
def test_the_label_asked_for(rewards_by_label):
    outputs = [[{"label": "nothate", "score": 3.0}, {"label": "hate", "score": -2.0}]]
    assert [float(r) for r in rewards_by_label(outputs, "hate")] == [-2.0], \
        "Asked for the label 'hate', the function did not return its score: take the entry whose label is the " \
        "`label` argument (the reward experiment of 2.5 asks for 'hate'), not a label written into the function."


@test_case(success_message="public checks passed; the autograder runs more")
def test_one_tensor_per_text(rewards_by_label, torch):
    outputs = [[{"label": "nothate", "score": 0.5}, {"label": "hate", "score": -0.5}]] * 3
    rewards = rewards_by_label(outputs, "nothate")
    assert isinstance(rewards, list) and len(rewards) == 3, "return a list: one reward per text"
    assert all(isinstance(r, torch.Tensor) and r.numel() == 1 for r in rewards), \
        "PPOTrainer.step takes a list of tensors, one number each: make each reward a torch.tensor, not a float."
