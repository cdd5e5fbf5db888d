"""A module's function run in a child process of its own, within a time and a memory limit, so that what one
submission's grading does (a crash, a hang, a memory blow-up) cannot take the grader, or the class, with it."""

import ctypes
import json
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable
from pathlib import Path

from grading.submission import shown

PR_SET_PDEATHSIG = 1  # prctl(2)


def call(function: Callable, kwargs: dict, seconds: float, memory_gb: float, log: Path) -> tuple[object, str]:
    """`function(**kwargs)`'s JSON-able result, computed in a fresh Python process (its output in `log`), and '';
    or None and what the process did instead ("took more than ...", "failed (its last line)")."""
    result = log.with_suffix(".result.json")
    result.unlink(missing_ok=True)
    child = multiprocessing.get_context("spawn").Process(target=_child, args=(function, kwargs, memory_gb, log, result))
    child.start()
    child.join(seconds)
    if child.is_alive():
        child.kill()
        child.join()
        return None, f"took more than the limit of {seconds:.0f} s"
    if child.exitcode == 0 and result.is_file():
        return json.loads(result.read_text()), ""
    lines = (log.read_bytes()[-4000:].decode(errors="replace").strip().splitlines() if log.is_file() else []) or [
        f"exit status {child.exitcode}"]
    return None, f"failed ({shown(lines[-1], 200)})"


def _child(function: Callable, kwargs: dict, memory_gb: float, log: Path, result: Path) -> None:
    """In the child: cap its address space, send its output to `log`, and write what `function` returns."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a killed grader leaves no grading
    cap = int(memory_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    result.write_text(json.dumps(function(**kwargs)))


def grade_isolated(path: Path, student: str, args, workdir: Path) -> tuple[list, dict | None]:
    """`grade` of `student`'s submission at `path` in a process of its own with the time and memory limits of `args`,
    and the fingerprint of its work; a process that fails is a report whose every check is NOT RUN with the reason."""
    from grading.checks import CHECKS, NOT_RUN, graded_submission
    from grading.submission import notebook_of
    graded, why = call(graded_submission, dict(
        notebook=notebook_of(path), course=args.the_course, student=student, classifier=args.classifier,
        cache=workdir.parent, released=args.released), args.time_limit, args.memory_limit_gb, workdir / "grading.log")
    if graded is not None:
        return [tuple(row) for row in graded["report"]], graded["fingerprint"]
    why = f"grading it {why}" if why.startswith("took") else f"the grading process {why}"
    return [(check, NOT_RUN, f"could not be graded: {why}") for check in CHECKS], None
