"""Public checks of the exercise `reference` (2.3), run in the student's kernel by `grader.check("reference")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "reference"
points = 2


def _logits(reference_logits, ppo_model, tokenizer, dataset, device, torch):
    """The policy's and the student's reference's logits for the first test prompt."""
    inputs = tokenizer(dataset["test"][0]["query"], return_tensors="pt").to(device)
    decoder_input_ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    with torch.no_grad():
        policy = ppo_model(**inputs, decoder_input_ids=decoder_input_ids)[0]
    return policy, reference_logits(ppo_model, inputs, decoder_input_ids)


@test_case()
def test_before_ppo_the_reference_is_the_policy(reference_logits, ppo_model, tokenizer, dataset, device, torch):
    policy, reference = _logits(reference_logits, ppo_model, tokenizer, dataset, device, torch)
    assert isinstance(reference, torch.Tensor) and reference.shape == policy.shape, \
        "reference_logits must return the logits tensor of the forward pass, shaped as the policy's"
    assert (reference - policy).abs().max() < 1e-4, \
        "Before PPO the fresh adapter is zero, so the reference must give the policy's logits, and these differ: " \
        "a model without the Lab 2 adapter (plain FLAN-T5) is not the model PPO starts from."


@test_case(success_message="public checks passed; the autograder runs more, on a policy of its own")
def test_once_the_adapter_moves_the_reference_stays(reference_logits, ppo_model, tokenizer, dataset, device, torch):
    lora = [p for n, p in ppo_model.named_parameters() if "lora_B" in n]
    saved = [p.detach().clone() for p in lora]
    generator = torch.Generator().manual_seed(0)  # not the global generator: the run's samples stay the same
    try:
        with torch.no_grad():
            for p in lora:  # the adapter moved, as PPO moves it
                p.add_(0.05 * torch.randn(p.shape, generator=generator).to(p))
        policy, reference = _logits(reference_logits, ppo_model, tokenizer, dataset, device, torch)
    finally:
        with torch.no_grad():
            for p, s in zip(lora, saved):
                p.copy_(s)
    before, _ = _logits(reference_logits, ppo_model, tokenizer, dataset, device, torch)
    assert (reference - policy).abs().max() > 1e-3, \
        "Once PPO has trained the adapter, your reference moved with the policy: it is the policy itself, or a " \
        "copy of it (create_reference_model copies the adapter too). TRL's reference for a PEFT policy is the " \
        "policy with its adapter disabled, which stays the Lab 2 model."
    assert (reference - before).abs().max() < 1e-4, \
        "Once PPO has trained the adapter, your reference no longer gives the Lab 2 model's logits."
