"""summary.json: the few numbers that say whether a grid could test PoFT at all, and what it found.

    headroom      per base / dataset: SFT(clean only) - SFT(all), Overall at the last epoch, its interval, and
                  its ratio to the largest MDE of that cell's C1 comparisons (a design that can see PoFT's
                  effect needs this well above 1; the target is >= 3, which the micro world does not reach yet)
    harm          per base / dataset / control: what dropping one flaw gains SFT, per Overall and chat task
    captured      per base / dataset / task: the share of the headroom PoFT gets (Fieller interval)
    weight_share  per dataset / label / epoch: PoFT's share of summed tau (from the runs' traces)
    mde           per C1 cell (base / dataset / stat): the smallest PoFT - SFT effect the design detects
    n_items, n_seeds, verdicts, dag_seconds (the DAG run's wall time up to its report, clock.py; null outside a DAG)

NaN (an interval that does not close, a missing arm) is written as null.
"""

from __future__ import annotations

import math

import pandas as pd

from .collect import OVERALL
from .headroom import CLEAN, PREFIX


def _num(x, digits: int = 4):
    if x is None or x is pd.NA:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, digits)


def _effect(r) -> dict:
    return {"mean": _num(r.mean), "ci_low": _num(r.ci_low), "ci_high": _num(r.ci_high), "mde": _num(r.mde),
            "seeds": int(r.n_pairs), "items": int(r.n_items)}


def c1_cells(diffs: pd.DataFrame, main: list[str]) -> pd.DataFrame:
    """C1's comparisons: PoFT - SFT on Overall, plain runs, last epoch and Avg, main datasets."""
    return diffs[(diffs["variant"] == "full") & (diffs["task"] == OVERALL) & diffs["stat"].isin(["last", "avg"])
                 & diffs["dataset"].isin(main)]


def _design(c1: pd.DataFrame, head: pd.DataFrame) -> pd.DataFrame:
    return c1 if len(c1) else head[head["task"] == OVERALL]


def summary(ev, diffs: pd.DataFrame, head: pd.DataFrame, cap: pd.DataFrame, verdicts,
            weight_share: dict | None = None, dag_seconds: float | None = None) -> dict:
    c1 = c1_cells(diffs, ev.main_datasets)
    worst_mde = c1.groupby(["base", "dataset"])["mde"].max()
    headroom, harm = {}, {}
    for r in head.itertuples(index=False):
        cell = f"{r.base}/{r.dataset}"
        if r.variant == PREFIX + CLEAN and r.task == OVERALL:
            mde = worst_mde.get((r.base, r.dataset), math.nan)
            headroom[cell] = {**_effect(r), "c1_mde": _num(mde), "over_c1_mde": _num(r.mean / mde if mde else math.nan, 2)}
        elif r.variant != PREFIX + CLEAN:
            harm.setdefault(f"{cell}/{r.variant.removeprefix(PREFIX)}", {})[r.task] = _effect(r)
    captured = {f"{r.base}/{r.dataset}/{r.task}": {"gain": _num(r.gain), "headroom": _num(r.headroom),
                                                  "share": _num(r.share), "low": _num(r.share_low),
                                                  "high": _num(r.share_high)} for r in cap.itertuples(index=False)}
    return {
        "headroom": headroom, "harm": harm, "captured": captured, "weight_share": weight_share or {},
        "mde": {f"{r.base}/{r.dataset}/{r.stat}": _num(r.mde) for r in c1.itertuples(index=False)},
        # the C1 cells' design; a grid without PoFT runs (the tuning run) has the headroom's
        "n_items": int(_design(c1, head)["n_items"].max()) if len(_design(c1, head)) else 0,
        "n_seeds": int(_design(c1, head)["n_pairs"].max()) if len(_design(c1, head)) else 0,
        "verdicts": {v.claim: v.verdict for v in verdicts},
        "dag_seconds": _num(dag_seconds, 1),
    }
