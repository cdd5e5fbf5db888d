"""Set up a machine for the lab: the pinned packages in this Python, and the tiny preset's files.

The standard library only, since it runs before anything is installed. The notebook's set-up cell calls `prepare`;
from a shell, `python -m lab3` does (lab3/__main__.py).
"""

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time

from lab3 import NOTEBOOK, ROOT
from lab3.errors import LabError

LAB_VERSION = "3.3.0"  # the notebook's set-up cell names the version it belongs to; they must agree
TINY_MANIFEST = ROOT / "checkpoints" / "tiny" / "MANIFEST.json"
TORCH_VERSION = "2.13.0"  # installed only where the host has no torch: a host's own torch is always kept
# A running kernel brings its own Jupyter: the notebook's set-up leaves these to the host.
KERNEL_OWN = {"jupyter", "ipykernel", "nbclient", "nbformat", "papermill", "jupytext"}
# The lab runs offline on the tiny preset, and the progress bars of a headless run should not flood its log.
LAB_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_MININTERVAL": "5"}
COLAB_DRIVE_HINT = """\
Colab: a disconnected runtime loses its disk, and the PPO checkpoints with it. To resume after a disconnect, keep them
on Google Drive: run `from google.colab import drive; drive.mount("/content/drive")` and set
checkpoint_dir = "/content/drive/MyDrive/lab3-checkpoints" in the parameters cell."""
_said = set()  # what this kernel was told once already


def _specifier_tools():
    """packaging's Requirement and Version classes: the package's own, or the copy every pip carries."""
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.version import Version
    return Requirement, Version


def requirements(*files: str) -> list[str]:
    """The requirement lines of the lab's requirement `files` (comments and blanks dropped)."""
    lines = []
    for name in files:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                lines.append(line)
    return lines


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution` in this Python, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirement_name(line: str) -> str:
    """The distribution a requirement line names."""
    return _specifier_tools()[0](line).name


def unmet(lines: list[str]) -> list[str]:
    """The requirement `lines` that this Python's installed packages do not satisfy."""
    Requirement, Version = _specifier_tools()
    missing = []
    for line in lines:
        requirement = Requirement(line)
        version = installed_version(requirement.name)
        if version is None or not requirement.specifier.contains(Version(version), prereleases=True):
            missing.append(line)
    return missing


def torch_install_arguments() -> list[list[str]]:
    """pip arguments to try in turn for torch: the CUDA build where an NVIDIA GPU is, else the CPU build."""
    if shutil.which("nvidia-smi"):
        return [[f"torch=={TORCH_VERSION}"]]
    # Never PyPI's plain torch on a CPU-only machine (a CUDA build of several GB): a local CPU wheel, or PyTorch's
    # CPU index.
    return [[f"torch=={TORCH_VERSION}+cpu"],
            [f"torch=={TORCH_VERSION}", "--index-url", "https://download.pytorch.org/whl/cpu"]]


def pip_install(arguments: list[str]) -> subprocess.CompletedProcess:
    """Run pip install with `arguments` in this very Python (the kernel's, in a notebook: what %pip does)."""
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-input", *arguments],
                          capture_output=True, text=True, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))


def install(lines: list[str], constraints: str, with_torch: bool) -> None:
    """Install the requirement `lines` (and torch first, `with_torch`), holding the others at `constraints`."""
    if with_torch:
        for arguments in torch_install_arguments():
            if pip_install(arguments).returncode == 0:
                break
        else:
            raise LabError(f"torch {TORCH_VERSION} could not be installed into {sys.executable}: install a torch "
                                "build for this machine (https://pytorch.org), then run this again.")
    if not lines:
        return
    done = pip_install([*lines, "--constraint", constraints])
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(pip said nothing)"])[-1]
        raise LabError(f"pip could not install {', '.join(lines)} into {sys.executable} ({last}): check the "
                            "machine's connection to the package index, then run this again.")
    importlib.invalidate_caches()


def imported_versions() -> dict[str, str | None]:
    """The installed version of each distribution that this process has imported a module of."""
    modules = {m.split(".")[0] for m in list(sys.modules)}
    return {dist: installed_version(dist) for module, dists in importlib.metadata.packages_distributions().items()
            if module in modules for dist in dists}


def build_tiny() -> None:
    """Build the tiny preset's files, showing the builder's progress as it goes."""
    print("Building the tiny preset (a few minutes on a laptop CPU) ...", flush=True)
    env = dict(LAB_ENVIRONMENT, **os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "tiny_world.build", str(TINY_MANIFEST.parent)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for chunk in iter(lambda: proc.stdout.read(100), ""):  # whole progress-bar updates, not line by line
        print(chunk, end="", flush=True)
    if proc.wait() != 0:
        raise LabError(f"The tiny preset could not be built (python -m tiny_world.build exited {proc.returncode}, "
                            "its output is above): fix what it says, then run this again.")


def version_note(notebook_version: str | None) -> str:
    """'' when the notebook and these files are the same version of the lab, else what to do, in one sentence."""
    if notebook_version in (None, LAB_VERSION):
        return ""
    return (f"This notebook is version {notebook_version} of the lab, but its files in {ROOT} are version "
            f"{LAB_VERSION}: point lab_source at the files of version {notebook_version} (git tag "
            f"v{notebook_version}), or open {ROOT / NOTEBOOK}, the notebook that matches them.")


def tiny_preset_stale() -> bool:
    """Whether the tiny preset's files were built from other inputs than the checkout's (a changed prompt, say)."""
    built = TINY_MANIFEST.with_name("BUILT")
    if not built.is_file():
        return False
    from lab3.checksums import build_inputs_sha256
    return json.loads(built.read_text()).get("inputs_sha256") != build_inputs_sha256(ROOT)


def prepare(notebook_version: str | None = None, in_kernel: bool = True) -> None:
    """Install what the lab needs into this Python and build the tiny preset if missing; say what was done in a line."""
    start = time.time()
    note = version_note(notebook_version)
    if note:
        print(note)
    if os.environ.get("COLAB_RELEASE_TAG") and "colab" not in _said:
        _said.add("colab")
        print(COLAB_DRIVE_HINT)
    # From a shell (`make lab`, `make test`) also the tests' packages and the optional trackers, which the tests use.
    wanted = requirements("requirements.txt") + ([] if in_kernel else requirements("requirements-dev.txt",
                                                                                   "requirements-trackers.txt"))
    if in_kernel:
        wanted = [line for line in wanted if requirement_name(line) not in KERNEL_OWN]
    missing = unmet(wanted)
    needs_torch = installed_version("torch") is None
    rebuild = tiny_preset_stale()
    if not missing and not needs_torch and TINY_MANIFEST.is_file() and not rebuild:
        print(f"Set-up: nothing to do (lab version {LAB_VERSION} in {ROOT}; its packages are installed in "
              f"{sys.executable}) [{time.time() - start:.2f} s]")
        return
    if missing or needs_torch:
        if os.environ.get("RANK", "0") != "0":  # under `accelerate launch`, processes must not install side by side
            raise LabError("The lab's packages are not all installed: run `python -m lab3` once before "
                                "`accelerate launch`.")
        imported = imported_versions()
        print(f"Installing {len(missing) + needs_torch} packages into {sys.executable}: "
              f"{', '.join(missing + ['torch'] * needs_torch)} ...", flush=True)
        t0 = time.time()
        install(missing, str(ROOT / "requirements.txt"), with_torch=needs_torch)
        print(f"Installed in {time.time() - t0:.0f} s.")
        stale = sorted(dist for dist, version in imported.items() if installed_version(dist) != version)
        if in_kernel and stale:
            raise LabError(f"Restart the runtime (Colab: Runtime > Restart session; Jupyter: Kernel > Restart) "
                                f"and run all again: {', '.join(stale)} had already been imported in this kernel at "
                                "the version that was just replaced.")
    if not TINY_MANIFEST.is_file() or rebuild:
        if rebuild:
            print("The tiny preset's files were built from another prompt, LoRA shape or tiny_world code: rebuilding.")
        t0 = time.time()
        build_tiny()
        print(f"Built the tiny preset in {time.time() - t0:.0f} s.")
    print(f"Set-up done in {time.time() - start:.0f} s.")
