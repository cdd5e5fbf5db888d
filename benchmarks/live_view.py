"""What the live view costs beside a PPO step, measured side by side in one run on the tiny preset.

    python -m benchmarks.live_view [STEPS]

Takes STEPS PPO steps of the tiny preset (batch 64, the tests' 12-token summaries: shorter steps than the lab's 30 to
50 tokens, so the share printed is an upper bound), timing each step, and times the live view's redraw (the figure
rendered to PNG and the rollouts table) after each; prints both and the redraw's share of PPO's time at the notebook's
cadence (a redraw every 10 steps in a run of more than 20).
"""

import statistics
import sys
import time
from pathlib import Path

import rlhf_helpers as lab
from lab3 import checkpoints, live, settings
from tests.conftest import policy, ppo_step


def main(steps: int = 6) -> None:
    """Time `steps` PPO steps and a live-view redraw after each; print the figures."""
    from transformers import AutoTokenizer, pipeline
    from trl import PPOConfig, PPOTrainer
    tiny = settings.preset("tiny")
    dataset = lab.build_dataset(tiny.model_name, tiny.dataset_name, tiny.input_min_text_length,
                                tiny.input_max_text_length)
    tokenizer = AutoTokenizer.from_pretrained(tiny.model_name)
    reward_pipe = pipeline("sentiment-analysis", model=tiny.toxicity_model_name)
    config = PPOConfig(learning_rate=tiny.learning_rate, batch_size=tiny.batch_size, ppo_epochs=tiny.ppo_epochs,
                       mini_batch_size=tiny.mini_batch_size, seed=0, accelerator_kwargs=checkpoints.data_order(0))
    trainer = PPOTrainer(config=config, model=policy(tiny), ref_model=None, tokenizer=tokenizer,
                         dataset=dataset["train"], data_collator=lab.collator)
    run = checkpoints.start_or_resume(Path("/tmp/live-view-benchmark") / str(time.time()), {}, trainer)
    step_s, redraw_s = [], []
    for _ in range(steps):
        start = time.perf_counter()
        ppo_step(run, trainer, tokenizer, reward_pipe, tiny)
        step_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        live.figure_png(run.history, tiny.max_ppo_steps)
        live.rollouts(run.history[-1]).style.format(precision=3).hide(axis="index").to_html()
        redraw_s.append(time.perf_counter() - start)
    step, redraw = statistics.median(step_s), statistics.median(redraw_s)
    print(f"PPO step (median of {steps}): {step:.3f} s; live-view redraw: {redraw * 1000:.0f} ms; "
          f"redraw every 10 steps / PPO time = {redraw / 10 / step:.2%}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
