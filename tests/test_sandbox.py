"""The sandbox a student's code runs in: nothing it starts outlives it, it writes only its work folder, it sees none of
the grader's files, reaches no network, and stops at its time limit."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assignment import sandbox

ESCAPES = """
import os, socket, subprocess, sys, urllib.request
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60); open(sys.argv[1], 'w').write('escaped')",
                  sys.argv[1]], start_new_session=True)  # detached: a session of its own
for path in (sys.argv[2] + "/secret.txt", sys.argv[1]):
    try:
        print(path, "read:", open(path).read())
    except OSError as e:
        print(path, "read refused:", type(e).__name__)
for path in (sys.argv[1], "work-file.txt"):
    try:
        open(path, "w").write("written")
        print(path, "written")
    except OSError as e:
        print(path, "write refused:", type(e).__name__)
try:
    urllib.request.urlopen("http://pypi.org", timeout=3)
    print("network reached")
except OSError:
    print("no network")
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print("loopback ok")
"""


@pytest.mark.skipif(sandbox.isolation() != "namespaces", reason="this machine forbids namespaces")
def test_the_student_s_code_cannot_reach_past_its_folder_nor_outlive_it(tmp_path):
    work, grader, victim = tmp_path / "work", tmp_path / "grader", tmp_path / "grades.csv"
    work.mkdir()
    grader.mkdir()
    (grader / "secret.txt").write_text("the hidden tests")
    victim.write_text("the class's grades")
    (work / "escape.py").write_text(ESCAPES)
    outcome = sandbox.run([sys.executable, "escape.py", str(victim), str(grader)], work, [grader], 60, 4,
                          dict(os.environ))
    out = outcome.output
    assert outcome.returncode == 0, out
    assert f"{grader}/secret.txt read refused" in out and "the hidden tests" not in out
    assert f"{victim} write refused" in out and "work-file.txt written" in out
    assert "no network" in out and "loopback ok" in out
    assert (work / "work-file.txt").read_text() == "written"
    time.sleep(2)
    assert subprocess.run(["pgrep", "-f", "time.sleep\\(60\\)"], capture_output=True).returncode == 1  # none left
    assert victim.read_text() == "the class's grades"


def test_a_command_past_its_time_limit_is_stopped_with_all_it_started(tmp_path):
    (tmp_path / "work").mkdir()
    started = time.time()
    code = "import subprocess, sys, time; subprocess.Popen(['sleep', '77'], start_new_session=True); time.sleep(60)"
    outcome = sandbox.run([sys.executable, "-c", code], tmp_path / "work", [], 3, 4, dict(os.environ))
    assert outcome.returncode is None and time.time() - started < 30
    time.sleep(1)
    leftover = subprocess.run(["pgrep", "-x", "-f", "sleep 77"], capture_output=True).returncode == 0
    assert not leftover or sandbox.isolation() != "namespaces"


@pytest.mark.skipif(sandbox.isolation() != "namespaces", reason="this machine forbids namespaces")
def test_a_grader_that_is_killed_takes_the_student_s_processes_with_it(tmp_path):
    (tmp_path / "work").mkdir()
    student = "import subprocess, time; subprocess.Popen(['sleep', '78'], start_new_session=True); time.sleep(79)"
    grader = (f"from assignment import sandbox; import os, sys; sandbox.run([sys.executable, '-c', {student!r}], "
              f"{str(tmp_path / 'work')!r}, [], 600, 4, dict(os.environ))")
    process = subprocess.Popen([sys.executable, "-c", grader], cwd=Path(__file__).resolve().parents[1])
    running = lambda: subprocess.run(["pgrep", "-x", "-f", "sleep 78"], capture_output=True).returncode == 0
    for _ in range(200):
        if running():
            break
        time.sleep(0.1)
    assert running()
    process.kill()  # as when a grading job is cancelled
    process.wait()
    time.sleep(1)
    assert not running()
