"""The checks of one submission. Each gives PASS, FAIL or NOT RUN (it could not be done; never a pass) and a reason.

Nothing a run can recompute is taken on trust: the grader regenerates the summaries from the submitted adapter and the
Lab 2 model, scores them with its own classifier, and recomputes the means, the confidence interval and ROUGE. A check
whose evidence failed is not credited.
"""

import ast
import hashlib
import json
import re
from pathlib import Path

from grading.submission import ADAPTER_NAME, RESULTS_NAME, Refused, read_bytes, read_notebook, read_results, shown
from lab3.settings import NOT_HATE_NAMES, PASS_CRITERIA, PRESETS, ROOT

CHECKS = ("notebook", "cells", "results", "config", "steps", "summaries", "rescore", "toxicity", "kl", "rouge",
          "reward", "printed")
# The evidence each check's verdict rests on: it passes only if these passed too.
DEPENDS_ON = {"steps": ("summaries",), "toxicity": ("summaries", "rescore"), "kl": ("summaries",),
              "rouge": ("summaries",), "reward": ("summaries", "rescore"), "printed": ("summaries", "rescore")}
PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
MATCH_SHARE = 0.98  # of the regenerated summaries that must equal the recorded ones (a rare float difference between
# two CPUs can flip one sampled token)
PARAMETER_TAGS = {"parameters", "injected-parameters"}  # the cells a student or papermill may change
ANSWER_TAG = "otter_answer_cell"  # the cells a student of the assignment writes (grading.assign tags them)
RELEASED = ROOT / "lab3_rlhf_detox.ipynb"


def _float32(results: dict) -> bool:
    """Whether the run computed in float32, where the grader's numbers equal its own to rounding (bfloat16 on a GPU
    moves scores by up to a few hundredths)."""
    return results["preset"].get("dtype") == "float32"


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _lab_cells(nb: dict) -> list[str]:
    """The sources of `nb`'s code cells but its parameter cells and the assignment's answer cells."""
    return [_source(c) for c in nb["cells"] if c["cell_type"] == "code"
            and not (PARAMETER_TAGS | {ANSWER_TAG}) & set(c.get("metadata", {}).get("tags", []))]


def _only_literal_assignments(source: str) -> bool:
    """Whether `source` only assigns literal values to names (as the parameters cell and papermill's do)."""
    try:
        for statement in ast.parse(source).body:
            if not (isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets)):
                return False
            ast.literal_eval(statement.value)
        return True
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return False


def check_notebook(nb: dict, released_path: Path = RELEASED) -> tuple[bool, str]:
    """The code cells are the released notebook's, but for parameter cells that only assign values (and, in the
    assignment's, its answer cells)."""
    released = _lab_cells(json.loads(released_path.read_text()))
    submitted = _lab_cells(nb)
    if submitted != released:
        differs = next((i for i, (a, b) in enumerate(zip(submitted, released)) if a != b), None)
        where = f"code cell {differs + 1} differs" if differs is not None else \
            f"it has {len(submitted)} of the lab's {len(released)} code cells"
        return False, f"not the released Lab 3 notebook: {where} (run the lab's notebook as it was handed out)"
    parameters = [_source(c) for c in nb["cells"] if c["cell_type"] == "code"
                  and PARAMETER_TAGS & set(c.get("metadata", {}).get("tags", []))]
    if not all(_only_literal_assignments(p) for p in parameters):
        return False, "a parameters cell does more than assign values"
    return True, f"the released Lab 3 notebook's {len(released)} code cells"


def check_cells(nb: dict) -> tuple[bool, str]:
    """Every code cell ran, none with an error."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return False, f"a cell raised {shown(errors[0].get('ename'), 60)}: {shown(errors[0].get('evalue', ''), 200)}"
    not_run = sum(1 for c in code if not c.get("execution_count"))
    if not_run:
        return False, f"{not_run} of {len(code)} code cells did not run"
    return True, f"all {len(code)} code cells ran without error"


def expected_settings(preset_name: str, assigned: dict | None) -> dict:
    """The settings a run of `preset_name` must have had: the preset's, with what the course assigned."""
    return json.loads(json.dumps(dict(PRESETS[preset_name], **(assigned or {}))))


def check_shape(results: dict, cfg: dict) -> tuple[bool, str]:
    """The results hold what a run of these settings writes: its number of summaries, and of texts per PPO step."""
    n, batch = cfg["num_eval_samples"], cfg["batch_size"]
    for phase in ("before", "after"):
        got = results["toxicity"][phase]
        if not len(got["summaries"]) == len(got["per_sample"]) == n:
            return False, f"{len(got['summaries'])} summaries {phase} PPO, and the settings measure {n}"
    for step in results["ppo_steps"]:
        if not len(step["texts"]) == len(step["rewards"]) == len(step["pipeline_scores"]) == batch:
            return False, f"PPO step {step['step']} scored {len(step['texts'])} texts, and a step scores {batch}"
    return True, f"{n} summaries before and after PPO, {batch} texts in each PPO step"


def check_config(results: dict, cfg: dict, assigned: dict | None) -> tuple[bool, str]:
    """The run used its preset's settings, with the changes the course assigned (a 2-step run cannot pass as a
    100-step one)."""
    expected, recorded = cfg, results["preset"]  # both relative to the lab's folder
    differ = [f"{shown(key, 40)} {shown(repr(recorded.get(key)), 80)} (the preset says {expected.get(key)!r})"
              for key in sorted(expected.keys() | recorded.keys())
              if expected.get(key) != recorded.get(key) and not (key == "dtype" and recorded.get(key) == "float32")]
    if differ:  # float32 above: the notebook's fallback where the hardware has no fast bfloat16
        return False, f"not the {results['preset_name']} preset's settings{' as assigned' if assigned else ''}: " \
            + ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
    changed = f", with {', '.join(sorted(assigned))} as assigned" if assigned else ""
    return True, f"the {results['preset_name']} preset's settings{changed}"


def check_steps(results: dict, cfg: dict, train_prompts: set[str]) -> tuple[bool, str]:
    """The PPO loop ran the configured number of steps, each exactly once, on prompts of the training split."""
    ran, wanted = [s["step"] for s in results["ppo_steps"]], cfg["max_ppo_steps"]
    resumed = results.get("resumed_from_steps") or []
    how = f", resumed after step {', '.join(map(str, resumed))}" if resumed else ""
    if ran != list(range(len(ran))):
        return False, f"the PPO steps recorded are not each step once, in order{how}"
    foreign = sum(t.split("</s>", 1)[0] + "</s>" not in train_prompts for s in results["ppo_steps"] for t in s["texts"])
    if foreign:
        return False, f"{foreign} PPO texts do not begin with a prompt of the training split"
    return len(ran) == wanted, f"{len(ran)} of {wanted} PPO steps ran{how}, on prompts of the training split"


def check_summaries(results: dict, regenerated: dict, adapter_sha256: str) -> tuple[bool, str]:
    """The summaries before PPO are the Lab 2 model's and those after are the submitted adapter's, regenerated here."""
    if adapter_sha256 != results["adapter_sha256"]:
        return False, f"{ADAPTER_NAME} is not the adapter the results file records (its SHA-256 differs)"
    if regenerated["after"] is None:
        return False, f"{ADAPTER_NAME}: {regenerated['adapter_problem']}"
    wrong = []
    for phase, whose in (("before", "the Lab 2 model's"), ("after", "the submitted adapter's")):
        recorded, own = results["toxicity"][phase]["summaries"], regenerated[phase]
        same = sum(a == b for a, b in zip(recorded, own))
        if same < MATCH_SHARE * len(own):
            wrong.append(f"{len(own) - same} of {len(own)} summaries {phase} PPO are not {whose}, regenerated here")
    if wrong:
        return False, "; ".join(wrong)
    return True, (f"the {len(regenerated['after'])} summaries before and after PPO are the Lab 2 model's and the "
                  "submitted adapter's, regenerated here")


def check_rescore(results: dict, rescored: dict) -> tuple[bool, str]:
    """The grader's classifier gives the toxicities and PPO scores the results file records."""
    p_tol, logit_tol = (1e-3, 1e-3) if _float32(results) else (0.05, 0.15)
    wrong = []
    for phase in ("before", "after"):
        recorded, own = results["toxicity"][phase]["per_sample"], rescored["toxicity"][phase]
        off = sum(abs(a - b) > p_tol for a, b in zip(recorded, own))
        if off:
            wrong.append(f"{off} of {len(own)} summaries {phase} PPO score otherwise than recorded")
    off = sum(a is None or b is None or abs(a - b) > logit_tol for a, b in rescored["ppo"])
    if off:
        wrong.append(f"{off} of {len(rescored['ppo'])} PPO texts drawn here score otherwise than recorded")
    if wrong:
        return False, "; ".join(wrong)
    return True, (f"re-scored here: {len(rescored['toxicity']['after'])} summaries before and after PPO and "
                  f"{len(rescored['ppo'])} PPO texts drawn here, as recorded")


def _close(recorded: list[float], own: list[float], tolerance: float) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(recorded, own))


def check_toxicity(results: dict, own: dict, with_ci: bool = True) -> tuple[bool, str]:
    """Toxicity changed as the preset's criterion asks (a significant drop, or no significant rise), by the grader's
    own means and confidence interval, which the recorded ones equal (the interval: unless a student's own bootstrap,
    graded as an exercise, computed it)."""
    tox, wanted = results["toxicity"], PASS_CRITERIA[results["preset_name"]]["toxicity"]
    tol = 2e-3 if _float32(results) else 0.05
    def numbers(t: dict) -> list[float]:
        return [t[p][k] for p in ("before", "after") for k in ("mean", "std")] + (t["change_ci95"] if with_ci else [])

    if not _close(numbers(tox), numbers(own), tol):
        return False, "the recorded means, stds or confidence interval of toxicity are not those computed here"
    before, after = own["before"]["mean"], own["after"]["mean"]
    low, high = own["change_ci95"]
    if high < 0:
        verdict = "a significant drop"
    elif low > 0:
        verdict = "a significant rise: PPO made the summaries more toxic"
    else:
        verdict = f"no significant change{', as expected after so few steps' if wanted == 'no rise' else ''}"
    ok = low <= 0 if wanted == "no rise" else (after < before and high < 0)
    need = "" if ok else f" (a passing run shows {'no significant rise' if wanted == 'no rise' else 'a significant drop'})"
    change = f"{(after - before) / before * 100:+.1f}%" if before else "n/a"
    return ok, (f"mean toxicity {before:.4f} -> {after:.4f} ({change}), 95% CI of the change [{low:+.4f}, "
                f"{high:+.4f}]: {verdict}{need}")


def check_kl(results: dict) -> tuple[bool, str]:
    """KL stayed under the preset's bound at every step (JSON numbers are finite: the reader refuses others)."""
    kls, max_kl = [s["objective/kl"] for s in results["ppo_steps"]], PASS_CRITERIA[results["preset_name"]]["max_kl"]
    if not kls:
        return False, "the results file records no PPO step"
    return max(kls) < max_kl, f"largest KL {max(kls):.2f} (bound {max_kl})"


def check_rouge(results: dict, own: dict) -> tuple[bool, str]:
    """ROUGE-L after PPO, computed here against the data set's references, is within the preset's bound of before."""
    recorded = [results["rouge"][p]["rougeL"] for p in ("before", "after")]
    before, after = own["rouge"]["before"]["rougeL"], own["rouge"]["after"]["rougeL"]
    if not _close(recorded, [before, after], 1e-4):
        return False, f"the recorded ROUGE-L {recorded[0]:.4f} -> {recorded[1]:.4f} is not that computed here " \
            f"({before:.4f} -> {after:.4f})"
    max_drop = PASS_CRITERIA[results["preset_name"]]["max_rouge_l_drop"]
    return after >= (1 - max_drop) * before, f"ROUGE-L {before:.3f} -> {after:.3f} (may fall at most {max_drop:.0%})"


def _nothate(scores: list[dict]) -> float | None:
    return next((d["score"] for d in scores if d["label"].lower() in NOT_HATE_NAMES), None)


def check_reward(results: dict) -> tuple[bool, str]:
    """Every reward used in PPO was the `nothate` score of its text, as the classifier returned it."""
    pairs = [(r, _nothate(s)) for step in results["ppo_steps"] for r, s in zip(step["rewards"], step["pipeline_scores"])]
    wrong = sum(n is None or abs(r - n) > 1e-4 for r, n in pairs)
    if not pairs:
        return False, "the results file records no rewards"
    if wrong:
        return False, (f"{wrong} of {len(pairs)} rewards were not the 'nothate' score of their text "
                       "(reward taken by position, or from the 'hate' label?)")
    return True, f"all {len(pairs)} rewards were the 'nothate' score, taken by label"


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


def grade(notebook: Path, classifier: Path | None = None, assigned: dict | None = None,
          cache: Path | None = None) -> list[tuple[str, str, str]]:
    """(check, PASS/FAIL/NOT RUN, reason) for each of CHECKS, for one submission: its executed notebook, and the
    results file and adapter beside it, against its preset's settings with the changes the course `assigned`."""
    report: dict[str, tuple[str, str]] = {}

    record = _recorder(report)
    nb = None
    try:
        nb = read_notebook(notebook)
        record("notebook", check_notebook(nb))
        record("cells", check_cells(nb))
    except Refused as e:
        report["notebook"] = (FAIL, str(e))
    _grade_files(notebook.parent, nb, classifier, assigned, cache, report, f"{RESULTS_NAME}: ")
    missing = "the notebook could not be read" if nb is None else "there are no results to check"
    return [(name, *report.get(name, (NOT_RUN, missing))) for name in CHECKS]


def grade_own_run(folder: Path, submitted: Path, released: Path,
                  assigned: dict | None = None) -> dict[str, tuple[str, str]]:
    """The checks of the run an autograder made itself by executing a student's assignment notebook (its results and
    adapter in `folder`): the notebook as handed in (`submitted`) against the student's copy as handed out
    (`released`), and the run's evidence, against the preset's settings with the changes the course `assigned`.
    Cells and printed numbers are the autograder's own: not checked."""
    report: dict[str, tuple[str, str]] = {}

    record = _recorder(report)
    try:
        record("notebook", check_notebook(read_notebook(submitted), released))
    except Refused as e:
        report["notebook"] = (FAIL, str(e))
    _grade_files(folder, None, None, assigned, None, report, f"the autograder's run wrote no valid {RESULTS_NAME}: ",
                 with_ci=False)
    return report


def _grade_files(folder: Path, nb: dict | None, classifier: Path | None, assigned: dict | None, cache: Path | None,
                 report: dict, refused: str, with_ci: bool = True) -> None:
    """Into `report`: the checks of the results file and adapter in `folder`, then those that rest on failed ones
    uncredited (`refused` leads the reason of a results file that cannot be read)."""
    record = _recorder(report)
    try:
        results = read_results(folder / RESULTS_NAME)
        if results["preset_name"] not in PRESETS:
            raise Refused(f"its preset {shown(results['preset_name'], 40)!r} is none of the lab's")
        cfg = expected_settings(results["preset_name"], assigned)
        record("config", check_config(results, cfg, assigned))
        record("results", check_shape(results, cfg))
    except Refused as e:
        report["results"] = (FAIL, f"{refused}{e}")
    if report.get("results", (FAIL,))[0] == PASS:
        _grade_run(results, cfg, nb, folder / ADAPTER_NAME, classifier, assigned, cache, record, report, with_ci)
    for name, needs in DEPENDS_ON.items():
        failed = [n for n in needs if report.get(name, (None,))[0] == PASS and report.get(n, (None,))[0] != PASS]
        if failed:
            report[name] = (FAIL, f"not credited: {' and '.join(failed)} did not pass ({report[name][1]})")


def _grade_run(results: dict, cfg: dict, nb: dict | None, adapter_path: Path, classifier: Path | None,
               assigned: dict | None, cache: Path | None, record, report: dict, with_ci: bool = True) -> None:
    """The checks of a run whose results file is valid: its settings, then the evidence computed here."""
    from grading import evidence  # torch and transformers: imported only for a valid results file
    record("kl", check_kl(results))
    record("reward", check_reward(results))
    try:
        adapter = read_bytes(adapter_path, "adapter")
    except Refused as e:
        adapter = None
        report["summaries"] = (FAIL, str(e))
    try:
        regenerated = evidence.regenerate(cfg, results, adapter or b"", cache)
    except evidence.Unverifiable as e:
        regenerated = None
        for name in ("summaries", "steps"):
            report.setdefault(name, (NOT_RUN, str(e)))
    if regenerated is not None:
        record("steps", check_steps(results, cfg, regenerated["train_prompts"]))
        if adapter is not None:
            record("summaries", check_summaries(results, regenerated, hashlib.sha256(adapter).hexdigest()))
    try:
        source, sha = evidence.classifier_source(cfg, classifier)
    except evidence.Unverifiable as e:
        report["rescore"] = (NOT_RUN, str(e))
        return
    if sha != results["classifier_sha256"]:
        report["rescore"] = (FAIL, f"the run was scored by a classifier whose weights (SHA-256 "
                                   f"{results['classifier_sha256'][:12]}...) are not the grader's ({sha[:12]}...)")
        return
    rescored = evidence.rescore(source, results)
    record("rescore", check_rescore(results, rescored))
    if regenerated is not None:
        own = evidence.measures(results, regenerated["references"], rescored["toxicity"], cfg["seed"])
        record("toxicity", check_toxicity(results, own, with_ci))
        record("rouge", check_rouge(results, own))
        if nb is not None:
            record("printed", check_printed(nb, own, 1.0 if _float32(results) else 1000.0))
