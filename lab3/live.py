"""Watching PPO learn: in a Jupyter kernel, one figure redrawn in place and a table of the newest rollouts; everywhere,
a line every `log_every` steps and the reward and KL on the progress bar; and the tracker, if one was asked for."""

import io
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from lab3.settings import PROMPT_TEMPLATE

HEADING, PROMPT_END = (part.strip() for part in PROMPT_TEMPLATE.split("{dialogue}"))  # around the dialogue
ROLLOUTS_SHOWN = 4


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (a notebook, papermill), where displays can be updated in place."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def hate_share(pipeline_scores: list[list[dict]]) -> float:
    """The share of texts the classifier calls hateful (its `hate` logit above its `nothate` one)."""
    called = [max(scores, key=lambda d: d["score"])["label"] == "hate" for scores in pipeline_scores]
    return sum(called) / len(called)


def rollouts(record: dict, n: int = ROLLOUTS_SHOWN) -> pd.DataFrame:
    """The step's first `n` rollouts: the end of the dialogue, the summary written, its reward."""
    rows = []
    for text, reward in list(zip(record["texts"], record["rewards"]))[:n]:
        prompt, _, summary = text.rpartition(PROMPT_END)
        dialogue = prompt.strip().removeprefix(HEADING).strip()
        summary = summary.replace("</s>", "").strip()  # the prompt's end-of-text token, decoded with it
        rows.append({"dialogue (its end)": "…" + dialogue[-60:], "summary": summary, "reward": reward})
    return pd.DataFrame(rows).round(3)


def figure_png(history: list[dict], max_steps: int) -> bytes:
    """The live figure as PNG: the reward, the KL from the Lab 2 model and the batch's hateful share, by step."""
    steps = [r["step"] + 1 for r in history]
    fig = Figure(figsize=(11, 2.8), dpi=80)  # not pyplot: no figure of its own left at the end of the cell
    axes = fig.subplots(1, 3)
    series = [("reward mean (nothate logit)", [r["reward_mean"] for r in history]),
              ("KL from the Lab 2 model", [r["objective/kl"] for r in history]),
              ("share the classifier calls hate", [hate_share(r["pipeline_scores"]) for r in history])]
    for ax, (title, values) in zip(axes, series):
        ax.plot(steps, values, marker=".")
        ax.set(title=title, xlabel="PPO step", xlim=(0, max_steps + 1))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.18, top=0.88, wspace=0.25)  # tight_layout costs more
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


@dataclass
class View:
    """The live view's state: a line every `log_every` steps, the figure and table redrawn every `every` steps (in a
    kernel; None: every step while the steps are few, then every tenth)."""

    log_every: int
    every: int | None = None
    kernel: bool = False  # in a Jupyter kernel, where displays are updated in place
    handles: list | None = None  # the figure's and the table's displays, once shown


def new_view(log_every: int, every: int | None = None) -> View:
    """The live view of a run that prints a line every `log_every` steps."""
    return View(log_every, every, in_kernel())


def show(view: View, history: list[dict], max_steps: int, bar=None) -> None:
    """Show PPO's progress after the last step of `history`: the bar's numbers, and as the view's cadence says, the
    figure and rollouts (in place, in a kernel) and a line."""
    record, done = history[-1], len(history)
    if bar is not None:
        bar.set_postfix({"reward": f"{record['reward_mean']:.3f}", "kl": f"{record['objective/kl']:.4f}"},
                        refresh=False)
    every = view.every or (1 if max_steps <= 20 else 10)
    if view.kernel and (done % every == 0 or done == max_steps):
        from IPython.display import Image, display
        table = rollouts(record).style.format(precision=3).hide(axis="index")  # whole summaries
        shown = (Image(figure_png(history, max_steps)), table)
        if view.handles is None:
            view.handles = [display(item, display_id=True) for item in shown]
        else:
            for handle, item in zip(view.handles, shown):
                handle.update(item)
    if done % view.log_every == 0 or done == max_steps:
        print(f"step {done:>3}/{max_steps}  reward: {record['reward_mean']:7.3f}  "
              f"kl: {record['objective/kl']:7.4f}  hateful: {hate_share(record['pipeline_scores']):4.0%}")


def scalars(record: dict) -> dict[str, float]:
    """What a tracker charts of one step: its numbers (TRL's arrays and the texts are not charts)."""
    return {"env/reward_mean": record["reward_mean"], "env/hate_share": hate_share(record["pipeline_scores"]),
            **{k: record[k] for k in ("objective/kl", "ppo/returns/mean", "ppo/policy/advantages_mean",
                                      "ppo/mean_scores")}}


def markdown(table: pd.DataFrame) -> str:
    """`table` as a Markdown table, as TensorBoard's text tab shows one."""
    rows = [list(map(str, table.columns)), ["---"] * len(table.columns)]
    rows += [[str(v).replace("|", "/") for v in row] for row in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def log_to_tracker(accelerator, record: dict) -> None:
    """Send the step's numbers, and its rollouts as a table where the tracker takes tables, to the run's tracker."""
    if not accelerator.trackers:
        return
    step = record["step"]
    accelerator.log(scalars(record), step=step)
    table = rollouts(record, n=len(record["texts"]))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_text("rollouts", markdown(table), global_step=step)
        elif tracker.name == "trackio":
            import trackio
            tracker.run.log({"rollouts": trackio.Table(dataframe=table)}, step=step)
