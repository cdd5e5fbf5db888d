"""One PPO iteration (rollout of a batch, reward scoring, PPOTrainer.step), the lecture's way and the project's way.

Both ways run on the FLAN-T5-base architecture with random weights (LoRA r=32 on q and v, value head) and a
RoBERTa-base-sized reward classifier with random weights; nothing is downloaded. Each way runs in its own process, so
that one way's peak memory does not hide the other's; the inputs and seeds are the same.

    python -m benchmarks.ppo_step [--new-tokens 32 [256 ...]] [--repeats 3]
    python -m benchmarks.ppo_step --profile 30 --ways project   # where one iteration's time goes (torch profiler)

Each way runs one warm-up iteration first, reported on its own line (`first`): for the project's way on a GPU it holds
the compilation of the decoding step, which a student waits for once. The lecture's way has nothing to compile, so its
warm-up writes only 8 tokens (at 256 tokens one of its iterations takes minutes). The timed iterations follow, for each
response length in turn within the same process (the project's way compiles once, as in a run whose lengths vary); their
median is the table, and each way's result is printed as soon as it is known. The last line of each length is
`time_ratio=<project/lecture> memory_ratio=<project/lecture>`.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lab3 import ROOT, settings, speedups
from lab3.settings import LAB2_LORA
from lab3.solutions import solution

WAYS = ("project", "lecture")


def build_models(work: Path) -> None:
    """Random-weight FLAN-T5-base, a Lab 2 style adapter, a RoBERTa-base classifier and tokenizers, under `work`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    from tiny_world.build import train_roberta_tokenizer, train_t5_tokenizer
    from tiny_world.corpus import make_corpus
    from tiny_world.standins import save_flan_t5_base_architecture, save_roberta_base_classifier

    if (work / "READY").is_file():
        return
    print(f"building the benchmark's random-weight models and small tokenizers under {work} (once, about a minute)",
          file=sys.stderr)
    save_flan_t5_base_architecture(work / "flan-t5-base")
    # The prompts are random token ids; the tokenizers only pad, and decode text for the reward model (whose tokenizer
    # cuts at 512 tokens, like the real one's).
    texts = [e[k] for e in make_corpus(300, seed=0) for k in ("dialogue", "summary")]
    train_t5_tokenizer(texts).save_pretrained(work / "flan-t5-base")
    model = get_peft_model(AutoModelForSeq2SeqLM.from_pretrained(work / "flan-t5-base"), LoraConfig(**LAB2_LORA))
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # a trained adapter is not zero
            torch.nn.init.normal_(p, std=0.01)
    model.save_pretrained(work / "lab2-adapter")
    save_roberta_base_classifier(work / "roberta-base-hate")
    train_roberta_tokenizer(texts).save_pretrained(work / "roberta-base-hate")
    (work / "READY").write_text("ok\n")


def worker(way: str, work: Path, lengths: list[int], repeats: int, batch_size: int, seed: int, dtype: str,
           profile: int = 0) -> None:
    """Time `repeats` PPO iterations of one way at each response length after a warm-up; prints one JSON line each."""
    import torch
    import torch._dynamo
    from transformers import AutoTokenizer, pipeline
    from trl import AutoModelForSeq2SeqLMWithValueHead, PPOConfig, PPOTrainer, create_reference_model
    from trl.trainer.utils import disable_dropout_in_model

    import rlhf_helpers as lab

    tokenizer = AutoTokenizer.from_pretrained(work / "flan-t5-base")  # only pads; prompts are random token ids
    reward_tokenizer = AutoTokenizer.from_pretrained(work / "roberta-base-hate")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    vocab = len(tokenizer)
    prompts = [torch.randint(3, vocab, (int(n),)).to(device) for n in torch.randint(60, 251, (batch_size,))]
    new_tokens = max(lengths)
    generation_kwargs = {"top_k": 0.0, "top_p": 1.0, "do_sample": True}
    config = PPOConfig(learning_rate=1.41e-5, ppo_epochs=1, mini_batch_size=4, batch_size=batch_size, seed=seed)
    peaks = {"generation": [], "reward": [], "step": []}  # CUDA only: each iteration's peak MB in each phase

    if way == "lecture":
        from peft import PeftModel
        from transformers import AutoModelForSeq2SeqLM
        base = AutoModelForSeq2SeqLM.from_pretrained(work / "flan-t5-base", dtype=getattr(torch, dtype))
        peft_model = PeftModel.from_pretrained(base, work / "lab2-adapter", is_trainable=True)
        ppo_model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(peft_model, is_trainable=True).to(device)
        ref_model = create_reference_model(ppo_model)  # ignored by trl 0.11.4 for a PEFT policy, but it costs memory
    else:
        summarizer = lab.load_summarizer(str(work / "flan-t5-base"), str(work / "lab2-adapter"), dtype=dtype)
        ppo_model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(lab.add_fresh_lora(summarizer),
                                                                       is_trainable=True).to(device)
        ref_model = None
    trainer = PPOTrainer(config=config, model=ppo_model, ref_model=ref_model, tokenizer=tokenizer)
    reward_pipe = pipeline("text-classification", model=str(work / "roberta-base-hate"), tokenizer=reward_tokenizer,
                           device=device, dtype=getattr(torch, dtype) if way == "project" else None)
    loaded_mb = torch.cuda.memory_allocated() / 2**20 if device == "cuda" else 0.0
    if way == "lecture":
        # The lecture's reward settings, plus truncation: without it a prompt and a long summary overflow the
        # classifier's 512 positions and the lecture's way crashes (at --new-tokens 256, for one).
        reward_kwargs = {"top_k": None, "function_to_apply": "none", "batch_size": batch_size, "truncation": True}
    else:
        full = settings.preset("full")
        reward_kwargs = full.reward_kwargs
        disable_dropout_in_model(ppo_model)
        print(speedups.prepare_for_ppo(ppo_model, device), file=sys.stderr)  # as the notebook
        # As the notebook on the full preset: one cache size for the lecture's longest summary, whatever this run's.
        generation_kwargs.update(speedups.fast_generation_kwargs(device, max(full.output_max_length, new_tokens),
                                                            max(len(p) for p in prompts), dtype=dtype))
        prompts = lab.collator([{"input_ids": p} for p in prompts])["input_ids"]  # the notebook's batches are sorted

    def texts(responses: list) -> list[str]:
        # The random model writes ids of a 32k vocabulary; fold them into the tokenizer's to get text of that length.
        return [tokenizer.decode(p) + " " + tokenizer.decode(r % vocab, skip_special_tokens=True)
                for p, r in zip(prompts, responses)]

    def phase_done(name: str) -> float:
        """The time now, once the device has finished; on CUDA it also records the phase's peak memory."""
        if device == "cuda":
            torch.cuda.synchronize()
            if name in peaks:
                peaks[name].append(torch.cuda.max_memory_allocated() / 2**20)
            torch.cuda.reset_peak_memory_stats()
        return time.perf_counter()

    def iteration(tokens: int = new_tokens) -> dict[str, float]:
        kwargs = dict(generation_kwargs, min_new_tokens=tokens, max_new_tokens=tokens)
        t0 = phase_done("before")
        with torch.profiler.record_function("generation"):
            if way == "lecture":
                responses = [trainer.generate(p, **kwargs).squeeze()[-tokens:] for p in prompts]
            else:
                responses = trainer.generate(prompts, batch_size=batch_size, return_prompt=False, **kwargs)
        t1 = phase_done("generation")
        with torch.profiler.record_function("reward"):
            if way == "lecture":
                outputs = [reward_pipe([t], **reward_kwargs)[0] for t in texts(responses)]
            else:
                outputs = reward_pipe(texts(responses), **reward_kwargs)
            rewards = solution("rewards_by_label")(outputs, "nothate")
        t2 = phase_done("reward")
        with torch.profiler.record_function("step"):
            stats = trainer.step(prompts, responses, rewards)
        t3 = phase_done("step")
        # TRL's own split of the step: the no-gradient forward passes (policy and reference), the mini-batches'
        # forward, backward and optimizer, and the statistics.
        trl_split = {k: float(stats[f"time/ppo/{k}"]) for k in ("forward_pass", "optimize_step", "calc_stats")}
        return {"generation": t1 - t0, "reward": t2 - t1, "step": t3 - t2, **trl_split}

    t, first_tokens = time.perf_counter(), new_tokens if way == "project" else min(new_tokens, 8)
    first = iteration(first_tokens)  # warm-up (and, on a GPU, the project's compilation)
    first_s, warmup_graphs = time.perf_counter() - t, torch._dynamo.utils.counters["stats"]["unique_graphs"]
    if profile:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device == "cuda":  # the GPU's kernels, and the host waiting for them (cudaStreamSynchronize, .item())
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            iteration()
        sort_by = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
        print(json.dumps({"profile": prof.key_averages().table(sort_by=sort_by, row_limit=profile)}))
        return
    for tokens in lengths:
        for phase in peaks.values():
            phase.clear()  # the timed iterations' peaks only, as a later step of a run sees them
        runs = [iteration(tokens) for _ in range(repeats)]
        split = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        total = statistics.median(r["generation"] + r["reward"] + r["step"] for r in runs)
        phase_peaks = {name: max(mb) for name, mb in peaks.items() if mb}
        if device == "cuda":
            peak_mb = max(phase_peaks.values())
        else:  # the process's peak so far: with several lengths, the longest's figure is the one to read
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({
            "way": way, "new_tokens": tokens, "repeats": repeats, "seconds": total, **split,
            "samples_per_s": batch_size / total,
            "peak_mb": peak_mb, "ms_per_token": 1000 * split["generation"] / tokens, "first_s": first_s,
            "first_tokens": first_tokens, "first_generation_s": first["generation"],
            "compiled_graphs": torch._dynamo.utils.counters["stats"]["unique_graphs"],
            "warmup_graphs": warmup_graphs, "loaded_mb": loaded_mb, "phase_peak_mb": phase_peaks,
            "memory": "max_memory_allocated" if device == "cuda" else "peak RSS", "device": device}), flush=True)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[32],
                        help="response lengths (min = max new tokens), timed in turn in one process per way")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per way (median reported)")
    parser.add_argument("--lecture-repeats", type=int,
                        help="timed iterations of the lecture's way (default: --repeats)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "checkpoints" / "bench", help="where the models are kept")
    # Both ways default to the lecture's bfloat16 where the hardware computes it fast, else float32 (as the notebook).
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = speedups.resolve_dtype(settings.preset("full").dtype, device)
    parser.add_argument("--dtype", default=dtype, help=f"the project way's dtype (default here: {dtype})")
    parser.add_argument("--lecture-dtype", default=dtype, help=f"the lecture way's dtype (default here: {dtype})")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="instead of timing, profile one iteration of each way with the torch profiler and print "
                             "its ROWS most expensive operators")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS), help="with --profile: which ways")
    parser.add_argument("--worker", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.work, args.new_tokens, args.repeats, args.batch_size, args.seed, args.dtype,
               args.profile)
        return
    build_models(args.work)
    rows = {}  # (way, new tokens) -> result
    for way in args.ways if args.profile else WAYS:
        cmd = [sys.executable, __file__, "--worker", way, "--work", str(args.work), "--new-tokens",
               *map(str, args.new_tokens), "--batch-size", str(args.batch_size), "--repeats",
               str(args.repeats if way == "project" or args.lecture_repeats is None else args.lecture_repeats),
               "--seed", str(args.seed), "--dtype", args.dtype if way == "project" else args.lecture_dtype,
               "--profile", str(args.profile)]
        # The worker's progress and warnings go straight to stderr; each result is printed as it arrives, so that a
        # run stopped by a time limit keeps what it measured.
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if args.profile:
                    print(f"{way} way, one iteration:\n{r['profile']}")
                    continue
                rows[way, r["new_tokens"]] = r
                print(f"{way:8} {r['new_tokens']:4} new tokens: {r['seconds']:.2f} s per iteration (generation "
                      f"{r['generation']:.2f} s), peak {r['peak_mb']:.0f} MB", flush=True)
        if proc.returncode:
            raise SystemExit(f"the {way} way's worker failed (exit {proc.returncode}); its error is above")
    if not args.profile:
        for tokens in args.new_tokens:
            print_table({way: rows[way, tokens] for way in WAYS}, args, tokens)


def print_table(rows: dict, args: argparse.Namespace, new_tokens: int) -> None:
    """Both ways' medians at one response length, their warm-ups, TRL's split, memory by phase, and the ratios."""
    print(f"\n{'way':8} {'s/step':>7} {'generation':>10} {'ms/token':>8} {'reward':>7} {'step':>6} {'samples/s':>9} "
          f"{'peak MB':>8}")
    for way, r in rows.items():
        print(f"{way:8} {r['seconds']:7.2f} {r['generation']:10.2f} {r['ms_per_token']:8.1f} {r['reward']:7.2f} "
              f"{r['step']:6.2f} {r['samples_per_s']:9.3f} {r['peak_mb']:8.0f}")
    for way, r in rows.items():
        print(f"{way:8} first iteration (warm-up, {r['first_tokens']} new tokens"
              f"{', compilation' if r['warmup_graphs'] else ''}): "
              f"{r['first_s']:.1f} s, of which generation {r['first_generation_s']:.1f} s; "
              f"graphs compiled: {r['warmup_graphs']} in the warm-up, {r['compiled_graphs']} by the end")
        print(f"{way:8} step, TRL's split: forward passes {r['forward_pass']:.2f} s, "
              f"mini-batches {r['optimize_step']:.2f} s, statistics {r['calc_stats']:.2f} s")
        if r["phase_peak_mb"]:
            peaks = ", ".join(f"{k} {v:.0f}" for k, v in r["phase_peak_mb"].items())
            print(f"{way:8} memory (MB): after loading {r['loaded_mb']:.0f}; peak during {peaks}")
    print(f"device: {rows['project']['device']}, dtype: {args.lecture_dtype} (lecture), {args.dtype} (project), "
          f"memory: {rows['project']['memory']}, {args.batch_size} prompts of 60-250 tokens, {new_tokens} new tokens, "
          f"median of {rows['project']['repeats']} (project) and {rows['lecture']['repeats']} (lecture)")
    time_ratio = rows["project"]["seconds"] / rows["lecture"]["seconds"]
    memory_ratio = rows["project"]["peak_mb"] / rows["lecture"]["peak_mb"]
    print(f"time_ratio={time_ratio:.3f} memory_ratio={memory_ratio:.3f}")


if __name__ == "__main__":
    main()
