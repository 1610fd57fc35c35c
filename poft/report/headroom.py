"""How much a quality method could gain, and how much of it PoFT gets: the oracle controls of the grid.

The `oracle` and `harm` blocks train SFT on what a hidden-label filter keeps (variant "oracle:<filter>"): the
clean samples only, or everything but one flaw. Read against SFT on all the data, at the last epoch:

    headroom   SFT(clean only) - SFT(all)          what perfect filtering gains: no method can be shown to
                                                    work where this is not larger than the seed and item noise
    harm       SFT(without flaw f) - SFT(all)      the same difference for one flaw dropped: what flaw f costs
                                                    on each benchmark (negative: it helps)
    captured   (PoFT - SFT) / (SFT(clean) - SFT)   the share of the headroom PoFT gets, with Fieller's interval:
                                                    every share s whose contrast PoFT - SFT - s (oracle - SFT) the
                                                    seeds x items interval does not reject (unbounded when the
                                                    headroom itself is not distinguishable from 0)

All three are paired seed x item contrasts (`contrasts`, `effects.paired_effect`). The labels are read by
these controls only; no method under test sees them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import render
from .collect import OVERALL
from .contrasts import EFFECT_COLUMNS
from .effects import paired_effect

PREFIX = "oracle:"
CLEAN = "oracle"  # the filter name of the clean-only control (micro.yaml's `filters.oracle`)
SFT_ALL = {"method": "sft", "variant": "full"}
SHARE_RANGE = (-5.0, 5.0)  # Fieller bounds beyond these are reported as unbounded


def oracle_variants(ev) -> list[str]:
    return sorted(v for v in ev.ps["variant"].unique() if v.startswith(PREFIX))


def headroom(ev, tasks: list[str] | None = None) -> pd.DataFrame:
    """Per base x dataset x oracle variant x task: SFT(variant) - SFT(all) at the last epoch (EFFECT_COLUMNS):
    the headroom for the clean-only variant, a flaw's harm for a variant without that flaw."""
    tasks = tasks or [OVERALL, *ev.chat_tasks]
    out = [ev.contrast({"method": "sft", "variant": v}, SFT_ALL, "last").assign(variant=v)
           for v in oracle_variants(ev)]
    out = [o[o["task"].isin(tasks)] for o in out if len(o)]
    cols = ["base", "dataset", "variant", "task", "stat", *EFFECT_COLUMNS]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def _matrices(ev, base: str, dataset: str, task: str, variant: str):
    """(d_poft [S, n], d_oracle [S, n], weights) over the seeds and items all three arms share; None if one is absent."""
    arms = [({"method": "poft", "variant": "full"}), SFT_ALL, {"method": "sft", "variant": variant}]
    mats = [ev.matrix([(c, sel, "last") for c, sel in zip(coefs, arms)], base, task, dataset)
            for coefs in ((1.0, -1.0, 0.0), (0.0, -1.0, 1.0))]
    if any(m is None for m in mats):
        return None
    return mats[0][0], mats[1][0], mats[0][1]


def fieller_share(d_gain: np.ndarray, d_room: np.ndarray, weights=None, level: float = 0.95,
                  bounds: tuple[float, float] = SHARE_RANGE) -> tuple[float, float, float]:
    """(share, low, high): share = mean gain / mean headroom; [low, high] = the shares s for which the paired
    interval of gain - s * headroom contains 0, found by bisection inside `bounds` (NaN: unbounded that way).

    Why test inversion: the ratio of two noisy means has no symmetric interval; inverting the test of
    gain - s * room = 0 (Fieller) uses the same seed x item model as every other interval in the report."""
    mean = lambda d: float(np.average(d.mean(axis=0), weights=weights))  # noqa: E731
    room = mean(d_room)
    share = mean(d_gain) / room if room else math.nan

    def accepted(s: float) -> bool:
        e = paired_effect(d_gain - s * d_room, level=level, weights=weights)
        return e["ci_low"] <= 0 <= e["ci_high"]

    if math.isnan(share) or not accepted(share):
        return share, math.nan, math.nan

    def edge(inside: float, outside: float) -> float:
        if accepted(outside):
            return math.nan
        for _ in range(30):  # 10 / 2**30: far below any printed digit
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if accepted(mid) else (inside, mid)
        return (inside + outside) / 2

    return share, edge(share, bounds[0]), edge(share, bounds[1])


def captured(ev, variant: str = PREFIX + CLEAN, tasks: list[str] | None = None) -> pd.DataFrame:
    """Per base x dataset x task: PoFT - SFT, oracle - SFT and the share of the headroom PoFT captures."""
    rows = []
    for (base, dataset), _ in ev.ps[ev.ps["variant"] == variant].groupby(["base", "dataset"], sort=True):
        for task in tasks or [OVERALL, *ev.chat_tasks]:
            m = _matrices(ev, base, dataset, task, variant)
            if m is None:
                continue
            d_gain, d_room, w = m
            share, low, high = fieller_share(d_gain, d_room, w, ev.level)
            rows.append({"base": base, "dataset": dataset, "task": task, "n_seeds": d_gain.shape[0],
                         "n_items": d_gain.shape[1], "gain": float(np.average(d_gain.mean(0), weights=w)),
                         "headroom": float(np.average(d_room.mean(0), weights=w)), "share": share,
                         "share_low": low, "share_high": high})
    cols = ["base", "dataset", "task", "n_seeds", "n_items", "gain", "headroom", "share", "share_low", "share_high"]
    return pd.DataFrame(rows, columns=cols)


def _interval(low: float, high: float) -> str:
    return "unbounded" if math.isnan(low) or math.isnan(high) else f"[{render.fmt(low)}, {render.fmt(high)}]"


def markdown(head: pd.DataFrame, cap: pd.DataFrame, level: float) -> str:
    """The headroom / harm table and the captured-share table, as tables.md sections."""
    if head.empty:
        return ""
    h = head.sort_values(["variant", "base", "dataset", "task"])
    frame = pd.DataFrame({
        "control": h["variant"].str.removeprefix(PREFIX), "base": h["base"], "dataset": h["dataset"], "task": h["task"],
        "seeds × items": [f"{s} × {n}" for s, n in zip(h["n_pairs"], h["n_items"])],
        "SFT on what it keeps": h["treat_mean"].map(render.fmt), "SFT on all": h["control_mean"].map(render.fmt),
        "difference": h["mean"].map(render.fmt), f"{level:.0%} CI": render.intervals(h), "MDE": h["mde"].map(render.fmt)})
    out = ["## Headroom and flaw harm (label controls, last epoch)\n",
           "SFT on the samples a hidden-label filter keeps minus SFT on all of them, paired by seed and item. "
           f"Control `{CLEAN}` keeps the clean samples only: its difference is the headroom, what perfect "
           "filtering gains. A control without one flaw gives that flaw's harm. The labels are read by these "
           "controls only.\n", render.markdown(frame)]
    if len(cap):
        c = cap.sort_values(["base", "dataset", "task"])
        out += ["## Share of the headroom PoFT captures\n",
                "(PoFT − SFT) / (SFT on clean − SFT), last epoch; the interval is Fieller's (every share the paired "
                "test does not reject; unbounded when the headroom is not distinguishable from 0).\n",
                render.markdown(pd.DataFrame({
                    "base": c["base"], "dataset": c["dataset"], "task": c["task"],
                    "seeds × items": [f"{s} × {n}" for s, n in zip(c["n_seeds"], c["n_items"])],
                    "PoFT − SFT": c["gain"].map(render.fmt), "headroom": c["headroom"].map(render.fmt),
                    "share": c["share"].map(render.fmt),
                    f"{level:.0%} CI": [_interval(lo, hi) for lo, hi in zip(c["share_low"], c["share_high"])]}))]
    return "\n".join(out)
