"""One recorded PPO step reopened: its batch as tensors, and what TRL's forward pass gives for it under the policy that
sampled it (the checkpoint before the step), under the reference, and under the policy the step left. These are the
tensors `PPOTrainer.step` computes its rewards, advantages and losses from."""

from dataclasses import dataclass

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file

from lab3.checkpoints import Progress, complete_checkpoints


@dataclass
class Replay:
    """A PPO step's batch: `queries` and `responses` (token ids, one tensor each) and the classifier's `scores`; per
    response token (rows: texts, columns: TRL's decoder positions, `masks` 1 on the response's tokens) the
    log-probabilities and values of the policy that sampled it (`old_*`), the reference's log-probabilities, and
    the log-probabilities, values and logits of the policy after the step's update."""

    queries: list[torch.Tensor]
    responses: list[torch.Tensor]
    scores: torch.Tensor
    masks: torch.Tensor
    old_logprobs: torch.Tensor
    old_values: torch.Tensor
    ref_logprobs: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    logits: torch.Tensor
    kl_coef: float  # the trainer's KL coefficient (what TRL's `compute_rewards` takes now)
    sampled_by_step: int  # how many PPO updates the policy that sampled the batch had had


def _tensors(record: dict, tokenizer, train_split, start_token: int) -> tuple[list, list, torch.Tensor]:
    """The step's queries (the training split's token ids of each prompt), its responses tokenized again (the
    decoder's start token first, as PPOTrainer.generate returns them) and its scores."""
    ids = dict(zip(train_split["query"], train_split["input_ids"]))
    queries, responses = [], []
    for text in record["texts"]:  # prompt + " " + summary; the prompt ends with the end-of-text token
        query, _, response = text.partition(tokenizer.eos_token + " ")
        queries.append(torch.as_tensor(ids[query + tokenizer.eos_token]))
        responses.append(torch.tensor([start_token, *tokenizer(response)["input_ids"]]))
    return queries, responses, torch.tensor(record["rewards"])


def _forward(trainer, model, queries: list, responses: list) -> tuple[torch.Tensor, ...]:
    """TRL's log-probabilities, logits, values and masks of the responses, by mini-batches as `step` takes them."""
    inputs = trainer.prepare_model_inputs(queries, responses)
    with torch.no_grad():  # `model` unwrapped: under `accelerate launch` the other processes have ended
        return trainer.batched_forward_pass(model, queries, responses, inputs, return_logits=True)


def last_step(progress: Progress, trainer, tokenizer, train_split) -> Replay:
    """The run's last recorded PPO step, replayed (the weights are as they were when this returns)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    device = trainer.current_device
    queries, responses, scores = _tensors(progress.history[-1], tokenizer, train_split,
                                          model.pretrained_model.config.decoder_start_token_id)
    queries, responses = [q.to(device) for q in queries], [r.to(device) for r in responses]
    logprobs, logits, values, masks = _forward(trainer, model, queries, responses)
    with trainer.optional_peft_ctx():  # the adapter off: the reference
        ref_logprobs = _forward(trainer, model, queries, responses)[0]
    steps = len(progress.history)
    before = [c for c in complete_checkpoints(progress.dir) if c.name == f"step-{steps - 1:05d}"]
    old_logprobs, old_values, sampled_by = logprobs, values, steps
    if before:  # the policy that sampled the batch: the checkpoint one step back
        current = ({k: v.clone() for k, v in get_peft_model_state_dict(model.pretrained_model).items()},
                   {k: v.clone() for k, v in model.v_head.state_dict().items()})
        adapter = load_file(before[0] / "adapter" / "adapter_model.safetensors")
        set_peft_model_state_dict(model.pretrained_model, adapter)
        model.v_head.load_state_dict(load_file(before[0] / "value_head.safetensors"))
        try:
            old_logprobs, _, old_values, _ = _forward(trainer, model, queries, responses)
        finally:
            set_peft_model_state_dict(model.pretrained_model, current[0])
            model.v_head.load_state_dict(current[1])
        sampled_by = steps - 1
    return Replay(queries, responses, scores.to(device), masks, old_logprobs, old_values, ref_logprobs, logprobs,
                  values, logits, float(trainer.kl_ctl.value), sampled_by)
