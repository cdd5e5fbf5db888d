"""Run a command as a grader runs in Docker without CAP_SYS_ADMIN (Gradescope's autograder): root, or the user
`--as UID`, with CAP_SYS_ADMIN out of the bounding set, the namespace syscalls refused as Docker's default seccomp
profile refuses them, and /sys/fs/cgroup read-only. A Python under /root (mode 700) is made reachable, as a container's
Python is.

    python -m tests.docker_like [--as UID] [--namespaces] -- COMMAND...   (--namespaces: leave the syscalls allowed)
"""

import ctypes
import os
import struct
import subprocess
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
UNSHARE, SETNS, CLONE, CLONE3 = 272, 308, 56, 435  # x86-64
AUDIT_ARCH_X86_64 = 0xC000003E
EPERM, ENOSYS = 1, 38


def _filter() -> bytes:
    """A seccomp program: unshare and setns refused, clone refused with a namespace flag, clone3 unknown (libc then
    falls back to clone), as in Docker's default profile."""
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | EPERM, 0x00050000 | ENOSYS
    program = [(ld, 0, 0, 4), (jeq, 0, 10, AUDIT_ARCH_X86_64),  # 0-1: another architecture: allowed
               (ld, 0, 0, 0), (jeq, 6, 0, UNSHARE), (jeq, 5, 0, SETNS), (jeq, 5, 0, CLONE3),  # 2-5
               (jeq, 0, 5, CLONE), (ld, 0, 0, 16), (jset, 1, 0, NEW_NAMESPACES),  # 6-8: clone's flags
               (ret, 0, 0, allow), (ret, 0, 0, eperm), (ret, 0, 0, enosys), (ret, 0, 0, allow)]  # 9-12
    return b"".join(struct.pack("HBBI", *instruction) for instruction in program)


def _seccomp() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    program = ctypes.create_string_buffer(_filter())
    fprog = struct.pack("HxxxxxxQ", len(program.raw) // 8, ctypes.addressof(program))
    if libc.prctl(22, 2, ctypes.create_string_buffer(fprog), 0, 0):  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "seccomp")


def _mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    user = options[options.index("--as") + 1] if "--as" in options else None
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS):
        raise OSError(ctypes.get_errno(), "unshare")
    _mount("--make-rprivate", "/")
    python = Path(sys.base_prefix)
    if python.is_relative_to("/root") and os.stat("/root").st_mode & 0o001 == 0:
        top = Path("/root", python.relative_to("/root").parts[0])
        _mount("--bind", str(top), "/mnt")
        _mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/root")
        top.mkdir()
        _mount("--move", "/mnt", str(top))
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith("/sys/fs/cgroup"):
            subprocess.run(["mount", "-o", "remount,bind,ro", point], capture_output=True)
    if "--namespaces" not in options:
        _seccomp()
    drop = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin"]
    if user:
        drop += [f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    os.execvp("setpriv", [*drop, "--", *command])


if __name__ == "__main__":
    main(sys.argv[1:])
