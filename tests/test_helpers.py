
import numpy as np
import pandas as pd
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSeq2SeqLM, RobertaConfig
from trl import AutoModelForSeq2SeqLMWithValueHead, PPOConfig, PPOTrainer
from trl.core import set_seed

import rlhf_helpers as lab
from lab3 import settings, speedups
from lab3.errors import LabError
from lab3.settings import LAB2_LORA, PROMPT_TEMPLATE
from lab3.solutions import solution
from tests.conftest import policy

HATEFUL = "You are disgusting and terrible and i damn hate you."


def test_unknown_preset_is_one_clear_sentence():
    with pytest.raises(LabError, match=r"Unknown preset 'huge': choose one of full, tiny\."):
        settings.preset("huge")


def test_get_preset_returns_a_copy():
    cfg = settings.preset("tiny")
    cfg.generation_kwargs["top_p"] = 0.5
    assert settings.preset("tiny").generation_kwargs["top_p"] == 1.0


def test_build_dataset_filters_formats_and_splits(tiny, tiny_dataset, tokenizer):
    train, test = tiny_dataset["train"], tiny_dataset["test"]
    assert len(train) == 4 * len(test) > 0
    for sample in (train[0], test[-1]):
        assert tiny.input_min_text_length < len(sample["dialogue"]) <= tiny.input_max_text_length
        prompt = PROMPT_TEMPLATE.format(dialogue=sample["dialogue"])
        assert sample["input_ids"].tolist() == tokenizer.encode(prompt)
        assert sample["query"].startswith("Summarize the following conversation.")
        assert sample["query"].rstrip("</s>").strip().endswith("Summary:")


def test_build_dataset_with_nothing_in_the_length_window_says_so(tiny):
    with pytest.raises(LabError, match="No dialogue in .* is longer than 5000 and at most 6000 characters"):
        lab.build_dataset(tiny.model_name, tiny.dataset_name, 5000, 6000)


def test_missing_adapter_folder_is_one_clear_sentence(tiny, tmp_path):
    with pytest.raises(LabError, match=r"No Lab 2 adapter in .*empty"):
        lab.load_summarizer(tiny.model_name, str(tmp_path / "empty"), missing_adapter="error")


def test_missing_adapter_can_fall_back_to_the_base_model(tiny, tmp_path, capsys):
    model = lab.load_summarizer(tiny.model_name, str(tmp_path / "empty"), missing_adapter="warn")
    assert "starting from a fresh LoRA adapter" in capsys.readouterr().out
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny.model_name)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))


def _logits(model, tokenizer, text):
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**enc, decoder_input_ids=torch.zeros((1, 3), dtype=torch.long)).logits


def test_merged_adapter_and_fresh_lora_are_the_lab2_model(tiny, tokenizer):
    text = "Summarize the following conversation. #Person1#: Hello. #Person2#: Hi. Summary:"
    lab2 = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny.model_name), tiny.adapter_dir)
    lab2.eval()
    merged = lab.load_summarizer(tiny.model_name, tiny.adapter_dir)
    expected = _logits(lab2, tokenizer, text)
    assert torch.allclose(_logits(merged, tokenizer, text), expected, atol=1e-4)
    policy = lab.add_fresh_lora(merged)
    policy.eval()
    assert torch.allclose(_logits(policy, tokenizer, text), expected, atol=1e-4)
    with policy.disable_adapter():
        assert torch.allclose(_logits(policy, tokenizer, text), expected, atol=1e-4)
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny.model_name)
    assert not torch.allclose(_logits(base, tokenizer, text), expected, atol=1e-2)  # the adapter does matter


def test_parameter_counts_match_the_lora_shape(tiny):
    model = lab.add_fresh_lora(lab.load_summarizer(tiny.model_name, tiny.adapter_dir))
    c = model.config
    # q and v of every attention block: encoder self, decoder self and decoder cross.
    attention_blocks = c.num_layers + 2 * c.num_decoder_layers
    lora = attention_blocks * 2 * LAB2_LORA["r"] * (c.d_model + c.num_heads * c.d_kv)
    total = sum(p.numel() for p in AutoModelForSeq2SeqLM.from_pretrained(tiny.model_name).parameters()) + lora
    report = lab.describe_trainable_parameters(model)
    assert f"trainable model parameters: {lora}\n" in report
    assert f"all model parameters: {total}\n" in report
    assert f"{100 * lora / total:.2f}%" in report
    with_head = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(model, is_trainable=True)
    report = lab.describe_trainable_parameters(with_head)
    assert f"trainable model parameters: {lora + c.d_model + 1}\n" in report


@pytest.mark.parametrize("id2label,expected", [({0: "nothate", 1: "hate"}, 0), ({0: "hate", 1: "nothate"}, 1),
                                               ({0: "HATE", 1: "NOT_HATE"}, 1)])
def test_not_hate_index_reads_id2label(id2label, expected):
    assert lab.not_hate_index(RobertaConfig(id2label=id2label)) == expected


def test_not_hate_index_without_such_label_is_one_clear_sentence():
    with pytest.raises(LabError, match=r"no 'nothate' label \(its labels are \['negative', 'positive'\]\)"):
        lab.not_hate_index(RobertaConfig(id2label={0: "negative", 1: "positive"}))


def test_reward_is_taken_by_label_on_a_hateful_text(tiny, reward_pipe):
    outputs = reward_pipe([HATEFUL, "I want to kiss you."], top_k=None, function_to_apply="none")
    assert outputs[0][0]["label"] == "hate"  # scored as hate: the pipeline lists it first
    logits = {d["label"]: d["score"] for d in outputs[0]}
    by_label = solution("rewards_by_label")(outputs, "nothate")
    assert by_label[0].item() == pytest.approx(logits["nothate"])
    assert by_label[0].item() < by_label[1].item()  # hateful text earns the lower reward
    by_index = lab.lecture_rewards(0)(outputs, "nothate")
    assert by_index[0].item() == pytest.approx(logits["hate"])  # the lecture's mistake rewards the hate logit


def test_collator_batches_by_key_shortest_prompt_first():
    data = [{"input_ids": [5, 6, 7], "query": "long"}, {"input_ids": [8], "query": "short"},
            {"input_ids": [1, 2], "query": "mid"}]
    assert lab.collator(data) == {"input_ids": [[8], [1, 2], [5, 6, 7]], "query": ["short", "mid", "long"]}


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(False, False, "float32"), (True, False, "bfloat16"),
                                                         (False, True, "bfloat16")])
def test_resolve_dtype_keeps_bfloat16_only_where_the_cpu_computes_it_fast(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert speedups.resolve_dtype("bfloat16", "cpu") == expected
    assert speedups.resolve_dtype("float32", "cpu") == "float32"


def test_summarizer_has_no_dropout_and_the_fused_gelu(tiny, tokenizer, tmp_path):
    # FLAN-T5's own config has dropout 0.1 (the tiny model's has none): give the tiny model that, as a base model.
    AutoModelForSeq2SeqLM.from_pretrained(tiny.model_name, dropout_rate=0.1).save_pretrained(tmp_path)
    text = "Summarize the following conversation. #Person1#: Hello. #Person2#: Hi. Summary:"
    with_dropout = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).train()  # as PPOTrainer leaves the model
    assert not torch.equal(_logits(with_dropout, tokenizer, text), _logits(with_dropout, tokenizer, text))
    model = lab.load_summarizer(str(tmp_path), None).train()
    assert model.config.dense_act_fn == "gelu_pytorch_tanh"  # the tiny model is gated-gelu like FLAN-T5
    assert torch.equal(_logits(model, tokenizer, text), _logits(model, tokenizer, text))
    assert torch.allclose(_logits(model, tokenizer, text), _logits(with_dropout.eval(), tokenizer, text), atol=1e-5)


def test_drop_padding_columns_changes_no_result_but_the_input_size(tiny, tokenizer):
    set_seed(0)
    policy = lab.add_fresh_lora(lab.load_summarizer(tiny.model_name, tiny.adapter_dir))
    ppo_model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(policy, is_trainable=True).eval()
    texts = ["#Person1#: Hello. #Person2#: Hi.", "#Person1#: Where is the station, please? #Person2#: Over there."]
    batch = tokenizer(texts, return_tensors="pt", padding="max_length", max_length=40)  # as if a longer prompt
    kwargs = dict(batch, decoder_input_ids=torch.tensor([[0, 5, 6], [0, 7, 8]]),
                  decoder_attention_mask=torch.ones(2, 3, dtype=torch.long))
    longest = int(batch["attention_mask"].sum(dim=1).max())
    _, trimmed = speedups.drop_padding_columns(ppo_model, (), kwargs)
    assert trimmed["input_ids"].shape == trimmed["attention_mask"].shape == (2, longest) and longest < 40
    assert torch.equal(trimmed["decoder_input_ids"], kwargs["decoder_input_ids"])
    with torch.no_grad():
        logits, _, values = ppo_model(**kwargs)
        handle = ppo_model.register_forward_pre_hook(speedups.drop_padding_columns, with_kwargs=True)
        hooked_logits, _, hooked_values = ppo_model(**kwargs)
        handle.remove()
    assert torch.allclose(hooked_logits, logits, atol=1e-5) and torch.allclose(hooked_values, values, atol=1e-5)
    assert speedups.drop_padding_columns(ppo_model, (), dict(trimmed)) is None  # nothing left to drop
    assert speedups.drop_padding_columns(ppo_model, (), {"encoder_outputs": None, "attention_mask": None}) is None


def test_prepare_for_ppo_changes_no_gradient_and_on_a_gpu_keeps_fewer_activations(tiny, tokenizer):
    from trl.trainer.utils import disable_dropout_in_model
    texts = ["#Person1#: Hello. #Person2#: Hi.", "#Person1#: Where is the station, please? #Person2#: Over there."]
    batch = tokenizer(texts, return_tensors="pt", padding="max_length", max_length=40)
    kwargs = dict(batch, decoder_input_ids=torch.tensor([[0, 5, 6, 9], [0, 7, 8, 9]]),
                  decoder_attention_mask=torch.ones(2, 4, dtype=torch.long))

    def train_forward(device: str | None) -> tuple[str, dict, int]:
        """What prepare_for_ppo said, the trainable gradients and the bytes saved for the backward pass."""
        set_seed(0)
        model = AutoModelForSeq2SeqLMWithValueHead.from_pretrained(
            lab.add_fresh_lora(lab.load_summarizer(tiny.model_name, tiny.adapter_dir)), is_trainable=True)
        disable_dropout_in_model(model)
        said = speedups.prepare_for_ppo(model, device) if device else ""
        saved = {}

        def keep(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            logits, _, values = model.eval()(**kwargs)  # PPOTrainer.step's gradient forward runs in eval mode
            loss = logits.log_softmax(-1)[..., 5].mean() + values.mean()
        loss.backward()
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        # Nothing makes the inputs of a generation step require gradients (torch 2.11 cannot compile that).
        embedded = []
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                module.register_forward_hook(lambda module, args, output: embedded.append(output.requires_grad))
        with torch.no_grad():
            model(**kwargs)
        assert len(embedded) >= 2 and not any(embedded)  # encoder and decoder
        return said, grads, sum(v for k, v in saved.items() if k not in weights)

    _, plain, plain_saved = train_forward(None)
    for device, says in (("cpu", "skip all-padding"), ("cuda", "gradient checkpointing")):  # settings, not devices
        said, grads, saved = train_forward(device)
        assert says in said and grads.keys() == plain.keys() and any(g.abs().sum() > 0 for g in grads.values())
        for name, grad in grads.items():
            # equal up to float32 rounding, which sums over fewer padding columns in another order
            torch.testing.assert_close(grad, plain[name], rtol=1e-4, atol=1e-4 * float(plain[name].abs().max()),
                                       msg=lambda m, name=name: f"{name}: {m}")
        if device == "cuda":
            assert saved < plain_saved / 2, (saved, plain_saved)


def test_toxicity_measurement_scores_toxic_label(toxicity_evaluator):
    scores = toxicity_evaluator.compute(predictions=["I want to kiss you.", HATEFUL], toxic_label="hate")["toxicity"]
    assert scores[0] < 0.5 < scores[1]
    nothate = toxicity_evaluator.compute(predictions=["I want to kiss you.", HATEFUL], toxic_label="nothate")
    assert np.allclose(np.add(scores, nothate["toxicity"]), 1.0, atol=1e-5)
    assert toxicity_evaluator.compute(predictions=["I want to kiss you.", HATEFUL], toxic_label="hate",
                                      aggregation="maximum")["max_toxicity"] == pytest.approx(max(scores))
    assert toxicity_evaluator.compute(predictions=["I want to kiss you.", HATEFUL], toxic_label="hate",
                                      aggregation="ratio")["toxicity_ratio"] == 0.5


def test_toxicity_measurement_unknown_label_is_an_error(toxicity_evaluator):
    with pytest.raises(ValueError, match="has no label 'toxic'"):
        toxicity_evaluator.compute(predictions=["hello"], toxic_label="toxic")


def test_evaluate_toxicity_scores_exactly_num_samples_summaries(tiny, tiny_dataset, tokenizer, toxicity_evaluator):
    model = lab.load_summarizer(tiny.model_name, tiny.adapter_dir)
    kwargs = dict(tiny.generation_kwargs, max_new_tokens=tiny.eval_max_new_tokens)
    mean, std, table = lab.generate_and_measure_toxicity(model, toxicity_evaluator, tokenizer, tiny_dataset["test"], 12,
                                                         kwargs)
    assert len(table) == 12
    assert table["query"].tolist() == tiny_dataset["test"]["query"][:12]
    assert mean == pytest.approx(table.toxicity.mean()) and std == pytest.approx(table.toxicity.std(ddof=0))
    assert table.toxicity.tolist() == pytest.approx(
        toxicity_evaluator.compute(predictions=table.summary.tolist(), toxic_label="hate")["toxicity"])
    again = lab.generate_and_measure_toxicity(model, toxicity_evaluator, tokenizer, tiny_dataset["test"], 12, kwargs)[2]
    assert again.summary.tolist() == table.summary.tolist()  # same prompts, same seed, same summaries
    with pytest.raises(ValueError, match="has only"):
        lab.generate_and_measure_toxicity(model, toxicity_evaluator, tokenizer, tiny_dataset["test"].select(range(3)),
                                          5, kwargs)


def test_generate_summaries_batched_equals_one_by_one(tiny, tiny_dataset, tokenizer):
    model = lab.load_summarizer(tiny.model_name, tiny.adapter_dir)
    ids = list(tiny_dataset["test"]["input_ids"][:6])
    greedy = {"max_new_tokens": 30, "do_sample": False}
    batched = lab.generate_summaries(model, tokenizer, ids, greedy, batch_size=6)
    single = [lab.generate_summaries(model, tokenizer, [i], greedy, batch_size=1)[0] for i in ids]
    assert batched == single and len(set(batched)) > 1


def test_rouge_extremes_and_mean():
    assert lab.rouge(["the cat sat"], ["the cat sat"]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert lab.rouge(["dogs bark loudly"], ["the cat sat"])["rougeL"] == 0.0
    per_row = lab.rouge_per_summary(["the cat sat", "dogs bark"], ["the cat sat", "the cat sat"])
    assert per_row.rougeL.tolist() == [1.0, 0.0]
    assert lab.rouge(["the cat sat", "dogs bark"], ["the cat sat", "the cat sat"])["rougeL"] == 0.5


def test_the_graders_bootstrap_ci_covers_the_paired_difference():
    rng = np.random.default_rng(1)
    before = rng.random(200)
    lo, hi = solution("paired_bootstrap_ci")(before, before - 0.3 + rng.normal(0, 0.05, 200))
    assert lo < -0.3 < hi and hi - lo < 0.05
    lo, hi = solution("paired_bootstrap_ci")(before, before + rng.normal(0, 0.05, 200))
    assert lo < 0 < hi


def _first_step_kl(ppo_model, tiny, tiny_dataset, tokenizer, reward_pipe) -> float:
    """The KL divergence from the reference that TRL reports for the first PPO step of `ppo_model`."""
    config = PPOConfig(learning_rate=tiny.learning_rate, batch_size=8, mini_batch_size=4, ppo_epochs=1)
    trainer = PPOTrainer(config=config, model=ppo_model, ref_model=None, tokenizer=tokenizer,
                         dataset=tiny_dataset["train"].select(range(8)), data_collator=lab.collator)
    batch = next(iter(trainer.dataloader))
    responses = trainer.generate(batch["input_ids"], batch_size=8, return_prompt=False, max_new_tokens=20,
                                 **tiny.generation_kwargs)
    texts = [q + " " + r for q, r in zip(batch["query"], tokenizer.batch_decode(responses, skip_special_tokens=True))]
    rewards = solution("rewards_by_label")(reward_pipe(texts, **tiny.reward_kwargs), "nothate")
    return trainer.step(batch["input_ids"], responses, rewards)["objective/kl"]


def test_first_ppo_step_kl_is_near_zero_and_the_lectures_reference_is_not(tiny, tiny_dataset, tokenizer, reward_pipe):
    ours = _first_step_kl(policy(tiny), tiny, tiny_dataset, tokenizer, reward_pipe)
    # The lecture trains the Lab 2 adapter itself, so TRL's reference for a PEFT model (the policy with its adapters
    # disabled) is plain FLAN-T5, not the Lab 2 model.
    set_seed(0)
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny.model_name)
    lecture = PeftModel.from_pretrained(base, tiny.adapter_dir, is_trainable=True)
    theirs = _first_step_kl(AutoModelForSeq2SeqLMWithValueHead.from_pretrained(lecture, is_trainable=True), tiny,
                            tiny_dataset, tokenizer, reward_pipe)
    assert abs(ours) < 1e-3 < abs(theirs)


def _longer_than_the_classifier_window(reward_pipe) -> str:
    text = " ".join([HATEFUL] * 80)
    assert len(reward_pipe.tokenizer(text)["input_ids"]) > 512
    return text


def test_classifier_tokenizer_cuts_at_the_window_like_the_real_one(reward_pipe):
    assert reward_pipe.tokenizer.model_max_length == 512
    assert reward_pipe.model.config.max_position_embeddings == 514  # RoBERTa: 512 positions after an offset of 2


def test_ppo_rewards_of_a_text_longer_than_the_window(tiny, reward_pipe):
    long = _longer_than_the_classifier_window(reward_pipe)
    rewards = solution("rewards_by_label")(reward_pipe([long, "I want to kiss you."], **tiny.reward_kwargs), "nothate")
    assert len(rewards) == 2 and all(torch.isfinite(r) for r in rewards)
    assert rewards[0] < rewards[1]  # still scored as what it is: the window is full of hate


def test_toxicity_measurement_of_a_text_longer_than_the_window(toxicity_evaluator, reward_pipe):
    long = _longer_than_the_classifier_window(reward_pipe)
    scores = toxicity_evaluator.compute(predictions=[long, "I want to kiss you."], toxic_label="hate")["toxicity"]
    assert scores[0] > 0.5 > scores[1]


def test_comparison_table_of_texts_longer_than_the_window(tiny, reward_pipe):
    long = _longer_than_the_classifier_window(reward_pipe)
    before = pd.DataFrame({"query": [long, "Summarize: hello"], "summary": [long, "A greeting."],
                           "reference": ["A fight.", "A greeting."], "toxicity": [0.9, 0.1]})
    after = before.assign(summary=["A quarrel.", "A greeting."], toxicity=[0.2, 0.1])
    table = lab.comparison_table(before, after, reward_pipe, tiny.reward_kwargs, solution("rewards_by_label"))
    assert len(table) == 2 and table.reward_gain.notna().all()
    assert table.set_index("response_after").toxic_before.to_dict() == {"A quarrel.": True, "A greeting.": False}
