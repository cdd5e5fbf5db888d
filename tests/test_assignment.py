"""Lab 3 as an assignment, built from the lecture: the student's folder holds no solution; each exercise's public checks
and hidden tests tell its right answer from the wrong answers students write, and say which mistake it is; the
autograder grades outside the student's kernel, so that no answer cell can change a grade but by being right."""

import ast
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import torch
from otter.test_files import ExceptionTestFile

import rlhf_helpers as lab
from grading import autograder_zip
from grading.assignment import build, hidden
from grading.assignment.exercises import EXERCISES, RUN_CHECKS
from grading.course import POINTS
from lab3 import NOTEBOOK
from lab3.solutions import base_namespace
from lab3.solutions import cells as solution_cells
from tests.conftest import ROOT, SHORT, policy, small_trainer

ANSWER = "otter_answer_cell"
NAMES = [e.name for e in EXERCISES]
SOLUTIONS = {e.name: solution_cells()[e.function] for e in EXERCISES}
PLAIN_MODEL = ("from transformers import AutoModelForSeq2SeqLM\n"  # FLAN-T5 without the Lab 2 adapter
               "    plain = AutoModelForSeq2SeqLM.from_pretrained(cfg.model_name)\n"
               "    return plain(**inputs, decoder_input_ids=decoder_input_ids)[0]")
# The wrong answers students write, each as (what, a line of the solution, what replaces it, what the public check
# says, what the hidden tests say): every one must fail both, with its mistake named.
WRONG = {
    "reference": [
        ("the policy itself", "with torch.no_grad(), ppo_model.pretrained_model.disable_adapter():",
         "with torch.no_grad():", "your reference moved with the policy", "gave the policy's own logits"),
        ("the lecture's create_reference_model",
         "    with torch.no_grad(), ppo_model.pretrained_model.disable_adapter():\n        return ppo_model(",
         "    from trl import create_reference_model\n    with torch.no_grad():\n"
         "        return create_reference_model(ppo_model)(", "create_reference_model copies the adapter too",
         "create_reference_model copies the adapter too"),
        ("plain FLAN-T5", "with torch.no_grad(), ppo_model.pretrained_model.disable_adapter():\n"
                          "        return ppo_model(**inputs, decoder_input_ids=decoder_input_ids)[0]", PLAIN_MODEL,
         "plain FLAN-T5", "not the Lab 2 model's")],
    "reward": [
        ("by position, as the lecture", 'next(d["score"] for d in out if d["label"] == label)', 'out[0]["score"]',
         "an entry taken by its position is the winning label's score", "the first entry, whatever its label"),
        ('"nothate" written in', 'd["label"] == label', 'd["label"] == "nothate"', "Asked for the label 'hate'",
         "another label's, not the `label` asked for"),
        ("floats, not tensors", "torch.tensor(next(", "float(next(", "make each reward a torch.tensor",
         "each reward must be a tensor")],
    "loop": [
        ("prompt and summary joined without a space", 'query + " " + summary', "query + summary",
         "joined without a space", "prompt and summary without the space"),
        ("the summary alone", 'query + " " + summary for', "summary for", "scored the summaries alone",
         "it scored the summaries alone")],
    "kl_rewards": [
        ("the KL's sign", "rewards = -kl_coef *", "rewards = kl_coef *", "The KL penalty has the wrong sign",
         "the KL penalty has the wrong sign"),
        ("the score on every token", "rewards[torch.arange(len(scores)), last] += scores", "rewards += scores[:, None]",
         "The score was added to more than one token", "the score is added to every token"),
        ("the score at the last column", "rewards[torch.arange(len(scores)), last] += scores",
         "rewards[:, -1] += scores", "not the last column", "the score is at the last column")],
    "advantages": [
        ("GAE forwards", "for t in reversed(range(rewards.shape[1])):", "for t in range(rewards.shape[1]):",
         "GAE ran forwards", "GAE ran forwards"),
        ("the returns after whitening", "return masked_whiten(advantages, masks), advantages + values",
         "whitened = masked_whiten(advantages, masks)\n    return whitened, whitened + values",
         "take them from the advantages before whitening", "the returns were taken after whitening")],
    "losses": [
        ("min and max swapped", "masked_mean(torch.max(-advantages * ratio",
         "masked_mean(torch.min(-advantages * ratio",
         "Taking the smaller lets each update run away", "the max and min of the clipped surrogate are swapped"),
        ("no clipping", "torch.max(-advantages * ratio, -advantages * clipped_ratio)",
         "-advantages * ratio", "past 1 + cliprange", "the policy loss is not clipped")],
    "bootstrap": [
        ("no seed", "default_rng(seed)", "default_rng()", "The same seed gave two intervals",
         "the same seed gave two intervals"),
        ("a normal approximation", "    means = diffs[rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))]"
                                   ".mean(axis=1)\n"
                                   "    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])",
         "    from statistics import NormalDist\n"
         "    z = NormalDist().inv_cdf((1 + level) / 2)\n"
         "    low, high = diffs.mean() - z * diffs.std() / len(diffs) ** 0.5, diffs.mean() + z * diffs.std() / "
         "len(diffs) ** 0.5", "a formula (mean +- 1.96 standard errors) ignores the resamples",
         "with n_resamples=1 both ends must be the one resampled mean"),
        ("before and after resampled apart",
         "means = diffs[rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))].mean(axis=1)",
         "draw = lambda x: np.asarray(x, dtype=float)[rng.integers(0, len(x), size=(n_resamples, len(x)))]\n"
         "    means = draw(after).mean(axis=1) - draw(before).mean(axis=1)", "Resample pairs, not two lists",
         "not the paired bootstrap's")],
    "group_advantages": [
        ("the std without eps", "advantages / (rewards.std(dim=1, keepdim=True) + eps)",
         "advantages / rewards.std(dim=1, keepdim=True)", "not nan", "a group of equal rewards gave nan"),
        ("the group mean taken over the whole batch", "rewards - rewards.mean(dim=1, keepdim=True)",
         "rewards - rewards.mean()", "the mean of the whole batch", "the mean is the whole batch's"),
        ("the population's std", "(rewards.std(dim=1, keepdim=True) + eps)",
         "(rewards.std(dim=1, keepdim=True, unbiased=False) + eps)", "torch.std (the unbiased one",
         "the std is the population's")],
    "dpo": [
        ("chosen and rejected swapped", "logsigmoid(chosen_rewards - rejected_rewards)",
         "logsigmoid(rejected_rewards - chosen_rewards)", "Are the chosen and rejected log-ratios swapped?",
         "the chosen and rejected log-ratios are swapped"),
        ("beta applied twice", "logsigmoid(chosen_rewards - rejected_rewards)",
         "logsigmoid(beta * (chosen_rewards - rejected_rewards))", "beta multiplies the log-ratios once",
         "beta is applied twice"),
        ("no reference", "(policy_chosen_logps - ref_chosen_logps)\n    rejected_rewards = beta * "
                         "(policy_rejected_logps - ref_rejected_logps)",
         "policy_chosen_logps\n    rejected_rewards = beta * policy_rejected_logps", "against the reference",
         "the reference is left out")],
}


def wrong(exercise: str, index: int) -> str:
    """The answer cell of `exercise` with its `index`th wrong answer planted in the solution."""
    _, line, replacement, _, _ = WRONG[exercise][index]
    assert line in SOLUTIONS[exercise], line
    return SOLUTIONS[exercise].replace(line, replacement)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The assignment as `python -m grading.assignment.build` builds it."""
    out = tmp_path_factory.mktemp("assignment") / "dist"
    subprocess.run([sys.executable, "-m", "grading.assignment.build", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    return out


def _body(source: str) -> list[str]:
    """The lines of a solution's function after its signature and docstring: the solution itself."""
    function = ast.parse(source).body[0]
    return source.splitlines()[function.body[1].lineno - 1:]


def _code(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_each_exercise_is_one_entry_with_its_own_cell_check_probe_and_judge():
    """An exercise is its entry in EXERCISES; its lecture cell, public check, probe and judge are found by its names,
    and none of them exists without an entry."""
    from grading.assignment import probes
    names = {e.name for e in EXERCISES}
    assert set(solution_cells()) == {e.function for e in EXERCISES}
    assert {p.stem for p in EXERCISES[0].checks.parent.glob("*.py")} == names
    assert {n.removeprefix("probe_") for n in vars(probes) if n.startswith("probe_")} == names
    assert {n.removeprefix("judge_") for n in vars(hidden) if n.startswith("judge_")} == names


def test_the_student_gets_no_solution_and_a_public_check_per_coding_exercise(dist):
    student = dist / "student"
    texts = {p: p.read_text(errors="replace") for p in student.rglob("*") if p.is_file()
             and p.suffix in (".py", ".ipynb", ".txt", ".json", ".md")}
    assert student / NOTEBOOK in texts and student / "rlhf_helpers.py" in texts
    bodies = [line.strip() for source in SOLUTIONS.values() for line in _body(source) if len(line.strip()) > 20]
    lecture = json.loads((ROOT / NOTEBOOK).read_text())["cells"]
    answers = [c for c in lecture if "answer" in c["metadata"].get("tags", [])]
    secrets = bodies + [_source(c).splitlines()[0] for c in answers] + ["def verdict(", "def probe("]
    leaks = [(str(p.relative_to(student)), line)
             for p, text in texts.items() for line in secrets if line in text]
    assert not leaks
    assert not any((student / folder).exists() for folder in ("grading", "assignment", "tests", "benchmarks"))
    nb = json.loads((student / NOTEBOOK).read_text())
    assert sorted(nb["metadata"]["otter"]["tests"]) == sorted(NAMES)
    assert [_source(c) for c in _code(nb) if _source(c).startswith("grader.check(")] == \
        [f'grader.check("{name}")' for name in NAMES]


def test_the_student_notebook_is_the_lecture_but_for_its_exercises_and_answers(dist):
    """Built, never edited: its other cells are the lecture's, in order, with otter's grader after the set-up."""
    lecture = json.loads((ROOT / NOTEBOOK).read_text())["cells"]
    nb = json.loads((dist / "student" / NOTEBOOK).read_text())["cells"]
    ours = [_source(c) for c in lecture if not {"exercise", "answer"} & set(c["metadata"].get("tags", []))]
    theirs = [_source(c) for c in nb if ANSWER not in c["metadata"].get("tags", [])
              and not _source(c).startswith("grader.check(") and _source(c) != build.GRADER_CELL]
    assert theirs == ours


def _kernel(tiny, tiny_dataset, tokenizer) -> dict:
    """What the student's kernel holds when a public check runs (the policy without dropout, as the lecture has it)."""
    from trl.trainer.utils import disable_dropout_in_model
    ppo_model = policy(tiny)
    disable_dropout_in_model(ppo_model)
    return {**base_namespace(), "lab": lab, "ppo_model": ppo_model, "tokenizer": tokenizer, "dataset": tiny_dataset,
            "device": "cpu", "cfg": tiny, "ppo_trainer": small_trainer(tiny, tiny_dataset, tokenizer)}


@pytest.fixture(scope="module")
def kernel(tiny, tiny_dataset, tokenizer) -> dict:
    return _kernel(tiny, tiny_dataset, tokenizer)


def public_check(dist: Path, exercise: str, answer: str, kernel: dict) -> tuple[float, str]:
    """The score and output of `exercise`'s public check on `answer`, run as otter runs it in the kernel."""
    env = dict(kernel)
    exec(compile(answer, "answer", "exec"), env)
    source = json.loads((dist / "student" / NOTEBOOK).read_text())["metadata"]["otter"]["tests"][exercise]
    test_file = ExceptionTestFile.from_string(source)
    test_file.run(env)
    return test_file.score, test_file.summary()


@pytest.mark.parametrize("exercise", NAMES)
def test_each_stub_stops_with_its_name_and_fails_its_public_check(dist, kernel, exercise):
    nb = json.loads((dist / "student" / NOTEBOOK).read_text())
    stub = _source([c for c in _code(nb) if ANSWER in c["metadata"].get("tags", [])][NAMES.index(exercise)])
    assert f'raise NotImplementedError("Exercise {exercise}: write' in stub
    score, summary = public_check(dist, exercise, stub, kernel)
    assert score == 0 and f"NotImplementedError: Exercise {exercise}: write" in summary


@pytest.mark.parametrize("exercise", NAMES)
def test_each_solution_passes_its_public_check_which_says_the_autograder_runs_more(dist, kernel, exercise):
    score, summary = public_check(dist, exercise, SOLUTIONS[exercise], kernel)
    assert score == 2 and "public checks passed; the autograder runs more" in summary


@pytest.mark.parametrize("exercise,index", [(e, i) for e in WRONG for i in range(len(WRONG[e]))],
                         ids=[f"{e}: {w[0]}" for e in WRONG for w in WRONG[e]])
def test_each_wrong_answer_fails_its_public_check_which_names_the_mistake(dist, kernel, exercise, index):
    score, summary = public_check(dist, exercise, wrong(exercise, index), kernel)
    assert score < 2 and WRONG[exercise][index][3] in " ".join(summary.split()), summary


def probe(answers: dict[str, str], tmp_path: Path, seed: int = 11) -> dict:
    """The hidden tests' verdicts on `answers`, probed as the autograder probes them (beside the lab's files)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    subprocess.run([sys.executable, "-m", "grading.assignment.probes", str(tmp_path / "answers.json"), str(seed),
                    str(tmp_path / "out.pt")], cwd=ROOT, check=True, capture_output=True)
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    return {name: hidden.verdict(name, out.get(name), seed) for name in answers}


def test_the_hidden_tests_give_the_solutions_full_points_and_each_wrong_answer_none(tmp_path):
    """Each round plants one wrong answer in every exercise that has one left; a verdict depends on its exercise's
    answer alone (the others' answers are right in the first round and each wrong one's neighbours differ)."""
    assert all(ok for ok, _ in probe(SOLUTIONS, tmp_path / "right").values())
    for index in range(max(map(len, WRONG.values()))):
        planted = {e: index for e in WRONG if index < len(WRONG[e])}
        answers = {e: wrong(e, planted[e]) if e in planted else SOLUTIONS[e] for e in NAMES}
        for exercise, (ok, why) in probe(answers, tmp_path / str(index)).items():
            if exercise in planted:
                assert not ok and WRONG[exercise][planted[exercise]][4] in why, (exercise, why)
            else:
                assert ok, (exercise, why)


def submission(dist: Path, answers: dict[str, str], first_lines: str = "") -> dict:
    """The student notebook with `answers` (by exercise) in its answer cells, the rest left as stubs; `first_lines`
    go at the top of the first answer cell."""
    nb = json.loads((dist / "student" / NOTEBOOK).read_text())
    cells = [c for c in _code(nb) if ANSWER in c["metadata"].get("tags", [])]
    for exercise, cell in zip(NAMES, cells):
        if exercise in answers:
            cell["source"] = answers[exercise]
    cells[0]["source"] = first_lines + _source(cells[0])
    return nb


ATTACKS = """import otter.test_files.exception_test as _t
_t.test_case.call_func = lambda self, env: None  # otter's tests pass whatever they find
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(8); open(sys.argv[1], 'a').write('mallory,29')",
                  {csv!r}], start_new_session=True)  # outlives the grading, then edits the class's grades
for secret in ({root!r} + "/grading/assignment/hidden.py", {root!r} + "/lab3_rlhf_detox.ipynb"):
    try:
        print(open(secret).read())
        raise SystemExit(open(secret).read()[:3000])
    except OSError:
        pass
"""


@pytest.fixture(scope="module")
def graded_assignment(dist, tmp_path_factory):
    """A class graded by the autograder with per-student seeds, short runs: alice's solutions, mallory's handed-out
    notebook with every attack of an answer cell at the top of its first, and dan's cell that kills its kernel. (rows
    of the CSV, what the class's CSV said 10 s after grading ended, the seconds it took)"""
    klass, work = tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("work")
    grades = work / "grades.csv"
    students = {"alice": submission(dist, SOLUTIONS),
                "mallory": submission(dist, {}, ATTACKS.format(csv=str(grades), root=str(ROOT))),
                "dan": submission(dist, {"reward": SOLUTIONS["reward"]}, "import os\nos._exit(1)\n")}
    for name, nb in students.items():
        (klass / name).mkdir()
        (klass / name / NOTEBOOK).write_text(json.dumps(nb))
    (work / "course.json").write_text(json.dumps({"assigned": SHORT, "seed_salt": "a secret of the course"}))
    started = time.time()
    subprocess.run([sys.executable, "-m", "grading", str(klass), "--hand-in", "notebook", "--handed-out",
                    str(dist / "student"), "--csv", str(grades), "--course", str(work / "course.json")], cwd=ROOT,
                   check=True, capture_output=True)
    seconds = time.time() - started
    rows = {r["submission"]: r for r in csv.DictReader(open(grades))}
    written = grades.read_text()
    time.sleep(10)  # mallory's detached process would have written by now
    return rows, written, grades.read_text(), seconds


POSSIBLE = 2 * len(EXERCISES) + sum(POINTS[c] for c in RUN_CHECKS)


def test_the_solutions_get_full_marks_with_the_student_s_own_seed(graded_assignment):
    alice = graded_assignment[0]["alice"]
    assert (alice["score"], alice["possible"]) == (str(POSSIBLE), str(POSSIBLE)), alice["lost"]


def test_a_mistake_costs_once_and_no_run_check_is_credited_without_the_run():
    """A reward of 'hate' fails its exercise and makes the run fail toxicity, kl, rouge and reward: those are not
    charged again. Without the run's files, no run check is credited."""
    from grading.assignment.autograde import combine
    verdicts = {name: (name != "reward", "why") for name in NAMES}
    report = {check: ("FAIL" if check in ("toxicity", "kl", "rouge", "reward") else "PASS", "why")
              for check in RUN_CHECKS}
    results = combine(verdicts, report, "", POINTS)
    assert results["score"] == POSSIBLE - 2
    assert [t["output"] for t in results["tests"] if t["name"] == "run_toxicity"] == [
        "not charged again: it rests on reward (why)"]
    report["steps"] = ("FAIL", "the steps were other prompts")  # rests on the loop, which passed: charged
    assert combine(verdicts, report, "", POINTS)["score"] == POSSIBLE - 2 - POINTS["steps"]
    nothing = {"results": ("FAIL", "there is no results.json"), "notebook": ("PASS", "the handed-out cells")}
    results = combine({name: (True, "") for name in NAMES}, nothing, "the kernel died at code cell 7", POINTS)
    assert results["score"] == 2 * len(EXERCISES)
    assert all(t["score"] == 0 and t["output"] == "the run stopped: the kernel died at code cell 7 (there is no "
               "results.json)" for t in results["tests"] if t["name"].startswith("run_"))


def test_the_stubs_earn_no_point_whatever_an_answer_cell_does(graded_assignment):
    """Mallory's stubs, under a cell that patches otter's tests to pass, reads the grader's files, and leaves a
    process to edit the grades once the grading is over: no exercise point, no run check without a run."""
    rows, written, later, _ = graded_assignment
    mallory = rows["mallory"]
    assert mallory["score"] == "0" and "NotImplementedError" in mallory["lost"]
    assert ("run_results: the run stopped: at code cell 9, which raised NotImplementedError: Exercise reference: "
            "write reference_logits (2.3).") in mallory["lost"]
    assert "(the autograder's run wrote no valid results.json: there is no results.json)" in mallory["lost"]
    assert later == written  # the detached process was gone with the submission's processes
    for line in ("def verdict(", "def reference_logits", "ppo_model.pretrained_model.disable_adapter()"):
        assert line not in written


def test_a_kernel_that_dies_is_its_student_s_row_and_the_class_goes_on(graded_assignment):
    rows = graded_assignment[0]
    assert list(rows) == ["alice", "dan", "mallory"]
    dan = rows["dan"]
    assert dan["score"] == dan["reward"] == "2"  # the one exercise answered is graded; the run is lost
    assert "reference_logits could not be probed (its process stopped)" in dan["lost"]
    assert "the kernel died at code cell" in dan["lost"] and dan["run_results"] == "0"


def test_an_answer_is_found_by_its_place_in_the_handed_out_notebook_not_by_its_tags(dist):
    from grading.assignment.autograde import answers
    released = json.loads((dist / "student" / NOTEBOOK).read_text())
    nb = submission(dist, SOLUTIONS)
    for cell in _code(nb):
        cell["metadata"]["tags"] = [ANSWER]  # every cell claims to be an answer
    assert answers(nb, released) == SOLUTIONS
    nb["cells"].insert(3, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": "x = 1"})
    assert answers(nb, released) is None


def test_an_output_crafted_to_break_the_hidden_tests_fails_its_exercise_alone():
    from grading.assignment.autograde import _judged
    ok, why = _judged("bootstrap", {"output": [(10 ** 400, 10 ** 400)] * 5}, 11)  # out.pt rewritten: no float holds it
    assert not ok and why == "paired_bootstrap_ci returned what could not be judged (OverflowError)"


def test_probe_results_are_read_only_when_their_inflated_size_is_bounded(tmp_path):
    import zipfile

    from grading.assignment.autograde import READ_BACK, _probed
    torch.save({"reward": {"output": [1.0]}}, tmp_path / "out.pt")
    assert _probed(tmp_path / "out.pt") == {"reward": {"output": [1.0]}}
    with zipfile.ZipFile(tmp_path / "bomb.pt", "w", zipfile.ZIP_DEFLATED) as z:  # a few KB that inflate past the bound
        z.writestr("archive/data.pkl", bytes((READ_BACK["out.pt"] << 20) + 1))
    assert (tmp_path / "bomb.pt").stat().st_size < 1 << 20 and _probed(tmp_path / "bomb.pt") == {}


def test_a_submission_that_breaks_the_grader_is_its_own_row(monkeypatch, capsys):
    from grading.assignment import autograde

    def broken(path, student, args):
        raise OverflowError("a secret of the course")
    monkeypatch.setattr(autograde, "grade", broken)
    row = autograde.graded(Path("mallory"), "mallory", None)
    assert row["score"] == 0 and row["output"].startswith("could not be graded: the autograder failed")
    assert "secret" not in row["output"] and "OverflowError" in capsys.readouterr().err  # the instructor's log


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or platform.machine() != "x86_64",
                    reason="Gradescope's container is simulated as root, on x86-64")
def test_gradescope_s_container_grades_a_hostile_notebook_zero_and_only_root_writes_its_results(dist):
    """The autograder's zip as Gradescope runs it: root, no CAP_SYS_ADMIN, no namespaces. Mallory's stubs under every
    attack of an answer cell (otter patched, the hidden tests and the lecture read, a process left to rewrite the
    results) get no point, and her results file is the grader's."""
    from tests.sandbox_modes import DOCKER_LIKE
    root = Path(tempfile.mkdtemp(prefix="lab3-gradescope-", dir="/tmp"))  # /autograder
    course_file = {"assigned": SHORT, "seed_salt": "a secret of the course", "hand_in": "notebook"}
    with zipfile.ZipFile(autograder_zip.build(root / "autograder.zip", course_file, dist / "student")) as z:
        z.extractall(root / "source")
    results = root / "results" / "results.json"
    (root / "submission").mkdir()
    (root / "submission" / NOTEBOOK).write_text(json.dumps(
        submission(dist, {}, ATTACKS.format(csv=str(results), root=str(root / "source" / "lab")))))
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "mallory@example.edu"}]}))
    done = subprocess.run([*DOCKER_LIKE, "--", "bash", str(root / "source" / "run_autograder"), str(root)],
                          capture_output=True, text=True, timeout=900)
    written = results.read_text()
    time.sleep(10)  # mallory's detached process would have written by now
    graded = json.loads(results.read_text())
    assert results.read_text() == written and graded["score"] == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert graded["output"].startswith("isolation: user (")
    for secret in ("a secret of the course", "def verdict(", "ppo_model.pretrained_model.disable_adapter()"):
        assert secret not in written and secret not in done.stdout
    shutil.rmtree(root)
