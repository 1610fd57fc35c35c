"""poft's `hf` backend (SharedPrefixHFLM) gives lm-eval's HFLM answers: per-request log-likelihood sums and
is-greedy flags on three chat templates, through lm-eval's task pipeline, and on the requests it hands back to
HFLM (too long, or a model it does not cover)."""

import dataclasses

import pytest
import torch
from conftest import make_tokenizer, tiny_llama
from eval_fixtures import micro_data  # noqa: F401 - fixture
from lm_eval.models.huggingface import HFLM
from transformers import MistralConfig, MistralForCausalLM

from poft.evaluation.benchmarks import evaluate_checkpoint, make_lm
from poft.evaluation.items import read_items
from poft.evaluation.shared_prefix import SharedPrefixHFLM, plan_batches
from poft.evaluation.suites import load_suite

PROMPTS = ["What is 2 + 3?", "Reverse the word cat.", "How many letters are in banana?", "Hello there"]
CHOICES = [" 2 + 3 = 5.", " tac", " There are 6.", " one two three four five.", " 5", " Thanks! Anything else?"]


def test_plan_batches_keeps_groups_whole_longest_continuation_first():
    # group 1 has the longest continuation (4), then group 0 (2), then group 2 (1): sizes 1 + 2 fit in 3, 3 not
    assert plan_batches([3, 5, 2], [[2, 2], [4], [1, 1, 1]], 3) == [[1, 0], [2]]
    assert plan_batches([3, 5], [[1, 1, 1, 1], [2]], 2) == [[1], [0]]  # a group over the batch size goes alone
    assert plan_batches([4, 6], [[2], [2]], 8) == [[1, 0]]  # equal continuations: the longer context first


def save(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def requests(lm, greedy: list[int]) -> list:
    """Each prompt with 1 to 6 choices, then three continuations of the first prompt: the model's own greedy one
    and its first token alone (a single-token continuation), both greedy, and its first two tokens followed by
    another, not greedy."""
    out = []
    for k, prompt in enumerate(PROMPTS):
        context = lm.apply_chat_template([{"role": "user", "content": prompt}])
        for choice in CHOICES[: 1 + (k * 5) // 3]:
            out.append(((context, choice), *lm._encode_pair(context, choice)))
    context = lm.apply_chat_template([{"role": "user", "content": PROMPTS[0]}])
    tokens = lm.tok_encode(context, add_special_tokens=False)
    off = [*greedy[:2], greedy[2] + 1]
    return out + [((context, "greedy"), tokens, greedy), ((context, "1"), tokens, greedy[:1]),
                  ((context, "off"), tokens, off)]


@pytest.mark.parametrize("template", ["chatml", "llama3", "gemma"])
def test_the_same_answers_as_lm_eval_hflm(template, tmp_path):
    tokenizer = make_tokenizer(template)
    model = tiny_llama(len(tokenizer), hidden=64)
    ckpt = save(model, tokenizer, tmp_path)
    ours = SharedPrefixHFLM(pretrained=ckpt, batch_size=3, device="cpu", dtype="float32")
    theirs = HFLM(pretrained=ckpt, batch_size=3, device="cpu", dtype="float32")
    assert ours._shares_contexts()
    context = ours.tok_encode(ours.apply_chat_template([{"role": "user", "content": PROMPTS[0]}]),
                              add_special_tokens=False)
    greedy = model.generate(torch.tensor([context]), max_new_tokens=5, do_sample=False)[0, len(context):].tolist()
    reqs = requests(ours, greedy)
    assert sum(len(r[2]) == 1 for r in reqs) >= 1 and max(len(r[2]) for r in reqs) >= 5
    mine, lm_eval = ours._loglikelihood_tokens(reqs), theirs._loglikelihood_tokens(reqs)
    assert [g for _, g in mine] == [g for _, g in lm_eval] and [g for _, g in mine[-3:]] == [True, True, False]
    assert [ll for ll, _ in mine] == pytest.approx([ll for ll, _ in lm_eval], abs=1e-4, rel=1e-6)


def test_requests_longer_than_the_model_take_lm_eval_s_truncating_path(tmp_path):
    tokenizer = make_tokenizer("chatml")
    ckpt = save(tiny_llama(len(tokenizer)), tokenizer, tmp_path)
    ours = SharedPrefixHFLM(pretrained=ckpt, batch_size=4, device="cpu", dtype="float32", max_length=20)
    theirs = HFLM(pretrained=ckpt, batch_size=4, device="cpu", dtype="float32", max_length=20)
    reqs = requests(ours, [5, 6, 7])
    assert any(len(c) + len(k) > 21 for _, c, k in reqs) and any(len(c) + len(k) <= 21 for _, c, k in reqs)
    mine, lm_eval = ours._loglikelihood_tokens(reqs), theirs._loglikelihood_tokens(reqs)
    assert [g for _, g in mine] == [g for _, g in lm_eval]
    assert [ll for ll, _ in mine] == pytest.approx([ll for ll, _ in lm_eval], abs=1e-4, rel=1e-6)


def test_a_sliding_window_model_an_auto_batch_size_and_a_split_model_go_to_hflm(tmp_path):
    tokenizer = make_tokenizer("zephyr")
    config = MistralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=16)
    ckpt = save(MistralForCausalLM(config), tokenizer, tmp_path / "mistral")
    assert not SharedPrefixHFLM(pretrained=ckpt, batch_size=4, device="cpu")._shares_contexts()
    llama = save(tiny_llama(len(tokenizer)), tokenizer, tmp_path / "llama")
    assert not SharedPrefixHFLM(pretrained=llama, batch_size="auto", device="cpu")._shares_contexts()
    ours = SharedPrefixHFLM(pretrained=llama, batch_size=4, device="cpu")
    assert ours._shares_contexts()
    ours.model.hf_device_map = {"model.layers.0": 0, "model.layers.1": 1}  # as accelerate's parallelize sets it
    assert not ours._shares_contexts()


def test_the_micro_multiple_choice_tasks_score_the_same_through_both_backends(micro_data, tmp_path):
    """Through lm-eval's own task pipeline (requests from the task YAMLs, the chat template, the metric)."""
    tokenizer = make_tokenizer("chatml")
    ckpt = save(tiny_llama(len(tokenizer), hidden=64), tokenizer, tmp_path / "ckpt")
    assert type(make_lm(ckpt, "hf", 8, "cpu", "float32")) is SharedPrefixHFLM
    assert type(make_lm(ckpt, "hf-lm-eval", 8, "cpu", "float32")) is HFLM
    suite = load_suite("micro")
    settings = dataclasses.replace(suite.settings, limit=40, batch_size=8)
    tasks = ["micro_mc_arith", "micro_mc_words", "micro_mc_facts"]
    items = {}
    for backend in ("hf", "hf-lm-eval"):
        paths = evaluate_checkpoint(ckpt, suite, tmp_path / backend, tasks, micro_data, settings, backend, "cpu",
                                    "float32")
        items[backend] = [read_items(p) for p in paths]
    assert [i["ids"] for i in items["hf"]] == [i["ids"] for i in items["hf-lm-eval"]]
    assert [i["scores"] for i in items["hf"]] == [i["scores"] for i in items["hf-lm-eval"]]
    assert sum(len(i["ids"]) for i in items["hf"]) == 120
