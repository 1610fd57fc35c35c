"""Batches for training and scoring: padded, or padding-free (packed), and the check that decides which.

Both layouts are dicts of [R, W] long tensors with the same keys, so the code after them has one path:

    input_ids      token ids
    labels         targets (IGNORE_INDEX where nothing is scored)
    sample_index   which sample of the batch each token belongs to; -1 on padding
    attention_mask (padded)      1 on real tokens, 0 on padding: one row per sample, right-padded
    position_ids   (padding-free) restarting at 0 at each sample: several samples share a row, and the model's
                   packed-sequence masking (transformers' masking_utils on sdpa / eager; FlashAttention-2's
                   varlen kernel on GPUs) keeps each sample's attention inside the sample

Per-sample means come from `sample_index` in both layouts, so a sample's loss and gradient do not depend on
which layout, row or neighbour it got: the two agree to float rounding (tests/test_batches.py).
"""

from __future__ import annotations

import logging

import torch

from .chat import IGNORE_INDEX, TokenizedChat

log = logging.getLogger(__name__)

PADDING_FREE = ("auto", "true", "false")
# Attention kernels whose cost grows with the row, not the sample: a packed row is cut at the batch's longest
# sample there, so attention never costs more than the padded batch. FlashAttention's varlen kernels pay per
# sample, and take the whole batch as one row.
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


def _pairs(samples: list[TokenizedChat] | list[dict]) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) of TokenizedChat objects or of dicts with those keys (the training examples)."""
    return [(s["input_ids"], s["labels"]) if isinstance(s, dict) else (s.input_ids, s.labels) for s in samples]


def pad_batch(samples: list[TokenizedChat] | list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """One row per sample, right-padded to the longest sample in the batch (never to max_length)."""
    pairs = _pairs(samples)
    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), IGNORE_INDEX, dtype=torch.long)
    index = torch.full((len(pairs), width), -1, dtype=torch.long)
    for i, (sample_ids, sample_labels) in enumerate(pairs):
        n = len(sample_ids)
        ids[i, :n] = torch.tensor(sample_ids)
        labels[i, :n] = torch.tensor(sample_labels)
        index[i, :n] = i
    return {"input_ids": ids, "labels": labels, "sample_index": index, "attention_mask": (index >= 0).long()}


def pack_rows(lengths: list[int], width: int | None) -> list[list[int]]:
    """Samples (by index, in order) into rows of at most `width` tokens, first fit; width None: one row."""
    if width is None:
        return [list(range(len(lengths)))]
    rows: list[list[int]] = []
    room: list[int] = []
    for i, n in enumerate(lengths):
        k = next((r for r, free in enumerate(room) if free >= n), None)
        if k is None:
            rows.append([])
            room.append(width)
            k = len(rows) - 1
        rows[k].append(i)
        room[k] -= n
    return rows


def pack_batch(samples: list[TokenizedChat] | list[dict], pad_id: int, one_row: bool = False) -> dict:
    """Samples concatenated into rows, position_ids restarting at 0 at each one; no attention mask.

    one_row: the whole batch in one row (varlen attention); else rows as wide as the longest sample, the only
    padding being each row's tail (a segment of its own, which no real token attends to).
    Each sample's first label is dropped: in a packed row the previous sample's last token would predict it.
    """
    pairs = _pairs(samples)
    lengths = [len(ids) for ids, _ in pairs]
    rows = pack_rows(lengths, None if one_row else max(lengths))
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    index = torch.full((len(rows), width), -1, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            sample_ids, sample_labels = pairs[i]
            n = len(sample_ids)
            ids[r, at : at + n] = torch.tensor(sample_ids)
            labels[r, at + 1 : at + n] = torch.tensor(sample_labels[1:])
            index[r, at : at + n] = i
            positions[r, at : at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)  # the tail: one more segment
    return {"input_ids": ids, "labels": labels, "sample_index": index, "position_ids": positions}


def collate(samples: list[TokenizedChat] | list[dict], pad_id: int, layout: str = "padded") -> dict:
    """layout: padded | packed (rows of the longest sample) | one_row (the whole batch in one row)."""
    if layout == "padded":
        return pad_batch(samples, pad_id)
    if layout not in ("packed", "one_row"):
        raise ValueError(f"unknown batch layout {layout!r}; valid: padded, packed, one_row")
    return pack_batch(samples, pad_id, one_row=layout == "one_row")


def model_inputs(batch: dict) -> dict:
    """What the model's forward takes from a batch of either layout. No KV cache: transformers reads restarting
    position_ids as packed samples only without one (and a scoring or training forward has no use for it)."""
    return {"use_cache": False, **{k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}}


def never_targets(index: torch.Tensor) -> torch.Tensor:
    """Positions of a sample_index [R, W] that no token may be predicted at: padding, and each sample's first token
    (nothing in its sample precedes it; in a packed row the previous sample's last token would)."""
    previous = torch.cat([torch.full_like(index[:, :1], -2), index[:, :-1]], dim=1)
    return (index < 0) | (index != previous)


def full_sequence_labels(batch: dict) -> torch.Tensor:
    """Every real token as a target except each sample's first: the released code's r_theta, over template and
    user turns too."""
    return batch["input_ids"].masked_fill(never_targets(batch["sample_index"]), IGNORE_INDEX)


def batch_tokens(batch: dict) -> tuple[int, int]:
    """(real tokens, computed tokens) of a batch: their ratio is what padding wastes."""
    return int((batch["sample_index"] >= 0).sum()), batch["input_ids"].numel()


# ---------------------------------------------------------------------------------------------------------
# Which layout a model can take
# ---------------------------------------------------------------------------------------------------------


@torch.no_grad()
def keeps_packed_samples_apart(model) -> bool:
    """Whether this model, as loaded, attends only within a sample in a packed row: two token sequences scored
    packed and one by one must agree. An architecture or attention kernel that ignores restarting position_ids
    would let the second sample see the first, and fails here instead of training on cross-sample attention."""
    unwrapped = getattr(model, "module", model)
    vocab = unwrapped.get_input_embeddings().weight.shape[0]
    device = next(unwrapped.parameters()).device
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in (5, 7)]
    was_training = unwrapped.training
    unwrapped.eval()
    try:
        alone = [unwrapped(**model_inputs({"input_ids": torch.tensor([s], device=device)})).logits[0].float()
                 for s in seqs]
        batch = {"input_ids": torch.tensor([seqs[0] + seqs[1]], device=device),
                 "position_ids": torch.tensor([list(range(5)) + list(range(7))], device=device)}
        packed = unwrapped(**model_inputs(batch)).logits[0]
    finally:
        unwrapped.train(was_training)
    expected = torch.log_softmax(torch.cat(alone), -1)
    got = torch.log_softmax(packed.float(), -1)
    atol = 1e-3 if next(unwrapped.parameters()).dtype == torch.float32 else 0.1
    return bool(torch.allclose(got, expected, atol=atol, rtol=0))


def batch_layout(padding_free: str | bool, model) -> str:
    """The layout for `padding_free` (auto | true | false) on this model: auto is packed wherever the model keeps
    packed samples apart; true insists (and fails loudly where it cannot)."""
    flag = str(padding_free).lower()
    if flag not in PADDING_FREE:
        raise ValueError(f"padding_free {padding_free!r}; valid: {', '.join(PADDING_FREE)}")
    if flag == "false":
        return "padded"
    ok = keeps_packed_samples_apart(model)
    if not ok:
        if flag == "true":
            raise ValueError(f"padding_free: true, but {type(model).__name__} with attention "
                             f"{model.config._attn_implementation!r} mixes samples packed into one row; "
                             "use padding_free: auto or false")
        log.info("padding-free batches off: %s mixes packed samples", type(model).__name__)
        return "padded"
    return "one_row" if model.config._attn_implementation in VARLEN_ATTENTION else "packed"
