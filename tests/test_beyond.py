"""What the methods after PPO rest on (lab3.beyond): pairs, per-token log-probabilities under the policy and the
reference, and TRL's DPO loss beside the lecture's; and a course that leaves their exercises out."""

import json
import math

import nbformat
import pytest
import torch

from grading.assignment import build
from grading.assignment.autograde import combine
from grading.course import CourseError, course
from lab3 import NOTEBOOK, beyond
from lab3.solutions import solution
from tests.conftest import ROOT, policy


def test_a_pair_is_each_group_s_best_and_worst_and_a_tie_makes_none():
    rewards = torch.tensor([[1.0, 3.0, 2.0], [0.5, 0.5, 0.6], [0.0, -2.0, 1.0]])
    assert beyond.preference_pairs(rewards, min_margin=0.5) == [(0, 1, 0), (2, 2, 1)]
    assert beyond.preference_pairs(rewards, min_margin=0.05) == [(0, 1, 0), (1, 2, 0), (2, 2, 1)]


def test_a_summary_s_log_probabilities_are_the_model_s_own_loss_and_the_reference_is_the_adapter_off(
        tiny, tiny_dataset, tokenizer):
    model = policy(tiny).pretrained_model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    ids = list(tiny_dataset["test"]["input_ids"][:2])
    summaries = ["#Person1# and #Person2# talk about the weather.", "They go home."]
    with torch.no_grad():
        logprobs, mask = beyond.summary_logprobs(model, tokenizer, ids, summaries)
        reference = beyond.reference_logprobs(model, tokenizer, ids, summaries)
        for row in range(2):
            labels = tokenizer(text_target=summaries[row], return_tensors="pt").input_ids
            loss = model(input_ids=ids[row][None], labels=labels).loss
            assert mask[row].sum() == labels.shape[1]  # every token, the end-of-sequence one included
            assert logprobs[row].sum() / mask[row].sum() == pytest.approx(-loss.item(), abs=1e-5)
            with model.disable_adapter():
                base = model(input_ids=ids[row][None], labels=labels).loss
            assert reference[row].sum() / mask[row].sum() == pytest.approx(-base.item(), abs=1e-5)
    assert (logprobs - reference).abs().max() > 1e-3  # the adapter moved the policy, not the reference


def test_trl_s_dpo_loss_imports_under_the_pinned_transformers_and_is_the_lecture_s():
    g = torch.Generator().manual_seed(0)
    logps = [-torch.rand(6, generator=g) * 20 for _ in range(4)]
    for beta in (0.1, 2.0):
        for theirs, mine in zip(beyond.trl_dpo_loss(beta)(*logps), solution("dpo_loss")(*logps, beta=beta)):
            assert torch.allclose(theirs, mine, atol=1e-6)


def test_a_course_leaves_exercises_out_and_the_student_keeps_the_lecture_s_code_for_them(tmp_path):
    path = tmp_path / "course.json"
    path.write_text(json.dumps({"leave_out": ["group_advantages", "dpo"]}))
    the_course = course(path)
    assert [e.name for e in the_course.exercises][-1] == "bootstrap"
    nb = build.student_notebook(nbformat.read(ROOT / NOTEBOOK, as_version=4), the_course.exercises)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'grader.check("dpo")' not in code and 'grader.check("bootstrap")' in code
    assert "advantages = rewards - rewards.mean(dim=1, keepdim=True)" in code  # the lecture's own, not a stub
    assert 'NotImplementedError("Exercise bootstrap' in code
    assert sorted(nb.metadata["otter"]["tests"]) == sorted(e.name for e in the_course.exercises)
    verdicts = {e.name: (True, "") for e in the_course.exercises}
    tests = combine(verdicts, {}, "", the_course.points, the_course.exercises)["tests"]
    assert "dpo" not in {t["name"] for t in tests} and "bootstrap" in {t["name"] for t in tests}
    for leave_out, why in ((["dpo", "ppo"], "ppo, which is no exercise"),
                           (["reward"], "reward, on which the run's checks rest")):
        path.write_text(json.dumps({"leave_out": leave_out}))
        with pytest.raises(CourseError, match=why):
            course(path)


def test_the_group_loss_is_the_clipped_ratio_of_each_summary_s_advantage_plus_a_kl_that_is_never_negative():
    from beyond_ppo import group_loss
    masks = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    same = torch.full((2, 3), -1.0)
    advantages = torch.tensor([1.0, 2.0])
    # At the policy that sampled them and at the reference: minus the advantages' mean over the summaries' tokens.
    assert group_loss(same, same, same, advantages, masks, kl_coef=0.5).item() == pytest.approx(-(1 + 1 + 2) / 3)
    # A ratio of 1.5 gains nothing past 1 + 0.2 for a positive advantage; the KL is then > 0, whichever way it moved.
    same = same[:1]
    moved = same + torch.log(torch.tensor(1.5))
    clipped = group_loss(moved, same, moved, advantages[:1], masks[:1], kl_coef=0.0)
    assert clipped.item() == pytest.approx(-1.2)
    kl = group_loss(moved, moved, same, torch.zeros(1), masks[:1], kl_coef=1.0).item()
    assert kl == pytest.approx(1 / 1.5 - math.log(1 / 1.5) - 1) and kl > 0


def test_without_pairs_there_are_no_log_probabilities_to_compute():
    assert [t.numel() for t in beyond.pair_logprobs(None, None, [], [["a", "a"]], [])] == [0, 0, 0, 0]
