"""Grade an executed Lab 3 notebook: `python -m grader outputs/lab3_rlhf_detox.ipynb [--results results.json]`.

Prints one PASS/FAIL line per check with its reason; exits 0 when every check passes, 1 otherwise.
"""

import argparse
import json
import math
import sys
from pathlib import Path

MAX_KL = 25.0            # the KL from the Lab 2 model must stay below this at every step
MAX_ROUGE_L_DROP = 0.20  # ROUGE-L after PPO may be at most this fraction below its value before
# Label names that mean "not hate"; rlhf_helpers reads them from here (this module stays free of heavy imports).
NOT_HATE_NAMES = ("nothate", "not_hate", "not-hate", "not hate", "nonhate", "non-hate", "non_hate")


def check_cells(nb: dict) -> tuple[bool, str]:
    """Every code cell ran, none with an error."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return False, f"a cell raised {errors[0].get('ename')}: {errors[0].get('evalue', '')[:200]}"
    not_run = sum(1 for c in code if not c.get("execution_count"))
    if not_run:
        return False, f"{not_run} of {len(code)} code cells did not run"
    return True, f"all {len(code)} code cells ran without error"


def check_steps(results: dict) -> tuple[bool, str]:
    """The PPO loop ran the configured number of steps."""
    ran, wanted = len(results["ppo_steps"]), results["preset"]["max_ppo_steps"]
    return ran == wanted, f"{ran} of {wanted} PPO steps ran"


def check_toxicity(results: dict) -> tuple[bool, str]:
    """Mean toxicity fell, and the 95% CI of the change excludes 0."""
    tox = results["toxicity"]
    before, after = tox["before"]["mean"], tox["after"]["mean"]
    low, high = tox["change_ci95"]
    ok = after < before and high < 0
    return ok, (f"mean toxicity {before:.4f} -> {after:.4f} ({(after - before) / before * 100:+.1f}%), "
                f"95% CI of the change [{low:+.4f}, {high:+.4f}]" + ("" if ok else ": no significant drop"))


def check_kl(results: dict, max_kl: float = MAX_KL) -> tuple[bool, str]:
    """KL stayed finite and under `max_kl` at every step."""
    kls = [s["objective/kl"] for s in results["ppo_steps"]]
    if not all(math.isfinite(k) for k in kls):
        return False, "the KL was not finite at some step"
    return max(kls) < max_kl, f"largest KL {max(kls):.2f} (bound {max_kl})"


def check_rouge(results: dict, max_drop: float = MAX_ROUGE_L_DROP) -> tuple[bool, str]:
    """ROUGE-L after PPO is within `max_drop` of its value before."""
    before, after = results["rouge"]["before"]["rougeL"], results["rouge"]["after"]["rougeL"]
    ok = after >= (1 - max_drop) * before
    return ok, f"ROUGE-L {before:.3f} -> {after:.3f} (may fall at most {max_drop:.0%})"


def check_reward(results: dict) -> tuple[bool, str]:
    """Every reward used in PPO was the `nothate` score of its text, as the classifier returned it."""
    wrong = total = 0
    for step in results["ppo_steps"]:
        for reward, scores in zip(step["rewards"], step["pipeline_scores"]):
            nothate = [d["score"] for d in scores if d["label"].lower() in NOT_HATE_NAMES]
            total += 1
            wrong += not nothate or abs(reward - nothate[0]) > 1e-4
    if total == 0:
        return False, "the results file records no rewards"
    if wrong:
        return False, (f"{wrong} of {total} rewards were not the 'nothate' score of their text "
                       "(reward taken by position, or from the 'hate' label?)")
    return True, f"all {total} rewards were the 'nothate' score, taken by label"


def grade(notebook: Path, results_path: Path | None = None) -> list[tuple[str, bool, str]]:
    """(check name, passed, reason) for every check of an executed notebook and its results file."""
    nb = json.loads(notebook.read_text())
    report = [("cells", *check_cells(nb))]
    results_path = results_path or notebook.with_name("results.json")
    if not results_path.is_file():
        return report + [("results", False, f"no results file at {results_path}")]
    results = json.loads(results_path.read_text())
    for name, check in [("steps", check_steps), ("toxicity", check_toxicity), ("kl", check_kl),
                        ("rouge", check_rouge), ("reward", check_reward)]:
        try:
            report.append((name, *check(results)))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            report.append((name, False, f"the results file lacks what this check needs ({e!r})"))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, help="the executed notebook")
    parser.add_argument("--results", type=Path, help="its results.json (default: next to the notebook)")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        print(f"FAIL no notebook at {args.notebook}")
        return 1
    report = grade(args.notebook, args.results)
    for name, ok, reason in report:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {reason}")
    passed = all(ok for _, ok, _ in report)
    print("PASSED" if passed else "FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
