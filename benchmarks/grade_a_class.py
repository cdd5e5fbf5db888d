"""Grade a class end to end, and time it, on this machine: the assignment's autograder on honest students (the lecture's
solutions, each student's run at their own seed), then the strict grader on the runs the autograder kept, two copies
among them; or the autograder on a class whose every student planted one of the usual wrong answers.

    python -m benchmarks.grade_a_class honest 30 WORK       # the tiny preset as it is: about 3 min a student
    python -m benchmarks.grade_a_class mistakes WORK [NAME...]  # each wrong answer of tests/test_assignment.py (or
                                                                 # those whose name starts with a NAME), short runs
    python -m benchmarks.grade_a_class attacks WORK         # the attacks of a hostile student on both paths, short runs

It prints each grader's time and the class's grades; WORK keeps the class, the grades and the runs.
"""

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lab3 import NOTEBOOK, ROOT
from tests.conftest import SHORT
from tests.test_assignment import ATTACKS, SOLUTIONS, WRONG, submission, wrong
from tests.test_grader import _untrained


def notebooks(dist: Path) -> list[str]:
    """The grader's options for the assignment's notebooks handed out in `dist`."""
    return ["--hand-in", "notebook", "--handed-out", str(dist / "student")]


def timed(command: list[str]) -> float:
    """Run `command` from the checkout; its wall time in seconds."""
    started = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.time() - started


def assign(work: Path, course: dict) -> tuple[Path, Path]:
    """Build the assignment into WORK/dist and write the course file; (the dist folder, the course file)."""
    dist, path = work / "dist", work / "course.json"
    subprocess.run([sys.executable, "-m", "grading.assignment.build", str(dist)], cwd=ROOT, check=True)
    path.write_text(json.dumps(course))
    return dist, path


def write_class(dist: Path, folder: Path, notebooks: dict[str, dict]) -> None:
    for name, nb in notebooks.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / NOTEBOOK).write_text(json.dumps(nb))


def rows(path: Path) -> dict[str, dict]:
    return {r["submission"]: r for r in csv.DictReader(open(path))}


def honest(students: int, work: Path) -> None:
    dist, course = assign(work, {"seed_salt": "a secret of the course"})
    write_class(dist, work / "class", {f"s{i:02d}": submission(dist, SOLUTIONS) for i in range(1, students + 1)})
    autograder = timed([sys.executable, "-m", "grading", str(work / "class"), *notebooks(dist),
                        "--course", str(course), "--csv", str(work / "autograde.csv"), "--keep", str(work / "runs")])
    for original in ("s01", "s02"):  # two students hand in a classmate's files
        shutil.copytree(work / "runs" / original, work / "runs" / f"copy-of-{original}", dirs_exist_ok=True)
    strict = timed([sys.executable, "-m", "grading", str(work / "runs"), "--course", str(course), "--released",
                    str(dist / "student" / NOTEBOOK), "--csv", str(work / "strict.csv")])
    graded = rows(work / "autograde.csv")
    print(f"autograder: {len(graded)} students in {autograder / 60:.1f} min ({autograder / len(graded):.0f} s each); "
          f"scores: {sorted({r['score'] + ' of ' + r['possible'] for r in graded.values()})}")
    checked = rows(work / "strict.csv")
    print(f"strict grader: {len(checked)} runs in {strict / 60:.1f} min ({strict / len(checked):.0f} s each); "
          f"{sum(r['passed'] == 'true' for r in checked.values())} passed every check")
    for name, row in checked.items():
        if row["same_work_as"] or row["passed"] != "true":
            print(f"  {name}: passed {row['passed']}; shares work with: {row['same_work_as'] or 'none'}; "
                  f"{row['reasons'][:300]}")


def mistakes(work: Path, only: list[str]) -> None:
    dist, course = assign(work, {"assigned": SHORT})  # every student at one seed: only the planted mistake differs
    notebooks = {"solutions": submission(dist, SOLUTIONS),
                 "reward of hate": submission(dist, dict(SOLUTIONS, reward=wrong("reward", 1).replace(
                     '"nothate"', '"hate"')))}
    for exercise, answers in WRONG.items():
        for index, (what, *_) in enumerate(answers):
            notebooks[f"{exercise}, {what}"] = submission(dist, dict(SOLUTIONS, **{exercise: wrong(exercise, index)}))
    write_class(dist, work / "class", {k: v for k, v in notebooks.items() if not only or k.startswith(tuple(only))})
    seconds = timed([sys.executable, "-m", "grading", str(work / "class"), *notebooks(dist),
                     "--course", str(course), "--csv", str(work / "autograde.csv")])
    graded = rows(work / "autograde.csv")
    print(f"autograder: {len(graded)} students, short runs, in {seconds / 60:.1f} min")
    for name, row in graded.items():
        print(f"  {name}: {row['score']} of {row['possible']}; lost: {row['lost'][:400] or 'nothing'}")


def attacks(work: Path) -> None:
    """The autograder on the stubs, on the stubs under every attack of an answer cell, on a cell that kills its kernel
    and on the solutions; then the strict grader on the solutions' run and on its forgery with an untrained adapter."""
    dist, course = assign(work, {"assigned": SHORT, "seed_salt": "a secret of the course"})
    grades = work / "autograde.csv"
    write_class(dist, work / "class", {
        "stubs": submission(dist, {}), "alice": submission(dist, SOLUTIONS),
        "mallory": submission(dist, {}, ATTACKS.format(csv=str(grades), root=str(ROOT))),
        "dan": submission(dist, {"reward": SOLUTIONS["reward"]}, "import os\nos._exit(1)\n")})
    seconds = timed([sys.executable, "-m", "grading", str(work / "class"), *notebooks(dist),
                     "--course", str(course), "--csv", str(grades), "--keep", str(work / "runs")])
    written = grades.read_text()
    time.sleep(10)  # mallory's detached process would have written by now
    print(f"autograder: 4 students, short runs, in {seconds:.0f} s; the CSV 10 s later is "
          f"{'unchanged' if grades.read_text() == written else 'CHANGED'}")
    for name, row in rows(grades).items():
        print(f"  {name}: {row['score']} of {row['possible']}; lost: {row['lost'][:600] or 'nothing'}")
    run = work / "honest"  # the run under the names the fixtures give it
    run.mkdir(exist_ok=True)
    for name in ("results.json", "ppo_adapter.safetensors"):
        shutil.copy(work / "runs" / "alice" / name, run / name)
    shutil.copy(work / "runs" / "alice" / NOTEBOOK, run / "lab.ipynb")
    _untrained(run, work / "forged" / "alice")  # alice's seed is the course's for her name
    shutil.copytree(work / "runs" / "alice", work / "honest-class" / "alice", dirs_exist_ok=True)
    for klass in ("honest-class", "forged"):
        subprocess.run([sys.executable, "-m", "grading", str(work / klass), "--course", str(course), "--released",
                        str(dist / "student" / NOTEBOOK), "--csv", str(work / f"{klass}.csv")], cwd=ROOT, check=True)
        for name, row in rows(work / f"{klass}.csv").items():
            print(f"  strict grader, {klass}/{name}: passed {row['passed']}; "
                  f"{row['reasons'][:1500] or 'every check passed'}")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "honest":
        honest(int(rest[0]), Path(rest[1]).resolve())
    elif mode == "attacks":
        attacks(Path(rest[0]).resolve())
    else:
        mistakes(Path(rest[0]).resolve(), rest[1:])
