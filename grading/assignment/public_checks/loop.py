"""Public checks of the exercise `loop` (3.2), run in the student's kernel by `grader.check("loop")`: `ppo_step` runs
on stand-ins of the trainer, the classifier and the reward (no model is stepped), which record what it did."""
from otter.test_files import test_case

OK_FORMAT = False
name = "loop"
points = 2


class _Recorder:
    """Stand-ins for the lecture's trainer, reward pipeline and reward function, recording every call."""

    def __init__(self, tokenizer, torch):
        self.torch, self.calls = torch, []
        ids = [i for i in range(5, min(len(tokenizer), 400)) if i not in tokenizer.all_special_ids]
        self.responses = [torch.tensor([0, ids[3 * k], ids[3 * k + 1], tokenizer.eos_token_id]) for k in range(3)]
        self.stats = {"objective/kl": 0.0}

    def generate(self, query_tensors, **kwargs):
        self.calls.append(("generate", query_tensors, kwargs))
        return self.responses

    def step(self, queries, responses, scores):
        self.calls.append(("step", queries, responses, scores))
        return self.stats

    def pipe(self, texts, **kwargs):
        self.calls.append(("pipe", list(texts), kwargs))
        return [[{"label": "hate", "score": float(len(t) % 7)}, {"label": "nothate", "score": -1.0}] for t in texts]

    def reward_function(self, scores, label):
        return [self.torch.tensor(sum(d["score"] for d in out) + len(label)) for out in scores]


def _run(ppo_step, tokenizer, torch):
    """What `ppo_step` did on a batch of three prompts, with the stand-ins in place of the lecture's objects."""
    import types
    fake = _Recorder(tokenizer, torch)
    names = {"ppo_trainer": fake, "hate_classifier": fake.pipe, "reward_function": fake.reward_function,
             "reward_label": "nothate", "output_length_sampler": "the length sampler",
             "generation_kwargs": {"the": "generation kwargs"}, "reward_kwargs": {"the": "reward kwargs"}}
    step = types.FunctionType(ppo_step.__code__, {**ppo_step.__globals__, **names}, "ppo_step",
                              ppo_step.__defaults__, ppo_step.__closure__)
    batch = {"input_ids": [torch.tensor([7, 8, 1]), torch.tensor([9, 1]), torch.tensor([7, 9, 8, 1])],
             "query": ["First prompt.", "Second prompt.", "Third prompt."]}
    returned = step(batch)
    summaries = tokenizer.batch_decode(fake.responses, skip_special_tokens=True)
    return fake, batch, summaries, returned


@test_case()
def test_it_samples_once_from_the_policy(ppo_step, tokenizer, torch):
    fake, batch, _, _ = _run(ppo_step, tokenizer, torch)
    generated = [c for c in fake.calls if c[0] == "generate"]
    assert len(generated) == 1 and generated[0][1] is batch["input_ids"], \
        "Sample every summary of the batch in one ppo_trainer.generate call on batch['input_ids']."
    kwargs = generated[0][2]
    assert kwargs.get("length_sampler") == "the length sampler" and kwargs.get("the") == "generation kwargs", \
        "Sample with the lecture's settings: length_sampler=output_length_sampler and **generation_kwargs."


@test_case()
def test_the_classifier_reads_prompt_and_summary(ppo_step, tokenizer, torch):
    fake, batch, summaries, _ = _run(ppo_step, tokenizer, torch)
    scored = [c for c in fake.calls if c[0] == "pipe"]
    assert len(scored) == 1, "Score the batch's texts in one hate_classifier call."
    texts, kwargs = scored[0][1], scored[0][2]
    assert texts != summaries, \
        "The classifier scored the summaries alone: the reward reads prompt + summary (2.5), so a summary is " \
        "judged with the dialogue it summarizes."
    assert texts != [q + s for q, s in zip(batch["query"], summaries)], \
        "Prompt and summary were joined without a space: the prompt's last word and the summary's first run into " \
        "one, which the classifier reads as another word."
    assert texts == [q + " " + s for q, s in zip(batch["query"], summaries)], \
        "Score each batch['query'] + ' ' + its summary (decoded with skip_special_tokens=True), in the batch's order."
    assert kwargs.get("the") == "reward kwargs", "Score with the lecture's settings: **reward_kwargs."


@test_case(success_message="public checks passed; the autograder runs more")
def test_it_steps_once_on_the_rewards_and_returns_them(ppo_step, tokenizer, torch):
    fake, batch, summaries, returned = _run(ppo_step, tokenizer, torch)
    scores = [c for c in fake.calls if c[0] == "pipe"][0]
    stepped = [c for c in fake.calls if c[0] == "step"]
    assert len(stepped) == 1, "Call ppo_trainer.step once per batch."
    _, queries, responses, rewards = stepped[0]
    expected = fake.reward_function(fake.pipe(scores[1]), "nothate")
    assert queries is batch["input_ids"] and responses is fake.responses, \
        "Step PPO on the prompts' tokens (batch['input_ids']) and the summary tensors generate returned."
    assert len(rewards) == len(expected) and all(float(a) == float(b) for a, b in zip(rewards, expected)), \
        "Step PPO on the rewards reward_function(scores, reward_label) gives for the classifier's outputs."
    texts, returned_scores, returned_rewards, stats = returned
    assert texts == [q + " " + s for q, s in zip(batch["query"], summaries)] and stats is fake.stats and \
        returned_rewards is rewards and len(returned_scores) == len(texts), \
        "Return (texts, scores, rewards, stats): the texts scored, the classifier's outputs, the rewards PPO " \
        "stepped on and the statistics ppo_trainer.step returned; run.record keeps them."
