# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 3, experiments: what each part of RLHF is for
#
# The lab says that the KL penalty keeps PPO from reward hacking, that reinforcement learning
# does better than picking the best of several samples, and that one run's number is one draw;
# the methods after PPO say that its value head, or its sampling and reward model while training,
# can go. This notebook measures all of it on the tiny preset, offline, on a laptop CPU:
#
# 1. **The KL anchor**: the lab at several fixed KL coefficients, 0 (no anchor) included.
# 2. **Best-of-N**: no training at all; sample N summaries per prompt from the Lab 2 model and keep
#    the one the reward model prefers.
# 3. **Without a value head**: DPO on pairs of the Lab 2 model's summaries, and a group method
#    (GRPO's advantages, with and without the group's std), against PPO: what each part buys.
# 4. **Seeds**: the lab's own settings at several seeds, against one run's confidence interval.
#
# Every PPO run is the lab's notebook itself, executed with other settings (no copy of its code);
# its files stay under `outputs/experiments/<name>/`. Each run, PPO's or another method's, runs in
# a process of its own, which gives its wall time and peak memory. Running this notebook again
# reuses the finished runs and resumes an interrupted one from its checkpoint, so a disconnect
# costs nothing.

# %% [markdown]
# ## Parameters
# The defaults take about 20 minutes on a 2-core CPU (docs/lab.md); a second run, everything
# finished, under a minute. Every run scores 200 test summaries (the lab: 600) to fit that time.

# %% tags=["parameters"]
kl_coefs = [0.0, 0.2, 1.0]    # fixed KL coefficients: 0 is no anchor, 0.2 the lab's first one
seeds = [42, 1, 2]            # the lab's own settings (its adaptive KL) at these seeds
best_of = [1, 2, 4, 8, 16]    # N: summaries sampled per prompt, the best one kept
dpo_betas = [0.1, 1.0]        # DPO's beta: how much a nat of log-ratio counts in its loss
group_scales = [True, False]  # the group method divides by the group's std (GRPO) or not (Dr. GRPO)
arm_seeds = [42]              # the seeds of the DPO and group runs
# DPO's pairs (4 summaries of each of 400 training prompts; best and worst, 0.5 apart) and training
dpo_settings = {"prompts": 400, "group_size": 4, "min_margin": 0.5, "epochs": 3, "batch_size": 16}
# The group method: 60 steps of 4 summaries of each of 8 prompts (PPO: 100 steps of 64 summaries)
group_settings = {"steps": 60, "prompts_per_step": 8, "group_size": 4, "kl_coef": 0.2}
overrides = {"num_eval_samples": 200}  # changes to the tiny preset for every run here
experiments_dir = "outputs/experiments"

# %%
import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import experiments
from lab3 import settings
from lab3.solutions import solution

rewards_by_label = solution("rewards_by_label")  # two of the lab's exercises, solved
paired_bootstrap_ci = solution("paired_bootstrap_ci")

folder = Path(experiments_dir)
cfg = dataclasses.replace(settings.preset("tiny"), **overrides)
pd.set_option("display.precision", 3)

# %% [markdown]
# ## 1 - The KL anchor
# One run per coefficient, with TRL's adaptive controller off so that the coefficient stays what
# it is set to. For each: the reward of the evaluation summaries (the `nothate` logit of prompt +
# summary), the KL from the Lab 2 model over the last 10 PPO steps, the toxicity after PPO and its
# change (95% CI), ROUGE-L against the human summaries, and how the summaries read: the share whose
# every sentence is one the tiny world's grammar writes, and the share that stutter.

# %%
kl_runs = {c: experiments.run(f"kl{c:g}-fixed", {**overrides, "init_kl_coef": c,
                                                  "kl_control": "fixed"}, folder)
           for c in kl_coefs}
kl_table = pd.DataFrame({c: experiments.row(r) for c, r in kl_runs.items()}).T
kl_table.index.name = "KL coefficient"
lab2 = pd.DataFrame({"Lab 2 model": experiments.row(kl_runs[kl_coefs[0]], "before")}).T
pd.concat([lab2, kl_table])

# %% [markdown]
# ## 2 - Best-of-N
# No training: the Lab 2 model samples `max(best_of)` summaries for each test prompt, the reward
# model scores each, and best-of-N keeps the highest of the first N. Picking the best of N moves
# the output distribution away from the model's by at most log N - (N-1)/N nats of KL.

# %%
samples = experiments.samples(cfg, max(best_of), folder, rewards_by_label)
bon_table = experiments.best_of_n_rows(samples, best_of, cfg.seed, paired_bootstrap_ci)
bon_table

# %% [markdown]
# ## 3 - Without a value head: DPO and a group method
# Both start from the Lab 2 model with a fresh LoRA adapter, as PPO does, with the same reference
# (the adapter off), reward (the lecture's `rewards_by_label`) and evaluation.
# * **DPO** takes away the value head, sampling while training and the reward model while
#   training: the Lab 2 model writes 4 summaries of each of 400 training prompts once, the reward
#   model labels them, and each prompt's best and worst make a pair where their rewards differ by
#   at least 0.5; DPO trains on those pairs (the lecture's `dpo_loss`, 5.2) at each `beta`.
# * **The group method** takes away the value head: each step samples 4 summaries of each of 8
#   prompts; a summary's advantage is its reward against its group's (the lecture's
#   `group_advantages`, 5.1), on every token, in 3.3's clipped ratio with a KL to the reference.
#
# The KL of these rows is measured on the evaluation summaries (the policy's log-probability of
# each minus the reference's, summed over its tokens); PPO's is TRL's, on its last training steps.

# %%
arm_table = experiments.arms(cfg, folder, dpo_betas, group_scales, arm_seeds, dpo_settings,
                             group_settings, paired_bootstrap_ci)
arm_means = arm_table.groupby(level="arm", sort=False).mean(numeric_only=True)
arm_table[["reward", "kl", "change", "ci_low", "ci_high", "rougeL", "well_formed", "stutter"]]

# %% [markdown]
# ## Reward, toxicity and ROUGE-L against KL
# PPO's runs are points (labelled by their coefficient), best-of-N a line (labelled by N), DPO and
# the group method squares and triangles (the mean over their seeds): the DPO paper's frontier.
# More KL buys more reward; the question is what it costs in the summaries.

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, column in zip(axes, ["reward", "toxicity", "rougeL"]):
    ax.plot(bon_table.kl, bon_table[column], marker="o", label="best-of-N")
    for n, r in bon_table.iterrows():
        ax.annotate(f"N={n}", (r.kl, r[column]), fontsize=8)
    ax.scatter(kl_table.kl, kl_table[column], color="C3", zorder=3, label="PPO")
    for c, r in kl_table.iterrows():
        ax.annotate(f"β={c:g}", (r.kl, r[column]), fontsize=8, color="C3")
    for (arm, r), color in zip(arm_means.iterrows(), ["C2", "C8", "C4", "C6", "C5", "C7"]):
        marker = "s" if arm.startswith("DPO") else "^"
        ax.scatter(r.kl, r[column], color=color, marker=marker, zorder=3, label=arm)
    # symlog: the unanchored run's KL is ten times the others'
    ax.set(xlabel="KL from the Lab 2 model (nats)", title=column, xscale="symlog")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# What each costs for that: the reward model's calls and the summaries generated while training
# (best-of-N pays them at every use instead: N of each per prompt), the models held, the wall time
# and the peak memory of the run's process, on this machine (a PPO run's process is the whole lab
# notebook, its evaluations included; best-of-N samples in this notebook's process, timed by its
# cell).

# %%
ppo = {f"PPO, β={c:g}": {**experiments.row(r), **experiments.ppo_cost(r)}
       for c, r in kl_runs.items()}
best = bon_table.loc[max(best_of)]
held = arm_table.groupby(level="arm")["models held"].first()
costs = pd.concat([pd.DataFrame(ppo).T, arm_means.join(held)])
costs.loc[f"best-of-{max(best_of)}"] = {**best, "reward-model calls": 0, "summaries generated": 0,
                                        "models held": "policy, reward model (at every use)"}
costs.drop(columns=["ci_low", "ci_high", "toxicity", "reward", "kl"]).astype(
    {"reward-model calls": int, "summaries generated": int})

# %% [markdown]
# What the unanchored policy writes, beside the anchored one's, for the same prompts:

# %%
unanchored, anchored = kl_runs[min(kl_coefs)], kl_runs[max(kl_coefs)]
pd.set_option("display.max_colwidth", None)
pd.DataFrame({f"β={min(kl_coefs):g}": unanchored["toxicity"]["after"]["summaries"][:6],
              f"β={max(kl_coefs):g}": anchored["toxicity"]["after"]["summaries"][:6]})

# %% [markdown]
# ## 4 - One run is one draw
# The lab's own settings at each seed: the change in mean toxicity and its 95% interval, and how
# much the change varies between seeds compared with one run's interval.

# %%
seed_runs = {s: experiments.run(f"seed{s}", {**overrides, "seed": s}, folder) for s in seeds}
seed_table = pd.DataFrame({s: experiments.row(r) for s, r in seed_runs.items()}).T
seed_table.index.name = "seed"
display(seed_table[["change", "ci_low", "ci_high", "reward", "kl", "rougeL"]])
pd.Series(experiments.spread(seed_table)).to_frame("toxicity change")

# %% [markdown]
# ## What to conclude
# Read the tables and the figure: does the run without a KL anchor reach more reward than the
# anchored ones, and what did it cost in ROUGE-L and in well-formed summaries? At what KL does
# best-of-N reach the reward PPO reaches? Where do DPO and the group method sit on the same
# frontier, and for how many reward-model calls? Is the spread over seeds inside one run's
# interval, or wider? The "Experiments" section of docs/lab.md gives the numbers of one default run.
