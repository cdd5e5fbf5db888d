"""Grade Lab 3 submissions: one, several, or a class folder with one folder per student.

    python -m grading outputs/lab3_rlhf_detox.ipynb            # one run: PASS/FAIL lines; exit 1 if one fails
    python -m grading submissions/ --course course.json --csv grades.csv   # a class: a table, a summary, a CSV
    python -m grading SUBMISSION --gradescope results.json     # Gradescope's autograder results
    python -m grading submissions/ --hand-in notebook --csv grades.csv    # the assignment's notebooks (make assign)

What students hand in is the course's `hand_in` (or `--hand-in`): a run, or the assignment's notebook alone, which is
graded outside the student's kernel (`grading.assignment.autograde`). A run is the executed notebook with the
results.json and ppo_adapter.safetensors the lab wrote beside it; its student is its folder's name (or --student). What
a run must be (preset, settings, each student's seed) is the course's: `--course` (grading/course.py), `--preset`,
`--assigned`; never the submission's. Each submission is graded in a process of its own, within a time and a memory
limit: a submission that crashes, hangs or floods the grader is its own row ("could not be graded: ..."), and the others
are graded. The CSV is written whole after each row; its `same_work_as` column names the submissions that share an
adapter, PPO texts or summaries.
"""

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from grading import copies
from grading.checks import CHECKS, FAIL, PASS
from grading.course import HAND_IN, CourseError, course, student_of
from grading.gradebook import csv_row, gradescope_results, passed, write_csv, write_gradescope
from grading.isolated import grade_isolated
from grading.submission import shown, submissions


def _print_class(rows: list[tuple[str, list]], same: dict[str, list[str]], csv_path: Path | None) -> None:
    """The class's table, then what did not pass and who shares work, then a summary line."""
    width = max(len("submission"), *(len(shown(name, 40)) for name, _ in rows))
    print(f"{'submission':{width}}  passed  " + " ".join(CHECKS))
    for name, report in rows:
        marks = " ".join(f"{status.replace('NOT RUN', '-'):{len(check)}}" for check, (_, status, _) in
                         zip(CHECKS, report))
        print(f"{shown(name, 40):{width}}  {'yes' if passed(report) else 'no ':6}  {marks}")
    for name, report in rows:
        for check, status, reason in report:
            if status != PASS:
                print(f"{shown(name, 40)}: {status} {check}: {shown(reason, 1000)}")
        if same.get(name):
            print(f"{shown(name, 40)}: shares its work with {shown('; '.join(same[name]), 1000)}")
    failures = Counter(check for _, report in rows for check, status, _ in report if status == FAIL)
    n_passed = sum(passed(report) for _, report in rows)
    most = f"; most failed check: {failures.most_common(1)[0][0]} ({failures.most_common(1)[0][1]})" if failures else ""
    not_graded = sum(report[0][2].startswith("could not be graded") for _, report in rows)
    sharing = sum(bool(v) for v in same.values())
    print(f"{n_passed} of {len(rows)} submissions passed{most}"
          + (f"; {not_graded} could not be graded" if not_graded else "")
          + (f"; {sharing} share their work with another" if sharing else "")
          + (f"; grades written to {csv_path}" if csv_path else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="notebooks, submission folders or class folders")
    parser.add_argument("--course", type=Path, help="the course file: what students hand in, preset, assigned "
                                                    "settings, seed salt, points")
    parser.add_argument("--hand-in", choices=HAND_IN, help="what students hand in: a run, or the assignment's "
                                                           "notebook (default: the course file's, else run)")
    parser.add_argument("--preset", help="the preset the course assigned (tiny or full; default: the course file's, "
                                         "else tiny)")
    parser.add_argument("--assigned", type=json.loads, help="settings the course assigned in place of the preset's, "
                                                            "as a JSON object")
    parser.add_argument("--csv", type=Path, help="write the grades to this CSV file, whole after each row")
    parser.add_argument("--gradescope", type=Path, help="with one submission: write Gradescope's results JSON here")
    parser.add_argument("--metadata", type=Path, help="with one submission: Gradescope's submission_metadata.json, "
                                                      "which names its student")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds one submission may take (1800)")
    parser.add_argument("--memory-limit-gb", type=float, default=12, help="memory one submission may take (12)")
    runs = parser.add_argument_group("runs handed in")
    runs.add_argument("--student", help="with one submission: its student (default: its folder's name)")
    runs.add_argument("--classifier", type=Path, help="the reward classifier's folder (default: the preset's)")
    runs.add_argument("--released", type=Path, help="the notebook the course handed out, if not the lecture")
    notebooks = parser.add_argument_group("the assignment's notebooks handed in")
    notebooks.add_argument("--handed-out", type=Path, default=Path("dist/student"),
                           help="the student folder as handed out (`make assign`: dist/student)")
    notebooks.add_argument("--probe-time-limit", type=float, default=300, help="seconds the exercises may take (300)")
    notebooks.add_argument("--processes", type=int, default=512, help="processes and threads a submission may run "
                                                                      "(512)")
    notebooks.add_argument("--disk-limit-mb", type=int, default=2048, help="MB a submission may write (2048)")
    notebooks.add_argument("--keep", type=Path, help="keep each submission's run (executed notebook, results, "
                                                     "adapter) in a folder of this one, named as the submission")
    args = parser.parse_args(argv)
    try:
        args.the_course = course(args.course, args.preset, args.assigned, args.hand_in)
    except CourseError as e:
        print(f"grading: {e}")
        return 2
    if args.the_course.hand_in == "notebook":
        from grading.assignment.autograde import grade_notebooks
        return grade_notebooks(args)
    missing = [str(p) for p in args.paths if not p.exists() and not p.is_symlink()]
    if missing:
        print(f"grading: {', '.join(map(shown, missing))} not found")
        return 2
    found = submissions(args.paths)
    if (args.gradescope or args.student or args.metadata) and len(found) != 1:
        print(f"grading: --gradescope, --student and --metadata grade one submission, and {len(found)} were given")
        return 2
    header = ["submission", "passed", *CHECKS, "same_work_as", "reasons"]
    rows, fingerprints = [], {}
    with tempfile.TemporaryDirectory(prefix="lab3-grading-") as work:
        for i, (name, path) in enumerate(found):
            (Path(work) / str(i)).mkdir()
            student = args.student or student_of(path, args.metadata)
            report, fingerprints[name] = grade_isolated(path, student, args, Path(work) / str(i))
            rows.append((name, report))
            if args.csv:
                write_csv(args.csv, header, [csv_row(n, r) for n, r in rows])
    same = copies.same_work(fingerprints)
    if args.csv:
        write_csv(args.csv, header, [csv_row(n, r, same[n]) for n, r in rows])
    if args.gradescope:
        write_gradescope(args.gradescope, gradescope_results(rows[0][1], args.the_course.points))
    if len(args.paths) == 1 and len(found) == 1 and not args.paths[0].is_dir():  # one run, as a student checks it
        for check, status, reason in rows[0][1]:
            print(f"{status} {check}: {shown(reason, 1000)}")
        print("PASSED" if passed(rows[0][1]) else "FAILED")
        return 0 if passed(rows[0][1]) else 1
    _print_class(rows, same, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
