"""Setting a machine up for the lab (lab_setup), and the device rules that decide how the lab runs there."""

import json
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from lab3 import setup as lab_setup
from lab3 import speedups
from tests.conftest import ROOT


def test_the_notebook_belongs_to_the_version_of_these_files():
    nb = json.loads((ROOT / "lab3_rlhf_detox.ipynb").read_text())
    source = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert re.findall(r'^LAB_VERSION = "(.*)"', source, re.M) == [lab_setup.LAB_VERSION]


def test_another_version_of_the_notebook_is_told_which_files_match():
    assert lab_setup.version_note(lab_setup.LAB_VERSION) == ""
    note = lab_setup.version_note("3.0.0")
    assert note.startswith(f"This notebook is version 3.0.0 of the lab, but its files in {ROOT} are version "
                           f"{lab_setup.LAB_VERSION}: point lab_source at the files of version 3.0.0 (git tag v3.0.0)")


def test_requirements_met_and_unmet_by_what_is_installed():
    assert lab_setup.unmet(lab_setup.requirements("requirements.txt", "requirements-dev.txt")) == []
    pandas = lab_setup.installed_version("pandas")
    assert lab_setup.unmet([f"pandas=={pandas}", "pandas>=2.2,<4", "tqdm==0.0.1", "no-such-package==1.0"]) == \
        ["tqdm==0.0.1", "no-such-package==1.0"]
    assert lab_setup.requirement_name("huggingface_hub==2.4.0") == "huggingface_hub"


def test_a_set_up_checkout_has_nothing_to_do_and_says_so_in_a_line(capsys):
    lab_setup.prepare(lab_setup.LAB_VERSION)
    out = capsys.readouterr().out.strip()
    assert out.startswith("Set-up: nothing to do (lab version") and "\n" not in out


def test_colab_is_told_once_how_to_keep_checkpoints_on_drive(monkeypatch, capsys):
    monkeypatch.setattr(lab_setup, "_said", set())
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-20261201")
    lab_setup.prepare(lab_setup.LAB_VERSION)
    lab_setup.prepare(lab_setup.LAB_VERSION)
    out = capsys.readouterr().out
    assert out.count("a disconnected runtime loses its disk") == 1 and 'drive.mount("/content/drive")' in out
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    lab_setup.prepare(lab_setup.LAB_VERSION)
    assert "Colab" not in capsys.readouterr().out


def test_the_python_only_commands_set_up_and_reject_what_they_do_not_know():
    done = subprocess.run([sys.executable, "-m", "lab3"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Set-up: nothing to do"), done.stderr
    done = subprocess.run([sys.executable, "-m", "lab3", "build"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice: 'build'" in done.stderr


def test_a_lone_notebook_without_a_source_says_what_to_set(tmp_path, monkeypatch):
    import papermill
    monkeypatch.delenv("LAB3_SOURCE", raising=False)
    shutil.copy(ROOT / "lab3_rlhf_detox.ipynb", tmp_path)
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(str(tmp_path / "lab3_rlhf_detox.ipynb"), str(tmp_path / "out.ipynb"),
                                   cwd=str(tmp_path), progress_bar=False)
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["SystemExit"]
    assert errors[0]["evalue"] == ("This notebook needs the lab's files: set lab_source in the parameters cell (or "
                                   "LAB3_SOURCE) to the lab's git URL or folder, and run all again.")
    assert not (tmp_path / "lab3_files").exists()


def _gpu(monkeypatch, capability: tuple[int, int]) -> None:
    """Make torch on this CPU answer as a CUDA device of compute `capability` would."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(
        major=capability[0], minor=capability[1]))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


@pytest.mark.parametrize("capability, expected", [((7, 5), "float32"), ((7, 0), "float32"), ((8, 0), "bfloat16"),
                                                  ((9, 0), "bfloat16")])
def test_bfloat16_only_on_gpus_that_compute_it_natively(monkeypatch, capsys, capability, expected):
    _gpu(monkeypatch, capability)
    assert speedups.resolve_dtype("bfloat16", "cuda") == expected
    said = capsys.readouterr().out
    if expected == "float32":  # a T4 (7.5) or a V100 (7.0): torch's default check counts emulation as support
        assert said == (f"This GPU (compute capability {capability[0]}.{capability[1]}) has no native bfloat16, "
                        "which needs 8.0: the models run in float32.\n")
    else:
        assert said == ""
    assert speedups.resolve_dtype("float32", "cuda") == "float32"


def test_no_compiled_generation_in_a_dtype_inductor_cannot_compile(monkeypatch, capsys):
    _gpu(monkeypatch, (7, 5))
    monkeypatch.setattr("torch.utils._triton.has_triton", lambda: True)
    assert speedups.fast_generation_kwargs("cuda", 400, 300, dtype="bfloat16") == {}
    assert "Inductor cannot compile bfloat16 below compute capability 8.0 (this GPU: 7.5)" in capsys.readouterr().out
    assert speedups.fast_generation_kwargs("cuda", 400, 300, dtype="float32")["cache_implementation"] == "static"
