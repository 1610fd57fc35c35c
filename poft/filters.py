"""Data filters: keep the best `keep_fraction` of a dataset by some per-sample score (the paper's Table 4).

    poft filter --data data.jsonl --scores merged.json --method preference --keep 0.8 --out kept.json

Every filter maps conversations (+ a score file where it needs one) to one number per sample, higher meaning
"keep", and the shared `keep_top` does the ranking, so filters differ only in what they compute:
  preference  the mean aligned-LLM score (PoFT's own quality signal; Fig. 4, Table 4 "preference score")
  ifd         Instruction-Following Difficulty (Li et al., 2024): samples with IFD >= 1 (the instruction does
              not help predict the response) are excluded first, then the highest IFD are kept
  scorer      any model-based scorer (Deita, InsTag, ...) given as an import path 'package.module:function'
              that maps a list of conversations to a list of floats, or a registered name from SCORERS
  oracle      analysis only: the samples' hidden quality label (meta "flaw", the micro world's), keeping the
              samples whose label is not in `drop` (default: every label but "clean"). It answers "how much
              could perfect filtering gain?" (the headroom a method is measured against) and, dropping one
              flaw at a time, "how much does this flaw cost?". A method under test never sees the label.
"""

from __future__ import annotations

import importlib
import math
from typing import Callable, Protocol


class ModelScorer(Protocol):
    """What a pluggable scorer is: conversations in, one float per conversation out (higher = better)."""

    def __call__(self, conversations: list[dict]) -> list[float]: ...


def response_length(conversations: list[dict]) -> list[float]:
    """Characters of assistant text: the 'longest responses' baseline (Zhao et al., 2024, "Long Is More")."""
    return [float(sum(len(m["content"]) for m in c["messages"] if m["role"] == "assistant")) for c in conversations]


SCORERS: dict[str, ModelScorer] = {"response_length": response_length}


def resolve_scorer(name: str) -> ModelScorer:
    """A registered name, or 'module:function' imported on demand (how real runs plug in Deita / InsTag)."""
    if name in SCORERS:
        return SCORERS[name]
    if ":" not in name:
        raise KeyError(f"unknown scorer {name!r}; valid: {', '.join(sorted(SCORERS))} or 'module:function'")
    module, attr = name.split(":", 1)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise KeyError(f"scorer {name!r} cannot be imported: {e}") from e


def keep_top(ids: list[str], values: list[float | None], keep_fraction: float) -> tuple[list[str], dict]:
    """Keep round(keep_fraction * len(ids)) samples with the highest values; None/NaN values are never kept.

    Ties are broken by position, so the result is deterministic. Kept ids come back in dataset order.
    """
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if len(ids) != len(values):
        raise ValueError(f"{len(ids)} ids but {len(values)} scores")
    valid = [i for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    target = round(keep_fraction * len(ids))
    ranked = sorted(valid, key=lambda i: (-values[i], i))[:target]
    kept = sorted(ranked)
    stats = {
        "n_input": len(ids),
        "n_target": target,
        "n_kept": len(kept),
        "n_invalid": len(ids) - len(valid),  # excluded before ranking (no score, or IFD >= 1)
        "threshold": values[ranked[-1]] if ranked else None,
    }
    return [ids[i] for i in kept], stats


def _scores_by_id(conversations: list[dict], scores: dict | None, what: str) -> list[float | None]:
    if scores is None:
        raise ValueError(f"the {what} filter needs a score file")
    table = {r["id"]: r["score"] for r in scores["rows"]}
    missing = [c["id"] for c in conversations if c["id"] not in table]
    if missing:
        raise KeyError(f"{len(missing)} sample(s) have no {what} score, first: {missing[0]!r}")
    return [table[c["id"]] for c in conversations]


def preference_values(conversations, scores=None, **_):
    return _scores_by_id(conversations, scores, "preference")


def ifd_values(conversations, scores=None, **_):
    values = _scores_by_id(conversations, scores, "IFD")
    return [v if v is not None and v < 1 else None for v in values]


def scorer_values(conversations, scores=None, scorer: str = "response_length", **_):
    values = list(resolve_scorer(scorer)(conversations))
    if len(values) != len(conversations):
        raise ValueError(f"scorer {scorer!r} returned {len(values)} values for {len(conversations)} conversations")
    return values


ORACLE_LABEL = "flaw"
CLEAN = "clean"


def oracle_values(conversations, drop: list[str] | None = None, **_):
    """1.0 for a sample to keep, None for one whose hidden label is in `drop` (default: every flaw)."""
    missing = [c["id"] for c in conversations if ORACLE_LABEL not in (c.get("meta") or {})]
    if missing:
        raise ValueError(f"the oracle filter reads each sample's hidden label meta[{ORACLE_LABEL!r}]: "
                         f"{len(missing)} sample(s) have none, first: {missing[0]!r}")
    labels = [str(c["meta"][ORACLE_LABEL]) for c in conversations]
    dropped = set(drop) if drop is not None else set(labels) - {CLEAN}
    return [None if label in dropped else 1.0 for label in labels]


FILTERS: dict[str, Callable[..., list[float | None]]] = {
    "preference": preference_values,
    "ifd": ifd_values,
    "scorer": scorer_values,
    "oracle": oracle_values,
}


def filter_dataset(conversations: list[dict], method: str, keep_fraction: float, scores: dict | None = None,
                   scorer: str | None = None, drop: list[str] | None = None) -> dict:
    """{"meta": {...counts, threshold...}, "kept_ids": [...]} for the named filter."""
    if method not in FILTERS:
        raise KeyError(f"unknown filter {method!r}; valid: {', '.join(sorted(FILTERS))}")
    kwargs = {k: v for k, v in (("scorer", scorer), ("drop", drop)) if v is not None}
    values = FILTERS[method](conversations, scores=scores, **kwargs)
    kept, stats = keep_top([c["id"] for c in conversations], values, keep_fraction)
    meta = {"method": method, "keep_fraction": keep_fraction, **stats}
    if method == "oracle":  # what each hidden label contributed, so a reader can check the control
        labels = [str(c["meta"][ORACLE_LABEL]) for c in conversations]
        kept_set = set(kept)
        meta["labels"] = {label: {"n": labels.count(label),
                                  "kept": sum(c["id"] in kept_set for c, x in zip(conversations, labels) if x == label)}
                          for label in sorted(set(labels))}
    for k, v in kwargs.items():
        meta[k] = v
    if scores is not None:
        meta["score_source"] = scores["meta"].get("sources") or scores["meta"].get("model")
    return {"meta": meta, "kept_ids": kept}
