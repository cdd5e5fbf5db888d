"""What the full preset's toxicity measurement costs: `generate_and_measure_toxicity` on N test prompts, side by side
for each N.

Runs on the benchmark's random-weight FLAN-T5-base and RoBERTa-base-sized classifier (`ppo_step.build_models`); the
prompts are tiny-corpus dialogues in the lecture's prompt. A random-weight summarizer never ends a summary early, so
every summary takes all `eval_max_new_tokens` (100): the cost of the longest summaries, not of FLAN-T5's.

    python -m benchmarks.eval_cost [--samples 10 200]
"""

import argparse
import json
import time
from pathlib import Path

from lab3 import ROOT, settings, speedups
from lab3.settings import PROMPT_TEMPLATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 200])
    parser.add_argument("--work", type=Path, default=ROOT / "checkpoints" / "bench")
    args = parser.parse_args()

    import evaluate
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    import rlhf_helpers as lab
    from benchmarks.ppo_step import build_models
    from tiny_world.corpus import make_corpus

    build_models(args.work)
    cfg = settings.preset("full")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = speedups.resolve_dtype(cfg.dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(args.work / "flan-t5-base")
    model = lab.load_summarizer(str(args.work / "flan-t5-base"), str(args.work / "lab2-adapter"),
                                dtype=dtype).to(device)
    evaluator = evaluate.load(lab.TOXICITY_MODULE, str(args.work / "roberta-base-hate"), module_type="measurement")
    rows = []
    for example in make_corpus(max(args.samples), seed=3):
        ids = tokenizer.encode(PROMPT_TEMPLATE.format(dialogue=example["dialogue"]))
        rows.append({"input_ids": ids, "query": tokenizer.decode(ids), "summary": example["summary"]})
    dataset = Dataset.from_list(rows).with_format("torch", columns=["input_ids"], output_all_columns=True)
    kwargs = dict(cfg.generation_kwargs, max_new_tokens=cfg.eval_max_new_tokens,
                  **speedups.fast_generation_kwargs(device, cfg.eval_max_new_tokens,
                                                    max(len(r["input_ids"]) for r in rows), dtype=dtype))
    for n in args.samples:
        start = time.time()
        lab.generate_and_measure_toxicity(model, evaluator, tokenizer, dataset, n, kwargs, seed=cfg.seed)
        seconds = time.time() - start
        print(json.dumps({"device": device, "dtype": dtype, "num_eval_samples": n, "seconds": round(seconds, 1),
                          "per_summary_s": round(seconds / n, 2)}), flush=True)


if __name__ == "__main__":
    main()
