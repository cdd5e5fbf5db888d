"""What the graders write: a class's CSV, whole and atomically after each row, and Gradescope's results; the rows of
runs graded by the strict grader."""

import csv
import json
import os
from pathlib import Path

from grading.checks import NOT_RUN, PASS
from grading.submission import shown


def spreadsheet_safe(cells: list[str]) -> list[str]:
    """`cells` as a spreadsheet may show them: one that starts with = + - @ would be a formula."""
    return ["'" + c if c.startswith(("=", "+", "-", "@")) else c for c in cells]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write the CSV whole, atomically: a reader sees the previous file or this one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    tmp.replace(path)


def write_gradescope(path: Path, results: dict) -> None:
    """Write Gradescope's results file for one submission."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def passed(report: list[tuple[str, str, str]]) -> bool:
    """A submission passes when every check passed."""
    return all(status == PASS for _, status, _ in report)


def csv_row(name: str, report: list[tuple[str, str, str]], same: list[str] = ()) -> list[str]:
    """The gradebook's row: submission, passed, one column per check, the submissions sharing its work, and the
    reasons of what did not pass."""
    reasons = " | ".join(f"{check}: {why}" for check, status, why in report if status != PASS)
    return spreadsheet_safe([shown(name), str(passed(report)).lower(), *(status for _, status, _ in report),
                             shown("; ".join(same), 1000), shown(reasons, 4000)])


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
