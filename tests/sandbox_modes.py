"""The sandbox's modes as a grader meets them on this host, and what a hostile student's code gets in each.

    python -m tests.sandbox_modes     # the table of attacks by mode (root, with namespaces and Landlock, needed)

Each mode is this host made to look like a place where courses grade (tests/docker_like.py): root with namespaces (a
server, this machine); root without CAP_SYS_ADMIN (Docker, Gradescope); an unprivileged grader with user namespaces
(a laptop); an unprivileged grader without them.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER_LIKE = [sys.executable, str(Path(__file__).with_name("docker_like.py"))]
GRADER_UID = 65001  # the unprivileged grader's
MODES = {
    "root, namespaces": [],
    "root in Docker": [*DOCKER_LIKE, "--"],
    "unprivileged, namespaces": [*DOCKER_LIKE, "--as", str(GRADER_UID), "--namespaces", "--"],
    "unprivileged, no namespaces": [*DOCKER_LIKE, "--as", str(GRADER_UID), "--"],
}
# The grader's side: prepare the work folder, run the command in the sandbox, say what came of it. It runs from a copy
# of the sandbox's module in the grader's own folder, which an unprivileged grader can read wherever this checkout is.
GRADER = """
import json, sys
from pathlib import Path
import sandbox
job = json.loads(sys.argv[1])
work = Path(job["work"])
sandbox.prepare(work)
o = sandbox.run(job["command"], work, sandbox.Limits(**job["limits"]), {"PATH": "/usr/bin:/bin", "HOME": str(work)})
print(json.dumps({"mode": sandbox.mode(), "returncode": o.returncode, "exceeded": o.exceeded, "output": o.output}))
"""
# The student's side: every attack, each tried and reported; a process left to edit the grades afterwards.
ATTACKS = """
import json, os, socket, subprocess, sys
base, tag = sys.argv[1], sys.argv[2]
seen = {}
def attempt(name, action):
    try:
        action()
        seen[name] = "done"
    except OSError as e:
        seen[name] = "refused"
attempt("read the grader's files", lambda: open(base + "/grader/secret.txt").read())
attempt("read another copy of the course", lambda: open(base + "/course/hidden.py").read())
attempt("patch the grader's code", lambda: open(base + "/course/hidden.py", "a").write("# patched"))
attempt("edit the grades", lambda: open(base + "/grader/grades.csv", "a").write("attacker,29"))
for name, path in {"kernel.core_pattern": "/proc/sys/kernel/core_pattern", "vm.swappiness": "/proc/sys/vm/swappiness",
                   "a CPU's online switch": "/sys/devices/system/cpu/cpu1/online",
                   "a cgroup's processes": "/sys/fs/cgroup/pids/cgroup.procs", "/dev/kmsg": "/dev/kmsg"}.items():
    attempt("open " + name + " for writing", lambda: os.close(os.open(path, os.O_WRONLY)))
attempt("leave a file in /dev/shm", lambda: open("/dev/shm/lab3-attack-" + tag, "w").write("x"))
attempt("leave a file in /tmp", lambda: open("/tmp/lab3-attack-" + tag, "w").write("x"))
seen["capabilities"] = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
seen["uid"] = os.getuid()
seen["network interfaces"] = sorted(name for _, name in socket.if_nameindex())
subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(4); open(sys.argv[1], 'a').write('attacker,29')",
                  base + "/grader/grades.csv", "lab3-attack-" + tag], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the grader waits for no output of it
print("SEEN " + json.dumps(seen))
"""


def lay_out(grader_uid: int) -> Path:
    """A grader's folders under /tmp: its own (secret.txt, grades.csv, mode 700), a world-readable copy of the course
    (course/hidden.py), and runs/work, the sandbox's work folder."""
    base = Path(tempfile.mkdtemp(prefix="lab3-modes-", dir="/tmp"))
    base.chmod(0o755)
    for folder, mode in (("grader", 0o700), ("course", 0o755), ("runs", 0o700), ("runs/work", 0o700)):
        (base / folder).mkdir(mode=mode)
    (base / "grader" / "secret.txt").write_text("the course's seed salt")
    (base / "grader" / "grades.csv").write_text("alice,29\n")
    (base / "course" / "hidden.py").write_text("def verdict(): ...\n")
    shutil.copy(ROOT / "grading" / "assignment" / "sandbox.py", base / "grader" / "sandbox.py")
    for path in (base / "grader", base / "grader" / "secret.txt", base / "grader" / "grades.csv", base / "runs",
                 base / "runs" / "work", base / "grader" / "sandbox.py"):
        os.chown(path, grader_uid, grader_uid)
    (base / "grader" / "secret.txt").chmod(0o600)
    return base


def sandboxed(mode: str, command: list[str], limits: dict, base: Path, timeout: float = 300) -> dict:
    """Run `command` in the sandbox in `mode`, the work folder `base`/runs/work: the grader's report."""
    job = {"work": str(base / "runs" / "work"), "command": command, "limits": limits}
    done = subprocess.run([*MODES[mode], sys.executable, "-c", GRADER, json.dumps(job)], cwd=base / "grader",
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def leftovers(tag: str) -> dict[str, bool]:
    """What the attacks left on the host once the sandbox ended."""
    running = subprocess.run(["pgrep", "-f", f"lab3-attack-{tag}"], capture_output=True).returncode == 0
    return {"a process left running": running, "a file left in /dev/shm": Path(f"/dev/shm/lab3-attack-{tag}").exists(),
            "a file left in /tmp": Path(f"/tmp/lab3-attack-{tag}").exists()}


def attacked(mode: str) -> dict:
    """Every attack of ATTACKS in `mode`: what the student's code saw, what it left behind, and the grades 5 s later."""
    import time
    base, tag = lay_out(0 if mode.startswith("root") else GRADER_UID), uuid.uuid4().hex[:8]
    (base / "runs" / "work" / "attack.py").write_text(ATTACKS)
    report = sandboxed(mode, [sys.executable, "attack.py", str(base), tag], {"seconds": 60}, base)
    seen = json.loads(next(line for line in report["output"].splitlines() if line.startswith("SEEN "))[5:])
    left = leftovers(tag)
    time.sleep(5)  # the process left behind would have written by now
    grades = (base / "grader" / "grades.csv").read_text()
    subprocess.run(["pkill", "-f", f"lab3-attack-{tag}"], capture_output=True)
    for leftover in (Path(f"/dev/shm/lab3-attack-{tag}"), Path(f"/tmp/lab3-attack-{tag}")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(base)
    return {"mode": report["mode"], **seen, **left, "grades afterwards": "unchanged" if grades == "alice,29\n"
            else "edited"}


if __name__ == "__main__":
    table = {mode: attacked(mode) for mode in MODES}
    rows = [k for k in table[next(iter(table))] if k != "mode"]
    print("| attack | " + " | ".join(f"{m} ({t['mode']})" for m, t in table.items()) + " |")
    print("|---" * (len(table) + 1) + "|")
    for row in rows:
        print(f"| {row} | " + " | ".join(str(t[row]) for t in table.values()) + " |")
