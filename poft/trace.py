"""PoFT's weights as its runs see them: for every training sample and epoch checkpoint, the target's r_theta, the
aligned LLMs' mean score and tau = poft_weight(r_theta, aligned), the factor by which PoFT scales that sample's
cross-entropy gradient (C11). Shares of tau per group of samples say which data PoFT keeps and which it drops.

    poft trace --run runs/mistral-poft --group-by flaw --out trace/     # data and scores: those the run used

Two sources, the same rows. Training records them for free (`record_epoch`, written by poft.training into each
epoch's checkpoint as trace.json): r_theta from the very forward the loss used, so tau is the weight the loss
applied when the batch was seen, mid-epoch and in train mode. `poft trace` reads those files; it recomputes
(`sample_policy_scores`, one forward per sample per checkpoint) for runs trained before they existed, for other
data or scores than the run's, or with --recompute: then r_theta is the checkpoint's, at the epoch's end.

Recomputed, r_theta is computed as training computes it (poft.training.objective_inputs: the run's
target_tokens, max_length and chat template, the checkpoint in eval mode). Either way SFT runs get a trace too: what
PoFT would weigh. A group is a key of the samples' `meta` (the micro world's hidden `flaw` label, or a user's
`source` column); without one, every sample is in group "all", and the most down-weighted samples are the ones to
read.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from .losses import poft_weight, sequence_mean

UNLABELLED = "all"
TRACE_FILE = "trace.json"  # in every epoch checkpoint of a `poft train` run: {"meta": ..., "rows": trace_rows}


def sample_policy_scores(model, examples: list[dict], spec, pad_id: int, batch_size: int = 32) -> list[float]:
    """r_theta of each example (poft.training.build_examples' rows), in order, exactly as a training forward
    computes it (same tokens, same mean), without gradients."""
    from .batches import batch_layout
    from .training import ChatCollator, objective_inputs

    collate = ChatCollator(pad_id, batch_layout(spec.padding_free, model))
    out: list[float] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start:start + batch_size])
            batch.pop("sample_ids")
            values = objective_inputs(model, model, batch, spec)
            out.extend(sequence_mean(values.policy_logps, values.policy_index, values.n_samples).tolist())
    return out


def groups_of(conversations: list[dict], key: str, origin: str) -> dict[str, str]:
    """Each sample's group: its meta[key]; a sample without one is an error naming it (nothing is left out)."""
    missing = [c["id"] for c in conversations if key not in (c.get("meta") or {})]
    if missing:
        raise ValueError(f"{origin}: {len(missing)} sample(s) have no meta field {key!r}, e.g. {missing[0]!r}")
    return {c["id"]: str(c["meta"][key]) for c in conversations}


def recorded_groups(examples: list[dict], key: str) -> dict[str, str | None]:
    """Each example's group as training records it: its meta[key]. If no example has that key, all are in group
    "all"; if only some do, the others get None (no label is invented). Never read by the loss."""
    labels = {e["id"]: (e.get("meta") or {}).get(key) for e in examples}
    if all(v is None for v in labels.values()):
        return dict.fromkeys(labels, UNLABELLED)
    return {i: None if v is None else str(v) for i, v in labels.items()}


def trace_rows(examples: list[dict], policy: list[float], beta: float, gamma: float,
               groups: dict[str, str | None] | None = None) -> list[dict]:
    """One row per sample: id, group, r_theta, aligned (the mean over the aligned LLMs, as the loss uses it), tau.
    Examples without aligned scores (an SFT run without a score file): aligned and tau None."""
    if not examples or examples[0]["aligned"] is None:
        mean_aligned, tau = [None] * len(examples), [None] * len(examples)
    else:
        aligned = torch.tensor([e["aligned"] for e in examples], dtype=torch.float64)
        tau = poft_weight(torch.tensor(policy, dtype=torch.float64), aligned, beta, gamma).tolist()
        mean_aligned = (aligned.mean(dim=-1) if aligned.dim() == 2 else aligned).tolist()
    return [{"id": e["id"], "group": (groups or {}).get(e["id"], UNLABELLED), "r_theta": float(r), "aligned": a,
             "tau": t} for e, r, a, t in zip(examples, policy, mean_aligned, tau)]


def record_epoch(seen: list[tuple[int, str, float]], examples: dict[str, dict], beta: float, gamma: float,
                 groups: dict[str, str | None]) -> list[dict]:
    """An epoch's trace from what training saw: (optimizer step, id, r_theta) per sample forward, every rank's.
    One row per sample, sorted by id. A sample seen twice in the epoch (under several ranks accelerate completes the
    last batch with samples from the epoch's start) keeps its first value, the one of the earliest step."""
    first: dict[str, float] = {}
    for _, sample_id, r_theta in sorted(seen, key=lambda s: s[0]):  # stable: rank order within a step
        first.setdefault(sample_id, r_theta)
    ids = sorted(first)
    return trace_rows([examples[i] for i in ids], [first[i] for i in ids], beta, gamma, groups)


def weight_shares(rows: list[dict]) -> dict[str, dict]:
    """Per group: its share of the samples (data_share) and of the summed tau (weight_share), and its means.
    weight_share / data_share < 1: PoFT weighs the group below an average sample."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_group[r["group"]].append(r)
    total_tau = sum(r["tau"] for r in rows)
    out = {}
    for group, members in sorted(by_group.items()):
        n = len(members)
        out[group] = {"n": n, "data_share": n / len(rows),
                      "weight_share": sum(r["tau"] for r in members) / total_tau if total_tau else math.nan,
                      **{f"mean_{k}": sum(r[k] for r in members) / n for k in ("tau", "aligned", "r_theta")}}
    return out


def most_down_weighted(rows: list[dict], k: int = 10) -> list[dict]:
    """The k samples with the smallest tau (ties by id): what PoFT drops first."""
    return sorted(rows, key=lambda r: (r["tau"], r["id"]))[:k]
