"""Paired seed x item effects with the interval, p-value and MDE a verdict may rest on (DESIGN.md "Statistics").

d[s, i] = y_treat(s, i) - y_control(s, i) for seed s (S of them) and benchmark item i (n of them). Two
questions, two levels:

  method      "the method is better": seeds and items are both samples, so the interval is that of a crossed
              random-effects model d = Delta + a_s + b_i + e_si (`method_effect`); needs S >= 2.
  checkpoint  "these two checkpoints differ": one seed, items are the only noise; a paired (cluster-robust)
              item-level SE, plus McNemar's exact test for 0/1 items (`checkpoint_effect`).

`paired_effect` cleans an [S, n] matrix with gaps and picks the level; `verdict_of` reads one effect against
the claim's direction and its declared minimum effect delta; `combine_cells` joins the cells of a universal
claim; `variance_components` and `plan_power` size an experiment before it runs.

Every effect carries its MDE at POWER: mde = (t_{1-alpha/2, df} + t_{POWER, df}) * se, alpha = 1 - level,
the smallest true effect the two-sided test detects with probability POWER.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

POWER = 0.8
VERDICTS = ("holds", "fails", "inconclusive")


def _t_summary(mean, se, df, level: float, power: float = POWER) -> dict:
    """Two-sided t interval, p-value of "mean = 0" and MDE; vectorised. se = 0 gives a point interval."""
    mean, se, df = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (mean, se, df)))
    q = stats.t.ppf(1 - (1 - level) / 2, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * stats.t.sf(np.abs(mean / se), df), np.where(mean == 0, 1.0, 0.0))
    half = np.where(se > 0, q * se, 0.0)
    mde = np.where(se > 0, (q + stats.t.ppf(power, df)) * se, 0.0)
    p = np.where(np.isnan(se), np.nan, p)
    return {"ci_low": mean - half, "ci_high": mean + half, "p_value": p, "mde": mde}


def anova(d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean squares (MS_S, MS_I, MS_E) of a two-way ANOVA without replication of d [..., S, n] (complete).

    MS_S = n sum_s (d_s. - d..)^2 / (S-1),  MS_I = S sum_i (d_.i - d..)^2 / (n-1),
    MS_E = sum_si (d_si - d_s. - d_.i + d..)^2 / ((S-1)(n-1)).  With n = 1, MS_I = MS_E = 0 (undefined).
    """
    d = np.asarray(d, dtype=float)
    S, n = d.shape[-2:]
    grand = d.mean(axis=(-2, -1), keepdims=True)
    row, col = d.mean(axis=-1, keepdims=True), d.mean(axis=-2, keepdims=True)
    ms_s = n * ((row - grand) ** 2).sum(axis=(-2, -1)) / (S - 1)
    if n < 2:
        return ms_s, np.zeros_like(ms_s), np.zeros_like(ms_s)
    ms_i = S * ((col - grand) ** 2).sum(axis=(-2, -1)) / (n - 1)
    ms_e = ((d - row - col + grand) ** 2).sum(axis=(-2, -1)) / ((S - 1) * (n - 1))
    return ms_s, ms_i, ms_e


def satterthwaite(ms_s, ms_i, ms_e, S: int, n: int, sum_w2: float | None = None):
    """Var(Delta_hat) = sum_k c_k MS_k and its Satterthwaite df = V^2 / sum_k (c_k MS_k)^2 / df_k.

    From E[MS_S] = s_e^2 + n s_a^2, E[MS_I] = s_e^2 + S s_b^2, E[MS_E] = s_e^2 and Delta_hat = sum_i w_i d_.i
    (sum w = 1, W = sum w^2):  Var = s_a^2/S + s_b^2 W + s_e^2 W/S = (MS_S - MS_E)/(S n) + MS_I W/S,
    i.e. c = (1/(S n), W/S, -1/(S n)); for w = 1/n that is (MS_S + MS_I - MS_E)/(S n). A component whose
    estimate is negative is set to 0: MS_S <= MS_E drops s_a^2 (V = MS_I W/S, df = n - 1); MS_I <= MS_E drops
    s_b^2 (c = (1/(S n), 0, W/S - 1/(S n))); both gives V = MS_E W/S. n = 1: V = MS_S/S, df = S - 1.
    Vectorised over the MS arrays; returns (V, df).

    Measured (tests/report/test_effects.py): 95% coverage 94.5-96.9% for S in {3, 5}, n in {100, 400}; with
    3 seeds and seed noise near the residual's (n s_a^2 ~ 1-4 s_e^2) it drops to about 92-93%, because a
    floored seed component switches to df = n - 1 exactly when the seeds happen to agree.
    """
    ms_s, ms_i, ms_e = (np.asarray(x, dtype=float) for x in (ms_s, ms_i, ms_e))
    W = 1 / n if sum_w2 is None else sum_w2
    keep_s = (ms_s > ms_e) | (n < 2)
    keep_i = (ms_i > ms_e) & (n >= 2)
    c_s = np.where(keep_s, 1 / (S * n), 0.0)
    c_i = np.where(keep_i, W / S, 0.0)
    c_e = W / S - c_s - c_i
    v = c_s * ms_s + c_i * ms_i + c_e * ms_e
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = (c_s * ms_s) ** 2 / (S - 1)
        if n >= 2:
            denom = denom + (c_i * ms_i) ** 2 / (n - 1) + (c_e * ms_e) ** 2 / ((S - 1) * (n - 1))
        df = v ** 2 / denom
    return v, df


def method_effect(d, level: float = 0.95, weights=None) -> dict:
    """Method-level effect of complete d [..., S, n] (S >= 2), vectorised over the leading axes.

    Delta_hat = sum_i w_i d_.i (w = weights normalised to sum 1, default 1/n); se = sqrt(V) and df from
    `satterthwaite`; interval Delta_hat -+ t_{1-alpha/2, df} se. Variance components (floored at 0):
    var_seed = (MS_S - MS_E)/n, var_item = (MS_I - MS_E)/S, var_resid = MS_E.
    """
    d = np.asarray(d, dtype=float)
    S, n = d.shape[-2:]
    if S < 2:
        raise ValueError(f"method level needs at least 2 seeds, got {S}")
    w = np.full(n, 1 / n) if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    mean = d.mean(axis=-2) @ w
    ms = anova(d)
    v, df = satterthwaite(*ms, S, n, float(w @ w))
    se = np.sqrt(v)
    return {"mean": mean, "se": se, "df": df, **_t_summary(mean, se, df, level),
            "var_seed": np.maximum(ms[0] - ms[2], 0) / n, "var_item": np.maximum(ms[1] - ms[2], 0) / S,
            "var_resid": ms[2], "ms_seed": ms[0], "ms_item": ms[1], "ms_resid": ms[2]}


def _binary(d, binary) -> bool:
    in_01 = bool(np.isin(d, (-1.0, 0.0, 1.0)).all())
    if binary and not in_01:
        raise ValueError("binary=True needs item differences in {-1, 0, 1} (0/1 scores per arm)")
    return in_01 if binary is None else bool(binary)


def checkpoint_effect(d, level: float = 0.95, min_effect=None, weights=None, groups=None, binary=None) -> dict:
    """Checkpoint-level effect of one pair of checkpoints: d [n] item differences (NaN items dropped).

    Delta_hat = sum_i w_i d_i (sum w = 1). Cluster-robust CR1 variance over the G groups of items:
        V = G/(G-1) sum_g (sum_{i in g} w_i (d_i - Delta_hat))^2,  df = G - 1;
    without `groups` every item is its own group (G = n; for w = 1/n, V = s^2/n, the paired t test's).
    For 0/1 items (d in {-1, 0, 1}; detected unless `binary` says) also McNemar's exact p-value on the
    discordant counts b = #(d = 1), c = #(d = -1) -- an exact sign test; it ignores weights and groups, so it
    assumes independent items.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim != 1:
        raise ValueError(f"checkpoint_effect takes the [n] differences of one pair, got shape {d.shape}")
    ok = ~np.isnan(d)
    w = np.ones(d.size) if weights is None else np.asarray(weights, dtype=float)
    g = np.arange(d.size) if groups is None else np.asarray(groups)
    d, w, g = d[ok], w[ok], g[ok]
    w = w / w.sum() if d.size else w
    _, gi = np.unique(g, return_inverse=True)
    G = int(gi.max()) + 1 if d.size else 0
    mean = float(w @ d) if d.size else math.nan
    if G >= 2:
        v = G / (G - 1) * float((np.bincount(gi, weights=w * (d - mean), minlength=G) ** 2).sum())
        se, df = math.sqrt(v), float(G - 1)
    else:
        se = df = math.nan
    mcnemar_p = math.nan
    if d.size and _binary(d, binary):
        b, c = int((d == 1).sum()), int((d == -1).sum())
        mcnemar_p = float(mcnemar([[0, b], [c, 0]], exact=True).pvalue) if b + c else 1.0
    out = {"mean": mean, "se": se, "df": df, **{k: float(v) for k, v in _t_summary(mean, se, df, level).items()},
           "mcnemar_p": mcnemar_p, "level": level, "level_used": "checkpoint", "n_seeds": 1,
           "n_items": int(d.size), "n_groups": G, "n_items_dropped": int((~ok).sum())}
    return _with_min_effect(out, min_effect)


def _with_min_effect(out: dict, min_effect) -> dict:
    out["min_effect"] = min_effect
    out["powered"] = None if min_effect is None or math.isnan(out["mde"]) else bool(out["mde"] <= min_effect)
    return out


def paired_effect(d, level: float = 0.95, min_effect=None, weights=None, groups=None, binary=None) -> dict:
    """The effect of d [S, n] (NaN = missing) at the method level if S >= 2 seeds remain, else the checkpoint's.

    Missing data: seeds with no value are dropped, then items not observed in every kept seed (the crossed
    ANOVA needs a balanced design); their counts are n_seeds_dropped / n_items_dropped, and weights are
    renormalised over the kept items. Method level with `groups`: items are first averaged within their group
    (weights w_i / W_g, W_g = sum_{i in g} w_i) and the groups are the crossed units with weights W_g -- the same
    Delta_hat, with correlated items counted once. Keys: see `method_effect` / `checkpoint_effect`, plus
    n_seeds, n_items, n_groups, level_used ("method" / "checkpoint" / "none"), min_effect and powered
    (mde <= min_effect). var_* are NaN at the checkpoint level (one seed cannot separate them).
    """
    d = np.atleast_2d(np.asarray(d, dtype=float))
    if d.ndim != 2:
        raise ValueError(f"d must be [seeds, items], got shape {d.shape}")
    S0, n0 = d.shape
    for name, a in (("weights", weights), ("groups", groups)):
        if a is not None and np.shape(a) != (n0,):
            raise ValueError(f"{name} must have one entry per item ({n0}), got shape {np.shape(a)}")
    seeds = ~np.isnan(d).all(axis=1)
    items = ~np.isnan(d[seeds]).any(axis=0)
    dropped = {"n_seeds_dropped": int(S0 - seeds.sum()), "n_items_dropped": int(n0 - items.sum())}
    d = d[np.ix_(seeds, items)]
    w = np.ones(n0)[items] if weights is None else np.asarray(weights, dtype=float)[items]
    g = None if groups is None else np.asarray(groups)[items]
    S, n = d.shape
    nan_parts = {k: math.nan for k in ("var_seed", "var_item", "var_resid", "ms_seed", "ms_item", "ms_resid")}
    if n == 0 or S == 0:
        out = {"mean": math.nan, "se": math.nan, "df": math.nan, "ci_low": math.nan, "ci_high": math.nan,
               "p_value": math.nan, "mde": math.nan, "mcnemar_p": math.nan, "level": level,
               "level_used": "none", "n_seeds": S, "n_items": n, "n_groups": 0, **nan_parts, **dropped}
        return _with_min_effect(out, min_effect)
    if S == 1:
        out = checkpoint_effect(d[0], level, min_effect, w, g, binary)
        return {**out, **nan_parts, **dropped}
    w = w / w.sum()
    G = n
    if g is not None:
        _, gi = np.unique(g, return_inverse=True)
        G = int(gi.max()) + 1
        wg = np.bincount(gi, weights=w, minlength=G)
        d = np.stack([np.bincount(gi, weights=w * row, minlength=G) for row in d]) / wg
        w = wg
    out = {k: float(v) for k, v in method_effect(d, level, w).items()}
    out.update(mcnemar_p=math.nan, level=level, level_used="method", n_seeds=S, n_items=n, n_groups=G, **dropped)
    return _with_min_effect(out, min_effect)


def verdict_of(effect: dict, min_effect=None, direction: int = +1) -> tuple[str, str]:
    """(verdict, reason) for one effect and a claim that it is > 0 (direction +1) or < 0 (direction -1).

    holds: a method-level interval excludes 0 on the claimed side. fails: it excludes 0 on the other side,
    or its bound on the claimed side is below delta = min_effect (an effect >= delta is ruled out: a powered
    null). Otherwise inconclusive -- always so for a checkpoint-level effect. min_effect defaults to the
    effect's own.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    delta = effect.get("min_effect") if min_effect is None else min_effect
    if effect.get("level_used") != "method":
        n = effect.get("n_seeds", 0)
        return "inconclusive", f"no method-level interval ({n} seed{'' if n == 1 else 's'})"
    lo, hi = sorted((direction * effect["ci_low"], direction * effect["ci_high"]))
    ci = f"[{effect['ci_low']:.4g}, {effect['ci_high']:.4g}]"
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive", "no interval"
    if lo > 0:
        return "holds", f"interval {ci} excludes 0 in the claimed direction"
    if hi < 0:
        return "fails", f"interval {ci} excludes 0 against the claimed direction"
    if delta is not None and hi < delta:
        return "fails", f"powered null: interval {ci} rules out an effect of {delta:g} or more in the claimed direction"
    why = "no min_effect declared" if delta is None else f"does not rule out {delta:g}"
    return "inconclusive", f"interval {ci} contains 0 and {why}"


def one_sided_p(effect: dict, direction: int = +1) -> float:
    """p-value of "effect <= 0" against "> 0" in the claimed direction (t with the effect's df); 1 off-method."""
    if effect.get("level_used") != "method" or math.isnan(effect["se"]):
        return 1.0
    if effect["se"] == 0:
        return 0.0 if direction * effect["mean"] > 0 else 1.0
    return float(stats.t.sf(direction * effect["mean"] / effect["se"], effect["df"]))


def pooled_effect(means, ses, level: float = 0.95, dfs=None) -> dict:
    """DerSimonian-Laird random-effects mean of cells (mean_k, se_k), with tau^2, I^2 and Cochran's Q.

    With w_k = 1/se_k^2: Q = sum w_k (m_k - m_FE)^2, tau^2 = max(0, (Q - (K-1)) / (sum w - sum w^2 / sum w)),
    I^2 = max(0, (Q - (K-1)) / Q); the pooled mean weighs cells by 1/(se_k^2 + tau^2), normal interval.
    statsmodels' combine_effects (0.15) does not truncate tau^2 at 0, so the pooled mean is refitted here.
    One cell: its own mean and se, tau^2 and I^2 NaN, and its own t interval when `dfs` gives its df (a normal
    interval would be narrower than the cell's, the headline contradicting the comparison under it).
    """
    m, v = np.asarray(means, dtype=float), np.asarray(ses, dtype=float) ** 2
    K = m.size
    if K == 0 or not np.all(v > 0) or not np.all(np.isfinite(v)):
        return {"mean": math.nan, "se": math.nan, "ci_low": math.nan, "ci_high": math.nan, "tau2": math.nan,
                "i2": math.nan, "q": math.nan, "n_cells": K}
    if K == 1:
        q, tau2, i2 = 0.0, math.nan, math.nan
    else:
        with np.errstate(all="ignore"):  # statsmodels takes sqrt / divides by a negative tau^2 it then drops
            r = combine_effects(m, v, method_re="dl", alpha=1 - level)
        q, tau2 = float(r.q), max(float(r.tau2), 0.0)
        i2 = max(0.0, (q - (K - 1)) / q) if q > 0 else 0.0
    wr = 1 / (v + (0.0 if K == 1 else tau2))
    mean, se = float(wr @ m / wr.sum()), float(math.sqrt(1 / wr.sum()))
    one_df = None if K != 1 or dfs is None else float(np.ravel(dfs)[0])
    z = stats.norm.ppf(1 - (1 - level) / 2) if one_df is None else stats.t.ppf(1 - (1 - level) / 2, one_df)
    return {"mean": mean, "se": se, "ci_low": mean - z * se, "ci_high": mean + z * se, "tau2": tau2,
            "i2": i2, "q": q, "n_cells": K}


def combine_cells(effects, min_effect=None, direction: int = +1) -> dict:
    """A universal claim over cells (e.g. every base x dataset) as an intersection-union test.

    `effects`: {cell name: effect} or a list. verdict: holds if every cell holds, fails if any fails, else
    inconclusive (no multiplicity correction is needed for "all hold": each cell is tested at the full level).
    n_holm: cells whose one-sided p (claimed direction) survives Holm at alpha = (1 - level)/2 -- the one-sided
    size of a cell's two-sided interval -- over all cells (checkpoint-level cells count with p = 1).
    pooled: `pooled_effect` of the method-level cells.
    """
    items = list(effects.items()) if isinstance(effects, dict) else list(enumerate(effects))
    if not items:
        return {"verdict": "inconclusive", "reason": "no cells", "cells": {}, "n_cells": 0, "n_hold": 0,
                "n_fail": 0, "n_holm": 0, "pooled": pooled_effect([], [])}
    cells = {k: verdict_of(e, min_effect, direction) for k, e in items}
    level = items[0][1].get("level", 0.95)
    p = [one_sided_p(e, direction) for _, e in items]
    n_holm = int(multipletests(p, alpha=(1 - level) / 2, method="holm")[0].sum())
    counts = {v: sum(c[0] == v for c in cells.values()) for v in VERDICTS}
    K = len(items)
    if counts["fails"]:
        verdict = "fails"
        reason = "; ".join(f"{k} fails: {why}" for k, (v, why) in cells.items() if v == "fails")
    elif counts["holds"] == K:
        verdict, reason = "holds", f"all {K} cells hold"
    else:
        verdict, reason = "inconclusive", f"{counts['holds']} of {K} cells hold, {counts['inconclusive']} inconclusive"
    method = [e for _, e in items if e.get("level_used") == "method"]
    pooled = pooled_effect([e["mean"] for e in method], [e["se"] for e in method], level, [e["df"] for e in method])
    return {"verdict": verdict, "reason": reason, "cells": cells, "n_cells": K, "n_hold": counts["holds"],
            "n_fail": counts["fails"], "n_holm": n_holm, "pooled": pooled}


def variance_components(d) -> dict:
    """Seed, item and residual variances of d [S, n] (cleaned as `paired_effect` does; S >= 2), unweighted."""
    e = paired_effect(d)
    if e["level_used"] != "method":
        raise ValueError(f"variance components need >= 2 seeds with shared items, got {e['n_seeds']} seeds")
    return {k: e[k] for k in ("var_seed", "var_item", "var_resid", "n_seeds", "n_items")}


def plan_power(components: dict, delta: float, seeds=(2, 3, 5, 8), items=(100, 250, 500, 1000),
               level: float = 0.95, power: float = POWER) -> pd.DataFrame:
    """Expected se, Satterthwaite df and MDE of the unweighted method-level effect for each (S, n).

    The expected mean squares E[MS_S] = s_e^2 + n s_a^2, E[MS_I] = s_e^2 + S s_b^2, E[MS_E] = s_e^2 go through
    `satterthwaite` (so a zero component is dropped as the analysis would); mde as in the module docstring;
    powered = mde <= delta.
    """
    va, vb, ve = (float(components[k]) for k in ("var_seed", "var_item", "var_resid"))
    rows = []
    for S in seeds:
        for n in items:
            v, df = satterthwaite(ve + n * va, ve + S * vb, ve, S, n)
            se = math.sqrt(float(v))
            mde = float(_t_summary(0.0, se, float(df), level, power)["mde"])
            rows.append({"seeds": S, "items": n, "se": se, "df": float(df), "mde": mde, "powered": mde <= delta})
    return pd.DataFrame(rows)
