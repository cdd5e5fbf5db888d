"""Grade executed Lab 3 notebooks: one, several, or a class folder with one folder per student.

    python -m grader outputs/lab3_rlhf_detox.ipynb [--results R]  # one run: PASS/FAIL lines; exit 1 if one fails
    python -m grader submissions/ [--csv grades.csv]              # a class: a table, a summary line, a CSV
    python -m grader SUBMISSION --gradescope results.json          # Gradescope's autograder results

Each check is PASS, FAIL or NOT RUN (it could not be done, and the reason says why; NOT RUN is never a pass). Grading a
class exits 0 once every submission was graded, passed or not; a broken submission is a row that says why.
"""

import argparse
import csv
import functools
import json
import math
import random
import re
import sys
from collections import Counter
from pathlib import Path

from checksums import weights_sha256
from lab_settings import NOT_HATE_NAMES, PASS_CRITERIA, POINTS, PRESETS, ROOT, SOURCE_KEYS

NOTEBOOK_NAME = "lab3_rlhf_detox.ipynb"
RESCORED_PPO_TEXTS = 32  # how many of the recorded PPO texts the classifier scores again
CHECKS = ("notebook", "cells", "results", "config", "steps", "toxicity", "kl", "rouge", "reward", "printed", "rescore")
PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"


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


def _in_this_checkout(path: str) -> Path:
    """A folder of the lab's checkout as a run on another machine named it, as the same folder of this checkout."""
    parts = Path(path).parts
    return ROOT.joinpath(*parts[parts.index("checkpoints"):]) if "checkpoints" in parts else Path(path)


def check_config(results: dict, assigned: dict | None = None) -> tuple[bool, str]:
    """The run used its preset's settings, with the changes the course `assigned` (a 2-step run cannot pass as a
    100-step one)."""
    name = results["preset_name"]
    if name not in PRESETS:
        return False, f"unknown preset {name!r}"
    expected, recorded = json.loads(json.dumps(dict(PRESETS[name], **(assigned or {})))), results["preset"]
    differ = []
    for key in sorted(expected.keys() | recorded.keys()):
        want, got = expected.get(key), recorded.get(key)
        if key in SOURCE_KEYS and isinstance(got, str) and Path(got).is_absolute():
            got = str(_in_this_checkout(got))  # a folder of the student's own checkout
        if key == "dtype" and got == "float32":
            continue  # the notebook runs in float32 where the hardware has no fast bfloat16
        if want != got:
            differ.append(f"{key} {recorded.get(key)!r} (the preset says {expected.get(key)!r})")
    if differ:
        return False, f"not the {name} preset's settings{' as assigned' if assigned else ''}: " + ", ".join(differ)
    changed = f", with {', '.join(sorted(assigned))} as assigned" if assigned else ""
    return True, f"the {name} preset's settings{changed}"


def check_steps(results: dict) -> tuple[bool, str]:
    """The PPO loop ran the configured number of steps, each exactly once (also when the run was resumed)."""
    ran, wanted = [s["step"] for s in results["ppo_steps"]], results["preset"]["max_ppo_steps"]
    resumed = results.get("resumed_from_steps") or []
    how = f", resumed after step {', '.join(map(str, resumed))}" if resumed else ""
    if ran != list(range(len(ran))):
        return False, f"the PPO steps recorded are not each step once, in order{how}"
    return len(ran) == wanted, f"{len(ran)} of {wanted} PPO steps ran{how}"


def _criteria(results: dict) -> dict:
    """What a passing run of the results' preset shows (lab_settings.PASS_CRITERIA)."""
    return PASS_CRITERIA[results["preset_name"]]


def check_toxicity(results: dict) -> tuple[bool, str]:
    """Toxicity changed as the preset's criterion asks: a significant drop, or no significant rise."""
    tox, wanted = results["toxicity"], _criteria(results)["toxicity"]
    before, after = tox["before"]["mean"], tox["after"]["mean"]
    low, high = tox["change_ci95"]
    steps = results["preset"]["max_ppo_steps"]
    if high < 0:
        verdict = "a significant drop"
    elif low > 0:
        verdict = "a significant rise: PPO made the summaries more toxic"
    else:
        verdict = f"no significant change{f', as expected after {steps} steps' if wanted == 'no rise' else ''}"
    ok = low <= 0 if wanted == "no rise" else (after < before and high < 0)
    needed = "no significant rise" if wanted == "no rise" else "a significant drop"
    need = "" if ok else f" (a passing run shows {needed})"
    return ok, (f"mean toxicity {before:.4f} -> {after:.4f} ({(after - before) / before * 100:+.1f}%), "
                f"95% CI of the change [{low:+.4f}, {high:+.4f}]: {verdict}{need}")


def check_kl(results: dict) -> tuple[bool, str]:
    """KL stayed finite and under the preset's bound at every step."""
    kls, max_kl = [s["objective/kl"] for s in results["ppo_steps"]], _criteria(results)["max_kl"]
    if not all(math.isfinite(k) for k in kls):
        return False, "the KL was not finite at some step"
    return max(kls) < max_kl, f"largest KL {max(kls):.2f} (bound {max_kl})"


def check_rouge(results: dict) -> tuple[bool, str]:
    """ROUGE-L after PPO is within the preset's bound of its value before."""
    before, after = results["rouge"]["before"]["rougeL"], results["rouge"]["after"]["rougeL"]
    max_drop = _criteria(results)["max_rouge_l_drop"]
    ok = after >= (1 - max_drop) * before
    return ok, f"ROUGE-L {before:.3f} -> {after:.3f} (may fall at most {max_drop:.0%})"


def _nothate(scores: list[dict]) -> float | None:
    """The `nothate` score among a pipeline's label scores, by label."""
    return next((d["score"] for d in scores if d["label"].lower() in NOT_HATE_NAMES), None)


def check_reward(results: dict) -> tuple[bool, str]:
    """Every reward used in PPO was the `nothate` score of its text, as the classifier returned it."""
    wrong = total = 0
    for step in results["ppo_steps"]:
        for reward, scores in zip(step["rewards"], step["pipeline_scores"]):
            nothate = _nothate(scores)
            total += 1
            wrong += nothate is None or abs(reward - nothate) > 1e-4
    if total == 0:
        return False, "the results file records no rewards"
    if wrong:
        return False, (f"{wrong} of {total} rewards were not the 'nothate' score of their text "
                       "(reward taken by position, or from the 'hate' label?)")
    return True, f"all {total} rewards were the 'nothate' score, taken by label"


# What the notebook prints, where the same number stands in results.json, and how far printing rounds it (plus margin).
_PRINTED = {
    "toxicity before": (r"toxicity \[mean, std\] before detox: \[(\S+), (\S+)\]",
                        lambda r: (r["toxicity"]["before"]["mean"], r["toxicity"]["before"]["std"]), 6e-5),
    "toxicity after": (r"toxicity \[mean, std\] after detox: \[(\S+), (\S+)\]",
                       lambda r: (r["toxicity"]["after"]["mean"], r["toxicity"]["after"]["std"]), 6e-5),
    "percent change": (r"(?m)^mean: (\S+)%$",
                       lambda r: (100 * (1 - r["toxicity"]["after"]["mean"] / r["toxicity"]["before"]["mean"]),), 6e-3),
    "confidence interval": (r"change in mean toxicity: (\S+), 95% CI \[(\S+), (\S+)\]",
                            lambda r: (r["toxicity"]["after"]["mean"] - r["toxicity"]["before"]["mean"],
                                       *r["toxicity"]["change_ci95"]), 6e-5),
}


def check_printed(nb: dict, results: dict) -> tuple[bool, str]:
    """The toxicity numbers the notebook printed are those in its results file."""
    printed = "".join(o["text"] if isinstance(o["text"], str) else "".join(o["text"])
                      for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stdout")
    wrong = []
    for what, (pattern, recorded, tolerance) in _PRINTED.items():
        found = re.search(pattern, printed)
        if not found:
            wrong.append(f"the notebook printed no {what}")
        elif any(abs(float(p) - r) > tolerance for p, r in zip(found.groups(), recorded(results))):
            wrong.append(f"{what}: printed {', '.join(found.groups())}, the results file says "
                         f"{', '.join(f'{r:.4f}' for r in recorded(results))}")
    if wrong:
        return False, "; ".join(wrong)
    return True, f"the printed {', '.join(_PRINTED)} equal the results file's"


def find_classifier(results: dict, classifier: Path | None = None) -> tuple[str | None, str]:
    """Where the run's reward classifier can be loaded from without downloading, or None and why not."""
    if classifier is not None:
        return (str(classifier), "") if classifier.is_dir() else (None, f"--classifier {classifier} is not a folder")
    name = results["preset"]["toxicity_model_name"]
    if Path(name).is_dir():
        return name, ""
    if Path(name).is_absolute():  # a folder of the student's checkout; the tiny preset's is shipped with the lab
        own = _in_this_checkout(name)
        if own.is_dir():
            return str(own), ""
        return None, f"the classifier {name} is not on this machine (build the tiny preset here, or pass --classifier)"
    from huggingface_hub import try_to_load_from_cache
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name, ""
    return None, f"{name} is not in this machine's Hugging Face cache (or pass --classifier)"


@functools.cache
def _weights_sha256(classifier: str) -> str | None:
    """`checksums.weights_sha256`, computed once per classifier for a whole class."""
    return weights_sha256(classifier)


def classifier_difference(results: dict, classifier: str) -> str:
    """'' when `classifier` is the one that scored the run (or the run did not record which), else why it is not."""
    recorded, own = results.get("classifier_sha256"), _weights_sha256(classifier)
    if recorded is None or recorded == own:
        return ""
    return (f"the run was scored by a classifier whose weights (SHA-256 {recorded[:12]}...) differ from this "
            f"machine's {classifier} ({(own or 'no weights file')[:12]}...): re-score with the student's classifier "
            "(for the tiny preset, the shipped checkpoints/tiny; for the full preset, the same Hub revision) or pass "
            "--classifier PATH")


_PIPELINES: dict = {}


def _logits(classifier: str, texts: list[str]) -> list[dict[str, float]]:
    """The classifier's logit of each label for each text (torch and transformers are imported only here)."""
    if classifier not in _PIPELINES:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
        model = AutoModelForSequenceClassification.from_pretrained(classifier, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(classifier, local_files_only=True)
        _PIPELINES[classifier] = pipeline("text-classification", model=model, tokenizer=tokenizer)
    outputs = _PIPELINES[classifier](texts, top_k=None, function_to_apply="none", batch_size=8, truncation=True)
    return [{d["label"]: d["score"] for d in out} for out in outputs]


def check_rescore(results: dict, classifier: str) -> tuple[bool, str]:
    """The classifier, run again here, gives the toxicities and PPO scores the results file records."""
    # Same machine and float32: equal to rounding. A bfloat16 run (a GPU) moves scores by up to a few hundredths.
    p_tol, logit_tol = (1e-3, 1e-3) if results["preset"]["dtype"] == "float32" else (0.05, 0.15)
    wrong = []
    for phase in ("before", "after"):
        recorded = results["toxicity"][phase]
        logits = _logits(classifier, recorded["summaries"])
        rescored = [math.exp(next(v for k, v in s.items() if k.lower() not in NOT_HATE_NAMES))
                    / sum(math.exp(v) for v in s.values()) for s in logits]
        off = [i for i, (a, b) in enumerate(zip(rescored, recorded["per_sample"])) if abs(a - b) > p_tol]
        if off or len(rescored) != len(recorded["per_sample"]):
            wrong.append(f"{len(off)} of {len(rescored)} summaries {phase} PPO score otherwise than recorded")
        mean = sum(rescored) / len(rescored)
        if abs(mean - recorded["mean"]) > p_tol:
            wrong.append(f"mean toxicity {phase} PPO is {mean:.4f} when re-scored, {recorded['mean']:.4f} as recorded")
    if sorted(r["response_after"] for r in results["comparison"]) != sorted(results["toxicity"]["after"]["summaries"]):
        wrong.append("the side-by-side table's summaries after PPO are not the ones measured")
    texts = [(t, s) for step in results["ppo_steps"] for t, s in zip(step["texts"], step["pipeline_scores"])]
    sample = random.Random(0).sample(texts, min(RESCORED_PPO_TEXTS, len(texts)))
    logits = _logits(classifier, [t for t, _ in sample])
    off = sum(abs(_nothate([{"label": k, "score": v} for k, v in s.items()]) - _nothate(scores)) > logit_tol
              for s, (_, scores) in zip(logits, sample))
    if off:
        wrong.append(f"{off} of {len(sample)} PPO texts score otherwise than recorded")
    if wrong:
        return False, "; ".join(wrong)
    return True, (f"re-scored here: {len(results['toxicity']['before']['summaries'])} summaries before and after PPO "
                  f"and {len(sample)} PPO texts, as recorded")


def grade(notebook: Path, results_path: Path | None = None, classifier: Path | None = None,
          assigned: dict | None = None) -> list[tuple[str, str, str]]:
    """(check, PASS/FAIL/NOT RUN, reason) for each of CHECKS, for one executed notebook and its results file, against
    its preset's settings with the changes the course `assigned`."""
    report: dict[str, tuple[str, str]] = {}

    def record(name: str, outcome: tuple[bool, str]) -> None:
        report[name] = (PASS if outcome[0] else FAIL, outcome[1])

    nb, results = None, None
    try:
        nb = json.loads(notebook.read_text())
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError
    except (OSError, UnicodeDecodeError, ValueError):
        report["notebook"] = (FAIL, f"{notebook.name} is not a Jupyter notebook (it is not notebook JSON)")
        nb = None
    if nb is not None:
        sources = "".join("".join(c.get("source", "")) for c in nb["cells"])
        if not re.search(r"^\s*import .*\brlhf_helpers\b", sources, re.MULTILINE):
            report["notebook"] = (FAIL, f"{notebook.name} is not the Lab 3 notebook (it does not use rlhf_helpers)")
            nb = None
        else:
            report["notebook"] = (PASS, f"{notebook.name} is the Lab 3 notebook")
            record("cells", check_cells(nb))
    results_path = results_path or notebook.with_name("results.json")
    if nb is not None:
        try:
            results = json.loads(results_path.read_text())
            if not isinstance(results, dict):
                raise ValueError("not a JSON object")
            report["results"] = (PASS, f"read {results_path.name}")
        except FileNotFoundError:
            report["results"] = (FAIL, f"no results file at {results_path}")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            report["results"] = (FAIL, f"the results file {results_path} is not a readable JSON object ({e})")
            results = None
    if results is not None:
        checks = {"config": lambda r: check_config(r, assigned), "steps": check_steps, "toxicity": check_toxicity,
                  "kl": check_kl, "rouge": check_rouge, "reward": check_reward,
                  "printed": lambda r: check_printed(nb, r)}
        for name, check in checks.items():
            try:
                record(name, check(results))
            except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as e:
                report[name] = (FAIL, f"the results file lacks what this check needs ({e!r})")
        try:
            source, why = find_classifier(results, classifier)
            why = why if source is None else classifier_difference(results, source)
            if why:
                report["rescore"] = (NOT_RUN, why)
            else:
                record("rescore", check_rescore(results, source))
        except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as e:
            report["rescore"] = (FAIL, f"the results file lacks what re-scoring needs ({e!r})")
    missing = "the notebook could not be read" if nb is None else "there are no results to check"
    return [(name, *report.get(name, (NOT_RUN, missing))) for name in CHECKS]


def submissions(paths: list[Path]) -> list[tuple[str, Path]]:
    """(name, notebook path) of each submission: notebook files, submission folders, or class folders of those."""
    found = []
    for path in paths:
        if path.is_dir() and not any(path.glob("*.ipynb")):  # a class folder: one entry per student
            found += [(p.name, _notebook_in(p)) for p in sorted(path.iterdir()) if not p.name.startswith(".")]
        else:
            found.append((path.name, _notebook_in(path)))
    return found


def _notebook_in(path: Path) -> Path:
    """The notebook of a submission folder (the lab's, else its only one), or `path` itself when it is a file."""
    if not path.is_dir():
        return path
    notebooks = sorted(path.glob("*.ipynb"))
    named = [p for p in notebooks if p.name == NOTEBOOK_NAME]
    return (named or notebooks or [path / NOTEBOOK_NAME])[0]


def write_csv(rows: list[tuple[str, list]], path: Path) -> None:
    """The gradebook: submission, passed, one column per check, then the reasons of what did not pass."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "passed", *CHECKS, "reasons"])
        for name, report in rows:
            passed = all(status != FAIL for _, status, _ in report)
            reasons = " | ".join(f"{check}: {why}" for check, status, why in report if status != PASS)
            writer.writerow([name, str(passed).lower(), *(status for _, status, _ in report), reasons])


def gradescope_results(report: list[tuple[str, str, str]], points: dict[str, float] = POINTS) -> dict:
    """Gradescope's autograder results for one submission: a test per check, its points only if it passed."""
    tests = [{"name": check, "score": points[check] if status == PASS else 0, "max_score": points[check],
              "status": "passed" if status == PASS else "failed",
              "output": reason if status != NOT_RUN else f"not run: {reason}", "visibility": "visible"}
             for check, status, reason in report]
    passed = sum(status == PASS for _, status, _ in report)
    return {"score": sum(t["score"] for t in tests), "output": f"{passed} of {len(report)} checks passed",
            "tests": tests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="executed notebooks, submission folders or class folders")
    parser.add_argument("--results", type=Path, help="with one notebook: its results.json (default: beside it)")
    parser.add_argument("--csv", type=Path, help="write the grades to this CSV file")
    parser.add_argument("--classifier", type=Path, help="the reward classifier's folder, for re-scoring")
    parser.add_argument("--gradescope", type=Path, help="with one submission: write Gradescope's results JSON here")
    parser.add_argument("--assigned", type=json.loads, default={},
                        help="settings the course assigned in place of the preset's, as a JSON object")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"grader: {', '.join(missing)} not found")
        return 2
    found = submissions(args.paths)
    rows = [(name, grade(notebook, args.results if len(found) == 1 else None, args.classifier, args.assigned))
            for name, notebook in found]
    if args.csv:
        write_csv(rows, args.csv)
    if args.gradescope:
        if len(rows) != 1:
            print(f"grader: --gradescope grades one submission, and {len(rows)} were given")
            return 2
        args.gradescope.parent.mkdir(parents=True, exist_ok=True)
        args.gradescope.write_text(json.dumps(gradescope_results(rows[0][1]), indent=2) + "\n")
    if len(args.paths) == 1 and args.paths[0].is_file():  # one run, as a student checks it
        report = rows[0][1]
        for name, status, reason in report:
            print(f"{status} {name}: {reason}")
        passed = all(status != FAIL for _, status, _ in report)
        print("PASSED" if passed else "FAILED")
        return 0 if passed else 1
    width = max(len("submission"), *(len(name) for name, _ in rows))
    print(f"{'submission':{width}}  passed  " + " ".join(CHECKS))
    for name, report in rows:
        passed = all(status != FAIL for _, status, _ in report)
        marks = " ".join(f"{status.replace('NOT RUN', '-'):{len(check)}}"
                         for check, (_, status, _) in zip(CHECKS, report))
        print(f"{name:{width}}  {'yes' if passed else 'no ':6}  {marks}")
    for name, report in rows:
        for check, status, reason in report:
            if status != PASS:
                print(f"{name}: {status} {check}: {reason}")
    failures = Counter(check for _, report in rows for check, status, _ in report if status == FAIL)
    n_passed = sum(all(status != FAIL for _, status, _ in report) for _, report in rows)
    most = f"; most failed check: {failures.most_common(1)[0][0]} ({failures.most_common(1)[0][1]})" if failures else ""
    not_run = sum(status == NOT_RUN for _, report in rows for _, status, _ in report)
    print(f"{n_passed} of {len(rows)} submissions passed{most}" + (f"; {not_run} checks not run" if not_run else "")
          + (f"; grades written to {args.csv}" if args.csv else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
