"""What a course asks of a run, from the grader's side only: the preset, the settings it assigned, each student's seed,
what a passing run shows and the points of each check. Nothing here is read from a submission.

A course file (`--course course.json`) is a JSON object with any of:
    {"hand_in": "run", "preset": "tiny", "assigned": {"max_ppo_steps": 20}, "seed_salt": "a secret of the course",
     "forgive_summaries": 0, "points": {"summaries": 4}, "leave_out": ["group_advantages", "dpo"]}
`hand_in` says what students hand in, and so how Gradescope's autograder grades it: "run" (the executed notebook with
its results and adapter, graded by the strict grader) or "notebook" (the assignment's notebook alone, executed and
graded by `grading.assignment.autograde`).
`leave_out` names exercises of the assignment the course does not assign: its students' notebook keeps the lecture's
code for them, and they are neither checked nor graded.
With a `seed_salt`, each student's run has a seed of its own, derived from the salt and the student's name (the
submission's folder, or Gradescope's student id): two honest runs differ, and a copied run shows.
"""

import dataclasses
import hashlib
import hmac
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from grading.assignment.exercises import EXERCISES, RUN_CHECKS, Exercise
from grading.checks import POINTS
from lab3.errors import LabError
from lab3.settings import PRESETS, Settings, checked_overrides, located_sources, preset

HAND_IN = ("run", "notebook")  # what students hand in: a run, or the assignment's notebook
# What a passing run shows, by preset. `toxicity`: "drop" (the 95% CI of the change lies below 0) or "no rise" (it does
# not lie above 0: the lecture's 10 PPO steps on barely toxic DialogSum move mean toxicity within its noise).
PASS_CRITERIA = {
    "tiny": dict(toxicity="drop", max_kl=25.0, max_rouge_l_drop=0.20),
    "full": dict(toxicity="no rise", max_kl=25.0, max_rouge_l_drop=0.20),
}
# How many of a run's regenerated summaries may differ from its recorded ones and the run still be credited for them.
# 0: regenerating two seeds' runs (600 summaries before and after PPO) with torch's default, AVX2 and AVX512 kernels
# at 1, 2 and 4 threads changed none (benchmarks/summary_drift.py).
FORGIVE_SUMMARIES = 0


@dataclass(frozen=True)
class Course:
    """The course's side of grading: the preset assigned, its settings changed as `assigned`, per-student seeds when
    `seed_salt` is set."""

    hand_in: str = "run"
    preset: str = "tiny"
    assigned: dict = field(default_factory=dict)
    seed_salt: str | None = None
    forgive_summaries: int = FORGIVE_SUMMARIES
    points: dict = field(default_factory=lambda: dict(POINTS))
    leave_out: tuple = ()

    @property
    def exercises(self) -> tuple[Exercise, ...]:
        """The assignment's exercises the course assigns."""
        return tuple(e for e in EXERCISES if e.name not in self.leave_out)

    @property
    def criteria(self) -> dict:
        return PASS_CRITERIA[self.preset]

    def seed(self, student: str) -> int | None:
        """The seed `student`'s run must use (None: the preset's, or the one assigned)."""
        return None if self.seed_salt is None else student_seed(self.seed_salt, student)

    def settings(self, student: str = "") -> Settings:
        """The settings `student`'s run must have had: the preset's, with what the course assigned and the student's
        seed, checked as the lab checks them, its folders the grader's own."""
        seed = self.seed(student)
        changes = checked_overrides(dict(self.assigned, **({} if seed is None else {"seed": seed})),
                                    "the course's assigned settings")
        return dataclasses.replace(preset(self.preset), **located_sources(changes))


def student_seed(salt: str, student: str) -> int:
    """A student's seed: an HMAC of their name under the course's secret salt, in NumPy's seed range."""
    digest = hmac.new(salt.encode(), student.strip().lower().encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big")


def student_of(submission: Path, metadata: Path | None = None) -> str:
    """Who handed `submission` in: Gradescope's first submitter (its submission_metadata.json), else the submission's
    folder (a notebook's own folder, when a notebook is named)."""
    if metadata is not None and metadata.is_file():
        try:
            users = json.loads(metadata.read_text()).get("users") or [{}]
            return str(users[0].get("email") or users[0].get("sid") or users[0].get("id") or submission.name)
        except (ValueError, AttributeError, TypeError):
            pass
    return submission.name if submission.is_dir() else submission.parent.name


class CourseError(ValueError):
    """A course file or option the grader cannot use; the message says why, in one sentence."""


def course(path: Path | None = None, preset: str | None = None, assigned: dict | None = None,
           hand_in: str | None = None) -> Course:
    """The course of a course file, with `--preset`, `--assigned` and `--hand-in` given on the command line winning
    over it."""
    values = {}
    if path is not None:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise CourseError(f"the course file {path} cannot be read as JSON ({e})") from None
        if not isinstance(values, dict):
            raise CourseError(f"the course file {path} must hold a JSON object")
    given = {"preset": preset, "assigned": assigned, "hand_in": hand_in}
    values.update({k: v for k, v in given.items() if v is not None})
    unknown = sorted(set(values) - {f.name for f in fields(Course)})
    if unknown:
        raise CourseError(f"the course names {', '.join(unknown)}, which the grader does not know")
    if values.get("hand_in", "run") not in HAND_IN:
        raise CourseError(f"the course's hand_in {values['hand_in']!r} is none of {', '.join(HAND_IN)}")
    if values.get("preset", "tiny") not in PRESETS:
        raise CourseError(f"the course's preset {values['preset']!r} is none of {', '.join(sorted(PRESETS))}")
    if "points" in values:
        values["points"] = dict(POINTS, **values["points"])
    values["leave_out"] = tuple(values.get("leave_out", ()))
    unknown = sorted(set(values["leave_out"]) - {e.name for e in EXERCISES})
    rested_on = sorted(set(values["leave_out"]) & {e for rests_on in RUN_CHECKS.values() for e in rests_on})
    if unknown or rested_on:
        raise CourseError(f"the course leaves out {', '.join(unknown or rested_on)}, "
                          + ("which is no exercise" if unknown else "on which the run's checks rest"))
    the_course = Course(**values)
    try:
        the_course.settings()
    except LabError as e:
        raise CourseError(f"the course's settings cannot be run: {e}") from None
    return the_course
