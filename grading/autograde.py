"""Grade a class's assignment notebooks locally with the autograder zip that `python -m grading.assign` built: each
submission's notebook runs through the zip's `run_autograder` (the notebook executed, the exercises' public and hidden
tests, the run checks), as on Gradescope, in a process of its own within a time and a memory limit.

    python -m grading.autograde dist/autograder/*.zip submissions/ --csv grades.csv

A row per submission as it is graded: its points per test (exercise or run check), its total, and what failed.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from grading.__main__ import _limit_memory
from grading.submission import Refused, notebook_of, read_notebook, shown, submissions


def autograde(zip_path: Path, notebook: Path, root: Path, time_limit: float, memory_gb: float) -> dict:
    """The Gradescope results of the autograder zip on `notebook`, run in `root` (laid out like /autograder)."""
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    try:  # only the notebook, read within bounds: no other file of the student's reaches the autograder
        nb = read_notebook(notebook)
    except Refused as e:
        return {"tests": [], "output": f"could not be graded: {e}"}
    (root / "submission" / notebook.name).write_text(json.dumps(nb))
    try:
        subprocess.run(["bash", str(root / "source" / "run_autograder"), str(root)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=time_limit, preexec_fn=_limit_memory(memory_gb), env=os.environ)
        return json.loads((root / "results" / "results.json").read_text())
    except subprocess.TimeoutExpired:
        return {"tests": [], "output": f"could not be graded: it took more than the limit of {time_limit:.0f} s"}


def row(name: str, results: dict, tests: list[str]) -> list[str]:
    """The gradebook's row: submission, total, possible, the points of each test, and what lost points."""
    scored = {t["name"]: t for t in results["tests"] if "max_score" in t}
    lost = [f"{n}: {shown(t.get('output', ''), 300)}" for n, t in scored.items() if t["score"] < t["max_score"]]
    cells = [shown(name), f"{sum(t['score'] for t in scored.values()):g}",
             f"{sum(t['max_score'] for t in scored.values()):g}", *(f"{scored[t]['score']:g}" if t in scored else ""
                                                                    for t in tests),
             shown(results.get("output", "") or " | ".join(lost), 4000)]
    return ["'" + c if c.startswith(("=", "+", "-", "@")) else c for c in cells]  # no formula for a spreadsheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.autograde", description=__doc__.splitlines()[0])
    parser.add_argument("autograder", type=Path, help="the autograder zip of python -m grading.assign")
    parser.add_argument("paths", type=Path, nargs="+", help="notebooks, submission folders or class folders")
    parser.add_argument("--csv", type=Path, required=True, help="the grades, a row as each is graded")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds one submission may take (1800)")
    parser.add_argument("--memory-limit-gb", type=float, default=12, help="memory one submission may take (12)")
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.autograder) as z:
        tests = sorted(Path(n).stem for n in z.namelist() if n.startswith("tests/") and n.endswith(".py"))
    with tempfile.TemporaryDirectory(prefix="lab3-autograde-") as work, open(args.csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "score", "possible", *tests, "lost"])
        for i, (name, path) in enumerate(submissions(args.paths)):
            results = autograde(args.autograder.resolve(), notebook_of(path), Path(work) / str(i), args.time_limit,
                                args.memory_limit_gb)
            writer.writerow(cells := row(name, results, tests))
            f.flush()
            print(f"{shown(name, 40)}: {cells[1]} of {cells[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
