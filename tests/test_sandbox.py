"""The sandbox a student's code runs in, in each mode a course grades in (tests/sandbox_modes.py): what every attack of
a hostile student gets, the limits for the whole submission, and what the grader reads back of what it left."""

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grading.assignment import sandbox
from tests.sandbox_modes import MODES, attacked, lay_out, sandboxed

needs_root = pytest.mark.skipif(os.geteuid() != 0 or platform.machine() != "x86_64",
                                reason="the modes are simulated as root, on x86-64")
LANDLOCK = sandbox.landlock_version() > 0
# Each mode, skipped where this host cannot make it: the namespace modes need bubblewrap and namespaces.
EACH_MODE = [pytest.param(mode, marks=pytest.mark.skipif("namespaces" in mode and "no namespaces" not in mode and
                                                         sandbox.mode() != "namespaces", reason="no namespaces here"))
             for mode in MODES]


@needs_root
@pytest.mark.parametrize("mode", EACH_MODE)
def test_every_attack_of_a_student_s_code_is_refused(mode):
    """Read the grader's files or another copy of the course, patch the grader, edit the grades, open a kernel
    tunable, a CPU switch, a cgroup or the kernel's log for writing, leave files or a process: none holds but where
    the mode says so."""
    seen = attacked(mode)
    assert seen["mode"] == {"root, namespaces": "namespaces", "root in Docker": "user",
                            "unprivileged, namespaces": "namespaces",
                            "unprivileged, no namespaces": "process group"}[mode]
    assert seen["capabilities"] == "0000000000000000" and seen["uid"] != 0
    refused = [k for k, v in seen.items() if v == "refused"]
    done = [k for k, v in seen.items() if v == "done"]
    for attack in ("patch the grader's code", "edit the grades", "open kernel.core_pattern for writing",
                   "open vm.swappiness for writing", "open a CPU's online switch for writing",
                   "open a cgroup's processes for writing", "open /dev/kmsg for writing"):
        assert attack in refused, (attack, seen)
    if seen["mode"] != "process group" or LANDLOCK:
        assert {"read the grader's files", "read another copy of the course"} <= set(refused), seen
    if seen["mode"] == "namespaces":
        assert seen["network interfaces"] == ["lo"]
    else:  # the host's /tmp and /dev/shm: refused by Landlock, or removed after the run
        assert not seen["a file left in /dev/shm"] and not seen["a file left in /tmp"], seen
        assert set(done) <= {"leave a file in /dev/shm", "leave a file in /tmp"} and (not LANDLOCK or not done)
    if seen["mode"] != "process group":
        assert not seen["a process left running"]
    assert seen["grades afterwards"] == "unchanged"


LIMITED = {  # a student's code that goes past one limit, the limits, and the sentence its row gets
    "time": ("import time; time.sleep(60)", {"seconds": 3}, "the run took more than its limit of 3 s"),
    "disk": ("import time\nfor i in range(80):\n    open(f'f{i}', 'wb').write(bytes(1 << 20))\ntime.sleep(60)",
             {"seconds": 60, "disk_mb": 40}, "the run wrote more than 40 MB or 100000 files in its folder"),
    "memory": ("import subprocess, sys, time\n"
               "for _ in range(3):\n"
               "    subprocess.Popen([sys.executable, '-c', 'import time; x = b\"x\" * (300 << 20); time.sleep(60)'])\n"
               "time.sleep(60)", {"seconds": 60, "memory_gb": 0.5}, "the run used more than 0.5 GB of memory"),
    "processes": ("import subprocess, time\nstarted = 0\nfor _ in range(100):\n    try:\n"
                  "        subprocess.Popen(['sleep', '60']); started += 1\n    except OSError:\n        pass\n"
                  "print('started', started, flush=True)\ntime.sleep(1)", {"seconds": 20, "processes": 40}, ""),
}


@needs_root
@pytest.mark.parametrize("mode", EACH_MODE)
@pytest.mark.parametrize("limit", LIMITED)
def test_a_submission_past_a_limit_is_stopped_whole_and_told_which(mode, limit):
    code, limits, sentence = LIMITED[limit]
    base = lay_out(0 if mode.startswith("root") else 65001)
    (base / "runs" / "work" / "student.py").write_text(code)
    started = time.time()
    report = sandboxed(mode, [sys.executable, "student.py"], limits, base)
    seconds = time.time() - started
    if limit == "processes":  # the cgroup, or RLIMIT_NPROC for the sandbox's own user
        started_line = [line for line in report["output"].splitlines() if line.startswith("started")]
        assert report["exceeded"] == "the run started more than 40 processes" or \
            int(started_line[0].split()[1]) < 40, report
    else:
        assert report["returncode"] is None and report["exceeded"] == sentence, report
        assert seconds < 45
    assert subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True).returncode == 1  # none left
    shutil.rmtree(base)


@needs_root
@pytest.mark.skipif(sandbox.mode() != "namespaces", reason="no namespaces here")
def test_a_grader_that_is_killed_takes_the_student_s_processes_with_it(tmp_path):
    base = lay_out(0)
    student = "import subprocess, time; subprocess.Popen(['sleep', '78'], start_new_session=True); time.sleep(79)"
    (base / "runs" / "work" / "student.py").write_text(student)
    work = base / "runs" / "work"
    grader = (f"from grading.assignment import sandbox; from pathlib import Path; import sys; w = Path({str(work)!r}); "
              f"sandbox.prepare(w); sandbox.run([sys.executable, 'student.py'], w, sandbox.Limits(600), {{}})")
    process = subprocess.Popen([sys.executable, "-c", grader], cwd=Path(__file__).resolve().parents[1])

    def running() -> bool:
        return subprocess.run(["pgrep", "-x", "-f", "sleep 78"], capture_output=True).returncode == 0
    for _ in range(200):
        if running():
            break
        time.sleep(0.1)
    assert running()
    process.kill()  # as when a grading job is cancelled
    process.wait()
    time.sleep(1)
    assert not running()
    shutil.rmtree(base)


def test_what_the_sandbox_leaves_is_read_back_only_as_a_bounded_regular_file_through_no_link(tmp_path):
    work, into, elsewhere = tmp_path / "work", tmp_path / "into", tmp_path / "secret"
    for folder in (work / "outputs", into, elsewhere):
        folder.mkdir(parents=True)
    (elsewhere / "results.json").write_text("the course's seed salt")
    (work / "outputs" / "results.json").write_text("{}")
    assert sandbox.copy_out(work, "outputs/results.json", into, 1) == ""
    assert (into / "results.json").read_text() == "{}"
    (into / "results.json").unlink()
    cases = {"a link": lambda p: p.symlink_to(elsewhere / "results.json"),
             "a FIFO": lambda p: os.mkfifo(p),
             "a folder": lambda p: p.mkdir(),
             "sparse and huge": lambda p: (p.write_bytes(b""), os.truncate(p, 1 << 40))}
    for case, plant in cases.items():
        planted = work / "outputs" / "results.json"
        planted.rmdir() if planted.is_dir() and not planted.is_symlink() else planted.unlink(missing_ok=True)
        plant(planted)
        started = time.time()
        why = sandbox.copy_out(work, "outputs/results.json", into, 1)
        assert why and time.time() - started < 5 and not (into / "results.json").exists(), case
        assert "salt" not in why
    (work / "outputs" / "results.json").unlink()
    os.rename(work / "outputs", work / "kept")
    (work / "outputs").symlink_to(elsewhere)  # a link on the way
    assert sandbox.copy_out(work, "outputs/results.json", into, 1) == \
        "outputs/results.json is reached through a symbolic link"
    assert sandbox.copy_out(work, "absent.json", into, 1) == ""
