"""How many of a run's summaries the grader samples otherwise on another kind of CPU: the grader's own regeneration of
the summaries before and after PPO, under torch's default, AVX2 and AVX512 kernels and 1, 2 and 4 threads, each in a
fresh process, counted against the run's recorded summaries. What it prints decides `grading.course.FORGIVE_SUMMARIES`.

    python -m benchmarks.summary_drift outputs/            # a run's folder (results.json, ppo_adapter.safetensors)
"""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

from lab3 import ROOT

KERNELS = ("default", "avx2", "avx512")
THREADS = (1, 2, 4)
# Run in each fresh process: the grader's regeneration of the run in argv[1], and how many summaries differ.
COUNT = """import json, sys
from pathlib import Path
from grading import evidence
from grading.course import Course
run = Path(sys.argv[1])
results = json.loads((run / "results.json").read_text())
cfg = Course(preset=results["preset_name"], assigned=results["preset"]).settings()
own = evidence.regenerate(cfg, results["device"], (run / "ppo_adapter.safetensors").read_bytes(), None)
print(json.dumps({p: sum(a != b for a, b in zip(getattr(own, p), results["toxicity"][p]["summaries"]))
                  for p in ("before", "after")}))
"""


def drift(run: Path, kernels: str, threads: int) -> dict:
    """The summaries before and after PPO that differ from `run`'s when regenerated with these kernels and threads."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=kernels, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", COUNT, str(run)], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(runs: list[str]) -> None:
    for run in map(Path, runs):
        total = len(json.loads((run / "results.json").read_text())["toxicity"]["after"]["summaries"])
        for kernels, threads in itertools.product(KERNELS, THREADS):
            counts = drift(run, kernels, threads)
            print(f"{run.name}: {kernels:>7} kernels, {threads} threads: {counts['before']} of {total} summaries "
                  f"before PPO and {counts['after']} after differ from the run's")


if __name__ == "__main__":
    main(sys.argv[1:] or ["outputs"])
