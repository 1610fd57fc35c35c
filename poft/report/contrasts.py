"""Paired seed x item contrasts between arms of the grid, estimated with `effects.paired_effect`.

An arm is a set of runs selected by column values ({"method": "poft", "variant": "full"}) within one group
(base, dataset, task); a contrast is a signed sum of arms, each read at one per-run statistic:

    d[s, i] = sum_k c_k * y_k(s, i)        e.g. PoFT - SFT at the last epoch: [(+1, PoFT, last), (-1, SFT, last)]

y_k(s, i) is item i's score (percent) in arm k's run of seed s, at the statistic's epochs:
    last / first   the run's last / first epoch
    avg            mean over its epochs excluding the first (the paper's Avg.)
    mean_all       mean over all its epochs
Task "Overall" stacks the items of every Overall task, each weighted 1 / (n_task * n_tasks) so the weighted
mean of d is the difference of Overall as the tables compute it (the mean of task means).

Where the runs have no per-item scores (records without items files), or for a statistic that exists only per
run (std over epochs), d has one column: the per-seed values, and the interval rests on seed variation alone;
each row says which (`unit`: "items" or "seeds").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .collect import OVERALL
from .effects import paired_effect

ITEM_STATS = ("last", "first", "avg", "mean_all")
EFFECT_COLUMNS = ["n_pairs", "n_items", "unit", "treat_mean", "control_mean", "mean", "ci_low", "ci_high", "se",
                  "df", "mde", "p_value", "level_used"]


def select(frame: pd.DataFrame, sel: Mapping) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for k, v in sel.items():
        mask &= (frame[k].isin(v) if isinstance(v, (list, tuple, set)) else frame[k] == v).to_numpy()
    return frame[mask]


def _epoch_window(epochs: list[int], stat: str) -> list[int]:
    if stat == "last":
        return epochs[-1:]
    if stat == "first":
        return epochs[:1]
    if stat == "avg":
        return epochs[1:]
    return list(epochs)  # mean_all


def arm_items(items: pd.DataFrame, epochs: Mapping, sel: Mapping, tasks: list[str], stat: str) -> pd.DataFrame:
    """[seed x (task, item)] scores of one arm at one statistic (NaN where a run lacks an item or an epoch).

    items: the long item table (RUN, epoch, task, item, score) of one group's base and dataset; epochs: run key
    (base, dataset, method, variant, seed) -> its sorted epochs (every epoch any task was evaluated at).
    """
    part = select(items[items["task"].isin(tasks)], sel)
    rows = {}
    for (b, ds, m, v, s), g in part.groupby(["base", "dataset", "method", "variant", "seed"], sort=True):
        window = _epoch_window(epochs.get((b, ds, m, v, s), []), stat)
        w = g[g["epoch"].isin(window)]
        if not window or w["epoch"].nunique() < len(window):
            continue  # a statistic over a subset of its epochs is no statistic (as in `summary`)
        rows[int(s)] = w.groupby(["task", "item"], sort=True)["score"].mean()
    return pd.DataFrame(rows).T.sort_index() if rows else pd.DataFrame()


def item_weights(columns: pd.MultiIndex) -> np.ndarray:
    """1 / (n_task * n_tasks) per (task, item) column: each task counts as Overall counts it."""
    tasks = columns.get_level_values(0)
    counts = pd.Series(tasks).value_counts()
    return np.array([1.0 / (counts[t] * len(counts)) for t in tasks])


def contrast_matrix(arms: list[tuple[float, Mapping, str]], items: pd.DataFrame, epochs: Mapping,
                    tasks: list[str], task_label: str) -> tuple[np.ndarray, np.ndarray | None, list, pd.Index] | None:
    """(d [S, n], item weights or None, seeds, (task, item) columns) of sum_k c_k * arm_k over the items and seeds
    every arm has; None when some arm has no per-item scores."""
    mats = [arm_items(items, epochs, sel, tasks, stat) for _, sel, stat in arms]
    if not all(len(m) for m in mats):
        return None
    cols = sorted(set.intersection(*(set(m.columns) for m in mats)))  # items every arm was scored on
    seeds = sorted(set.intersection(*(set(m.index) for m in mats)))
    if not cols or not seeds:
        return None
    cols = pd.MultiIndex.from_tuples(cols)
    d = sum(c * m.reindex(index=seeds, columns=cols).to_numpy(float) for (c, _, _), m in zip(arms, mats))
    return d, (item_weights(cols) if task_label == OVERALL else None), seeds, cols


def task_contrast_matrix(arms: list[tuple[float, Mapping, str]], items: pd.DataFrame, epochs: Mapping,
                         task_coefs: Mapping[str, float]) -> np.ndarray | None:
    """d'[S, n] over the items of several tasks whose plain item mean is sum_t coef_t * (task t's mean of the
    arms' contrast): each task's items are scaled by coef_t * n / n_t. Items stay the unit, so item noise enters
    a contrast ACROSS tasks (C3: the focus task's gain minus the others' mean gain) as it enters any other."""
    parts = [(coef, contrast_matrix(arms, items, epochs, [t], t)) for t, coef in task_coefs.items()]
    if any(m is None for _, m in parts):
        return None
    seeds = sorted(set.intersection(*(set(m[2]) for _, m in parts)))
    n = sum(m[0].shape[1] for _, m in parts)
    if not seeds:
        return None
    return np.hstack([coef * n / m[0].shape[1] * m[0][[m[2].index(s) for s in seeds]] for coef, m in parts])


def item_groups(items: pd.DataFrame, tasks: list[str], columns: pd.Index) -> np.ndarray | None:
    """The group of each (task, item) column (e.g. the micro world's task type), or None if items carry none."""
    g = items[items["task"].isin(tasks)].drop_duplicates(["task", "item"]).set_index(["task", "item"])["group"]
    g = g.reindex(columns)
    return None if g.isna().any() else np.array([f"{t}/{x}" for (t, _), x in zip(columns, g)])


def contrast_effect(arms: list[tuple[float, Mapping, str]], items: pd.DataFrame | None, ps: pd.DataFrame,
                    epochs: Mapping, tasks: list[str], task_label: str, level: float = 0.95,
                    min_effect: float | None = None) -> dict | None:
    """The effect of sum_k c_k * arm_k (see the module docstring) in one group; None when an arm is absent.

    ps: `summary.per_seed` rows of the group (task == task_label), the fallback when items are missing.
    """
    if items is not None and len(items) and stat_is_itemwise(arms):
        m = contrast_matrix(arms, items, epochs, tasks, task_label)
        if m is not None:
            d, w, seeds, cols = m
            # One seed: "these checkpoints differ", items clustered by their group (a task type, a subject).
            # Several: the crossed seed x item model, whose item component already carries shared-group effects.
            groups = item_groups(items, tasks, cols) if len(seeds) == 1 else None
            eff = paired_effect(d, level=level, min_effect=min_effect, weights=w, groups=groups)
            return {**eff, "unit": "items", "n_pairs": eff["n_seeds"], **_arm_means(arms, ps, seeds)}
    per = [select(ps, sel).set_index("seed")[stat].dropna() for _, sel, stat in arms]
    if any(p.empty for p in per):
        return None
    seeds = sorted(set.intersection(*(set(p.index) for p in per)))
    if not seeds:
        return None
    d = sum(c * p.reindex(seeds).to_numpy(float) for (c, _, _), p in zip(arms, per))[:, None]
    eff = paired_effect(d, level=level, min_effect=min_effect)
    return {**eff, "unit": "seeds", "n_items": 0, "n_pairs": len(seeds), **_arm_means(arms, ps, seeds)}


def stat_is_itemwise(arms) -> bool:
    return all(stat in ITEM_STATS for _, _, stat in arms)


def _arm_means(arms, ps: pd.DataFrame, seeds: list[int]) -> dict:
    """The first arm's and the second arm's mean per-seed statistic over the paired seeds (table columns)."""
    out = {}
    for key, (_, sel, stat) in zip(("treat_mean", "control_mean"), arms[:2]):
        vals = select(ps, sel)
        vals = vals[vals["seed"].isin(seeds)][stat].dropna()
        out[key] = float(vals.mean()) if len(vals) else math.nan
    return out


def effect_row(eff: dict) -> dict:
    return {k: eff.get(k, math.nan) for k in EFFECT_COLUMNS}
