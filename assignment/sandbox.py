"""Running a student's code so that it cannot reach past its own submission: a process tree killed whole when it ends
or runs out of time, no network, the file system read-only but for its work folder, the grader's files out of sight.

Linux namespaces, through util-linux's `unshare` (no root needed where user namespaces are enabled):
- a PID namespace: when the command's first process ends, or is killed at the time limit, the kernel kills every
  process left in it, those that started a session of their own included; the grader's death kills it too;
- a network namespace with only its own loopback (a Jupyter kernel talks to papermill over it);
- a mount namespace in which every mount is read-only but the work folder, each folder of `hide` is an empty
  tmpfs, and which a nested user namespace locks, so that the student's code, root in it, cannot unmount or remount.
Where `unshare` cannot make them (a container that forbids namespaces), the command runs in a session of its own
whose process group is killed when it ends: a process that leaves the group, or writes outside its folder, is then
not stopped; `isolation()` says which applies.

    python assignment/sandbox.py --init WORK HIDE... -- COMMAND...     (inside the namespaces: set them up, then run)
"""

import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NAMESPACES = ["--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--net"]
KEPT = ("/proc", "/sys", "/dev")  # mounts left as they are (devices, the kernel's views)
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the one that started it dies


@dataclass
class Outcome:
    returncode: int | None  # None: killed at the time limit
    output: str  # the end of what it printed


def _unshare() -> list[str]:
    """The `unshare` command line of the namespaces (a user namespace too where this is not root)."""
    return ["unshare", *([] if os.geteuid() == 0 else ["--user", "--map-root-user"]), *NAMESPACES]


def isolation() -> str:
    """Which isolation `run` gives here, in a few words."""
    try:
        done = subprocess.run([*_unshare(), "true"], capture_output=True, timeout=30)
        if done.returncode == 0:
            return "namespaces"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "process group"


def _limits(gigabytes: float):
    """What the sandbox's first process sets before it runs: its memory cap, and its death with the grader's."""
    def limit() -> None:
        import resource
        cap = int(gigabytes * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a killed grader leaves no sandbox
    return limit


def run(command: list[str], work: Path, hide: list[Path], time_limit: float, memory_gb: float,
        env: dict) -> Outcome:
    """Run `command` in `work` (which it alone may write) with `hide` out of its sight, within `time_limit` seconds
    and `memory_gb` of memory; nothing it started outlives it."""
    work = Path(work).resolve()
    namespaced = isolation() == "namespaces"
    if namespaced:
        command = [*_unshare(), sys.executable, str(Path(__file__).resolve()), "--init", str(work),
                   *map(str, hide), "--", *command]  # by its path: the package may be among what is hidden
    log = work / ".sandbox.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_limits(memory_gb))
        try:
            returncode = process.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:  # the namespace's first process takes every other with it; the group, where there is none
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    return Outcome(returncode, log.read_bytes()[-4000:].decode(errors="replace"))


def _mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, capture_output=True)


def _loopback_up() -> None:
    """Bring the namespace's loopback up (SIOCGIFFLAGS, SIOCSIFFLAGS: no `ip` command needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))


def _init(work: str, hide: list[str], command: list[str]) -> None:
    """Inside fresh namespaces: every mount read-only but `work`, `hide` emptied, loopback up; then `command`, in a
    nested user namespace that locks those mounts."""
    _mount("--make-rprivate", "/")
    _mount("--bind", work, work)
    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    for point in sorted(mounts):
        if point != work and not any(point == k or point.startswith(k + "/") for k in KEPT):
            subprocess.run(["mount", "-o", "remount,bind,ro", point], capture_output=True)  # some refuse: fine
    for folder in hide:
        if Path(folder).is_dir() and not Path(work).is_relative_to(folder):
            _mount("-t", "tmpfs", "-o", "size=16k,mode=0", "none", folder)
    _loopback_up()
    os.chdir(work)  # the bind mount: the folder as it was before is read-only now
    os.execvp("unshare", ["unshare", "--user", "--map-root-user", "--mount", "--", *command])


if __name__ == "__main__" and sys.argv[1:2] == ["--init"]:
    split = sys.argv.index("--")
    _init(sys.argv[2], sys.argv[3:split], sys.argv[split + 1:])
