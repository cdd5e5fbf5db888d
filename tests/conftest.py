import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import rlhf_helpers as lab  # noqa: E402
import run_settings


@pytest.fixture(scope="session")
def tiny() -> dict:
    """The tiny preset's settings, its files built first if they are missing."""
    if not (ROOT / "checkpoints" / "tiny" / "MANIFEST.json").is_file():
        from tiny_world.build import build
        build(ROOT / "checkpoints" / "tiny")
    return run_settings.get_preset("tiny")


@pytest.fixture(scope="session")
def tiny_dataset(tiny):
    return lab.build_dataset(tiny["model_name"], tiny["dataset_name"], tiny["input_min_text_length"],
                             tiny["input_max_text_length"])


@pytest.fixture(scope="session")
def tokenizer(tiny):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny["model_name"])


@pytest.fixture(scope="session")
def toxicity_evaluator(tiny):
    import evaluate
    return evaluate.load(lab.TOXICITY_MODULE, tiny["toxicity_model_name"], module_type="measurement")


@pytest.fixture(scope="session")
def reward_pipe(tiny):
    from transformers import pipeline
    return pipeline("sentiment-analysis", model=tiny["toxicity_model_name"])


def run_lab(out: Path, **parameters) -> Path:
    """Execute the lab notebook headless into `out` (with results.json beside it); returns the executed notebook."""
    import papermill
    out.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(ROOT / "lab3_rlhf_detox.ipynb"), str(out / "lab.ipynb"), cwd=str(ROOT),
                               parameters={"preset_name": "tiny", "output_dir": str(out),
                                           "checkpoint_dir": str(out / "checkpoints"), **parameters},
                               progress_bar=False)
    return out / "lab.ipynb"


@pytest.fixture(scope="session")
def executed(tiny, tmp_path_factory) -> Path:
    """The folder of one correct run of the whole lab on the tiny preset."""
    return run_lab(tmp_path_factory.mktemp("lab")).parent


SHORT = {"max_ppo_steps": 12, "num_eval_samples": 24}  # the tiny preset's settings, fewer steps and samples


@pytest.fixture(scope="session")
def short_run(tiny, tmp_path_factory) -> Path:
    """The folder of one uninterrupted run of the lab with the SHORT settings (its checkpoints in `checkpoints/`)."""
    return run_lab(tmp_path_factory.mktemp("short"), overrides=SHORT).parent


def shipped_build_kernels() -> str:
    """The CPU kernels the shipped tiny preset was built with (a rebuild gives its bytes only on the same kind)."""
    return json.loads((ROOT / "checkpoints" / "tiny" / "BUILT").read_text())["cpu_capability"]


def this_cpus_kernels() -> str:
    """The CPU kernels torch runs on this machine (AVX2, AVX512, ...)."""
    import torch
    return torch.backends.cpu.get_cpu_capability()


def printed(notebook: Path) -> str:
    """Everything the executed `notebook` printed, its errors' messages included."""
    nb = json.loads(Path(notebook).read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    return "".join(("".join(o["text"]) if o.get("name") == "stdout" else "") +
                   ("\n".join(o["traceback"]) + "\n" if o.get("output_type") == "error" else "") for o in outputs)
