"""The autograder's probes of a student's functions: the inputs of each exercise's hidden tests, drawn from a seed, and
what the student's function returns for them. It runs in the sandbox, beside the student's lab files, and holds no
expected value and no solution: the grader's side (`grading.assignment.hidden`) draws the same inputs and judges the
outputs.

    python probes.py ANSWERS.json SEED OUT.pt     # ANSWERS.json: {exercise: the source of its answer cell}
"""

import json
import sys
import traceback
from pathlib import Path

import numpy as np
import torch


def _generator(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1000 + salt)


def _masks(g: torch.Generator, rows: int, width: int) -> torch.Tensor:
    """Ragged masks as TRL's decoder masks are (the first position never counts), one response of a single token."""
    masks = torch.zeros(rows, width)
    for row in range(rows):
        length = 1 if row == 1 else int(torch.randint(2, width - 1, (1,), generator=g))
        masks[row, 1:1 + length] = 1
    return masks


def policy(seed: int, folder: Path):
    """The tiny preset's policy (Lab 2 model, fresh adapter, value head), its adapter moved as PPO would move it."""
    from trl import AutoModelForSeq2SeqLMWithValueHead

    from lab3.settings import preset
    from lab3.summarizer import add_fresh_lora, load_summarizer
    tiny = preset("tiny")
    torch.manual_seed(seed)
    lab2 = add_fresh_lora(load_summarizer(str(folder / tiny.model_name), str(folder / tiny.adapter_dir)))
    model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(lab2, is_trainable=True).eval()
    g = _generator(seed, 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder / tiny.model_name)
    inputs = tokenizer("#Person1#: Could you help me carry these boxes? #Person2#: Sure, where to?",
                       return_tensors="pt")
    decoder_input_ids = torch.tensor([[0, *torch.randint(5, 200, (3,), generator=g).tolist()]])
    return model, dict(inputs), decoder_input_ids


def reward_inputs(seed: int) -> list[list[dict]]:
    """Pipeline outputs of six texts, each listed by score as the pipeline lists them."""
    g = _generator(seed, 2)
    outputs = []
    for _ in range(6):
        scores = (torch.randn(2, generator=g) * 2).tolist()
        outputs.append(sorted([{"label": "nothate", "score": scores[0]}, {"label": "hate", "score": scores[1]}],
                              key=lambda d: -d["score"]))
    return outputs


class LoopStandIns:
    """The lecture's trainer, reward pipeline and reward function, recording every call (no model is stepped)."""

    def __init__(self, seed: int, tokenizer):
        self.tokenizer = tokenizer
        g = _generator(seed, 3)
        ids = [i for i in range(5, min(len(tokenizer), 400)) if i not in tokenizer.all_special_ids]
        self.batch = {"input_ids": [torch.tensor([*torch.randint(5, 300, (n,), generator=g).tolist(), 1])
                                    for n in (3, 5, 2, 4)],
                      "query": [f"Prompt number {k} of the batch." for k in range(4)]}
        self.responses = [torch.tensor([0, *[ids[int(i)] for i in torch.randint(0, len(ids), (n,), generator=g)],
                                        tokenizer.eos_token_id]) for n in (2, 4, 1, 3)]
        self.stats = {"objective/kl": float(torch.rand(1, generator=g))}
        self.weight = float(torch.rand(1, generator=g)) + 0.5
        self.calls = []

    def generate(self, query_tensors, **kwargs):
        self.calls.append({"call": "generate", "same_queries": query_tensors is self.batch["input_ids"],
                           "kwargs": sorted(kwargs), "length_sampler": kwargs.get("length_sampler") == "sampler",
                           "generation_kwargs": kwargs.get("probe") == "generation"})
        return self.responses

    def pipe(self, texts, **kwargs):
        texts = list(texts)
        self.calls.append({"call": "pipe", "texts": texts, "reward_kwargs": kwargs.get("probe") == "reward"})
        return pipe_outputs(texts, self.weight)

    def step(self, queries, responses, scores):
        self.calls.append({"call": "step", "same_queries": queries is self.batch["input_ids"],
                           "same_responses": responses is self.responses,
                           "rewards": [float(s) for s in scores] if isinstance(scores, (list, tuple)) else None})
        return self.stats

    def reward_function(self, scores, label):
        return [torch.tensor(sum(d["score"] for d in out) * self.weight + len(label)) for out in scores]

    def names(self) -> dict:
        return {"ppo_trainer": self, "tokenizer": self.tokenizer, "hate_classifier": self.pipe,
                "reward_function": self.reward_function,
                "reward_label": "nothate", "output_length_sampler": "sampler",
                "generation_kwargs": {"probe": "generation"}, "reward_kwargs": {"probe": "reward"}}


def pipe_outputs(texts: list[str], weight: float) -> list[list[dict]]:
    """The stand-in classifier's outputs: scores that follow from each text."""
    return [[{"label": "hate", "score": round(weight * (len(t) % 11), 4)}, {"label": "nothate", "score": -weight}]
            for t in texts]


def kl_inputs(seed: int) -> dict:
    g = _generator(seed, 4)
    masks = _masks(g, 6, 9)
    return {"scores": torch.randn(6, generator=g), "logprobs": -torch.rand(6, 9, generator=g) * 3,
            "ref_logprobs": -torch.rand(6, 9, generator=g) * 3, "masks": masks,
            "kl_coef": float(torch.rand(1, generator=g)) * 0.5 + 0.05}


def advantage_inputs(seed: int) -> dict:
    g = _generator(seed, 5)
    masks = _masks(g, 6, 9)
    return {"values": torch.randn(6, 9, generator=g), "rewards": torch.randn(6, 9, generator=g) * 0.3,
            "masks": masks, "gamma": 1 - float(torch.rand(1, generator=g)) * 0.1,
            "lam": 1 - float(torch.rand(1, generator=g)) * 0.2}


def loss_inputs(seed: int) -> dict:
    g = _generator(seed, 6)
    masks = _masks(g, 6, 9)
    return {"old_logprobs": -torch.rand(6, 9, generator=g) * 2, "logprobs": -torch.rand(6, 9, generator=g) * 2,
            "advantages": torch.randn(6, 9, generator=g), "old_values": torch.randn(6, 9, generator=g),
            "values": torch.randn(6, 9, generator=g), "returns": torch.randn(6, 9, generator=g), "masks": masks,
            "cliprange": 0.1 + float(torch.rand(1, generator=g)) * 0.2,
            "cliprange_value": 0.1 + float(torch.rand(1, generator=g)) * 0.2,
            "vf_coef": 0.05 + float(torch.rand(1, generator=g)) * 0.2}


def bootstrap_calls(seed: int) -> list[tuple[tuple, dict]]:
    """The calls of the bootstrap's probe: paired data, the same call again, one resample, skewed data at two levels."""
    rng = np.random.default_rng(seed)
    before = rng.uniform(0, 1, 150)
    after = before - 0.04 + rng.normal(0, 0.02, 150)
    skewed = np.r_[np.zeros(36), np.ones(4)]
    paired = ((before, after), {"n_resamples": 20000, "seed": seed % 1000})
    return [paired, paired, ((before, after), {"n_resamples": 1, "seed": 1}),
            ((np.zeros(40), skewed), {"n_resamples": 20000, "seed": 2, "level": 0.9}),
            ((np.zeros(40), skewed), {"n_resamples": 20000, "seed": 2, "level": 0.99})]


def group_calls(seed: int) -> list[tuple[torch.Tensor, dict]]:
    """The calls of the group advantages' probe: groups of ragged spreads (one of equal rewards, one nearly so), by
    default, unscaled, and with an eps of their own."""
    g = _generator(seed, 7)
    rewards = torch.randn(5, 4, generator=g) * (torch.rand(5, 1, generator=g) * 2 + 0.1) + torch.randn(5, 1,
                                                                                                      generator=g) * 3
    rewards[1] = float(rewards[1, 0])
    rewards[3] = float(rewards[3, 0]) + torch.rand(4, generator=g) * 1e-3
    return [(rewards, {}), (rewards, {"scale": False}), (rewards, {"eps": 0.3 + float(torch.rand(1, generator=g))})]


def dpo_calls(seed: int) -> list[tuple[list[torch.Tensor], float]]:
    """The calls of the DPO loss's probe: summed log-probabilities of seven pairs (policy chosen, policy rejected,
    reference chosen, reference rejected) at two betas."""
    g = _generator(seed, 8)
    logps = [-torch.rand(7, generator=g) * 30 for _ in range(4)]
    return [(logps, 0.05 + float(torch.rand(1, generator=g)) * 0.2), (logps, 1.0 + float(torch.rand(1, generator=g)))]


def _tensors(value):
    """`value` as plain data and tensors (what the grader's side reads back with weights_only=True)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, (list, tuple)):
        return [_tensors(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _tensors(v) for k, v in value.items()}
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return f"<{type(value).__name__}>"


# Each exercise's probe, `probe_<exercise>(space, seed, folder)`: what the student's function (defined in `space`, the
# answer cells' namespace) returns for inputs drawn from `seed`.

def probe_reference(space: dict, seed: int, folder: Path):
    model, inputs, decoder_input_ids = policy(seed, folder)
    return space["reference_logits"](model, inputs, decoder_input_ids)


def probe_reward(space: dict, seed: int, folder: Path):
    outputs = reward_inputs(seed)
    return [[(isinstance(r, torch.Tensor), int(getattr(r, "numel", lambda: 0)()), float(r))
             for r in space["rewards_by_label"](outputs, label)] for label in ("nothate", "hate")]


def probe_loop(space: dict, seed: int, folder: Path):
    from transformers import AutoTokenizer

    from lab3.settings import preset
    stand_ins = LoopStandIns(seed, AutoTokenizer.from_pretrained(folder / preset("tiny").model_name))
    space.update(stand_ins.names())
    texts, scores, rewards, stats = space["ppo_step"](stand_ins.batch)
    return {"calls": stand_ins.calls, "texts": list(texts), "scores": scores, "stats": stats is stand_ins.stats,
            "rewards": [float(r) for r in rewards]}


def probe_kl_rewards(space: dict, seed: int, folder: Path):
    return space["kl_shaped_rewards"](**kl_inputs(seed))


def probe_advantages(space: dict, seed: int, folder: Path):
    return space["advantages_and_returns"](**advantage_inputs(seed))


def probe_losses(space: dict, seed: int, folder: Path):
    return space["ppo_losses"](**loss_inputs(seed))


def probe_bootstrap(space: dict, seed: int, folder: Path):
    return [tuple(map(float, space["paired_bootstrap_ci"](*args, **kwargs))) for args, kwargs in bootstrap_calls(seed)]


def probe_group_advantages(space: dict, seed: int, folder: Path):
    return [space["group_advantages"](rewards.clone(), **kwargs) for rewards, kwargs in group_calls(seed)]


def probe_dpo(space: dict, seed: int, folder: Path):
    return [space["dpo_loss"](*[x.clone() for x in logps], beta=beta) for logps, beta in dpo_calls(seed)]


def namespace(folder: Path) -> dict:
    """The names an exercise cell may use, as the lecture's kernel has them: its imports, and its settings, device and
    tokenizer (the tiny preset's, on the CPU)."""
    from transformers import AutoTokenizer
    from trl.core import masked_mean, masked_whiten

    from lab3.settings import preset
    cfg = preset("tiny")
    return {"np": np, "torch": torch, "masked_mean": masked_mean, "masked_whiten": masked_whiten, "cfg": cfg,
            "device": torch.device("cpu"), "tokenizer": AutoTokenizer.from_pretrained(cfg.model_name)}


def main(answers_path: str, seed: str, out: str) -> None:
    folder = Path.cwd()
    answers = json.loads(Path(answers_path).read_text())
    space, results = namespace(folder), {}
    # Saved before each answer runs, naming it: if it ends the process, what was done is kept and the grader's side
    # knows which answer did it.
    for exercise, source in answers.items():  # every answer cell first, as the kernel ran them
        torch.save({**results, "_running": exercise}, out)
        try:
            exec(compile(source, f"the answer cell of {exercise}", "exec"), space)
        except BaseException as e:  # noqa: BLE001 (a student's cell may raise anything, SystemExit included)
            results[exercise] = {"error": type(e).__name__, "where": "its cell"}
    for exercise in answers:
        if exercise in results:
            continue
        torch.save({**results, "_running": exercise}, out)
        try:
            results[exercise] = {"output": _tensors(globals()[f"probe_{exercise}"](space, int(seed), folder))}
        except BaseException as e:  # noqa: BLE001
            frames = traceback.extract_tb(e.__traceback__)
            results[exercise] = {"error": type(e).__name__,
                                 "where": "your function" if any(f.filename.startswith("the answer cell") for f in
                                                                 frames) else "the probe"}
    torch.save(results, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
