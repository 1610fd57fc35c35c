"""Padding-free batches: the layout by hand, and loss, gradients and scores equal to the padded path."""

import pytest
import torch
from conftest import make_tokenizer, tiny_llama
from test_scoring import make_conversations
from test_training import merged_scores, spec
from transformers import LlamaForCausalLM

from poft.batches import batch_layout, collate, full_sequence_labels, keeps_packed_samples_apart, pack_batch, \
    pack_rows
from poft.chat import IGNORE_INDEX, tokenize_chat
from poft.losses import get_objective
from poft.scoring import mean_logprobs
from poft.training import ChatCollator, build_examples, objective_inputs

X = IGNORE_INDEX
LAYOUTS = ["padded", "packed", "one_row"]


def test_rows_are_filled_first_fit_in_order():
    assert pack_rows([3, 5, 2, 4, 1], width=6) == [[0, 2, 4], [1], [3]]
    assert pack_rows([3, 5, 2], width=None) == [[0, 1, 2]]


def test_packed_batch_by_hand():
    samples = [{"input_ids": [1, 2, 3], "labels": [X, 2, 3]},
               {"input_ids": [4, 5], "labels": [4, 5]},  # a label on a first token: dropped, nothing predicts it
               {"input_ids": [6], "labels": [X]}]
    b = pack_batch(samples, pad_id=0)  # rows as wide as the longest sample (3): [s0], [s1, s2]
    assert b["input_ids"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert b["position_ids"].tolist() == [[0, 1, 2], [0, 1, 0]]
    assert b["labels"].tolist() == [[X, 2, 3], [X, 5, X]]
    assert b["sample_index"].tolist() == [[0, 0, 0], [1, 1, 2]]
    assert "attention_mask" not in b
    one = pack_batch(samples[:2] + [{"input_ids": [6, 7, 8, 9], "labels": [X, X, 8, 9]}], pad_id=0, one_row=True)
    assert one["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    # The tail of a short row is a segment of its own: positions restart, nothing is scored there.
    tail = pack_batch([{"input_ids": [1, 2, 3, 4], "labels": [X, 2, 3, 4]}, {"input_ids": [5, 6], "labels": [X, 6]}],
                      pad_id=0)
    assert tail["input_ids"].tolist() == [[1, 2, 3, 4], [5, 6, 0, 0]]
    assert tail["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 0, 1]]
    assert tail["sample_index"].tolist() == [[0, 0, 0, 0], [1, 1, -1, -1]]
    assert full_sequence_labels(tail).tolist() == [[X, 2, 3, 4], [X, 6, X, X]]


@pytest.mark.parametrize("template", ["chatml", "llama3", "zephyr"])
@pytest.mark.parametrize("loss", ["sft", "poft"])
@pytest.mark.parametrize("target_tokens", ["response", "full_sequence"])
def test_padding_free_loss_and_gradients_equal_the_padded_path(template, loss, target_tokens):
    tok = make_tokenizer(template)
    model = tiny_llama(len(tok), seed=3)
    convs = make_conversations(11, seed=5)
    examples, _ = build_examples(convs, tok, 200, merged_scores(convs))
    s = spec(loss=loss, target_tokens=target_tokens)
    got = {}
    for layout in LAYOUTS:
        model.zero_grad()
        batch = ChatCollator(tok.pad_token_id, layout)(examples)
        batch.pop("sample_ids")
        value, metrics = get_objective(loss)(objective_inputs(model, model, batch, s), s.beta, s.gamma)
        value.backward()
        got[layout] = (value.detach(), metrics["policy_score"], [p.grad.clone() for p in model.parameters()],
                       batch["input_ids"].numel())
    ref = got["padded"]
    for layout in ("packed", "one_row"):
        value, policy, grads, n = got[layout]
        torch.testing.assert_close(value, ref[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(policy, ref[1], atol=1e-5, rtol=0)
        for g, g0 in zip(grads, ref[2]):
            torch.testing.assert_close(g, g0, atol=1e-5, rtol=1e-4)
        assert n < ref[3]  # and fewer tokens computed


@pytest.mark.parametrize("layout", ["packed", "one_row"])
def test_padding_free_scores_equal_padded_scores(layout):
    tok = make_tokenizer("llama3")
    model = tiny_llama(len(tok))
    chats = [tokenize_chat(tok, c["messages"]) for c in make_conversations(13)]
    padded = mean_logprobs(model, chats, tok.pad_token_id, max_batch_size=5)
    packed = mean_logprobs(model, chats, tok.pad_token_id, max_batch_size=5, layout=layout)
    assert [n for _, n in packed] == [n for _, n in padded]
    assert [s for s, _ in packed] == pytest.approx([s for s, _ in padded], abs=1e-5)


class IgnoresPositions(LlamaForCausalLM):
    """A model whose forward drops position_ids, as an architecture without packed-sequence masking would."""

    def forward(self, *args, position_ids=None, **kwargs):
        return super().forward(*args, **kwargs)


def test_a_model_that_mixes_packed_samples_gets_padded_batches_or_a_clear_error():
    tok = make_tokenizer("chatml")
    good = tiny_llama(len(tok))
    bad = IgnoresPositions(good.config)
    bad.load_state_dict(good.state_dict())
    assert keeps_packed_samples_apart(good) and batch_layout("auto", good) == "packed"
    assert not keeps_packed_samples_apart(bad)
    assert batch_layout("auto", bad) == "padded" and batch_layout("false", good) == "padded"
    with pytest.raises(ValueError) as e:
        batch_layout("true", bad)
    assert str(e.value) == ("padding_free: true, but IgnoresPositions with attention 'sdpa' mixes samples packed into "
                            "one row; use padding_free: auto or false")
    good.train()
    keeps_packed_samples_apart(good)
    assert good.training  # the check leaves the mode as it found it


def test_unknown_layout_and_flag_are_named():
    with pytest.raises(ValueError, match="unknown batch layout 'ragged'; valid: padded, packed, one_row"):
        collate([{"input_ids": [1], "labels": [X]}], 0, "ragged")
    with pytest.raises(ValueError, match="padding_free 'yes'; valid: auto, true, false"):
        batch_layout("yes", None)
