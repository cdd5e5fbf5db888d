"""Execute the whole lab notebook headless on the tiny preset and check what it produced."""

import json
import math

from conftest import ROOT
from tiny_world.build import read_corpus
from tiny_world.quality import corpus_vocabulary, non_word_share, stutter_share


def test_no_cell_errored(executed):
    nb = json.loads((executed / "lab.ipynb").read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert all(c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code")


def test_toxicity_fell_and_summaries_stayed_summaries(executed):
    """The tiny preset at its real settings: a significant drop in toxicity (what the grader asks of it) with summaries
    as good as before. How far it falls, over seeds, is `python -m tiny_world.report 42 1 2`'s to show."""
    results = json.loads((executed / "results.json").read_text())
    before, after = results["toxicity"]["before"], results["toxicity"]["after"]
    assert before["mean"] >= 0.15
    assert after["mean"] < before["mean"] and results["toxicity"]["change_ci95"][1] < 0
    rouge = results["rouge"]
    assert rouge["after"]["rougeL"] >= 0.9 * rouge["before"]["rougeL"]


def test_summaries_after_ppo_stay_readable(executed):
    """PPO must not teach the summarizer non-words or stuttering (under 1% and 2% of the 600 summaries)."""
    results = json.loads((executed / "results.json").read_text())
    corpus = read_corpus(ROOT / "checkpoints" / "tiny" / "dialogsum")
    known = corpus_vocabulary(corpus)
    summaries = results["toxicity"]["after"]["summaries"]
    assert len(summaries) == results["preset"]["num_eval_samples"]
    assert non_word_share(summaries, known) < 0.01
    assert stutter_share(summaries) < 0.02


def test_ppo_ran_every_step_with_finite_kl(executed):
    results = json.loads((executed / "results.json").read_text())
    steps = results["ppo_steps"]
    assert len(steps) == results["preset"]["max_ppo_steps"]
    assert all(math.isfinite(s["objective/kl"]) for s in steps)
    assert abs(steps[0]["objective/kl"]) < 1e-3  # the reference is the policy with its fresh adapter off


def test_side_by_side_table_has_rows(executed):
    results = json.loads((executed / "results.json").read_text())
    rows = results["comparison"]
    assert len(rows) == results["preset"]["num_eval_samples"]
    gains = [r["reward_gain"] for r in rows]
    assert gains == sorted(gains, reverse=True)
    assert all(r["response_before"] and r["response_after"] for r in rows)
    assert all(0 <= r["rougeL_before"] <= 1 and 0 <= r["rougeL_after"] <= 1 for r in rows)
    assert [r["toxic_before"] for r in rows] == [r["toxicity_before"] >= 0.5 for r in rows]
    assert sorted(r["toxicity_before"] for r in rows) == sorted(results["toxicity"]["before"]["per_sample"])


def test_side_by_side_table_shows_whole_summaries_and_what_was_toxic(executed):
    nb = json.loads((executed / "lab.ipynb").read_text())
    results = json.loads((executed / "results.json").read_text())
    cell = next(c for c in nb["cells"] if "df_compare_results[[" in "".join(c["source"]))
    html = "".join(next(o for o in cell["outputs"] if "data" in o)["data"]["text/html"])
    assert "toxic_before" in html and "..." not in html
    for row in results["comparison"][:10]:  # the rows shown, in full
        assert row["response_before"] in html and row["response_after"] in html


def test_ppo_loop_prints_one_line_per_step(executed):
    nb = json.loads((executed / "lab.ipynb").read_text())
    steps = json.loads((executed / "results.json").read_text())["preset"]["max_ppo_steps"]
    cell = next(c for c in nb["cells"] if "ppo_trainer.step(" in "".join(c["source"]))
    printed = "".join(o["text"] if isinstance(o["text"], str) else "".join(o["text"])
                      for o in cell["outputs"] if o.get("name") == "stdout").splitlines()
    assert len(printed) == steps and all("objective/kl" in line and "ppo/returns/mean" in line for line in printed)


def test_outputs_hold_the_plot_and_the_statistics(executed):
    assert (executed / "detox.png").stat().st_size > 10_000
    results = json.loads((executed / "results.json").read_text())
    low, high = results["toxicity"]["change_ci95"]
    assert low <= high < 0
    assert set(results["versions"]) >= {"torch", "transformers", "trl", "peft", "datasets", "evaluate"}
    assert set(results["timings_s"]) == {"setup_and_eval_before_s", "ppo_s", "eval_after_s"}
    assert len(results["toxicity"]["before"]["per_sample"]) == results["preset"]["num_eval_samples"]
