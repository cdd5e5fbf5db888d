"""Submissions of a class that share their work: the same adapter, the same PPO texts, or the same summaries.

Measured on two honest tiny runs of seeds 42 and 1 (100 steps, 600 summaries): 15 of 6400 PPO texts and 470 of 600
summaries after PPO were the same at the same position (the tiny world's summaries are formulaic), and no adapter.
A copy shares all of them; with per-student seeds (`grading.course`), no two honest runs share a seed.
"""

import hashlib
from itertools import combinations

SAME_PPO_TEXTS = 0.5  # the share of PPO texts, position by position, above which two runs are one
SAME_SUMMARIES = 0.95  # the share of the grader's summaries after PPO, position by position


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fingerprint(adapter_sha256: str, ppo_texts: list[str], summaries_after: list[str] | None) -> dict:
    """What tells one run's work from another's: its adapter, its PPO texts, and the summaries its adapter writes."""
    return {"adapter": adapter_sha256, "ppo_texts": [_short(t) for t in ppo_texts],
            "summaries": [_short(t) for t in summaries_after or []]}


def _share(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b)) / max(len(a), len(b)) if a and b else 0.0


def why_same(a: dict, b: dict) -> str:
    """'' when the two fingerprints are of different work, else what they share."""
    shared = [what for what, same in (
        ("the same adapter", a["adapter"] == b["adapter"]),
        (f"{_share(a['ppo_texts'], b['ppo_texts']):.0%} of PPO texts", _share(a["ppo_texts"], b["ppo_texts"])
         >= SAME_PPO_TEXTS),
        (f"{_share(a['summaries'], b['summaries']):.0%} of summaries", _share(a["summaries"], b["summaries"])
         >= SAME_SUMMARIES)) if same]
    return ", ".join(shared)


def same_work(fingerprints: dict[str, dict]) -> dict[str, list[str]]:
    """For each submission, the others that share its work and what they share (fingerprints by submission)."""
    found = {name: [] for name in fingerprints}
    for (one, a), (other, b) in combinations(fingerprints.items(), 2):
        why = why_same(a, b) if a and b else ""
        if why:
            found[one].append(f"{other} ({why})")
            found[other].append(f"{one} ({why})")
    return found
