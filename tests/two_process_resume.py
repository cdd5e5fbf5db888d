"""Run by `accelerate launch` with two processes: a PPO run resumed after its first step takes the next steps exactly
as the uninterrupted run takes them. Prints `resumed as uninterrupted: True` (the main process) when it does."""

import shutil
import sys
from pathlib import Path

from transformers import AutoTokenizer, pipeline

import rlhf_helpers as lab
from lab3 import checkpoints, session, settings
from tests.conftest import ppo_step, small_trainer

work = Path(sys.argv[1])
state = session.process_state()
tiny = settings.preset("tiny")
dataset = lab.build_dataset(tiny.model_name, tiny.dataset_name, tiny.input_min_text_length,
                            tiny.input_max_text_length)
tokenizer = AutoTokenizer.from_pretrained(tiny.model_name)
reward_pipe = pipeline("sentiment-analysis", model=tiny.toxicity_model_name, device=state.device)
identity = checkpoints.run_settings("tiny", settings.record(tiny), "nothate", "by_label", state.num_processes)


def step(run: dict, trainer) -> dict:
    return ppo_step(run, trainer, tokenizer, reward_pipe, tiny)


trainer = small_trainer(tiny, dataset, tokenizer)  # 32 dialogues, batches of 8 a process: 2 steps a pass
run = checkpoints.start_or_resume(work / "uninterrupted", identity, trainer)
step(run, trainer)
if state.is_main_process:  # as an interruption after step 1 leaves the run's folder
    shutil.copytree(work / "uninterrupted", work / "interrupted")
state.wait_for_everyone()
uninterrupted = [step(run, trainer) for _ in range(4)]  # the end of its pass over the data, and the next passes

trainer = small_trainer(tiny, dataset, tokenizer)
run = checkpoints.start_or_resume(work / "interrupted", identity, trainer)
resumed = [step(run, trainer) for _ in range(4)]
same = all(a["texts"] == b["texts"] and a["rewards"] == b["rewards"] for a, b in zip(resumed, uninterrupted))
state.print(f"resumed as uninterrupted: {same and run.resumed_from == [1]}")
checkpoints.end_of_ppo(run, trainer)  # every process leaves the processes' group, as the lab does
