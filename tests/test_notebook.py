"""The whole lab notebook, executed headless on the tiny preset (fewer steps and samples), and its shape."""

import ast
import json
import math
import re

from grading.assignment.exercises import EXERCISES
from tests.conftest import ROOT, SHORT, printed, results

STEPS, SAMPLES = SHORT["max_ppo_steps"], SHORT["num_eval_samples"]


def _code_lines(cell: dict) -> int:
    """The lines of a code cell that are code (not blank, not only a comment)."""
    return sum(bool(line.strip()) and not line.strip().startswith("#") for line in "".join(cell["source"]).splitlines())


def test_the_lecture_carries_no_assignment():
    """The lecture is a lecture: no otter markup, no test cell, nothing of the grader; each exercise is a function of
    its own cell, tagged for the assignment's build."""
    cells = json.loads((ROOT / "lab3_rlhf_detox.ipynb").read_text())["cells"]
    assert {c["cell_type"] for c in cells} == {"code", "markdown"}
    text = "\n".join("".join(c["source"]) for c in cells)
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for marker in ("BEGIN QUESTION", "BEGIN SOLUTION", "BEGIN TESTS", "otter", "def test_"):
        assert marker not in text
    assert "grading" not in code  # the markdown says how to check a run with `python -m grading`; no cell imports it
    exercises = [c for c in cells if "exercise" in c["metadata"].get("tags", [])]
    assert len(exercises) == len(EXERCISES)
    for cell in exercises:
        body = ast.parse("".join(cell["source"])).body
        assert len(body) == 1 and isinstance(body[0], ast.FunctionDef)


def _bound(cell: dict) -> set[str]:
    """The names a cell binds at its top level: what it imports and assigns."""
    bound = set()
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            bound |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return bound


def _plumbing(cell: dict, set_up_names: set[str]) -> list[str]:
    """What a lecture cell after the set-up uses of the lab's machinery: a module of `lab3`, `os` or `sys` imported, or
    a name the set-up cell binds (the lecture reaches the lab through `lab` and `run`, and reads `cfg` and `device`)."""
    tree = ast.parse("".join(cell["source"]))
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    allowed = {"run", "cfg", "device"}
    return [m for m in imported if m.split(".")[0] in ("lab3", "os", "sys")] + sorted(used & (set_up_names - allowed))


def test_the_plumbing_guard_finds_the_lab_s_machinery_however_it_is_reached():
    set_up = _bound({"source": "import os, sys\nfrom lab3 import session, speedups\nrun = session.start()\n"
                               "cfg, device = run.cfg, run.device"})
    assert set_up == {"os", "sys", "session", "speedups", "run", "cfg", "device"}
    cell = lambda source: _plumbing({"source": source}, set_up)  # noqa: E731
    assert cell("print(speedups.prepare_for_ppo(ppo_model, device))") == ["speedups"]
    assert cell("from lab3.files import lock_run\nlock_run(x)") == ["lab3.files"]
    assert cell("import os\nos.environ['A'] = '1'") == ["os", "os"]
    assert cell("print(run.prepare_for_ppo(ppo_model))  # speedups, in a comment") == []


def test_the_loop_cell_is_the_lectures_loop_and_only_the_set_up_cell_is_plumbing():
    cells = json.loads((ROOT / "lab3_rlhf_detox.ipynb").read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    loop = next(c for c in code if "run.steps(ppo_trainer)" in "".join(c["source"]))
    step = next(c for c in code if "ppo_trainer.step(" in "".join(c["source"]))
    assert _code_lines(loop) + _code_lines(step) <= 16  # the loop, and the step it takes: the lecture's dozen lines
    set_up = [c for c in code if "setup.prepare(" in "".join(c["source"])]
    assert len(set_up) == 1 and _code_lines(set_up[0]) <= 30  # fetching, installing, settings, locks: one cell
    after = code[code.index(set_up[0]) + 1:]
    assert max(_code_lines(c) for c in after) <= 15
    assert not [c["source"] for c in after if _plumbing(c, _bound(set_up[0]))]
    # Colab wraps longer lines.
    assert max(len(line) for c in cells for line in "".join(c["source"]).splitlines()) <= 100


def test_ppo_ran_every_step_from_the_lab2_model(lab_run):
    steps = results(lab_run)["ppo_steps"]
    assert [s["step"] for s in steps] == list(range(STEPS))
    assert all(math.isfinite(s["objective/kl"]) for s in steps)
    assert abs(steps[0]["objective/kl"]) < 1e-3  # the reference is the policy with its fresh adapter off


def test_side_by_side_table_has_rows(lab_run):
    run = results(lab_run)
    rows = run["comparison"]
    assert len(rows) == SAMPLES
    gains = [r["reward_gain"] for r in rows]
    assert gains == sorted(gains, reverse=True)
    assert all(r["response_before"] and r["response_after"] for r in rows)
    assert all(0 <= r["rougeL_before"] <= 1 and 0 <= r["rougeL_after"] <= 1 for r in rows)
    assert [r["toxic_before"] for r in rows] == [r["toxicity_before"] >= 0.5 for r in rows]
    assert sorted(r["toxicity_before"] for r in rows) == sorted(run["toxicity"]["before"]["per_sample"])


def test_side_by_side_table_shows_whole_summaries_and_what_was_toxic(lab_run):
    nb = json.loads((lab_run / "lab.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "df_compare_results[columns]" in "".join(c["source"]))
    html = "".join(next(o for o in cell["outputs"] if "data" in o)["data"]["text/html"])
    assert "toxic_before" in html and "..." not in html
    for row in results(lab_run)["comparison"][:10]:  # the rows shown, in full
        assert row["response_before"] in html and row["response_after"] in html


def test_the_ppo_cell_shows_a_live_figure_and_rollouts_and_a_screen_of_text(lab_run):
    nb = json.loads((lab_run / "lab.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "run.steps(ppo_trainer)" in "".join(c["source"]))
    text = "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")
    assert len(text.splitlines()) <= 15
    assert text.splitlines()[-1].startswith(f"step {STEPS:>3}/{STEPS}  reward:")  # the last step's line
    shown = [o["data"] for o in cell["outputs"] if o["output_type"] == "display_data"]
    assert any("image/png" in d for d in shown)  # the live figure, as it was after the last step
    assert any("summary" in "".join(d.get("text/html", "")) for d in shown)  # the newest rollouts


def test_outputs_hold_the_plot_and_the_statistics(lab_run):
    assert (lab_run / "detox.png").stat().st_size > 10_000
    run = results(lab_run)
    tox = run["toxicity"]
    low, high = tox["change_ci95"]
    assert low <= tox["after"]["mean"] - tox["before"]["mean"] <= high
    assert set(run["versions"]) >= {"torch", "transformers", "trl", "peft", "datasets", "evaluate"}
    assert set(run["timings_s"]) == {"setup_and_eval_before_s", "ppo_s", "eval_after_s"}
    assert len(tox["before"]["per_sample"]) == len(tox["after"]["summaries"]) == SAMPLES


def test_inside_one_step_the_lecture_s_pieces_equal_trl_s_on_the_run_s_last_batch(lab_run):
    """3.3 of the executed lecture: its KL-shaped rewards, advantages, returns and losses on the run's own last batch
    are TRL's to float32 precision, and the figure of two summaries' rewards is drawn."""
    text = printed(lab_run / "lab.ipynb")
    number = r"([\d.e+-]+)"
    pattern = rf"largest difference from TRL's \w+: (?:advantages )?{number}(?:, returns {number})?"
    differences = re.findall(pattern, text)
    assert len(differences) == 2 and all(float(d) <= 1e-5 for pair in differences for d in pair if d)
    losses = re.search(r"policy loss ([-\d.]+) \(TRL ([-\d.]+)\), value loss ([-\d.]+) \(TRL ([-\d.]+)\)", text)
    assert losses and losses.group(1) == losses.group(2) and losses.group(3) == losses.group(4)
    assert f"sampled by the policy after {STEPS - 1} PPO steps" in text
    nb = json.loads((lab_run / "lab.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "lab.plot_token_rewards(" in "".join(c["source"]))
    assert any("image/png" in o.get("data", {}) for o in cell["outputs"])
    table = next(o for o in cell["outputs"] if "text/html" in o.get("data", {}))["data"]["text/html"]
    assert "best-scored" in "".join(table)


def test_beyond_ppo_on_the_trained_policy_the_group_advantages_and_the_dpo_loss_are_shown_and_trl_s(lab_run):
    """Section 5 of the executed lecture: the group table of the policy's own summaries, and the lecture's DPO loss
    and implicit rewards on their pairs equal to TRL's dpo_loss."""
    text = printed(lab_run / "lab.ipynb")
    found = re.search(r"(\d+) pairs; distance from TRL's dpo_loss: ([\d.e+-]+), implicit rewards: ([\d.e+-]+)", text)
    assert found and int(found.group(1)) >= 1 and float(found.group(2)) <= 1e-5 and float(found.group(3)) <= 1e-5
    nb = json.loads((lab_run / "lab.ipynb").read_text())
    for call, column in (("lab.group_table(", "advantage (GRPO)"), ("lab.pair_table(", "implicit reward, chosen")):
        cell = next(c for c in nb["cells"] if call in "".join(c["source"]))
        table = next(o for o in cell["outputs"] if "text/html" in o.get("data", {}))["data"]["text/html"]
        assert column in "".join(table)
