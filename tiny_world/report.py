"""Run the lab on the tiny preset for some seeds and print what the tiny world must reach, one row per seed.

    python -m tiny_world.report 42 1 2      # writes outputs/seed-<S>/ (notebook, results.json, plot)
"""

import json
import math
import sys

import papermill

from lab3 import NOTEBOOK, ROOT
from tiny_world.build import read_corpus
from tiny_world.quality import corpus_vocabulary, grammar_sentences, non_word_share, stutter_share, well_formed_share


def seed_row(seed: int) -> dict:
    """Run the lab with `seed` and measure its evaluation summaries before and after PPO."""
    out = ROOT / "outputs" / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(ROOT / NOTEBOOK), str(out / NOTEBOOK), cwd=str(ROOT),
                               parameters={"output_dir": str(out), "checkpoint_dir": str(out / "checkpoints"),
                                           "overrides": {"seed": seed}}, progress_bar=False)
    return goals_row(json.loads((out / "results.json").read_text()))


def goals_row(results: dict) -> dict:
    """What a run's `results` show of the tiny world's goals, measured on its evaluation summaries."""
    seed = results["seed"]
    corpus = read_corpus(ROOT / "checkpoints" / "tiny" / "dialogsum")
    known, grammar = corpus_vocabulary(corpus), grammar_sentences()
    tox, rouge = results["toxicity"], results["rouge"]
    row = {"seed": seed, "toxicity before": tox["before"]["mean"], "toxicity after": tox["after"]["mean"],
           "change": tox["after"]["mean"] / tox["before"]["mean"] - 1, "CI low": tox["change_ci95"][0],
           "CI high": tox["change_ci95"][1], "ROUGE-L before": rouge["before"]["rougeL"],
           "ROUGE-L change": rouge["after"]["rougeL"] / rouge["before"]["rougeL"] - 1,
           "max KL": max(s["objective/kl"] for s in results["ppo_steps"]), "PPO s": results["timings_s"]["ppo_s"]}
    for phase in ("before", "after"):
        summaries = tox[phase]["summaries"]
        row[f"well-formed {phase}"] = well_formed_share(summaries, grammar)
        row[f"non-words {phase}"] = non_word_share(summaries, known)
        row[f"stutter {phase}"] = stutter = stutter_share(summaries)
        # A few stuttering summaries in 600: the share's sampling noise is as large as the gaps between settings.
        row[f"stutter {phase} s.e."] = math.sqrt(stutter * (1 - stutter) / len(summaries))
    return row


if __name__ == "__main__":
    import pandas as pd
    rows = pd.DataFrame([seed_row(int(s)) for s in sys.argv[1:] or ["42", "1", "2"]]).set_index("seed")
    print(rows.T.round(4).to_string())
