"""Running a student's code so that it reaches nothing but its own work folder, as an unprivileged user, within limits
for the whole submission, and leaves nothing running behind it.

The mode is what the host allows (`mode()`); `guarantees()` says what it holds:
- "namespaces": bubblewrap, started as the sandbox's own user (root drops to it first with `setpriv`, from a mount
  namespace of its own that makes the Python environment reachable), in fresh user, PID, network, IPC, UTS and mount
  namespaces. The file system is an allow-list: /usr, a few files of /etc and the Python environment read-only, the
  work folder read-write, a private /tmp and /dev/shm, a minimal /dev, its own /proc.
- "user": root where namespaces are refused (Docker without CAP_SYS_ADMIN, as on Gradescope): `setpriv` to the
  sandbox's user with no capabilities and no_new_privs, the same allow-list by Landlock where the kernel has it; every
  process of that user is killed, and what it left in /tmp, /var/tmp, /dev/shm and System V IPC removed, before the
  grader reads anything back.
- "process group": neither root nor namespaces: the grader's own user, the allow-list by Landlock, in a process group
  killed when it ends (a process that detaches can outlive it).

Limits hold for the whole submission: memory and processes by a cgroup where the grader may make one (v1 or v2), else
by `RLIMIT_NPROC` and a watch of its processes' memory; the work folder's size, each file's size and the wall time in
every mode. A limit that is hit is `Outcome.exceeded`, in one sentence.

Whatever the sandbox leaves behind is hostile: `copy_out` reads a file of the work folder back without following a link
on the way, only if it is a regular file, and only up to a size.
"""

import ctypes
import errno
import functools
import os
import pwd
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

USER = "lab3-sandbox"  # the sandbox's own user, where an instructor made that account
FALLBACK_UID = 64999  # a uid no account has, where that user does not exist
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the one that started it dies
LEFT_IN = ("/tmp", "/var/tmp", "/dev/shm")  # the host's folders every user may write (mode "user" empties its part)
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "hosts", "localtime",
       "alternatives", "ssl", "ca-certificates", "fonts", "mime.types")  # what the Python environment reads of /etc
CPU = "/sys/devices/system/cpu"  # torch counts the CPUs here
ROOT_LINKS = ("bin", "sbin", "lib", "lib64", "lib32")  # folders of / that are links into /usr, or hold libraries
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")  # bwrap's --dev has these
# Landlock (linux/landlock.h): its syscalls on x86-64 and arm64 alike, and the file system rights by ABI version.
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
READ = 1 << 0 | 1 << 2 | 1 << 3  # execute, read a file, read a folder
RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1}  # v2 adds reparenting, v3 truncating
PR_SET_NO_NEW_PRIVS = 38
FILES = {  # what the student's code may touch, by whether the kernel has Landlock (modes without namespaces)
    True: "Landlock lets it read only the Python environment, /usr and its own folder, and write only its folder",
    False: "this kernel has no Landlock: it may read whatever every user may, and write where every user may",
}
GUARANTEES = {
    "namespaces": "the student's code runs as an unprivileged user with no capabilities, sees only the Python "
                  "environment, /usr and its own folder, has no network, and every process it starts dies with it",
    "user": "the student's code runs as an unprivileged user with no capabilities, which cannot read the grader's "
            "files; {files}; every process of that user is killed before grading; it can reach the network",
    "process group": "the student's code runs as the grader's own user, in a process group killed when it ends; "
                     "{files}; a process it detaches can outlive it, and it can reach the network",
}


def guarantees() -> str:
    """What the sandbox's mode on this host guarantees, in a sentence."""
    return GUARANTEES[mode()].format(files=FILES[landlock_version() > 0])


@dataclass
class Limits:
    seconds: float
    memory_gb: float = 12
    processes: int = 512  # tasks, threads included: a tiny run uses about 100
    disk_mb: int = 2048  # the work folder, and any one file
    files: int = 100_000  # entries in the work folder


@dataclass
class Outcome:
    returncode: int | None  # None: stopped at a limit
    output: str  # the end of what it printed
    exceeded: str = ""  # the limit it hit, in one sentence ('' if none)


def sandbox_user() -> tuple[int, int]:
    """The (uid, gid) the student's code runs as, where the grader is root."""
    try:
        entry = pwd.getpwnam(USER)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return FALLBACK_UID, FALLBACK_UID


def _as_user() -> list[str]:
    """The command prefix that drops root to the sandbox's user: no groups, capabilities or new privileges."""
    uid, gid = sandbox_user()
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all",
            "--bounding-set=-all", "--"]


@functools.cache
def mode() -> str:
    """The isolation this host allows: 'namespaces', 'user' or 'process group'."""
    root = os.geteuid() == 0
    if shutil.which("bwrap"):
        test = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"]
        test = ["unshare", "--mount", "--", *_as_user(), *test] if root else test
        try:
            if subprocess.run(test, capture_output=True, timeout=30).returncode == 0:
                return "namespaces"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return "user" if root else "process group"


def landlock_version() -> int:
    """The Landlock ABI this kernel has (0: none)."""
    version = ctypes.CDLL(None, use_errno=True).syscall(LANDLOCK_CREATE_RULESET, None, 0, 1)
    return max(version, 0)


def _landlock(read: list[str], write: list[str]) -> None:
    """Restrict the calling process and all it starts to reading `read` and reading and writing `write` (Landlock:
    no privilege needed, and it holds without namespaces)."""
    libc = ctypes.CDLL(None, use_errno=True)
    rights = RIGHTS[min(landlock_version(), 3)]
    attr = ctypes.create_string_buffer(struct.pack("QQQ", rights, 0, 0))  # fs rights, no net or scope rights
    ruleset = libc.syscall(LANDLOCK_CREATE_RULESET, attr, 8, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    for paths, allowed in ((read, READ), (write, rights)):
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # absent here: nothing to allow
            file_only = (1 << 1) | (1 << 2) | (1 << 14)  # a file takes only a file's rights: write, read, truncate
            granted = allowed & rights & (file_only if not stat.S_ISDIR(os.fstat(fd).st_mode) else -1)
            beneath = ctypes.create_string_buffer(struct.pack("=Qi", granted, fd))
            done = libc.syscall(LANDLOCK_ADD_RULE, ruleset, 1, beneath, 0)
            os.close(fd)
            if done < 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0):
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


def _python_folders() -> list[Path]:
    """The folders this Python and its packages live in (not the rest of its path, which holds the grader's code)."""
    folders = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parents[1]}
    folders |= {Path(p) for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()}
    folders = {f.resolve() for f in folders if not f.resolve().is_relative_to("/usr")}
    return sorted(f for f in folders if not any(f != g and f.is_relative_to(g) for g in folders))


# Root's own mount namespace for the run: each Python folder bound where the sandbox's user can reach it (a Python
# under /root, mode 700, is common), then the rest of the command.
STAGE = 'while [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done; shift; exec "$@"'


def _bwrap(work: Path, limits: Limits, root: bool) -> list[str]:
    """The command line that runs the rest in bubblewrap: as the sandbox's user, from a mount namespace of root's
    own that stages the Python folders, where the grader is root."""
    staged, binds = [], []
    for number, folder in enumerate(_python_folders()):
        source = folder
        if root:
            source = work.parent / f"python-{number}"
            source.mkdir(mode=0o755, exist_ok=True)
            staged += [str(folder), str(source)]
        binds += ["--ro-bind", str(source), str(folder)]
    for name in ETC:
        binds += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for link in ROOT_LINKS:
        target = Path("/", link)
        if target.is_symlink():
            binds += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            binds += ["--ro-bind", str(target), f"/{link}"]
    size = str(limits.disk_mb << 20)
    # The tmpfs first: a later mount on a path inside it stays seen.
    command = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
               "--cap-drop", "ALL", "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev", "--size", size,
               "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm", "--ro-bind", "/usr", "/usr", *binds,
               "--bind", str(work), str(work), "--ro-bind-try", CPU, CPU, "--chdir", str(work), "--"]
    if root:
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", STAGE, "stage", *staged, "--",
                *_as_user(), *command]
    return command


class _Cgroup:
    """A cgroup of its own for one run, where this host lets the grader make one (v2, or v1's memory and pids)."""

    def __init__(self, limits: Limits):
        name = f"lab3-sandbox-{os.getpid()}-{time.monotonic_ns()}"
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        settings = ({"": {"memory.max": int(limits.memory_gb * (1 << 30)), "pids.max": limits.processes}} if v2 else
                    {"memory": {"memory.limit_in_bytes": int(limits.memory_gb * (1 << 30))},
                     "pids": {"pids.max": limits.processes}})
        self.folders = []
        try:
            for controller, values in settings.items():
                folder = Path("/sys/fs/cgroup", controller, name)
                folder.mkdir()
                self.folders.append(folder)
                for file, value in values.items():
                    (folder / file).write_text(str(value))
        except OSError:  # read-only (a container), or not ours to write: rlimits instead
            self.remove()

    def join(self) -> None:
        """Put the calling process in it (in the child, before it runs the command)."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def kill(self) -> None:
        """Kill every process in it, until none is left."""
        for _ in range(100):
            pids = {int(p) for f in self.folders for p in _read(f / "cgroup.procs").split()}
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def exceeded(self, limits: Limits) -> str:
        """The limit its processes hit, in one sentence."""
        events = {line.split()[0]: line.split()[-1] for f in self.folders
                  for name in ("memory.events", "memory.oom_control", "pids.events")
                  for line in _read(f / name).splitlines() if line.split()}
        if int(events.get("oom_kill", 0)) or int(events.get("oom", 0)):
            return f"the run used more than {limits.memory_gb:g} GB of memory"
        if int(events.get("max", 0)):
            return f"the run started more than {limits.processes} processes"
        return ""

    def remove(self) -> None:
        for folder in self.folders:
            try:
                folder.rmdir()
            except OSError:
                pass
        self.folders = []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _allowed(work: Path) -> tuple[list[str], list[str]]:
    """What Landlock lets the command read, and read and write, where there are no namespaces: bubblewrap's
    allow-list."""
    read = ["/usr", *(f"/{link}" for link in ROOT_LINKS), *(f"/etc/{n}" for n in ETC),
            *map(str, _python_folders()), "/proc", CPU]
    return read, [str(work), *DEVICES]


def _start(limits: Limits, cgroup: _Cgroup, root: bool, allowed: tuple[list[str], list[str]] | None):
    """What the child sets before it runs the command: its cgroup, its rlimits, its death with the grader's, and
    Landlock's allow-list (`allowed`, where there are no namespaces)."""
    already = 0 if root else len(processes_of(os.getuid()))  # a grader's own user already runs these

    def start() -> None:
        cgroup.join()
        cap = int(limits.memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # one process; the cgroup, or the monitor, bounds them all
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.disk_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes + already,) * 2)  # counted per user
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a killed grader leaves no sandbox
        if allowed:
            _landlock(*allowed)
    return start


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command's name (which may hold spaces): state, parent, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def processes_of(uid: int) -> list[int]:
    """The processes this host's /proc shows running as `uid` (not the dead that wait for their parent to reap them)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid and \
                    _stat(entry)[0] != "Z":
                found.append(int(entry))
        except (OSError, IndexError):
            pass
    return found


def _memory_of(pids: list[int]) -> int:
    """Bytes of resident memory of `pids`."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _usage(folder: Path, most: int) -> tuple[int, int]:
    """(bytes on disk, entries) under `folder`, counting no further than `most` entries."""
    size = count = 0
    stack = [str(folder)]
    while stack and count <= most:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    count += 1
                    st = entry.stat(follow_symlinks=False)
                    size += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        except OSError:
            pass
    return size, count


def kill_user(uid: int, gid: int) -> None:
    """Kill every process of `uid` (kill(-1) as that user, the one signal that reaches them all), until /proc shows
    none."""
    for _ in range(100):
        if not processes_of(uid):
            return
        child = os.fork()  # no command: neither kill(1)'s options nor a Python the user can reach are the same anywhere
        if child == 0:
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        time.sleep(0.05)
    raise RuntimeError(f"the processes of uid {uid} could not all be killed")


def remove_leftovers(uid: int) -> None:
    """Remove what `uid` left in the host's shared folders (where every user may write) and in System V IPC."""
    stack = list(LEFT_IN)
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_uid == uid:
                    shutil.rmtree(entry.path) if stat.S_ISDIR(st.st_mode) else os.unlink(entry.path)
                elif stat.S_ISDIR(st.st_mode) and st.st_mode & 0o002:  # only there could it have written
                    stack.append(entry.path)
            except OSError:
                pass
    for kind, flag in (("shm", "-m"), ("msg", "-q"), ("sem", "-s")):
        for line in _read(Path(f"/proc/sysvipc/{kind}")).splitlines()[1:]:
            fields = line.split()
            uid_column = {"shm": 7, "msg": 7, "sem": 4}[kind]
            if len(fields) > uid_column and fields[uid_column] == str(uid):
                subprocess.run(["ipcrm", flag, fields[1]], capture_output=True)


def prepare(work: Path) -> None:
    """Make `work` the sandbox's own: writable by its user, and reachable (not listable) through its parent."""
    if os.geteuid() == 0 and mode() != "process group":
        uid, gid = sandbox_user()
        for folder, dirs, files in os.walk(work):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, uid, gid)
        work.parent.chmod(0o711)


def run(command: list[str], work: Path, limits: Limits, env: dict) -> Outcome:
    """Run `command` in `work` (prepared with `prepare`), the only folder it may write, within `limits`; nothing it
    started outlives it."""
    work = Path(work).resolve()
    root, how = os.geteuid() == 0, mode()
    if how == "namespaces":
        command = [*_bwrap(work, limits, root), *command]
    elif root:
        command = [*_as_user(), *command]
    if root:
        kill_user(*sandbox_user())  # what a grader killed before its clean-up left
    cgroup = _Cgroup(limits)
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=write_end,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_start(limits, cgroup, root, None if how == "namespaces" or
                                                     not landlock_version() else _allowed(work)))
    except BaseException:
        os.close(read_end)
        cgroup.remove()
        raise
    finally:
        os.close(write_end)
    tail = bytearray()
    reader = threading.Thread(target=_keep_tail, args=(read_end, tail), daemon=True)
    reader.start()
    exceeded = ""
    try:
        returncode, exceeded = _watch(process, work, limits, cgroup)
    finally:
        exceeded = _end(process, cgroup, limits, how) or exceeded
        reader.join(timeout=5)
    return Outcome(None if exceeded else returncode, bytes(tail).decode(errors="replace"), exceeded)


def _end(process: subprocess.Popen, cgroup: "_Cgroup", limits: Limits, how: str) -> str:
    """Kill whatever the run left (its group, its cgroup, every process of the sandbox's user), remove what it left
    outside its folder; the limit the cgroup saw it hit, or ''."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    cgroup.kill()
    if os.geteuid() == 0:
        kill_user(*sandbox_user())
    process.wait()
    exceeded = cgroup.exceeded(limits)
    cgroup.remove()
    if os.geteuid() == 0 and how == "user":
        remove_leftovers(sandbox_user()[0])
    return exceeded


def _keep_tail(fd: int, tail: bytearray, most: int = 4000) -> None:
    """Read `fd` to its end, keeping the last `most` bytes in `tail` (the output, however long, takes no disk)."""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(1 << 16):
            tail += chunk
            del tail[:-most]


def _descendants(pid: int) -> list[int]:
    """`pid` and the processes it started, and they started, that are still its descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit():
                parents[int(entry)] = int(_stat(entry)[1])
        except (OSError, IndexError, ValueError):
            pass
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _watch(process: subprocess.Popen, work: Path, limits: Limits, cgroup: _Cgroup) -> tuple[int | None, str]:
    """Wait for `process` within `limits`: (its return code, or None and the limit it hit)."""
    started, checked = time.monotonic(), 0.0
    while True:
        try:
            return process.wait(timeout=0.5), ""
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - started > limits.seconds:
            return None, f"the run took more than its limit of {limits.seconds:.0f} s"
        if now - checked < 2:
            continue
        checked = now
        size, count = _usage(work, limits.files)
        if size > limits.disk_mb << 20 or count > limits.files:
            return None, f"the run wrote more than {limits.disk_mb} MB or {limits.files} files in its folder"
        hit = cgroup.exceeded(limits) if cgroup.folders else ""
        if hit:
            return None, hit
        members = processes_of(sandbox_user()[0]) if os.geteuid() == 0 else _descendants(process.pid)
        if not cgroup.folders and _memory_of(members) > limits.memory_gb * (1 << 30):
            return None, f"the run used more than {limits.memory_gb:g} GB of memory"


def copy_out(work: Path, relative: str, into: Path, most_mb: int) -> str:
    """Copy `work`/`relative` to `into` (named as its last part) if it is a regular file of at most `most_mb` MB
    reached through no link; '' or why it was not copied."""
    parts = relative.split("/")
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError as e:
        return "" if e.errno == errno.ENOENT else (
            f"{relative} is reached through a symbolic link" if e.errno in (errno.ELOOP, errno.ENOTDIR) else
            f"{relative} could not be opened ({e.strerror})")
    finally:
        os.close(fd)
    st = os.fstat(file_fd)  # before fdopen, which refuses a folder with an error of its own
    if not stat.S_ISREG(st.st_mode) or st.st_size > most_mb << 20:
        os.close(file_fd)
        return f"{relative} is not a regular file" if not stat.S_ISREG(st.st_mode) else \
            f"{relative} is larger than {most_mb} MB"
    with os.fdopen(file_fd, "rb") as f:
        data = f.read((most_mb << 20) + 1)
    if len(data) > most_mb << 20:
        return f"{relative} is larger than {most_mb} MB"
    (into / parts[-1]).write_bytes(data)
    return ""
