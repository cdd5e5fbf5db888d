"""What the sandbox costs a class, measured side by side: the autograder of another commit (a git worktree of it) and
this checkout's, one after the other on the same honest students (the lecture's solutions, each at their own seed),
and whether their runs came out the same.

    python -m benchmarks.sandbox_cost COMMIT STUDENTS WORK    # about 7 min a student and commit on a 2-core CPU

It prints each autograder's time a student, the ratio, each one's grades and whether every kept run (results and
adapter) is the other's, but for its wall times.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.grade_a_class import SOLUTIONS, assign, rows, submission, write_class
from lab3 import ROOT


def grade(checkout: Path, dist: Path, klass: Path, course: Path, out: Path) -> float:
    """The autograder of `checkout` on `klass`: its wall time in seconds; its CSV and kept runs in `out`."""
    started = time.time()
    common = ["--course", str(course), "--csv", str(out / "grades.csv"), "--keep", str(out / "runs")]
    if (checkout / "grading" / "assignment").is_dir():  # one grader
        command = ["-m", "grading", str(klass), "--hand-in", "notebook", "--handed-out", str(dist / "student")]
    else:  # the assignment's own autograder, before
        command = ["-m", "assignment.autograde", str(dist / "student"), str(klass)]
    subprocess.run([sys.executable, *command, *common], cwd=checkout, check=True, capture_output=True)
    return time.time() - started


def same_run(a: Path, b: Path) -> bool:
    """Whether two kept runs are the same run: the adapter's bytes, and the results but for their wall times."""
    def results(folder: Path) -> dict:
        return {k: v for k, v in json.loads((folder / "results.json").read_text()).items() if k != "timings_s"}
    return (a / "ppo_adapter.safetensors").read_bytes() == (b / "ppo_adapter.safetensors").read_bytes() and \
        results(a) == results(b)


def main(commit: str, students: int, work: Path) -> None:
    old = work / "old-checkout"
    if not old.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(old), commit], cwd=ROOT, check=True)
    dist, course = assign(work, {"seed_salt": "a secret of the course"})
    write_class(dist, work / "class", {f"s{i:02d}": submission(dist, SOLUTIONS) for i in range(1, students + 1)})
    seconds = {}
    for name, checkout in ((commit, old), ("this checkout", ROOT)):
        (work / name).mkdir(exist_ok=True)
        seconds[name] = grade(checkout, dist, work / "class", course, work / name) / students
        graded = rows(work / name / "grades.csv")
        print(f"{name}: {seconds[name]:.0f} s a student; scores "
              f"{sorted({r['score'] + ' of ' + r['possible'] for r in graded.values()})}", flush=True)
    print(f"this checkout / {commit}: {seconds['this checkout'] / seconds[commit]:.3f}")
    for student in sorted(p.name for p in (work / "class").iterdir()):
        same = same_run(work / commit / "runs" / student, work / "this checkout" / "runs" / student)
        print(f"  {student}: results (but for their wall times) and adapter {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]).resolve())
