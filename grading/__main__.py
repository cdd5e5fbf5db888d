"""Grade executed Lab 3 notebooks: one, several, or a class folder with one folder per student.

    python -m grading outputs/lab3_rlhf_detox.ipynb            # one run: PASS/FAIL lines; exit 1 if one fails
    python -m grading submissions/ --course course.json --csv grades.csv   # a class: a table, a summary, a CSV
    python -m grading SUBMISSION --gradescope results.json     # Gradescope's autograder results

A submission is the executed notebook with the results.json and ppo_adapter.safetensors the lab wrote beside it; its
student is its folder's name (or --student). What a run must be (preset, settings, each student's seed) is the
course's: `--course` (grading/course.py), `--preset`, `--assigned`; never the submission's. Each submission is graded
in a process of its own, within a time and a memory limit: a submission that crashes, hangs or floods the grader is its
own row ("could not be graded: ..."), and the others are graded. The CSV is written whole after each row; its
`same_work_as` column names the submissions that share an adapter, PPO texts or summaries.
"""

import argparse
import csv
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from grading import copies
from grading.checks import CHECKS, FAIL, NOT_RUN, PASS, grade
from grading.course import Course, CourseError, course, student_of
from grading.submission import notebook_of, shown, submissions
from lab3 import ROOT


def limit_memory(gigabytes: float):
    """A function that caps the calling process's address space (run in the child before it starts)."""
    def limit() -> None:
        cap = int(gigabytes * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return limit


def grade_isolated(path: Path, student: str, args: argparse.Namespace, workdir: Path) -> tuple[list, dict | None]:
    """`grade` of `student`'s submission at `path` in a child process with the time and memory limits of `args`, and
    the fingerprint of its work; a child that fails is a report whose every check is NOT RUN with the reason."""
    report_file, log = workdir / "report.json", workdir / "grading.log"
    report_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "grading", str(path), "--one", str(report_file), "--cache", str(workdir.parent),
               "--course-json", json.dumps(dataclasses.asdict(args.the_course)), "--student", student]
    command += ["--classifier", str(args.classifier)] if args.classifier else []
    command += ["--released", str(args.released)] if args.released else []
    try:
        with open(log, "wb") as out:
            done = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=args.time_limit, preexec_fn=limit_memory(args.memory_limit_gb))
        if done.returncode == 0 and report_file.is_file():
            graded = json.loads(report_file.read_text())
            return [tuple(row) for row in graded["report"]], graded["fingerprint"]
        lines = log.read_bytes()[-4000:].decode(errors="replace").strip().splitlines() or ["no output"]
        why = f"the grading process failed ({shown(lines[-1], 200)})"
    except subprocess.TimeoutExpired:
        why = f"grading it took more than the limit of {args.time_limit:.0f} s"
    return [(check, NOT_RUN, f"could not be graded: {why}") for check in CHECKS], None


def passed(report: list[tuple[str, str, str]]) -> bool:
    """A submission passes when every check passed."""
    return all(status == PASS for _, status, _ in report)


def spreadsheet_safe(cells: list[str]) -> list[str]:
    """`cells` as a spreadsheet may show them: one that starts with = + - @ would be a formula."""
    return ["'" + c if c.startswith(("=", "+", "-", "@")) else c for c in cells]


def csv_row(name: str, report: list[tuple[str, str, str]], same: list[str] = ()) -> list[str]:
    """The gradebook's row: submission, passed, one column per check, the submissions sharing its work, and the
    reasons of what did not pass."""
    reasons = " | ".join(f"{check}: {why}" for check, status, why in report if status != PASS)
    return spreadsheet_safe([shown(name), str(passed(report)).lower(), *(status for _, status, _ in report),
                             shown("; ".join(same), 1000), shown(reasons, 4000)])


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write the CSV whole, atomically: a reader sees the previous file or this one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    tmp.replace(path)


def gradescope_results(report: list[tuple[str, str, str]], points: dict[str, float]) -> dict:
    """Gradescope's autograder results for one submission: a test per check, its points only if it passed."""
    tests = [{"name": check, "score": points[check] if status == PASS else 0, "max_score": points[check],
              "status": "passed" if status == PASS else "failed",
              "output": shown(reason if status != NOT_RUN else f"not run: {reason}", 2000), "visibility": "visible"}
             for check, status, reason in report]
    n_passed = sum(status == PASS for _, status, _ in report)
    could_not = next((r for _, s, r in report if r.startswith("could not be graded")), None)
    return {"score": sum(t["score"] for t in tests),
            "output": shown(could_not, 2000) if could_not else f"{n_passed} of {len(report)} checks passed",
            "tests": tests}


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


def _grade_one(args: argparse.Namespace) -> int:
    """The child's work: grade paths[0], and write its report and fingerprint to `--one`."""
    from grading.submission import ADAPTER_NAME, RESULTS_NAME, Refused, read_bytes, read_results
    notebook = notebook_of(args.paths[0])
    report = grade(notebook, args.the_course, args.student, args.classifier, args.cache, args.released)
    fingerprint = None
    try:
        results = read_results(notebook.parent / RESULTS_NAME)
        adapter = read_bytes(notebook.parent / ADAPTER_NAME, "adapter")
        import hashlib
        fingerprint = copies.fingerprint(hashlib.sha256(adapter).hexdigest(),
                                         [t for s in results["ppo_steps"] for t in s["texts"]],
                                         results["toxicity"]["after"]["summaries"])
    except (Refused, KeyError, TypeError):
        pass
    args.one.write_text(json.dumps({"report": report, "fingerprint": fingerprint}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="executed notebooks, submission folders or class folders")
    parser.add_argument("--csv", type=Path, help="write the grades to this CSV file, whole after each row")
    parser.add_argument("--course", type=Path, help="the course file: preset, assigned settings, seed salt, points")
    parser.add_argument("--preset", help="the preset the course assigned (tiny or full; default: the course file's, "
                                         "else tiny)")
    parser.add_argument("--assigned", type=json.loads, help="settings the course assigned in place of the preset's, "
                                                            "as a JSON object")
    parser.add_argument("--student", help="with one submission: its student (default: its folder's name)")
    parser.add_argument("--metadata", type=Path, help="with one submission: Gradescope's submission_metadata.json, "
                                                      "which names its student")
    parser.add_argument("--classifier", type=Path, help="the reward classifier's folder (default: the preset's)")
    parser.add_argument("--released", type=Path, help="the notebook the course handed out, if not the lecture (the "
                                                      "assignment's dist/student one: its answer cells may differ)")
    parser.add_argument("--gradescope", type=Path, help="with one submission: write Gradescope's results JSON here")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds one submission may take (1800)")
    parser.add_argument("--memory-limit-gb", type=float, default=12, help="memory one submission may take (12)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child: grade paths[0], report to this file
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)  # the class's summaries before PPO
    parser.add_argument("--course-json", help=argparse.SUPPRESS)  # the child: the parent's course
    args = parser.parse_args(argv)
    try:
        args.the_course = (Course(**json.loads(args.course_json)) if args.course_json
                           else course(args.course, args.preset, args.assigned))
    except CourseError as e:
        print(f"grading: {e}")
        return 2
    if args.one:
        return _grade_one(args)
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
        args.gradescope.parent.mkdir(parents=True, exist_ok=True)
        args.gradescope.write_text(json.dumps(gradescope_results(rows[0][1], args.the_course.points), indent=2) + "\n")
    if len(args.paths) == 1 and len(found) == 1 and not args.paths[0].is_dir():  # one run, as a student checks it
        for check, status, reason in rows[0][1]:
            print(f"{status} {check}: {shown(reason, 1000)}")
        print("PASSED" if passed(rows[0][1]) else "FAILED")
        return 0 if passed(rows[0][1]) else 1
    _print_class(rows, same, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
