"""Epoch statistics per run (one seed), then mean +- std over seeds: the numbers every table cell is made of.

Per run (base, dataset, method, variant, seed) and task, with the run's epochs e_1 < ... < e_K being every
epoch at which ANY task of that run was evaluated (so a task missing at some epoch shows up as missing, not
as a shorter run):
    last     value at e_K                                   (the paper's "Overall" column, at the last epoch)
    first    value at e_1
    avg      mean over e_2..e_K, needs K >= 2               (the paper's "Avg.": the first epoch is excluded)
    std      POPULATION std (ddof=0) over e_1..e_K, needs K >= 2 (the paper's "Std"; Table 3's "std")
    mean_all mean over e_1..e_K                             (Table 3: "mean (std) over epochs" of DPO runs)
A statistic is NaN when any epoch in its window lacks the task: never a mean over a subset of epochs.

Why Std spans every epoch while Avg skips the first: the paper says so of Avg alone ("mean over epochs
excluding the first"; its Std is "std over epochs", see shared/paper/POFT_PAPER.md, Reporting); neither the
paper's text that we could search nor the released code (no evaluation script) narrows Std further. So Std
follows the words, and claim C2 (stability) reads it over every epoch, the first included.

Why population std over epochs: the epochs of a run are the whole set being described (how much this run
moves between epochs), not a sample from a larger population, and ddof=0 keeps two nearly equal epochs from
reading as unstable. The paper does not say which it used. Over SEEDS we use the sample std (ddof=1): seeds
are a sample of the seed distribution, and with one seed there is no spread to report (NaN, shown as such).
Aligned reference rows (no epochs) get `last` = their value and NaN elsewhere.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .collect import RUN

STATS = ("first", "last", "avg", "std", "mean_all")


def _window(values: dict, epochs: list, need: int, fn) -> float:
    if len(epochs) < need or any(e not in values for e in epochs):
        return math.nan
    return float(fn(np.array([values[e] for e in epochs], dtype=float)))


def epoch_stats(values: dict, epochs: list) -> dict:
    """The STATS of one task in one run: `values` {epoch: value}, `epochs` the run's sorted epochs."""
    if not epochs:
        return {s: math.nan for s in STATS}
    pop_std = lambda a: a.std(ddof=0)  # noqa: E731
    return {
        "first": values.get(epochs[0], math.nan),
        "last": values.get(epochs[-1], math.nan),
        "avg": _window(values, epochs[1:], 1, np.mean),
        "std": _window(values, epochs, 2, pop_std),
        "mean_all": _window(values, epochs, 1, np.mean),
    }


def per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, task): RUN columns, task, metric, n_epochs, last_epoch and the STATS columns."""
    rows = []
    trained = df[df["method"] != "aligned"]
    for run, g in trained.groupby(RUN, sort=True):
        epochs = sorted(int(e) for e in g["epoch"].dropna().unique())
        for (task, metric), t in g.groupby(["task", "metric"], sort=True):
            values = {int(e): float(v) for e, v in zip(t["epoch"], t["value"])}
            rows.append({**dict(zip(RUN, run)), "task": task, "metric": metric, "n_epochs": len(epochs),
                         "last_epoch": epochs[-1], **epoch_stats(values, epochs)})
    for r in df[df["method"] == "aligned"].itertuples(index=False):
        rows.append({**{k: getattr(r, k) for k in RUN}, "task": r.task, "metric": r.metric, "n_epochs": 0,
                     "last_epoch": pd.NA, **{s: math.nan for s in STATS}, "last": r.value})
    cols = [*RUN, "task", "metric", "n_epochs", "last_epoch", *STATS]
    out = pd.DataFrame(rows, columns=cols).astype({"seed": "Int64", "last_epoch": "Int64"})
    return out.reset_index(drop=True)


def seed_stats(values) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n) over the non-missing values of one cell across seeds.

    std is NaN for n < 2; mean is NaN for n = 0."""
    a = np.array([v for v in values if v is not None and not pd.isna(v)], dtype=float)
    if a.size == 0:
        return math.nan, math.nan, 0
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan, int(a.size)


def over_seeds(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Group `frame` by `keys` (seed excluded) and reduce column `value` to mean, std, n over seeds."""
    rows = []
    for k, g in frame.groupby(keys, sort=False, dropna=False):
        mean, std, n = seed_stats(g[value])
        rows.append({**dict(zip(keys, k if isinstance(k, tuple) else (k,))), "mean": mean, "std": std, "n": n})
    return pd.DataFrame(rows, columns=[*keys, "mean", "std", "n"])
