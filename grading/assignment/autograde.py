"""Grade the assignment's submissions, each outside the student's kernel: a class locally, or one on Gradescope.

    python -m grading submissions/ --hand-in notebook --csv grades.csv [--course course.json]   # dist/student
    python -m grading SUBMISSION --hand-in notebook --handed-out STUDENT_FOLDER --gradescope results.json

From a submission only its notebook is read, as hostile input (bounded, validated); its code cells must be the
handed-out notebook's (`dist/student`) but for the answer cells, which are found by their place in the handed-out
notebook, never by the submission's tags. Then, for each submission, in processes the student's code cannot reach
past (`grading.assignment.sandbox`):
1. the exercises: the answer cells run beside the lab's files, each function on inputs drawn from a secret seed
   (`grading.assignment.probes`); what they return is judged here (`grading.assignment.hidden`), where no student
   code runs;
2. the run: the notebook executed whole (tiny preset, offline; the course's settings and the student's seed
   injected), then its results and adapter graded by the strict grader (`grading.checks`) in a process of its own.
A run check that fails because an exercise it rests on is wrong is not charged again; none is credited without the
run's files. Only this process writes the CSV, whole and atomically, once a submission's processes are gone.
"""

import json
import os
import secrets
import shutil
import sys
import tempfile
import traceback
import zipfile
from pathlib import Path

from grading import isolated
from grading.assignment import hidden, sandbox
from grading.assignment.exercises import BY_NAME, EXERCISES, RUN_CHECKS
from grading.checks import INJECTED, PASS, grade_own_run
from grading.course import student_of
from grading.gradebook import spreadsheet_safe, write_csv, write_gradescope
from grading.submission import Refused, notebook_of, read_notebook, shown, submissions
from lab3 import NOTEBOOK, ROOT

PROBES = Path(__file__).resolve().parent / "probes.py"
OUTPUTS = "outputs"  # the run's folder, in the submission's work folder
# What is read back of a sandbox's work folder (`sandbox.copy_out`), at most this many MB each; a probe's results are
# a torch zip, whose members are checked before they are inflated.
READ_BACK = {"out.pt": 64, "executed.ipynb": 16, f"{OUTPUTS}/results.json": 64,
             f"{OUTPUTS}/ppo_adapter.safetensors": 64}
# Executed in the sandbox: the notebook whole, on past a failing cell (an unwritten exercise of 3.3 does not stop the
# evaluation); the error of a failing cell stays in the executed notebook.
EXECUTE = """import ast, sys, papermill
try:
    papermill.execute_notebook(sys.argv[1], sys.argv[2], parameters=ast.literal_eval(sys.argv[3]), allow_errors=True,
                               progress_bar=False, cwd=".")
except papermill.PapermillExecutionError:
    pass
"""


def _code(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def answers(submitted: dict, released: dict, exercises=EXERCISES) -> dict[str, str] | None:
    """The source of each assigned exercise's answer cell, found at the place the handed-out notebook has it (None
    when the code cells do not line up with the handed-out ones)."""
    mine = [c for c in _code(submitted) if INJECTED not in c.get("metadata", {}).get("tags", [])]
    theirs = _code(released)
    if len(mine) != len(theirs):
        return None
    places = [i for i, c in enumerate(theirs) if "otter_answer_cell" in c["metadata"].get("tags", [])]
    source = ["".join(mine[i]["source"]) if isinstance(mine[i]["source"], list) else mine[i]["source"] for i in places]
    return {e.name: s for e, s in zip(exercises, source)}


def _environment(work: Path) -> dict:
    """The sandboxed process's environment: offline, and every cache and temporary file in its work folder."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONHASHSEED")}
    return dict(keep, HOME=str(work / ".home"), TMPDIR=str(work / ".tmp"), HF_HOME=str(work / ".hf"),
                HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg", TQDM_MININTERVAL="30",
                PYTHONDONTWRITEBYTECODE="1", MPLCONFIGDIR=str(work / ".mpl"), IPYTHONDIR=str(work / ".ipython"),
                JUPYTER_RUNTIME_DIR=str(work / ".jupyter"))


def _work(student_files: Path, parent: Path, name: str, files: dict[str, str | bytes]) -> Path:
    """A fresh work folder for the sandbox: a copy of the lab's files as handed out, and `files`."""
    work = parent / name
    shutil.copytree(student_files, work, ignore=shutil.ignore_patterns(NOTEBOOK))
    for folder in (".home", ".tmp", ".hf", ".mpl", ".ipython", ".jupyter"):
        (work / folder).mkdir()
    for file, content in files.items():
        (work / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    sandbox.prepare(work)
    return work


def _read_back(work: Path, names: list[str]) -> tuple[Path, list[str]]:
    """Copies of `names` from `work` in a folder the sandbox never saw, and why any was refused."""
    into = work.parent / "grader" / work.name
    into.mkdir(parents=True)
    refused = [why for name in names if (why := sandbox.copy_out(work, name, into, READ_BACK[name]))]
    return into, refused


def _limits(args, seconds: float) -> sandbox.Limits:
    return sandbox.Limits(seconds, args.memory_limit_gb, args.processes, args.disk_limit_mb)


def exercises(sources: dict[str, str], student_files: Path, parent: Path, args) -> dict[str, tuple[bool, str]]:
    """Each exercise's verdict: the answers probed in the sandbox, all in one process, judged here; an answer that
    ends the process is charged, and the others are probed again without it."""
    seed = secrets.randbelow(10 ** 6)  # inputs no submission can know in advance
    verdicts, pending, attempt = {}, dict(sources), 0
    while pending:  # an answer that ends its process is charged alone; the others are probed again without it
        attempt += 1
        work = _work(student_files, parent, f"probe-{attempt}",
                     {"answers.json": json.dumps(pending), "probes.py": PROBES.read_bytes()})
        outcome = sandbox.run([sys.executable, "probes.py", "answers.json", str(seed), "out.pt"], work,
                              _limits(args, args.probe_time_limit), _environment(work))
        results = _probed(_read_back(work, ["out.pt"])[0] / "out.pt")
        stopped = results.pop("_running", None)
        for name, result in results.items():
            if name in pending and name != stopped and isinstance(result, dict):
                verdicts[name] = _judged(name, result, seed)
                del pending[name]
        if stopped not in pending and pending:  # nothing says which answer ended it (or it lied): the first
            stopped = next(iter(pending))
        if stopped in pending:
            why = (f"could not be probed: {outcome.exceeded}" if outcome.exceeded else
                   "could not be probed (its process stopped)")
            verdicts[stopped] = (False, f"{BY_NAME[stopped].function} {why}")
            del pending[stopped]
    return verdicts


def _judged(name: str, result: dict, seed: int) -> tuple[bool, str]:
    """The hidden tests' verdict on what an answer returned; one that cannot be judged fails, saying only what it is."""
    try:
        return hidden.verdict(name, result, seed)
    except Exception as e:  # noqa: BLE001 (an output crafted to break the judge: an int past float's range, ...)
        return False, f"{BY_NAME[name].function} returned what could not be judged ({type(e).__name__})"


def _probed(path: Path) -> dict:
    """What the probes saved: tensors and plain data only, at most READ_BACK's bound once inflated (whatever else the
    sandbox wrote is refused, never run)."""
    import torch
    try:
        with zipfile.ZipFile(path) as z:  # torch stores its members uncompressed: their sizes are what loads
            members = z.infolist()
        if any(m.compress_type != zipfile.ZIP_STORED for m in members) or \
                sum(m.file_size for m in members) > READ_BACK["out.pt"] << 20:
            return {}
        results = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 (a file the student's code wrote over: not the probe's)
        return {}
    return results if isinstance(results, dict) else {}


def _executed_cells(executed: Path) -> list[dict]:
    """An execution's code cells, counted as in the submitted notebook (papermill's injected cell left out)."""
    return [c for c in _code(json.loads(executed.read_text())) if INJECTED not in c.get("metadata", {}).get("tags", [])]


def _stopped_at(executed: Path) -> str:
    """Where an execution stopped: the first code cell that did not run."""
    try:
        cells = _executed_cells(executed)
        return f"at code cell {next(i for i, c in enumerate(cells) if not c.get('execution_count')) + 1}"
    except (OSError, ValueError, StopIteration, KeyError, AttributeError, TypeError):
        return "before its first cell"


def _raised_at(executed: Path) -> str:
    """The first code cell of an execution that raised, and what it raised."""
    try:
        for number, cell in enumerate(_executed_cells(executed), 1):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    return f"at code cell {number}, which raised {shown(out.get('ename', ''), 60)}: " \
                           f"{shown(out.get('evalue', ''), 200)}"
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        pass
    return ""


def execute(notebook: dict, student_files: Path, parent: Path, cfg_changes: dict, args) -> tuple[Path, str]:
    """Execute the submitted notebook in the sandbox; returns the folder of what was read back of its run (the
    executed notebook, results and adapter) and '' or why the run stopped."""
    work = _work(student_files, parent, "run", {NOTEBOOK: json.dumps(notebook)})
    parameters = {"output_dir": OUTPUTS, "checkpoint_dir": "checkpoints", "preset_name": args.the_course.preset,
                  "overrides": cfg_changes, "lab_source": ""}
    command = [sys.executable, "-c", EXECUTE, NOTEBOOK, "executed.ipynb", repr(parameters)]
    outcome = sandbox.run(command, work, _limits(args, args.time_limit), _environment(work))
    run, refused = _read_back(work, list(READ_BACK)[1:])
    executed = run / "executed.ipynb"
    if outcome.exceeded:
        return run, f"{outcome.exceeded} ({_stopped_at(executed)})"
    if "DeadKernelError" in outcome.output or "Kernel died" in outcome.output:
        return run, f"the kernel died {_stopped_at(executed)}"
    if outcome.returncode != 0:
        last = (outcome.output.strip().splitlines() or ["no output"])[-1]
        return run, f"the execution failed ({shown(last, 200)})"
    if refused:
        return run, f"what the run left was refused: {shown('; '.join(refused), 300)}"
    if not (run / "results.json").exists():  # the cells after an error ran, but no run came of them
        return run, _raised_at(executed)
    return run, ""


def run_checks(run: Path, submitted: Path, released: Path, student: str, args) -> dict[str, tuple[str, str]]:
    """The strict grader's checks of the run the execution wrote (as read back into `run`), in a process of its own
    (not the sandbox: it runs no student code, and reads the run's files as hostile input)."""
    report, why = isolated.call(grade_own_run, dict(folder=run, submitted=submitted, released=released,
                                                    course=args.the_course, student=student),
                                args.time_limit, args.memory_limit_gb, run.parent / "run-checks.log")
    if report is None:
        why = "took too long" if why.startswith("took") else "failed"
        return {check: ("NOT RUN", f"the grading of the run {why}") for check in RUN_CHECKS}
    return {check: tuple(report.get(check, ("NOT RUN", "not graded"))) for check in RUN_CHECKS}


def grade(path: Path, student: str, args) -> dict:
    """Gradescope's results for `student`'s submission at `path`: a test per exercise and per run check."""
    released_path = args.student_files / NOTEBOOK
    released = json.loads(released_path.read_text())
    try:
        submitted = read_notebook(notebook_of(path))
    except Refused as e:
        return {"score": 0, "output": f"could not be graded: {e}", "tests": []}
    with tempfile.TemporaryDirectory(prefix="lab3-submission-") as parent:
        parent = Path(parent)
        (parent / "grader").mkdir(mode=0o700)  # what is read back, and the grader's own files: not the sandbox's
        sources = answers(submitted, released, args.the_course.exercises)
        verdicts = exercises(sources, args.student_files, parent, args) if sources else {
            e.name: (False, "the notebook's code cells are not the handed-out notebook's: its answers cannot be found")
            for e in args.the_course.exercises}
        seed = args.the_course.seed(student)
        changes = dict(args.the_course.assigned, **({} if seed is None else {"seed": seed}))
        run, stopped = execute(submitted, args.student_files, parent, changes, args)
        (parent / "grader" / "submitted.ipynb").write_text(json.dumps(submitted))
        report = run_checks(run, parent / "grader" / "submitted.ipynb", released_path, student, args)
        if args.keep:
            _keep(run, args.keep / path.name)
    results = combine(verdicts, report, stopped, args.the_course.points, args.the_course.exercises)
    results["output"] = isolation() + (f"; the run stopped: {stopped}" if stopped else "")
    return results


def isolation() -> str:
    """The sandbox's mode and what it guarantees, as each submission's output says it."""
    return f"isolation: {sandbox.mode()} ({sandbox.guarantees()})"


def graded(path: Path, student: str, args) -> dict:
    """`grade`, or a row that says the submission could not be graded: one submission never stops the class."""
    try:
        return grade(path, student, args)
    except Exception:  # noqa: BLE001 (the trace is the instructor's; the student's row names no grader's detail)
        traceback.print_exc()
        return {"score": 0, "tests": [], "output": "could not be graded: the autograder failed on this submission; "
                                                   "your instructor has its log"}


def combine(verdicts: dict[str, tuple[bool, str]], report: dict[str, tuple[str, str]], stopped: str,
            points: dict[str, float], exercises=EXERCISES) -> dict:
    """Gradescope's tests of one submission: each exercise by its hidden tests' verdict, each run check by the strict
    grader's `report`; a run check that fails where an exercise it rests on failed is not charged again, and none is
    credited without the run's files (`stopped`: why the run stopped, or '')."""
    tests = [{"name": e.name, "score": e.points if verdicts[e.name][0] else 0, "max_score": e.points,
              "output": shown(verdicts[e.name][1], 1000), "visibility": "visible"} for e in exercises]
    ran = report.get("results", ("",))[0] == PASS
    for check, rests_on in RUN_CHECKS.items():
        status, reason = report.get(check, ("NOT RUN", "not graded"))
        if not ran:
            status, reason = "FAIL", report.get("results", ("", "the run wrote no results"))[1]
        charged_at = [e for e in rests_on if not verdicts[e][0]]
        if status != PASS and ran and charged_at:
            status, reason = PASS, f"not charged again: it rests on {' and '.join(charged_at)} ({reason})"
        if status != PASS and stopped:
            reason = f"the run stopped: {stopped} ({reason})"
        tests.append({"name": f"run_{check}", "score": points[check] if status == PASS else 0,
                      "max_score": points[check], "output": shown(reason, 1000), "visibility": "visible"})
    return {"score": sum(t["score"] for t in tests), "tests": tests}


def _keep(run: Path, folder: Path) -> None:
    """Keep a submission's run as read back (bounded): the executed notebook, its results and adapter (what
    `python -m grading` grades)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source, name in (("executed.ipynb", NOTEBOOK), ("results.json", "results.json"),
                         ("ppo_adapter.safetensors", "ppo_adapter.safetensors")):
        if (run / source).is_file():
            shutil.copyfile(run / source, folder / name)


def _row(name: str, results: dict, tests: list[str], possible: float) -> list[str]:
    """The gradebook's row: submission, score, possible, each test's points, and what lost points."""
    scored = {t["name"]: t for t in results.get("tests", [])}
    lost = [f"{n}: {t['output']}" for n, t in scored.items() if t["score"] < t["max_score"]]
    return spreadsheet_safe([shown(name), f"{results['score']:g}", f"{possible:g}",
                             *(f"{scored[t]['score']:g}" if t in scored else "0" for t in tests),
                             shown(results.get("output", "") if not scored else " | ".join(lost), 4000)])


# Run as the sandbox's user before any grading: can it run this Python, and which of the grader's files can it read?
PREFLIGHT = """import sys, torch
for path in sys.argv[1:]:
    try:
        open(path).close()
        print("READABLE", path)
    except OSError:
        pass
print("RAN")
"""


def preflight(args) -> str:
    """'' if the sandbox's user can run this Python and read none of the grader's files (this checkout, the course
    file, the student folder as handed out), else what is wrong, in one sentence."""
    secrets_ = [ROOT / NOTEBOOK, ROOT / "grading" / "assignment" / "hidden.py", args.student_files / NOTEBOOK,
                *([args.course.resolve()] if args.course else [])]
    with tempfile.TemporaryDirectory(prefix="lab3-preflight-") as parent:
        work = _work(args.student_files, Path(parent), "work", {"check.py": PREFLIGHT})
        outcome = sandbox.run([sys.executable, "check.py", *map(str, secrets_)], work, _limits(args, 120),
                              _environment(work))
    readable = [line.split(" ", 1)[1] for line in outcome.output.splitlines() if line.startswith("READABLE ")]
    if readable:
        return (f"the sandbox's user can read {shown(readable[0], 200)}: make the grader's files unreadable to "
                f"others (chmod 700 on their folder)")
    if "RAN" not in outcome.output:
        last = (outcome.output.strip().splitlines() or ["no output"])[-1]
        return (f"the sandbox's user cannot run {sys.executable} with torch ({shown(last, 200)}): install Python where "
                f"others may read it")
    return ""


def grade_notebooks(args) -> int:
    """`python -m grading` where students hand in the assignment's notebook: grade each of `args.paths` against the
    student folder `args.handed_out`; returns the exit status."""
    if args.the_course.preset != "tiny":
        print("grading: the assignment's notebooks are executed on the tiny preset; a course that assigns the full "
              "preset has its students hand in runs")
        return 2
    args.student_files, found = args.handed_out.resolve(), submissions(args.paths)
    if not (args.student_files / NOTEBOOK).is_file():
        print(f"grading: {shown(args.student_files)} is not the student folder `make assign` wrote (--handed-out)")
        return 2
    if args.gradescope and len(found) != 1:
        print(f"grading: --gradescope grades one submission, and {len(found)} were given")
        return 2
    possible = sum(e.points for e in args.the_course.exercises) + sum(args.the_course.points[c] for c in RUN_CHECKS)
    problem = preflight(args)
    if problem:
        print(f"grading: {problem}")
        return 2
    print(isolation(), flush=True)
    tests = [e.name for e in args.the_course.exercises] + [f"run_{c}" for c in RUN_CHECKS]
    header = ["submission", "score", "possible", *tests, "lost"]
    rows = []
    for name, path in found:
        results = graded(path, student_of(path, args.metadata), args)
        if args.gradescope:
            write_gradescope(args.gradescope, results)
        rows.append(_row(name, results, tests, possible))
        if args.csv:
            write_csv(args.csv, header, rows)
        print(f"{shown(name, 40)}: {rows[-1][1]} of {rows[-1][2]}", flush=True)
    return 0
