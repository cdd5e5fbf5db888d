"""The autograder's side of Lab 3 as an assignment, never handed out: the hidden checks of the exercises, and the run
checks, read from the run that the autograder's own execution of the student's notebook made.

The notebook's hidden tests call the exercise checks; `grading.assign` writes one test file per run check, which calls
`run_check`. A mistake is charged once, at its exercise: a run check that rests on an exercise whose checks fail is not
charged (PPO on a wrong reward cannot detoxify: that is the reward exercise's point, not the toxicity check's).
"""

import functools
import json
import os
from pathlib import Path

import torch

from grading.checks import PASS, grade_own_run
from grading.submission import RESULTS_NAME, Refused, read_results

RELEASED = Path(__file__).with_name("released.ipynb")  # the student's notebook as handed out (grading.assign)
# The run checks of the combined grade, with the exercises each rests on. The autograder ran the cells and printed the
# numbers itself: `cells` and `printed` are not graded here.
RUN_CHECKS = {"notebook": (), "results": (), "config": (), "steps": ("loop",), "summaries": (), "rescore": (),
              "toxicity": ("reward", "loop", "bootstrap"), "kl": ("reward", "loop"), "rouge": ("reward", "loop"),
              "reward": ("reward", "loop")}


def reward(rewards_by_label) -> None:
    """`rewards_by_label` gives the score of the label asked for, wherever the pipeline lists it, as a 0-d tensor."""
    outputs = [[{"label": "nothate", "score": 3.0}, {"label": "hate", "score": -2.0}],
               [{"label": "hate", "score": 0.75}, {"label": "nothate", "score": 0.25}]]
    nothate = rewards_by_label(outputs, "nothate")
    assert all(isinstance(r, torch.Tensor) and r.dim() == 0 for r in nothate), "each reward must be a 0-d tensor"
    assert [float(r) for r in nothate] == [3.0, 0.25], "the nothate rewards are not the nothate scores"
    assert [float(r) for r in rewards_by_label(outputs, "hate")] == [-2.0, 0.75], "`label` is not the one taken"


def reference(ppo_model, check, decoder_input_ids, reference_logits) -> None:
    """`reference_logits` are those of TRL's reference for a PEFT policy: the policy with its adapter disabled."""
    with torch.no_grad(), ppo_model.pretrained_model.disable_adapter():
        own = ppo_model(**check, decoder_input_ids=decoder_input_ids)[0]
    assert isinstance(reference_logits, torch.Tensor) and reference_logits.shape == own.shape
    assert torch.allclose(own, reference_logits, atol=1e-5), "the reference is not the Lab 2 model"


def loop(ppo_history, cfg, reward_function, reward_label, dataset) -> None:
    """Each PPO step ran once, on the rewards `reward_function` gave for prompt + summary, from the reference."""
    assert [r["step"] for r in ppo_history] == list(range(cfg.max_ppo_steps)), "not every step ran, once"
    for record in ppo_history:
        own = [float(r) for r in reward_function(record["pipeline_scores"], reward_label)]
        assert len(own) == len(record["texts"]) == cfg.batch_size
        assert max(abs(a - b) for a, b in zip(own, record["rewards"])) < 1e-5, "PPO stepped on other rewards"
    assert abs(ppo_history[0]["objective/kl"]) < 1e-3, "the first step did not start at the reference"
    queries = set(dataset["train"]["query"])
    assert all(any(t.startswith(q + " ") for q in queries) for t in ppo_history[0]["texts"]), \
        "the texts scored are not prompt + summary"


def bootstrap(paired_bootstrap_ci) -> None:
    """The interval resamples pairs (narrow on paired data), follows its seed, and widens with its level."""
    import numpy as np
    rng = np.random.default_rng(2)
    before = rng.uniform(0, 1, 100)
    after = np.clip(before - rng.uniform(0, 0.2, 100), 0, 1)
    change = after.mean() - before.mean()
    wide = paired_bootstrap_ci(before, after, n_resamples=3000, seed=5, level=0.99)
    narrow = paired_bootstrap_ci(before, after, n_resamples=3000, seed=5, level=0.8)
    assert wide == paired_bootstrap_ci(before, after, n_resamples=3000, seed=5, level=0.99), "not seeded"
    assert wide[0] < narrow[0] < change < narrow[1] < wide[1], "the levels' intervals are not nested"
    assert wide[1] - wide[0] < 0.05, "too wide for paired data: the pairs were not resampled together"


EXERCISES = {"reward": (reward, ("rewards_by_label",)),
             "reference": (reference, ("ppo_model", "check", "decoder_input_ids", "reference_logits")),
             "loop": (loop, ("ppo_history", "cfg", "reward_function", "reward_label", "dataset")),
             "bootstrap": (bootstrap, ("paired_bootstrap_ci",))}


_FAILS: dict[str, bool] = {}  # one submission's notebook runs in a kernel: its exercises are checked once


def fails(exercise: str, env: dict) -> bool:
    """Whether `exercise`'s hidden checks fail on the student's variables `env` (checked once per kernel)."""
    if exercise not in _FAILS:
        check, names = EXERCISES[exercise]
        try:
            check(*(env[name] for name in names))
            _FAILS[exercise] = False
        except Exception:  # a missing answer, a wrong one, or one that raises: all fail
            _FAILS[exercise] = True
    return _FAILS[exercise]


@functools.cache
def own_run_report(folder: str, notebook: str) -> dict[str, tuple[str, str]]:
    """The grader's checks of the run in `folder`, made by executing `notebook` (cached: one grading per run), against
    the preset's settings with what the course assigned (LAB3_ASSIGNED, JSON, as for `python -m grading`)."""
    assigned = json.loads(os.environ["LAB3_ASSIGNED"]) if os.environ.get("LAB3_ASSIGNED") else None
    return grade_own_run(Path(folder), Path(notebook), RELEASED, assigned)


def run_check(name: str, env: dict) -> None:
    """Raise unless run check `name` passed on the run this execution made, or an exercise it rests on failed."""
    if any(fails(exercise, env) for exercise in RUN_CHECKS[name]):
        return  # charged at the exercise
    here = Path.cwd().resolve()
    folder = (here / str(env.get("output_dir", "outputs"))).resolve()
    assert folder.is_relative_to(here), "output_dir must be a folder beside the notebook"
    try:
        recorded = read_results(folder / RESULTS_NAME)
    except Refused as e:
        raise AssertionError(f"this execution's run wrote no valid {RESULTS_NAME}: {e}") from None
    history = env.get("ppo_history") or []
    assert [s["texts"] for s in recorded["ppo_steps"]] == [s["texts"] for s in history], \
        f"{RESULTS_NAME} is not the run this execution made"
    notebooks = sorted(here.glob("*.ipynb"))
    assert len(notebooks) == 1, "the submission must be one notebook"
    status, reason = own_run_report(str(folder), str(notebooks[0]))[name]
    assert status == PASS, f"{name}: {reason}"
