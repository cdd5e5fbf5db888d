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
# # Lab 3: Fine-tune FLAN-T5 with reinforcement learning (PPO) to generate less toxic summaries
#
# In this lab you fine-tune a FLAN-T5 model, already instruction-tuned for dialogue summarization
# with a LoRA adapter in Lab 2, so that its summaries become **less toxic**. A hate-speech
# classifier (Meta's RoBERTa, `facebook/roberta-hate-speech-dynabench-r4-target`) scores each
# summary; its `nothate` logit is the **reward**, and Proximal Policy Optimization (PPO, from the
# TRL library) updates the model to raise it. A KL penalty against the unchanged Lab 2 model keeps
# PPO from "reward hacking" (writing text that fools the classifier but is no longer a summary).
#
# The lab runs in two presets of the same code:
# * **`tiny`** (default): small models and a small DialogSum-style corpus that this project
#   builds itself; runs offline on a laptop CPU in minutes.
# * **`full`**: the lecture's real models, data set and hyperparameters; needs the Hugging Face
#   Hub and a GPU.
#
# Nine functions of this notebook are the exercises of the lab as an assignment (2.3, 2.5, 3.2,
# 3.3, 4.4, 5.1, 5.2); here they are written out, and everything after them runs on them.

# %% [markdown]
# ## 1 - Set up
# ### 1.1 - Parameters
# Choose the preset here. You should not need to change anything else; the two reward settings
# are there for an experiment once the lab has run (see 2.5).

# %% tags=["parameters"]
preset_name = "tiny"      # "tiny" (offline, CPU, minutes) or "full" (the lecture: Hub + GPU)
reward_label = "nothate"  # the label whose logit is the reward: try "hate", watch toxicity rise
reward_mode = "by_label"  # try "by_index", the lecture's way of taking the reward (2.5)
overrides = {}            # changes to the preset's settings, e.g. {"max_ppo_steps": 5}
# Plumbing: where the lab's files come from and where a run's files go.
output_dir = "outputs"          # plots, results.json and the trained adapter
checkpoint_dir = "checkpoints"  # PPO checkpoints go to <checkpoint_dir>/ppo-<preset>
resume = True             # continue an interrupted run (False: keep it aside and start anew)
log_every = 10            # print a line every this many PPO steps (Jupyter also draws them live)
tracker = ""              # "" (none), "tensorboard" or "trackio": logs under <output_dir>/trackers
lab_source = ""           # opened alone: the lab's git URL or folder (or LAB3_SOURCE), as a
                          # course gives it

# %% [markdown]
# ### 1.2 - Set up this machine and this run (run it, don't modify it)
# In a checkout of the lab its files are beside this notebook. Opened alone (Colab, Kaggle,
# SageMaker Studio Lab, a JupyterHub), the notebook fetches them from `lab_source` into
# `lab3_files/`: a folder is copied, a git URL is cloned at this notebook's version (the tag
# `v<LAB_VERSION>`) and nothing else. Then it installs the pinned packages this kernel lacks
# (keeping the host's torch), builds the tiny preset if its files are missing, and checks the
# settings: the preset's, changed by `overrides`, then by the environment (`LAB3_PRESET`,
# `LAB3_OVERRIDES`: how a script under `accelerate launch` gets them). A bad value, or a model
# that cannot be loaded, stops the lab here in one sentence.

# %%
import os, shutil, subprocess, sys  # noqa: E401
from pathlib import Path

LAB_VERSION = "3.3.0"  # the version of the lab's files that this notebook belongs to
lab_source = lab_source or os.environ.get("LAB3_SOURCE", "")
here = Path(globals()["__file__"]).resolve().parent if "__file__" in globals() else Path.cwd()
lab_dir = here if (here / "lab3" / "setup.py").is_file() else here / "lab3_files"
if (lab_dir / "lab3" / "setup.py").is_file():
    pass
elif not lab_source:
    raise SystemExit("This notebook needs the lab's files: set lab_source in the parameters cell "
                     "(or LAB3_SOURCE) to the lab's git URL or folder, and run all again.")
elif Path(lab_source).is_dir():
    shutil.copytree(lab_source, lab_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git", "outputs", "ppo-*"))
elif subprocess.run(["git", "clone", "-q", "-b", f"v{LAB_VERSION}", "--", lab_source,
                     str(lab_dir)]).returncode:  # this notebook's version only
    raise SystemExit(f"Could not clone the lab's files at tag v{LAB_VERSION} from {lab_source}: "
                     "check lab_source, or ask your course for a notebook and its files.")
sys.path.insert(0, str(lab_dir))  # the lab's modules import from there
from lab3 import setup  # noqa: E402

setup.prepare(LAB_VERSION)
from lab3 import session  # noqa: E402

run = session.start(preset_name, overrides, output_dir, checkpoint_dir, reward_label, reward_mode,
                    resume, log_every, tracker)  # also locks the folders: a second run stops here
cfg, device = run.cfg, run.device
run.settings_table()

# %% [markdown]
# ### 1.3 - Imports
# The lab uses `trl==0.11.4`: the last TRL release whose `PPOTrainer` accepts encoder-decoder
# models such as FLAN-T5 (TRL 1.x has no PPO at all). `rlhf_helpers` holds what you read beside
# this notebook (data, models, rewards, measurements); the plumbing lives in the package `lab3`.

# %%
import evaluate
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from trl import AutoModelForSeq2SeqLMWithValueHead, PPOConfig, PPOTrainer
from trl.core import LengthSampler, masked_mean, masked_whiten
from trl.trainer.utils import disable_dropout_in_model

import rlhf_helpers as lab

# %% [markdown]
# ## 2 - Load the data set, the Lab 2 model and the reward model
# ### 2.1 - Data set
# DialogSum dialogues whose length (in characters) lies between `input_min_text_length` and
# `input_max_text_length`, each wrapped in the summarization prompt and tokenized. `query` is the
# decoded prompt; the reward model will read it together with the summary.

# %%
dataset = lab.build_dataset(model_name=cfg.model_name, dataset_name=cfg.dataset_name,
                            input_min_text_length=cfg.input_min_text_length,
                            input_max_text_length=cfg.input_max_text_length)
tokenizer = AutoTokenizer.from_pretrained(cfg.model_name)
print(dataset)
print(dataset["test"][0]["query"])

# %% [markdown]
# ### 2.2 - The Lab 2 model, with a value head
# In Lab 2 you trained a LoRA adapter (rank 32 on the attention's `q` and `v` projections) for
# dialogue summarization. Here that adapter is **merged** into the base weights, which gives
# exactly the Lab 2 summarizer, and a **fresh LoRA adapter of the same shape** is added on top of
# it for PPO to train. The fresh adapter starts at zero (LoRA initializes its `B` matrix to 0), so
# at the start the policy is exactly the Lab 2 model.
#
# PPO also needs a *value head*: one linear layer on the decoder's last hidden state that predicts
# the expected reward. It adds `hidden_size` weights plus 1 bias to the trainable parameters.
#
# Some settings serve PPO rather than summarization. **Dropout is off** everywhere (T5's, the
# adapter's, the value head's): PPO divides the policy's probabilities after an update by those
# before it, and dropout would add noise to that ratio and to the summaries the policy samples
# (TRL's later trainers switch it off too). The others depend on the device and change no result
# (`run.prepare_for_ppo`). On a CPU the PPO steps **skip padding**: `PPOTrainer` pads every
# mini-batch's prompts to the longest prompt of the whole batch, and a hook drops the columns
# that are padding in every row of a mini-batch (`lab.collator` sorts each batch by prompt
# length, so there are many). On a GPU, where that hook costs more than it saves, memory is the
# scarcer resource: **gradient checkpointing** recomputes each T5 block's activations in the
# backward pass instead of keeping them (`benchmarks/README.md`).

# %%
summarizer = lab.load_summarizer(cfg.model_name, cfg.adapter_dir, cfg.missing_adapter,
                                 dtype=cfg.dtype)
peft_model = lab.add_fresh_lora(summarizer)
print(f"PEFT model parameters to be updated:\n"
      f"{lab.describe_trainable_parameters(peft_model)}\n")

ppo_model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(peft_model, is_trainable=True)
ppo_model = ppo_model.to(device)
disable_dropout_in_model(ppo_model)  # the fresh adapter's and the value head's (T5's is off)
print(run.prepare_for_ppo(ppo_model))
hidden_size = ppo_model.pretrained_model.config.d_model
print(f"PPO model parameters to be updated (ValueHead + {hidden_size + 1} parameters):\n"
      f"{lab.describe_trainable_parameters(ppo_model)}\n")
print(ppo_model.v_head)

# %% [markdown]
# ### 2.3 - The reference model
# PPO penalizes the policy for drifting away from a frozen **reference model** (the KL-divergence
# term of the objective). The lecture builds a copy with `create_reference_model(ppo_model)`, but
# for a PEFT model TRL 0.11.4 ignores the `ref_model` it is given: it uses *the policy with its
# adapters disabled* as the reference. In the lecture the trainable adapter is the Lab 2 adapter
# itself, so the reference there silently becomes plain FLAN-T5, and the KL is large from the very
# first step.
#
# Because the Lab 2 adapter is merged into the weights here, "adapters disabled" **is** the Lab 2
# model: the reference is right and costs no second copy of the model.
#
# **Exercise (reference).** Write `reference_logits`: the logits TRL's reference gives for the
# inputs (`ppo_model.pretrained_model.disable_adapter()` is a context manager). Before PPO they
# equal the policy's, since the fresh adapter is zero; once PPO has trained the adapter they must
# not follow it. A copy of the policy (`create_reference_model`) follows it; plain FLAN-T5 lacks
# the Lab 2 adapter.

# %% tags=["exercise"]
def reference_logits(ppo_model, inputs: dict, decoder_input_ids: torch.Tensor) -> torch.Tensor:
    """The reference's logits for `inputs` (the encoder's input ids and attention mask) and
    `decoder_input_ids`: the policy's own forward pass with its PPO adapter disabled."""
    with torch.no_grad(), ppo_model.pretrained_model.disable_adapter():
        return ppo_model(**inputs, decoder_input_ids=decoder_input_ids)[0]


# %% [markdown]
# Before training, the policy and the reference give the same logits:

# %%
check = tokenizer(dataset["test"][0]["query"], return_tensors="pt").to(device)
decoder_input_ids = torch.zeros((1, 1), dtype=torch.long, device=device)
with torch.no_grad():
    policy_logits = ppo_model(**check, decoder_input_ids=decoder_input_ids)[0]
difference = (policy_logits - reference_logits(ppo_model, check, decoder_input_ids)).abs().max()
print(f"largest logit difference between policy and reference: {difference.item():.2e}")

# %% [markdown]
# ### 2.4 - The reward model
# A RoBERTa hate-speech classifier with two labels. The reward for a text is the classifier's
# **`nothate` logit**: high for friendly text, low for hateful text. The index of `nothate` is
# read from the model's `id2label`, never assumed.

# %%
toxicity_tokenizer = AutoTokenizer.from_pretrained(cfg.toxicity_model_name)
toxicity_model = AutoModelForSequenceClassification.from_pretrained(cfg.toxicity_model_name,
                                                                    dtype=cfg.dtype).to(device)
print(toxicity_model.config.id2label)
nothate_index = lab.not_hate_index(toxicity_model)
print(f"nothate index: {nothate_index}")

for text in ["I want to kiss you.", "You are disgusting and terrible and i damn hate you."]:
    inputs = toxicity_tokenizer(text, return_tensors="pt").to(device)
    with torch.no_grad():
        logits = toxicity_model(**inputs).logits[0]
    labels = [toxicity_model.config.id2label[i] for i in range(len(logits))]
    print(f"{text!r}\n  logits: {dict(zip(labels, logits.tolist()))}"
          f"\n  probabilities: {dict(zip(labels, logits.softmax(dim=-1).tolist()))}"
          f"\n  reward (nothate logit): {logits[nothate_index].item():.3f}")

# %% [markdown]
# ### 2.5 - The reward pipeline
# The same classifier (the model loaded above, not a second copy) behind a Hugging Face
# `pipeline`, so that a whole batch of texts is scored in one call. With
# `function_to_apply="none"` it returns raw logits. Mind the order of what it returns: with
# `top_k=None` the labels are **sorted by score**, not by class index. Taking
# `reward[nothate_index]` (as the lecture does) therefore takes whichever label scored highest;
# for a hateful text that is the `hate` logit.
#
# **An experiment, once the lab has run:** set `reward_label = "hate"` in the parameters cell and
# run all again: PPO now rewards hate, and the toxicity after PPO rises. Or set
# `reward_mode = "by_index"` to take the reward as the lecture does, and see how much less the
# summaries detoxify. The grader (`python -m grading`) catches both.

# %%
hate_classifier = pipeline("sentiment-analysis", model=toxicity_model, tokenizer=toxicity_tokenizer,
                           device=device)
reward_logits_kwargs = cfg.reward_kwargs  # raw logits; long texts cut at the classifier's window
reward_probabilities_kwargs = dict(reward_logits_kwargs, function_to_apply="softmax")

toxic_text = "You are disgusting and terrible and i damn hate you."
print("logits:       ", hate_classifier(toxic_text, **reward_logits_kwargs))
print("probabilities:", hate_classifier(toxic_text, **reward_probabilities_kwargs))

# %% [markdown]
# **Exercise (reward).** Write `rewards_by_label`: for each text's pipeline output (a list of
# `{"label", "score"}` dicts, highest score first), the score of `label`, as a tensor
# (`PPOTrainer.step` takes a list of tensors).

# %% tags=["exercise"]
def rewards_by_label(outputs: list[list[dict]], label: str) -> list[torch.Tensor]:
    """One reward tensor per text: the score of `label` in the pipeline's output for it."""
    return [torch.tensor(next(d["score"] for d in out if d["label"] == label)) for out in outputs]


# %% [markdown]
# The reward of the toxic text by label, beside the lecture's `reward[nothate_index]`:

# %%
# The lecture's way, for the experiment above: the entry at nothate_index, whatever its label.
reward_function = (rewards_by_label if reward_mode == "by_label"
                   else lab.lecture_rewards(nothate_index))
scores = hate_classifier([toxic_text], **reward_logits_kwargs)
print(f"reward by label: {rewards_by_label(scores, 'nothate')[0].item():.3f}   "
      f"lecture's reward[nothate_index]: {scores[0][nothate_index]['score']:.3f} "
      f"({scores[0][nothate_index]['label']})")

# %% [markdown]
# ### 2.6 - Measuring toxicity with `evaluate`
# The `toxicity` measurement gives each text the classifier's probability of the toxic label
# (`hate` here). The project ships it as a local `evaluate` module (`lab3/toxicity`), so it works
# without the Hub; note that `toxic_label` is an argument of `compute()`.

# %%
toxicity_evaluator = evaluate.load(lab.TOXICITY_MODULE, cfg.toxicity_model_name,
                                   module_type="measurement")
print(toxicity_evaluator.compute(predictions=["I want to kiss you.", toxic_text],
                                 toxic_label="hate"))

# %% [markdown]
# ### 2.7 - Toxicity before detoxification
# Generate summaries for `num_eval_samples` test dialogues and score them. The summary itself is
# scored; the score of prompt + summary (what the lecture measured) is shown beside it. The same
# prompts and the same sampling seed are used after PPO.
#
# On a GPU, most of the time goes to writing the summaries one token at a time, so
# `run.generation_kwargs` adds transformers' *static* key/value cache, sized once for the
# longest summary of the run, with the prompts padded to one length: then the decoding step is
# compiled (`torch.compile`, replayed as a CUDA graph). The first generation waits for the
# compilation; the later ones run several times faster (`benchmarks/README.md`). On a CPU the
# default path runs.

# %%
eval_generation_kwargs = run.generation_kwargs(dataset, max_new_tokens=cfg.eval_max_new_tokens)
mean_before, std_before, summaries_before = lab.generate_and_measure_toxicity(
    model=ppo_model, toxicity_evaluator=toxicity_evaluator, tokenizer=tokenizer,
    dataset=dataset["test"], num_samples=cfg.num_eval_samples,
    generation_kwargs=eval_generation_kwargs, seed=cfg.seed)
print(f"toxicity [mean, std] before detox: [{mean_before:.4f}, {std_before:.4f}]")
display(summaries_before[["summary", "toxicity", "toxicity_with_prompt"]].head(8))

# %% [markdown]
# ## 3 - Detoxify the summaries with PPO
# ### 3.1 - The PPO trainer
# `ref_model=None`: as explained in 2.3, TRL uses the policy with its adapter disabled as the
# reference. Each PPO step takes `batch_size` prompts and updates the model on mini-batches of
# `mini_batch_size` of them, `ppo_epochs` times over the batch. Under `accelerate launch`
# (docs/lab.md) each of `run.processes` processes takes its share of every batch.
# `run.data_order()` makes the order of the batches follow from the seed alone, so that an
# interrupted run finds it again.

# %%
config = PPOConfig(model_name=cfg.model_name, learning_rate=cfg.learning_rate,
                   batch_size=cfg.batch_size // run.processes,
                   mini_batch_size=cfg.mini_batch_size // run.processes, ppo_epochs=cfg.ppo_epochs,
                   init_kl_coef=cfg.init_kl_coef, adap_kl_ctrl=cfg.kl_control == "adaptive",
                   seed=cfg.seed, accelerator_kwargs=run.data_order(), log_with=run.tracker())
ppo_trainer = PPOTrainer(config=config, model=ppo_model, ref_model=None, tokenizer=tokenizer,
                         dataset=dataset["train"], data_collator=lab.collator)
print(f"batch size: {config.batch_size}, mini-batch size: {config.mini_batch_size}, "
      f"PPO epochs: {config.ppo_epochs}")
output_length_sampler = LengthSampler(cfg.output_min_length, cfg.output_max_length)
generation_kwargs = run.generation_kwargs(dataset)
reward_kwargs = cfg.reward_kwargs

# %% [markdown]
# ### 3.2 - The PPO loop
# Each step:
# 1. the policy writes a summary for each of `batch_size` prompts (all in one batched `generate`;
#    the collator has sorted them by length; on a GPU, compiled as in 2.7),
# 2. the reward model scores prompt + summary, a few texts at a time, and the `nothate` logit
#    becomes the reward,
# 3. `ppo_trainer.step` updates the LoRA adapter and the value head.
#
# **Exercise (loop).** Write `ppo_step`, steps 1 to 3 for one batch: `batch["input_ids"]` are the
# prompts' tokens and `batch["query"]` their text. Sample the summaries with
# `ppo_trainer.generate` (`output_length_sampler`, `generation_kwargs`), score each
# `query + " " + summary` with `hate_classifier` (`reward_kwargs`), take the rewards with
# `reward_function` (2.5) and step PPO on them once. It returns what the loop records: the texts
# scored, the classifier's outputs for them, the rewards and PPO's statistics.

# %% tags=["exercise"]
def ppo_step(batch: dict) -> tuple[list[str], list[list[dict]], list[torch.Tensor], dict]:
    """One PPO step on `batch`: summaries sampled, prompt + summary scored, the rewards taken,
    PPO's update. Returns (texts, scores, rewards, stats)."""
    summary_tensors = ppo_trainer.generate(batch["input_ids"], length_sampler=output_length_sampler,
                                           batch_size=len(batch["input_ids"]),
                                           return_prompt=False, **generation_kwargs)
    summaries = tokenizer.batch_decode(summary_tensors, skip_special_tokens=True)
    texts = [query + " " + summary for query, summary in zip(batch["query"], summaries)]
    scores = hate_classifier(texts, **reward_kwargs)
    rewards = reward_function(scores, reward_label)
    stats = ppo_trainer.step(batch["input_ids"], summary_tensors, rewards)
    return texts, scores, rewards, stats


# %% [markdown]
# The loop: a step per batch, each recorded by `run.record` (its statistics, texts and rewards,
# a checkpoint, and what you see of it).
#
# **Watch it learn.** In Jupyter a figure below the cell is redrawn as PPO goes: the mean reward
# (should rise), the KL from the Lab 2 model (starts at 0 and should stay moderate) and the share of
# summaries the classifier calls hateful (should fall), with a few of the newest rollouts under it:
# a reward hack shows first in what the policy writes. The progress bar carries the reward and the
# KL, and a line is printed every `log_every` steps.
#
# **Interrupted?** (a closed laptop, a disconnected hosted notebook) Run the notebook again: the
# loop continues from the last checkpoint in `checkpoints/ppo-<preset>/`, with the batches the
# next step would have had, and ends exactly as an uninterrupted run would. A finished run is kept
# aside and a new one starts.

# %%
for batch in run.steps(ppo_trainer):
    texts, scores, rewards, stats = ppo_step(batch)
    run.record(ppo_trainer, texts, scores, rewards, stats)
ppo_history = run.end_of_ppo(ppo_trainer)  # under `accelerate launch`: main process only

# %% [markdown]
# ### 3.3 - Inside one PPO step
# What does `ppo_trainer.step` do with the rewards? Open the last step of your run: its batch
# (the prompts, the summaries the policy sampled, their scores) and what TRL's forward pass gives
# for it, per summary token, under the policy that sampled it (`old_logprobs`, `old_values`: the
# checkpoint before the step), under the reference (`ref_logprobs`) and under the policy the step
# left (`logprobs`, `values`). `masks` is 1 on each summary's tokens.

# %%
step = run.replay_last_step(ppo_trainer, tokenizer, dataset["train"])
print(f"{len(step.queries)} texts, {step.masks.shape[1]} decoder positions, sampled by the policy "
      f"after {step.sampled_by_step} PPO steps; KL coefficient {step.kl_coef:.4f}")

# %% [markdown]
# **Exercise (KL-shaped rewards).** PPO does not maximize the classifier's score alone: every
# summary token is penalized by how far the policy moved from the reference on it,
# `-kl_coef * (logprob - ref_logprob)`, and the score is added at the summary's last token only
# (the classifier judged the whole summary, once it was written). Write `kl_shaped_rewards`.

# %% tags=["exercise"]
def kl_shaped_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                      masks: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards (texts x positions): the KL penalty on every position, and each text's
    score added at the last position its mask keeps."""
    rewards = -kl_coef * (logprobs - ref_logprobs)
    last = masks.shape[1] - 1 - masks.flip(dims=[1]).argmax(dim=1)  # the last 1 of each row
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


# %% [markdown]
# The same numbers from TRL itself:

# %%
token_rewards = kl_shaped_rewards(step.scores, step.old_logprobs, step.ref_logprobs, step.masks,
                                  step.kl_coef)
trl_rewards, _, _ = ppo_trainer.compute_rewards(step.scores, step.old_logprobs, step.ref_logprobs,
                                                step.masks)
print(f"largest difference from TRL's compute_rewards: "
      f"{(token_rewards - trl_rewards).abs().max().item():.1e}")

# %% [markdown]
# **Exercise (advantages).** The value head predicts, at each position, the return still to come.
# Generalized Advantage Estimation (GAE) runs backwards over the positions: with
# `delta_t = reward_t + gamma * value_{t+1} - value_t` (no value after the last position),
# `advantage_t = delta_t + gamma * lam * advantage_{t+1}`. The returns are advantages + values,
# taken before the advantages are whitened over the mask (`masked_whiten`, mean 0 and variance 1
# over the summary tokens). Values and rewards count only where the mask is 1.

# %% tags=["exercise"]
def advantages_and_returns(values: torch.Tensor, rewards: torch.Tensor, masks: torch.Tensor,
                           gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages (whitened over the mask) and returns (advantages + values, not whitened)."""
    values, rewards = values * masks, rewards * masks
    advantages, next_advantage = torch.zeros_like(rewards), 0.0
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = advantages[:, t] = delta + gamma * lam * next_advantage
    return masked_whiten(advantages, masks), advantages + values


# %%
advantages, returns = advantages_and_returns(step.old_values, token_rewards, step.masks,
                                             config.gamma, config.lam)
_, trl_advantages, trl_returns = ppo_trainer.compute_advantages(step.old_values, trl_rewards,
                                                                step.masks)
print(f"largest difference from TRL's compute_advantages: advantages "
      f"{(advantages - trl_advantages).abs().max().item():.1e}, returns "
      f"{(returns - trl_returns).abs().max().item():.1e}")

# %% [markdown]
# **Exercise (the clipped objective).** The update may move each token's probability only so far:
# with `ratio = exp(logprob - old_logprob)`, the policy loss takes, per token, the larger of
# `-advantage * ratio` and `-advantage * clamp(ratio, 1 - cliprange, 1 + cliprange)` (the more
# pessimistic of the two), averaged over the mask. The value loss does the same for the values:
# the larger of `(value - return)**2` and `(clipped value - return)**2`, the value clipped to
# within `cliprange_value` of the old one, halved and averaged over the mask, then weighted by
# `vf_coef`.

# %% tags=["exercise"]
def ppo_losses(old_logprobs: torch.Tensor, logprobs: torch.Tensor, advantages: torch.Tensor,
               old_values: torch.Tensor, values: torch.Tensor, returns: torch.Tensor,
               masks: torch.Tensor, cliprange: float, cliprange_value: float,
               vf_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped policy loss and its clipped value loss (times `vf_coef`), over the mask."""
    ratio = torch.exp(logprobs - old_logprobs)
    clipped_ratio = torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    policy_loss = masked_mean(torch.max(-advantages * ratio, -advantages * clipped_ratio), masks)
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    value_losses = torch.max((values - returns) ** 2, (clipped_values - returns) ** 2)
    return policy_loss, vf_coef * (0.5 * masked_mean(value_losses, masks))


# %% [markdown]
# TRL's `loss` on one mini-batch (its first `mini_batch_size` texts), and how many of its tokens
# the clipping held back:

# %%
mb = slice(0, config.mini_batch_size)
policy_loss, value_loss = ppo_losses(
    step.old_logprobs[mb], step.logprobs[mb], advantages[mb], step.old_values[mb],
    step.values[mb], returns[mb], step.masks[mb], config.cliprange, config.cliprange_value,
    config.vf_coef)
trl_policy_loss, trl_value_loss, trl_stats = ppo_trainer.loss(
    step.old_logprobs[mb], step.old_values[mb], step.logits[mb], step.values[mb],
    step.logprobs[mb], step.masks[mb], advantages[mb], returns[mb])
print(f"policy loss {policy_loss.item():.5f} (TRL {trl_policy_loss.item():.5f}), value loss "
      f"{value_loss.item():.5f} (TRL {trl_value_loss.item():.5f}); clipped: "
      f"{trl_stats['policy/clipfrac'].item():.1%} of the tokens' ratios")

# %% [markdown]
# Where a summary's reward sits: for the batch's best- and worst-scored summaries, each token's
# reward (the KL penalty, and at the last token the classifier's score with it), the value head's
# prediction at each token (the return it expects from there on), and the return. The advantage is
# how much better a token turned out than the value head expected.

# %%
lab.plot_token_rewards(step, token_rewards, returns, tokenizer)
lab.reward_parts(step, token_rewards)

# %% [markdown]
# **Question (returns).** Take one of the two summaries above. How much of its total reward is the
# classifier's score, and how much the KL penalty? What would make the KL part larger, and what
# does a large KL part do to the next update?

# %% [markdown] tags=["answer"]
# *A model answer:* the total is the score plus the sum of the per-token penalties. Early in a run
# the policy is close to the reference, so the penalty is a few hundredths and the score is nearly
# all of it; after many steps, or with a small KL coefficient, the policy's log-probabilities move
# away from the reference's on the words it now prefers and the penalty grows (a larger
# `init_kl_coef` makes every nat of drift cost more). A large penalty lowers the returns of the
# tokens where the policy drifted most, so the next update pulls those tokens back toward the Lab 2
# model: the anchor at work.

# %% [markdown]
# ## 4 - Evaluate the detoxified model
# ### 4.1 - Toxicity after detoxification
# The same prompts and the same sampling seed as before PPO.

# %%
mean_after, std_after, summaries_after = lab.generate_and_measure_toxicity(
    model=ppo_model, toxicity_evaluator=toxicity_evaluator, tokenizer=tokenizer,
    dataset=dataset["test"], num_samples=cfg.num_eval_samples,
    generation_kwargs=eval_generation_kwargs, seed=cfg.seed)
print(f"toxicity [mean, std] after detox: [{mean_after:.4f}, {std_after:.4f}]")

mean_improvement = (mean_before - mean_after) / mean_before
std_improvement = (std_before - std_after) / std_before
print("Percentage improvement of toxicity score after detoxification:")
print(f"mean: {mean_improvement * 100:.2f}%")
print(f"std: {std_improvement * 100:.2f}%")

# %% [markdown]
# ### 4.2 - Did the summaries stay summaries?
# ROUGE of the summaries against the human-written ones, before and after PPO: a drop in toxicity
# bought with much worse summaries would show here.

# %%
rouge_before = lab.rouge(summaries_before["summary"].tolist(),
                         summaries_before["reference"].tolist())
rouge_after = lab.rouge(summaries_after["summary"].tolist(), summaries_after["reference"].tolist())
pd.DataFrame({
    "before PPO": {"toxicity mean": mean_before, "toxicity std": std_before, **rouge_before},
    "after PPO": {"toxicity mean": mean_after, "toxicity std": std_after, **rouge_after}})

# %% [markdown]
# ### 4.3 - Before and after, side by side
# Each test prompt's summary before and after PPO, whole, with its toxicity (`toxic_before`: the
# classifier called the summary before PPO hateful) and its reward (the `nothate` logit of
# prompt + summary), sorted by the gain in reward.

# %%
df_compare_results = lab.comparison_table(summaries_before, summaries_after, hate_classifier,
                                          reward_kwargs, rewards_by_label)
pd.set_option("display.max_colwidth", None)  # whole summaries, not cut with "..."
columns = ["response_before", "response_after", "toxic_before", "toxicity_before", "toxicity_after",
           "reward_gain", "rougeL_before", "rougeL_after"]
df_compare_results[columns].head(10).round(3)

# %% [markdown]
# **Question (side by side).** Read the table: what did PPO change in the summaries (their words,
# their length, what they leave out)? Find a row whose toxicity rose and say why a summary can
# score better as a reward yet worse as a summary.

# %% [markdown] tags=["answer"]
# *A model answer:* PPO makes the summaries blander: fewer insults and harsh verbs quoted from the
# dialogue, often shorter, sometimes leaving out who did what. Rows whose toxicity rose are
# usually ones where the sampled summary changed topic or quoted a rude line the reward model
# scores with the prompt: the reward is the classifier's view of prompt + summary, not of the
# summary's faithfulness, so a summary can please the classifier and lose its content (ROUGE-L).

# %% [markdown]
# ### 4.4 - How sure are we?
# Before and after were measured on the same prompts, so the change in toxicity can be judged pair
# by pair. A paired bootstrap gives a 95% confidence interval for the change in mean toxicity: if
# it excludes 0, the drop is not just sampling noise.
#
# **Exercise (bootstrap).** Write `paired_bootstrap_ci`: resample the pairs `n_resamples` times
# (NumPy's `default_rng(seed)`), take the mean change of each resample, and return the
# `(1 - level) / 2` and `(1 + level) / 2` quantiles of those means.

# %% tags=["exercise"]
def paired_bootstrap_ci(before: np.ndarray, after: np.ndarray, n_resamples: int = 10000,
                        seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap confidence interval of mean(after) - mean(before)."""
    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


# %%
ci_low, ci_high = paired_bootstrap_ci(summaries_before.toxicity.to_numpy(),
                                      summaries_after.toxicity.to_numpy(), seed=cfg.seed)
print(f"change in mean toxicity: {mean_after - mean_before:+.4f}, "
      f"95% CI [{ci_low:+.4f}, {ci_high:+.4f}]")

# %% [markdown]
# ### 4.5 - Plots
# Left: the reward, the KL divergence from the Lab 2 model and the returns at each PPO step.
# Right: how toxic the evaluation summaries were before and after PPO.

# %%
import matplotlib.pyplot as plt

history = pd.DataFrame(ppo_history)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for column in ["reward_mean", "objective/kl", "ppo/returns/mean"]:
    axes[0].plot(history["step"], history[column], marker=".", label=column)
axes[0].set(xlabel="PPO step", title="PPO training")
axes[0].legend()
bins = np.linspace(0, 1, 21)
axes[1].hist([summaries_before.toxicity, summaries_after.toxicity], bins=bins,
             label=["before PPO", "after PPO"])
axes[1].set(xlabel="toxicity (probability of hate)", ylabel="summaries",
            title="Toxicity of the evaluation summaries")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### 4.6 - Results file
# Everything an instructor needs to grade this run, in `outputs/results.json` (the plots in
# `outputs/detox.png`), and the trained adapter (`outputs/ppo_adapter.safetensors`), from which
# the grader regenerates the summaries after PPO. Hand in both with the notebook; check them with
# `python -m grading outputs/lab3_rlhf_detox.ipynb`.

# %%
run.save_results(ppo_history, summaries_before, summaries_after, (ci_low, ci_high), rouge_before,
                 rouge_after, df_compare_results, fig)

# %% [markdown]
# ## 5 - Beyond PPO
# PPO holds four models: the policy, its value head, the reference and the reward model. The
# methods that came after it each take a part away. A *group method* (GRPO, RLOO) drops the value
# head: it samples several summaries of each prompt and judges each one against the others. DPO
# drops sampling and the reward model from training: it learns from pairs of summaries, one
# preferred to the other. Each rests on one quantity, computed here on the policy you just
# trained, in seconds; `lab3_experiments.ipynb` trains both beside PPO.
#
# ### 5.1 - Group advantages
# Your policy samples `group_size` summaries of each of a few training prompts, and each is scored
# as in the PPO loop (`group_rewards`: a row per prompt, a column per summary):

# %%
prompts = dataset["train"].select(range(6))
group_size = 4
groups = lab.sample_groups(ppo_model, tokenizer, prompts["input_ids"], group_size,
                           eval_generation_kwargs, seed=cfg.seed)
group_rewards = lab.rewards_of(hate_classifier, reward_kwargs, rewards_by_label,
                               prompts["query"], groups)

# %% [markdown]
# **Exercise (group advantages).** Without a value head, a summary's advantage is how much better
# it scored than the other summaries of its prompt: its reward minus its group's mean. GRPO also
# divides by the group's standard deviation (`torch.std`'s, plus `eps` so that a group of equal
# rewards gives 0); Dr. GRPO does not (`scale=False`). Every token of a summary gets its advantage,
# in 3.3's clipped objective with a KL to the reference.

# %% tags=["exercise"]
def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Each summary's reward minus its group's mean (a row per group), divided by the group's
    standard deviation + eps where `scale` (GRPO); not divided (Dr. GRPO) otherwise."""
    advantages = rewards - rewards.mean(dim=1, keepdim=True)
    if scale:
        advantages = advantages / (rewards.std(dim=1, keepdim=True) + eps)
    return advantages


# %% [markdown]
# Dividing by the group's spread puts every group on one scale: a gap of a few hundredths of a
# logit between summaries gets as large an advantage as a gap of one logit. Without it, an
# advantage keeps the size of its gap:

# %%
by_method = {"GRPO": group_advantages(group_rewards),
             "no std": group_advantages(group_rewards, scale=False)}
lab.group_table(groups, group_rewards, by_method).head(3 * group_size)  # the first 3 prompts

# %% [markdown]
# ### 5.2 - DPO's loss and implicit rewards
# DPO needs no reward model while it trains, only pairs: here each group's best and worst
# summaries, where their rewards differ by at least 0.2 (ties say nothing). Each summary's
# log-probability (summed over its tokens) under your policy and under the reference, the Lab 2
# model (your adapter off), makes its *implicit reward*: `beta * (policy - reference)`.
#
# **Exercise (DPO loss).** DPO's loss of a pair is `-log sigmoid(chosen's implicit reward -
# rejected's)`: low when the policy raised the chosen summary's log-probability more than the
# rejected one's, relative to the reference. Write `dpo_loss`: the loss of each pair and the
# implicit rewards of the chosen and the rejected summaries (detached, as TRL logs them).

# %% tags=["exercise"]
def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO's sigmoid loss of each pair, and the chosen and rejected summaries' implicit rewards."""
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)
    losses = -torch.nn.functional.logsigmoid(chosen_rewards - rejected_rewards)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


# %% [markdown]
# The pairs of your policy's summaries, and TRL's `DPOTrainer.dpo_loss` on the same log-probs. A
# positive margin says PPO already moved your policy the way DPO would on that pair; at the
# reference the loss is log 2 = 0.693.

# %%
pairs = lab.preference_pairs(group_rewards, min_margin=0.2)
logps = lab.pair_logprobs(ppo_model.pretrained_model, tokenizer, prompts["input_ids"], groups,
                          pairs)
losses, chosen_rewards, rejected_rewards = dpo_loss(*logps, beta=0.1)
trl_losses, trl_chosen, trl_rejected = lab.trl_dpo_loss(beta=0.1)(*logps)
print(f"{len(pairs)} pairs; distance from TRL's dpo_loss: {torch.dist(losses, trl_losses):.1e}, "
      f"implicit rewards: {torch.dist(chosen_rewards, trl_chosen):.1e}")
lab.pair_table(groups, pairs, losses, chosen_rewards, rejected_rewards)

# %% [markdown]
# ## 6 - Experiments
# What is the KL penalty for? Does PPO beat simply picking the best of several samples? What do
# DPO and a group method give without a value head? How much does the result move from one seed
# to the next? `lab3_experiments.ipynb` measures it all on the tiny preset, reusing this notebook
# for every PPO run (about 20 minutes on a laptop CPU).
