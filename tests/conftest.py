import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before the Hugging Face libraries are imported
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import rlhf_helpers as lab  # noqa: E402
from lab3 import ROOT, settings  # noqa: E402
from lab3.solutions import solution  # noqa: E402

# A test that needs one of these is in the `slow` tier (pyproject.toml): each runs the whole lab, or more.
SLOW_FIXTURES = {"lab_run", "full_run", "launched", "graded_class", "graded_assignment", "bare_kernel"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that needs a fixture of SLOW_FIXTURES."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# The tiny preset's settings with fewer PPO steps and evaluation samples: the sizes a test can afford.
SHORT = {"max_ppo_steps": 6, "num_eval_samples": 32}


@pytest.fixture(scope="session")
def tiny() -> dict:
    """The tiny preset's settings, its files built first if they are missing."""
    if not (ROOT / "checkpoints" / "tiny" / "MANIFEST.json").is_file():
        from tiny_world.build import build
        build(ROOT / "checkpoints" / "tiny")
    return settings.preset("tiny")


@pytest.fixture(scope="session")
def tiny_dataset(tiny):
    return lab.build_dataset(tiny.model_name, tiny.dataset_name, tiny.input_min_text_length,
                             tiny.input_max_text_length)


@pytest.fixture(scope="session")
def tokenizer(tiny):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny.model_name)


@pytest.fixture(scope="session")
def toxicity_evaluator(tiny):
    import evaluate
    return evaluate.load(lab.TOXICITY_MODULE, tiny.toxicity_model_name, module_type="measurement")


@pytest.fixture(scope="session")
def reward_pipe(tiny):
    from transformers import pipeline
    return pipeline("sentiment-analysis", model=tiny.toxicity_model_name)


def run_lab(out: Path, alone: bool = False, **parameters) -> Path:
    """Execute the lab notebook headless into `out` (with results.json beside it); returns the executed notebook.
    `alone`: as a notebook opened without the lab's files meets it, in `out`, fetching them from this checkout."""
    import papermill
    out.mkdir(parents=True, exist_ok=True)
    where = {"lab_source": str(ROOT)} if alone else {}
    papermill.execute_notebook(str(ROOT / "lab3_rlhf_detox.ipynb"), str(out / "lab.ipynb"),
                               cwd=str(out if alone else ROOT),
                               parameters={"preset_name": "tiny", "output_dir": str(out),
                                           "checkpoint_dir": str(out / "checkpoints"), **where, **parameters},
                               progress_bar=False)
    return out / "lab.ipynb"


@pytest.fixture(scope="session")
def lab_run(tiny, tmp_path_factory) -> Path:
    """The folder of one correct run of the whole notebook, opened alone (it copies the lab's files from this checkout
    into `lab3_files/` beside it): the tiny preset with the SHORT settings (its notebook, results.json, plot, and PPO
    checkpoints in `checkpoints/`). The suite's other whole runs are the full preset's in the checkout (`full_run`)
    and the script's under `accelerate launch` (`launched`)."""
    return run_lab(tmp_path_factory.mktemp("lab"), alone=True, overrides=SHORT).parent


def results(folder: Path) -> dict:
    """The results.json in `folder`."""
    return json.loads((Path(folder) / "results.json").read_text())


def policy(tiny: dict, seed: int = 0):
    """The notebook's PPO model: the Lab 2 summarizer with a fresh LoRA adapter and a value head, from `seed`."""
    from trl import AutoModelForSeq2SeqLMWithValueHead
    from trl.core import set_seed
    set_seed(seed)
    summarizer = lab.add_fresh_lora(lab.load_summarizer(tiny.model_name, tiny.adapter_dir))
    return AutoModelForSeq2SeqLMWithValueHead.from_pretrained(summarizer, is_trainable=True)


def shipped_build_kernels() -> str:
    """The CPU kernels the shipped tiny preset was built with (a rebuild gives its bytes only on the same kind)."""
    return json.loads((ROOT / "checkpoints" / "tiny" / "BUILT").read_text())["cpu_capability"]


def this_cpus_kernels() -> str:
    """The CPU kernels torch runs on this machine (AVX2, AVX512, ...)."""
    import torch
    return torch.backends.cpu.get_cpu_capability()


@functools.cache
def classifier_build(threads: str) -> dict[str, str]:
    """The SHA-256 of each file of the quick part of the tiny build (corpus and hate classifier) run with `threads`
    threads on this machine, built once for the suite."""
    from lab3.checksums import folder_sha256s
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "tiny_world.build", out, "--classifier-only"], cwd=ROOT, check=True,
                       capture_output=True, env=dict(os.environ, OMP_NUM_THREADS=threads))
        return folder_sha256s(Path(out))


def rounds_as_the_build_machine() -> bool:
    """Whether this CPU trains the tiny classifier to the shipped bytes (a quick build): the same kind of kernels is not
    always the same sums (seen: an AVX512 CPU with AMX rounds otherwise)."""
    if this_cpus_kernels() != shipped_build_kernels():
        return False
    from lab3.checksums import MANIFEST
    shipped = json.loads((ROOT / "checkpoints" / "tiny" / MANIFEST).read_text())
    return classifier_build("2")["roberta-hate/model.safetensors"] == shipped["roberta-hate/model.safetensors"]


def printed(notebook: Path) -> str:
    """Everything the executed `notebook` printed, its errors' messages included."""
    nb = json.loads(Path(notebook).read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    return "".join(("".join(o["text"]) if o.get("name") == "stdout" else "") +
                   ("\n".join(o["traceback"]) + "\n" if o.get("output_type") == "error" else "") for o in outputs)


def one_sentence_error(text: str) -> str:
    """The error a run showed, which must be a one-line LabError, no traceback."""
    errors = [line for line in text.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("LabError: "), text[-2000:]
    return errors[0].removeprefix("LabError: ")


@pytest.fixture(scope="session")
def hub_home(tiny, tmp_path_factory) -> Path:
    """An HF_HOME whose caches hold the tiny models and corpus under the full preset's repo ids."""
    from tiny_world.standins import add_to_datasets_cache, add_to_hub_cache
    full, tiny_dir = settings.preset("full"), ROOT / "checkpoints" / "tiny"
    home = tmp_path_factory.mktemp("hf_home")
    add_to_hub_cache(home / "hub", full.model_name, tiny_dir / "flan-t5")
    add_to_hub_cache(home / "hub", full.toxicity_model_name, tiny_dir / "roberta-hate")
    add_to_datasets_cache(home / "datasets", full.dataset_name, tiny_dir / "dialogsum")
    return home


def offline_env(hub_home: Path) -> dict:
    """The environment of a machine whose Hugging Face caches are `hub_home`'s, with the Hub out of reach."""
    env = dict(os.environ, HF_HOME=str(hub_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("LAB3_PRESET", None)
    return env


# The full preset's settings with fewer PPO steps and evaluation samples, as a course may assign them.
FULL_SHORT = {"max_ppo_steps": 2, "num_eval_samples": 16}


@pytest.fixture(scope="session")
def full_run(hub_home, tmp_path_factory) -> Path:
    """The folder of a run of the full preset at its settings but for FULL_SHORT, on the stand-ins: a correct run, and
    one that passes every check of the grader told of FULL_SHORT."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in offline_env(hub_home).items():
            monkeypatch.setenv(name, value)
        return run_lab(tmp_path_factory.mktemp("full"), preset_name="full", overrides=FULL_SHORT).parent


ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
# Accelerate 1.15 starts several CPU processes only through its multi-GPU launcher (torchrun) with ACCELERATE_USE_CPU
# set: `accelerate launch --cpu --num_processes 2` runs the script once, in one process, unless MPI is installed.
LAUNCH_TWO = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", str(ROOT / "lab3_rlhf_detox.py")]
LAUNCHED = {"max_ppo_steps": 4, "num_eval_samples": 16}


def launch_env(**environment) -> dict:
    """The environment of the lab's script under `accelerate launch` on CPU processes, the lab's settings changed as
    `environment` says (LAB3_OVERRIDES, LAB3_PRESET)."""
    return dict(os.environ, ACCELERATE_USE_CPU="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
                LAB3_OVERRIDES=json.dumps(LAUNCHED), **environment)


@pytest.fixture(scope="session")
def launched(tiny, tmp_path_factory) -> Path:
    """The folder of the lab's script run by two processes under `accelerate launch` (its results in `outputs/`, its
    checkpoints in `checkpoints/`, what it printed in `stdout.txt`)."""
    import subprocess
    folder = tmp_path_factory.mktemp("launched")
    done = subprocess.run(LAUNCH_TWO, cwd=folder, env=launch_env(), capture_output=True, text=True,
                          timeout=900)  # a deadlock fails here
    assert done.returncode == 0, done.stderr[-3000:]
    (folder / "stdout.txt").write_text(done.stdout)
    return folder


def with_rewards(results: dict, pick) -> dict:
    """`results` as a run records them whose reward was `pick(pipeline scores of a text)` instead of `nothate`'s."""
    results = json.loads(json.dumps(results))
    for step in results["ppo_steps"]:
        step["rewards"] = [pick(scores) for scores in step["pipeline_scores"]]
    return results


# The classic reward mistakes, as a run records them: the lecture's `reward[nothate_index]` takes the first label of a
# list the pipeline sorts by score, and a run may optimize the wrong label.
WRONG_REWARDS = {"reward-by-position": lambda scores: scores[0]["score"],
                 "optimizes-hate": lambda scores: next(d["score"] for d in scores if d["label"] == "hate")}


def small_trainer(tiny, tiny_dataset, tokenizer, **config):
    """A PPO trainer on the tiny preset's policy with small batches (8 of the first 32 training dialogues); `config`:
    more PPOConfig arguments."""
    from trl import PPOConfig, PPOTrainer

    from lab3 import checkpoints
    config = PPOConfig(learning_rate=tiny.learning_rate, batch_size=8, mini_batch_size=4, ppo_epochs=2, seed=0,
                       accelerator_kwargs=checkpoints.data_order(0), **config)
    return PPOTrainer(config=config, model=policy(tiny), ref_model=None, tokenizer=tokenizer,
                      dataset=tiny_dataset["train"].select(range(32)), data_collator=lab.collator)


_LOOPS = {}  # the loop of each run `ppo_step` steps, by the run's id


def ppo_step(run, trainer, tokenizer, reward_pipe, tiny) -> dict:
    """One PPO step as the notebook takes it (sampled summaries, rewards by label), recorded and checkpointed."""
    from lab3 import checkpoints
    from lab3.results import ppo_step_record
    if id(run) not in _LOOPS:  # the notebook's loop, a step at a time
        _LOOPS[id(run)] = checkpoints.ppo_steps(run, trainer, max_steps=100)
    batch = next(_LOOPS[id(run)])
    responses = trainer.generate(batch["input_ids"], batch_size=8, return_prompt=False, max_new_tokens=12,
                                 **tiny.generation_kwargs)
    texts = [q + " " + r for q, r in zip(batch["query"], tokenizer.batch_decode(responses, skip_special_tokens=True))]
    scores = reward_pipe(texts, **tiny.reward_kwargs)
    rewards = solution("rewards_by_label")(scores, "nothate")
    stats = trainer.step(batch["input_ids"], responses, rewards)
    checkpoints.record_step(run, trainer, ppo_step_record(len(run.history), stats, scores, rewards, texts))
    return run.history[-1]
