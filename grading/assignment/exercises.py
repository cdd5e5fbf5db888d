"""What the assignment asks: the functions of the lecture a student writes (its cells tagged `exercise`), the written
questions (its markdown cells tagged `answer`), their points, and which run checks rest on which exercise.

The lecture is the one source of their text and solutions (`lab3.solutions`); each exercise's public checks are
`public_checks/<name>.py` (otter-grader's test format), its hidden tests `grading.assignment.hidden`.
"""

from dataclasses import dataclass
from pathlib import Path

from grading.checks import CHECKS

PUBLIC_CHECKS = Path(__file__).resolve().parent / "public_checks"


@dataclass(frozen=True)
class Exercise:
    name: str  # as in `grader.check(name)` and the autograder's tests
    function: str  # the lecture's function the student writes
    section: str  # where the lecture explains it
    points: int = 2

    @property
    def checks(self) -> Path:
        """Its public checks, in otter's test-file format."""
        return PUBLIC_CHECKS / f"{self.name}.py"


EXERCISES = (
    Exercise("reference", "reference_logits", "2.3"),
    Exercise("reward", "rewards_by_label", "2.5"),
    Exercise("loop", "ppo_step", "3.2"),
    Exercise("kl_rewards", "kl_shaped_rewards", "3.3"),
    Exercise("advantages", "advantages_and_returns", "3.3"),
    Exercise("losses", "ppo_losses", "3.3"),
    Exercise("bootstrap", "paired_bootstrap_ci", "4.4"),
    Exercise("group_advantages", "group_advantages", "5.1"),
    Exercise("dpo", "dpo_loss", "5.2"),
)
BY_NAME = {e.name: e for e in EXERCISES}
# The written questions, in the lecture's order of its `answer` cells, graded by hand.
WRITTEN = (("returns", 2), ("side_by_side", 2))
# The run checks of the combined grade, with the exercises a failure of each is charged to (grading.checks.CHECKS).
RUN_CHECKS = {name: check.exercises for name, check in CHECKS.items() if check.exercises is not None}
