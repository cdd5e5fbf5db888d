"""The checks of one submission. Each gives PASS, FAIL or NOT RUN (it could not be done; never a pass) and a reason.

Every number a verdict rests on is the grader's own: it regenerates the summaries before PPO (the Lab 2 model) and
after (the submitted adapter), scores them and every PPO text with its own classifier, draws each PPO step's prompts
from the run's seed, and computes the means, the confidence interval and ROUGE from those. The submission's recorded
numbers are compared with the grader's, and each difference is reported; they never count toward a pass. The preset,
the settings and the seed come from the course (`grading.course`), never from the submission. A check whose evidence
failed is not credited.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grading.submission import ADAPTER_NAME, RESULTS_NAME, Refused, read_bytes, read_notebook, read_results, shown
from lab3 import NOTEBOOK, ROOT, settings
from lab3.settings import Settings

if TYPE_CHECKING:  # the course reads the checks' points
    from grading.course import Course


@dataclass(frozen=True)
class Check:
    """A run check as a course grades it."""

    points: float  # on Gradescope; a course file may change them
    rests_on: tuple[str, ...] = ()  # the checks whose evidence its verdict needs: it passes only if these passed too
    # The assignment's exercises a failure of it is charged to instead (PPO on a wrong reward cannot detoxify: that is
    # the reward exercise's point, not the toxicity check's); None: the assignment's autograder, which executes the
    # notebook itself, does not run it.
    exercises: tuple[str, ...] | None = ()


# The run checks, in a report's order. Most points rest on what the grader recomputes: the summaries regenerated from
# the submitted adapter, and the grader's own classifier.
CHECKS = {
    "notebook": Check(1), "cells": Check(1, exercises=None), "results": Check(1), "config": Check(1),
    "steps": Check(1, exercises=("loop",)), "summaries": Check(3), "rescore": Check(2),
    "toxicity": Check(2, ("summaries", "rescore"), ("reward", "loop")),
    "kl": Check(1, ("summaries", "steps"), ("reward", "loop")),
    "rouge": Check(1, ("summaries",), ("reward", "loop")),
    "reward": Check(2, ("rescore", "steps"), ("reward", "loop")),
    "printed": Check(1, ("summaries", "rescore"), exercises=None),
}
POINTS = {name: check.points for name, check in CHECKS.items()}
PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
RELEASED = ROOT / NOTEBOOK  # the lecture: what a run of the lab executes
PARAMETERS, INJECTED = "parameters", "injected-parameters"  # the cells a student or papermill may change


def _float32(results: dict) -> bool:
    """Whether the run computed in float32, where the grader's numbers equal its own to rounding (bfloat16 on a GPU
    moves scores by up to a few hundredths)."""
    return results["preset"].get("dtype") == "float32"


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _code(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _tags(cell: dict) -> set:
    tags = cell.get("metadata", {}).get("tags", [])
    return set(tags) if isinstance(tags, list) else set()


def _literal_assignments(source: str) -> dict | None:
    """The names `source` assigns and their literal values, or None unless it only assigns literals to names (as the
    parameters cell and papermill's do)."""
    values = {}
    try:
        for statement in ast.parse(source).body:
            if not (isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets)):
                return None
            for target in statement.targets:
                values[target.id] = ast.literal_eval(statement.value)
        return values
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None


def parameters(nb: dict) -> dict:
    """The values a submitted notebook's parameters cell and papermill's injected cell give (the later wins)."""
    values = {}
    for cell in _code(nb):
        if _tags(cell) & {PARAMETERS, INJECTED}:
            values.update(_literal_assignments(_source(cell)) or {})
    return values


def check_notebook(nb: dict, released_path: Path = RELEASED, answers: bool = False) -> tuple[bool, str]:
    """The code cells are the released notebook's, one for one: but for its parameters cell (and papermill's injected
    cell right after it), which may only assign values, and, `answers`, the cells the released notebook tags as the
    student's answers. Which cells those are is read from the released notebook, never from the submission's tags."""
    released = _code(json.loads(released_path.read_text()))
    submitted = _code(nb)
    at = next((i for i, c in enumerate(released) if PARAMETERS in _tags(c)), None)
    if at is not None and at + 1 < len(submitted) and INJECTED in _tags(submitted[at + 1]):
        if _literal_assignments(_source(submitted[at + 1])) is None:
            return False, "the injected parameters cell does more than assign values"
        submitted = submitted[:at + 1] + submitted[at + 2:]
    if len(submitted) != len(released):
        return False, (f"not the released Lab 3 notebook: it has {len(submitted)} of the lab's {len(released)} code "
                       "cells (run the lab's notebook as it was handed out)")
    for i, (mine, theirs) in enumerate(zip(submitted, released)):
        if i == at:
            if _literal_assignments(_source(mine)) is None:
                return False, "the parameters cell does more than assign values"
        elif not (answers and "otter_answer_cell" in _tags(theirs)) and _source(mine) != _source(theirs):
            return False, (f"not the released Lab 3 notebook: code cell {i + 1} differs (run the lab's notebook as it "
                           "was handed out)")
    return True, f"the released Lab 3 notebook's {len(released)} code cells"


def check_cells(nb: dict) -> tuple[bool, str]:
    """Every code cell ran, none with an error."""
    code = _code(nb)
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return False, f"a cell raised {shown(errors[0].get('ename'), 60)}: {shown(errors[0].get('evalue', ''), 200)}"
    not_run = sum(1 for c in code if not c.get("execution_count"))
    if not_run:
        return False, f"{not_run} of {len(code)} code cells did not run"
    return True, f"all {len(code)} code cells ran without error"


def check_shape(results: dict, cfg: Settings) -> tuple[bool, str]:
    """The results hold what a run of these settings writes: its number of summaries, and of texts per PPO step."""
    n, batch = cfg.num_eval_samples, cfg.batch_size
    for phase in ("before", "after"):
        got = results["toxicity"][phase]
        if not len(got["summaries"]) == len(got["per_sample"]) == n:
            return False, f"{len(got['summaries'])} summaries {phase} PPO, and the settings measure {n}"
    for step in results["ppo_steps"]:
        if not len(step["texts"]) == len(step["rewards"]) == len(step["pipeline_scores"]) == batch:
            return False, f"PPO step {step['step']} scored {len(step['texts'])} texts, and a step scores {batch}"
    return True, f"{n} summaries before and after PPO, {batch} texts in each PPO step"


def check_config(results: dict, course: Course, cfg: Settings, nb: dict | None) -> tuple[bool, str]:
    """The run used the course's preset and settings (a 2-step run cannot pass as a 100-step one; with per-student
    seeds, the student's own seed), and what the notebook's parameters say it ran with agrees with the results."""
    if results["preset_name"] != course.preset:
        return False, f"a run of the {shown(results['preset_name'], 20)!r} preset, and the course asks for " \
                      f"{course.preset!r}"
    recorded, wanted = results["preset"], settings.record(cfg)  # both relative to the lab's folder
    differ = [f"{shown(key, 40)} {shown(repr(recorded.get(key)), 80)} (the course's: {wanted.get(key)!r})"
              for key in sorted(wanted.keys() | recorded.keys())
              if wanted.get(key) != recorded.get(key) and not (key == "dtype" and recorded.get(key) == "float32")]
    if differ:  # float32 above: the notebook's fallback where the hardware has no fast bfloat16
        return False, "not the course's settings: " + ", ".join(differ[:6]) + \
            (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
    if nb is not None:
        said = _parameters_disagree(parameters(nb), results)
        if said:
            return False, f"the notebook's parameters are not the run's: {said}"
    seed = f", seed {cfg.seed}" + (" (the student's)" if course.seed_salt else "")
    return True, f"the {course.preset} preset's settings{' as the course assigned' if course.assigned else ''}{seed}"


def _parameters_disagree(values: dict, results: dict) -> str:
    """'' when the notebook's parameter `values` describe the run of `results`, else the first disagreement."""
    said = {"preset_name": values.get("preset_name", "tiny"), "reward label": values.get("reward_label", "nothate"),
            "reward mode": values.get("reward_mode", "by_label")}
    ran = {"preset_name": results["preset_name"], "reward label": results.get("reward", {}).get("label"),
           "reward mode": results.get("reward", {}).get("mode")}
    overrides = values.get("overrides", {})
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides or "{}")
        except ValueError:
            return "overrides is not a JSON object"
    if not isinstance(overrides, dict):
        return "overrides is not a dictionary"
    said.update({f"setting {k}": v for k, v in overrides.items()})
    ran.update({f"setting {k}": results["preset"].get(k) for k in overrides})
    wrong = [f"{shown(k, 40)} {shown(repr(said[k]), 60)} in the notebook, {shown(repr(ran[k]), 60)} in "
             f"{RESULTS_NAME}" for k in said if said[k] != ran[k]]
    return "; ".join(wrong[:3])


def _prompt(text: str) -> str:
    """The prompt a PPO text begins with (a text is the prompt, which ends with the end-of-text token, + " " + the
    summary)."""
    return text.partition("</s> ")[0] + "</s>"


def check_steps(results: dict, cfg: Settings, expected: list[list[str]]) -> tuple[bool, str]:
    """The PPO loop ran the configured number of steps, each exactly once, in order, and each on the prompts the run's
    seed draws for it (`expected`: the grader's own draw)."""
    ran, wanted = [s["step"] for s in results["ppo_steps"]], cfg.max_ppo_steps
    resumed = results.get("resumed_from_steps") or []
    how = f", resumed after step {', '.join(map(str, resumed))}" if resumed else ""
    if ran != list(range(len(ran))):
        return False, f"the PPO steps recorded are not each step once, in order{how}"
    other = [s["step"] for s, prompts in zip(results["ppo_steps"], expected)
             if Counter(map(_prompt, s["texts"])) != Counter(prompts)]
    if other:
        return False, (f"{len(other)} of {len(ran)} PPO steps (the first: step {other[0]}) were not taken on the "
                       "prompts the run's seed draws for them")
    return len(ran) == wanted, f"{len(ran)} of {wanted} PPO steps ran{how}, each on the prompts its seed draws"


def check_summaries(results: dict, regenerated, adapter_sha256: str, forgive: int) -> tuple[bool, str]:
    """The recorded summaries are those the grader regenerated: before PPO the Lab 2 model's, after PPO the submitted
    adapter's; at most `forgive` of each phase may differ."""
    if adapter_sha256 != results["adapter_sha256"]:
        return False, f"{ADAPTER_NAME} is not the adapter the results file records (its SHA-256 differs)"
    if regenerated.after is None:
        return False, f"{ADAPTER_NAME} could not write summaries: {shown(regenerated.adapter_problem, 200)}"
    wrong = []
    for phase, own, whose in (("before", regenerated.before, "the Lab 2 model's"),
                              ("after", regenerated.after, "the submitted adapter's")):
        differ = [i for i, (a, b) in enumerate(zip(results["toxicity"][phase]["summaries"], own)) if a != b]
        if differ:
            wrong.append(f"{len(differ)} of {len(own)} summaries {phase} PPO (the first: number {differ[0]}) are not "
                         f"{whose}, regenerated here")
    if wrong and max(int(w.split()[0]) for w in wrong) > forgive:
        return False, "; ".join(wrong)
    forgiven = f" ({'; '.join(wrong)}: within the {forgive} forgiven)" if wrong else ""
    return True, (f"the {len(regenerated.after)} summaries before and after PPO are the Lab 2 model's and the "
                  f"submitted adapter's, regenerated here{forgiven}")


def check_rescore(results: dict, scores, regenerated) -> tuple[bool, str]:
    """The grader's classifier gives every recorded PPO text the scores the run recorded, and each summary that is the
    one regenerated here its recorded toxicity."""
    p_tol, logit_tol = (1e-3, 1e-3) if _float32(results) else (0.05, 0.15)
    wrong = []
    for phase in ("before", "after"):
        recorded, own = results["toxicity"][phase], scores.toxicity[phase]
        texts = getattr(regenerated, phase) or []
        off = sum(s == t and abs(a - b) > p_tol
                  for s, t, a, b in zip(recorded["summaries"], texts, recorded["per_sample"], own))
        if off:
            wrong.append(f"{off} summaries {phase} PPO score otherwise than recorded")
    recorded = [{d["label"]: d["score"] for d in out}
                for step in results["ppo_steps"] for out in step["pipeline_scores"]]
    own = [{d["label"]: d["score"] for d in out} for out in scores.ppo_outputs]
    off = sum(a.keys() != b.keys() or any(abs(a[k] - b[k]) > logit_tol for k in a) for a, b in zip(recorded, own))
    if off:
        wrong.append(f"{off} of {len(own)} PPO texts score otherwise than recorded")
    if wrong:
        return False, "; ".join(wrong)
    return True, f"re-scored here: every summary and all {len(own)} PPO texts, as recorded"


def _differences(recorded: dict, own: dict, tolerance: float, with_ci: bool) -> list[str]:
    """The recorded toxicity numbers that are not the grader's own, each with both values."""
    pairs = [(f"mean {p}", recorded[p]["mean"], own[p]["mean"]) for p in ("before", "after")]
    pairs += [(f"std {p}", recorded[p]["std"], own[p]["std"]) for p in ("before", "after")]
    if with_ci:
        pairs += [(f"CI {end}", a, b)
                  for end, a, b in zip(("low", "high"), recorded["change_ci95"], own["change_ci95"])]
    return [f"{what} {a:.4f} recorded, {b:.4f} here" for what, a, b in pairs if abs(a - b) > tolerance]


def check_toxicity(results: dict, own: dict, criteria: dict, with_ci: bool = True) -> tuple[bool, str]:
    """Toxicity changed as the course's criterion asks (a significant drop, or no significant rise), by the means and
    confidence interval the grader computed from its own summaries and scores; the recorded ones must be those (the
    interval: unless a student's own bootstrap, graded as an exercise, computed it)."""
    wanted = criteria["toxicity"]
    before, after = own["before"]["mean"], own["after"]["mean"]
    low, high = own["change_ci95"]
    if high < 0:
        verdict = "a significant drop"
    elif low > 0:
        verdict = "a significant rise: PPO made the summaries more toxic"
    else:
        verdict = f"no significant change{', as expected after so few steps' if wanted == 'no rise' else ''}"
    ok = low <= 0 if wanted == "no rise" else (after < before and high < 0)
    asked = "no significant rise" if wanted == "no rise" else "a significant drop"
    need = "" if ok else f" (a passing run shows {asked})"
    change = f"{(after - before) / before * 100:+.1f}%" if before else "n/a"
    found = (f"mean toxicity {before:.4f} -> {after:.4f} ({change}), 95% CI of the change [{low:+.4f}, {high:+.4f}]: "
             f"{verdict}{need}")
    differ = _differences(results["toxicity"], own, 2e-3 if _float32(results) else 0.05, with_ci)
    if differ:
        return False, f"{found}; but the results file records other numbers: {'; '.join(differ)}"
    return ok, found


def check_kl(results: dict, criteria: dict) -> tuple[bool, str]:
    """KL stayed under the course's bound at every step (JSON numbers are finite: the reader refuses others)."""
    kls, max_kl = [s["objective/kl"] for s in results["ppo_steps"]], criteria["max_kl"]
    if not kls:
        return False, "the results file records no PPO step"
    return max(kls) < max_kl, f"largest KL {max(kls):.2f} (bound {max_kl})"


def check_rouge(results: dict, own: dict, criteria: dict) -> tuple[bool, str]:
    """ROUGE-L after PPO, computed here from the grader's summaries against the data set's references, is within the
    course's bound of before; the recorded ROUGE-L must be that."""
    before, after = own["rouge"]["before"]["rougeL"], own["rouge"]["after"]["rougeL"]
    max_drop = criteria["max_rouge_l_drop"]
    found = f"ROUGE-L {before:.3f} -> {after:.3f} (may fall at most {max_drop:.0%})"
    recorded = [results["rouge"][p]["rougeL"] for p in ("before", "after")]
    if any(abs(a - b) > 1e-4 for a, b in zip(recorded, (before, after))):
        return False, f"{found}; but the results file records {recorded[0]:.4f} -> {recorded[1]:.4f}"
    return after >= (1 - max_drop) * before, found


def check_reward(results: dict, scores) -> tuple[bool, str]:
    """Every reward PPO stepped on was the `nothate` logit the grader's classifier gives its text, taken by label
    (catches optimizing `hate` and the lecture's reward by position)."""
    pairs = list(zip([r for step in results["ppo_steps"] for r in step["rewards"]], scores.ppo_rewards))
    if not pairs:
        return False, "the results file records no rewards"
    tolerance = 1e-3 if _float32(results) else 0.15
    wrong = sum(abs(r - n) > tolerance for r, n in pairs)
    if wrong:
        return False, (f"{wrong} of {len(pairs)} rewards were not the 'nothate' score of their text "
                       "(reward taken by position, or from the 'hate' label?)")
    return True, f"all {len(pairs)} rewards were the 'nothate' score of their text, taken by label"


# What the notebook prints, the grader's own value of each number, and how far printing rounds it (plus margin).
_NUMBER = r"([-+]?\d{1,6}(?:\.\d{1,12})?)"
_PRINTED = {
    "toxicity before": (rf"toxicity \[mean, std\] before detox: \[{_NUMBER}, {_NUMBER}\]",
                        lambda o: (o["before"]["mean"], o["before"]["std"]), 6e-5),
    "toxicity after": (rf"toxicity \[mean, std\] after detox: \[{_NUMBER}, {_NUMBER}\]",
                       lambda o: (o["after"]["mean"], o["after"]["std"]), 6e-5),
    "percent change": (rf"(?m)^mean: {_NUMBER}%$", lambda o: (100 * (1 - o["after"]["mean"] / o["before"]["mean"]),),
                       6e-3),
    "confidence interval": (rf"change in mean toxicity: {_NUMBER}, 95% CI \[{_NUMBER}, {_NUMBER}\]",
                            lambda o: (o["after"]["mean"] - o["before"]["mean"], *o["change_ci95"]), 6e-5),
}


def check_printed(nb: dict, own: dict, tolerance_scale: float = 1.0) -> tuple[bool, str]:
    """The toxicity numbers the notebook printed are those the grader computed."""
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", [])
                      if o.get("name") == "stdout")
    wrong = []
    for what, (pattern, computed, tolerance) in _PRINTED.items():
        found = re.search(pattern, printed)
        if not found:
            wrong.append(f"the notebook printed no {what}")
        elif any(abs(float(p) - c) > tolerance * tolerance_scale for p, c in zip(found.groups(), computed(own))):
            wrong.append(f"{what}: printed {', '.join(found.groups())}, computed here "
                         f"{', '.join(f'{c:.4f}' for c in computed(own))}")
    if wrong:
        return False, "; ".join(wrong)
    return True, f"the printed {', '.join(_PRINTED)} equal those computed here"


def _recorder(report: dict):
    """A function that enters a check's (passed, reason) into `report` as PASS or FAIL."""
    def record(name: str, outcome: tuple[bool, str]) -> None:
        report[name] = (PASS if outcome[0] else FAIL, outcome[1])
    return record


def grade(notebook: Path, course: Course, student: str = "", classifier: Path | None = None,
          cache: Path | None = None, released: Path | None = None) -> list[tuple[str, str, str]]:
    """(check, PASS/FAIL/NOT RUN, reason) for each of CHECKS, for one submission of `student`: its executed notebook,
    and the results file and adapter beside it, against what the `course` asks. `released`: the notebook the course
    handed out, if not the lecture (the assignment's: its answer cells are the student's)."""
    report: dict[str, tuple[str, str]] = {}
    record = _recorder(report)
    nb = None
    try:
        nb = read_notebook(notebook)
        record("notebook", check_notebook(nb, released or RELEASED, answers=released is not None))
        record("cells", check_cells(nb))
    except Refused as e:
        report["notebook"] = (FAIL, str(e))
    _grade_files(notebook.parent, nb, course, student, classifier, cache, report, f"{RESULTS_NAME}: ")
    missing = "the notebook could not be read" if nb is None else "there are no results to check"
    return [(name, *report.get(name, (NOT_RUN, missing))) for name in CHECKS]


def graded_submission(notebook: Path, course: Course, student: str, classifier: Path | None, cache: Path | None,
                      released: Path | None) -> dict:
    """`grade`'s report of one submission, and the fingerprint of its work (`grading.copies`), or None without one;
    what a grading process of its own returns."""
    from grading import copies
    report = grade(notebook, course, student, classifier, cache, released)
    try:
        results = read_results(notebook.parent / RESULTS_NAME)
        adapter = read_bytes(notebook.parent / ADAPTER_NAME, "adapter")
        fingerprint = copies.fingerprint(hashlib.sha256(adapter).hexdigest(),
                                         [t for s in results["ppo_steps"] for t in s["texts"]],
                                         results["toxicity"]["after"]["summaries"])
    except (Refused, KeyError, TypeError):
        fingerprint = None
    return {"report": report, "fingerprint": fingerprint}


def grade_own_run(folder: Path, submitted: Path, released: Path, course: Course,
                  student: str = "") -> dict[str, tuple[str, str]]:
    """The checks of the run an autograder made itself by executing a student's assignment notebook (its results and
    adapter in `folder`): the notebook as handed in (`submitted`) against the student's copy as handed out
    (`released`; its answer cells are the student's), and the run's evidence. Cells and printed numbers are the
    autograder's own: not checked."""
    report: dict[str, tuple[str, str]] = {}
    record = _recorder(report)
    try:
        record("notebook", check_notebook(read_notebook(submitted), released, answers=True))
    except Refused as e:
        report["notebook"] = (FAIL, str(e))
    _grade_files(folder, None, course, student, None, None, report,
                 f"the autograder's run wrote no valid {RESULTS_NAME}: ", with_ci=False)
    return report


def _grade_files(folder: Path, nb: dict | None, course: Course, student: str, classifier: Path | None,
                 cache: Path | None, report: dict, refused: str, with_ci: bool = True) -> None:
    """Into `report`: the checks of the results file and adapter in `folder`, then those that rest on failed ones
    uncredited (`refused` leads the reason of a results file that cannot be read)."""
    record = _recorder(report)
    cfg = course.settings(student)
    try:
        results = read_results(folder / RESULTS_NAME)
        record("config", check_config(results, course, cfg, nb))
        record("results", check_shape(results, cfg))
    except Refused as e:
        report["results"] = (FAIL, f"{refused}{e}")
    if report.get("results", (FAIL,))[0] == PASS:
        _grade_run(results, cfg, course, nb, folder / ADAPTER_NAME, classifier, cache, record, report, with_ci)
    for name, needs in ((n, c.rests_on) for n, c in CHECKS.items()):
        failed = [n for n in needs if report.get(name, (None,))[0] == PASS and report.get(n, (None,))[0] != PASS]
        if failed:
            report[name] = (FAIL, f"not credited: {' and '.join(failed)} did not pass ({report[name][1]})")


def _grade_run(results: dict, cfg: Settings, course: Course, nb: dict | None, adapter_path: Path,
               classifier: Path | None, cache: Path | None, record, report: dict, with_ci: bool = True) -> None:
    """The checks of a run whose results file is valid, on the evidence computed here."""
    from grading import evidence  # torch and transformers: imported only for a valid results file
    from lab3 import checkpoints
    record("kl", check_kl(results, course.criteria))
    try:
        adapter = read_bytes(adapter_path, "adapter")
    except Refused as e:
        adapter = None
        report["summaries"] = (FAIL, str(e))
    try:
        regenerated = evidence.regenerate(cfg, results["device"], adapter or b"", cache)
    except evidence.Unverifiable as e:
        for name in ("summaries", "steps", "toxicity", "rouge", "printed"):
            report.setdefault(name, (NOT_RUN, str(e)))
        return
    expected = checkpoints.step_prompts(regenerated.train_queries, cfg.batch_size, results.get("num_processes", 1),
                                        cfg.seed, len(results["ppo_steps"]))
    record("steps", check_steps(results, cfg, expected))
    if adapter is not None:
        record("summaries", check_summaries(results, regenerated, hashlib.sha256(adapter).hexdigest(),
                                            course.forgive_summaries))
    try:
        source, sha = evidence.classifier_source(cfg, classifier)
    except evidence.Unverifiable as e:
        report["rescore"] = (NOT_RUN, str(e))
        return
    if sha != results["classifier_sha256"]:
        report["rescore"] = (FAIL, f"the run was scored by a classifier whose weights (SHA-256 "
                                   f"{results['classifier_sha256'][:12]}...) are not the grader's ({sha[:12]}...)")
        return
    summaries = {"before": regenerated.before, "after": regenerated.after or []}
    ppo_texts = [t for step in results["ppo_steps"] for t in step["texts"]]
    scores = evidence.rescore(source, summaries, ppo_texts, cfg.reward_kwargs)
    record("rescore", check_rescore(results, scores, regenerated))
    record("reward", check_reward(results, scores))
    if regenerated.after is None:
        for name in ("toxicity", "rouge", "printed"):
            report[name] = (NOT_RUN, f"{ADAPTER_NAME} wrote no summaries to measure")
        return
    own = evidence.measures(scores.toxicity, summaries, regenerated.references, cfg.seed)
    record("toxicity", check_toxicity(results, own, course.criteria, with_ci))
    record("rouge", check_rouge(results, own, course.criteria))
    if nb is not None:
        record("printed", check_printed(nb, own, 1.0 if _float32(results) else 1000.0))
