"""Set up this machine, then run the lab or the tests; the README's two commands, without make:

    python -m lab3          # set up only
    python -m lab3 lab      # set up, then run the lab on the tiny preset into outputs/ (what `make lab` does)
    python -m lab3 test     # set up, then ruff and the tests (what `make test` does)
"""

import argparse
import os
import shutil
import subprocess
import sys

from lab3 import NOTEBOOK, ROOT
from lab3.errors import LabError
from lab3.setup import LAB_ENVIRONMENT, prepare


def ensure_bubblewrap() -> None:
    """Install bubblewrap, the autograder's sandbox where namespaces are allowed, if it is missing and apt can."""
    if shutil.which("bwrap") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    print("Installing bubblewrap (the autograder's sandbox) with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "bubblewrap"]):
        subprocess.run(command, capture_output=True, env=env)
    if not shutil.which("bwrap"):
        print("bubblewrap could not be installed: the sandbox's tests of namespaces are skipped.")


def main(argv: list[str] | None = None) -> int:
    """`python -m lab3 [lab|test]`: set up, then run the lab or the tests; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m lab3", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("lab", "test"), help="what to run once set up")
    parser.add_argument("--preset", default="tiny", help="the preset `lab` runs (tiny or full)")
    args, rest = parser.parse_known_args(argv)
    for name, value in LAB_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        prepare(in_kernel=False)
    except LabError as e:
        print(e, file=sys.stderr)
        return 1
    if args.command == "lab":
        (ROOT / "outputs").mkdir(exist_ok=True)
        command = ["-m", "papermill", NOTEBOOK, f"outputs/{NOTEBOOK}",
                   "-p", "output_dir", "outputs", "-p", "preset_name", args.preset, *rest]
    elif args.command == "test":
        ensure_bubblewrap()
        linted = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT).returncode  # pyproject.toml
        tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests", *rest], cwd=ROOT).returncode
        return tested or linted
    else:
        return 0
    return subprocess.run([sys.executable, *command], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
