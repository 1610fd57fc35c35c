"""Paired differences with percentile-bootstrap intervals.

SFT and PoFT runs with the same seed see the same data in the same order (DESIGN.md), so a comparison is
paired by seed: d_s = x_treat(s) - x_control(s) for every seed s present in both arms, and the estimate is
mean_s d_s. Its interval is a percentile bootstrap of that mean: resample the seeds' differences with
replacement n_boot times (numpy Generator seeded by `seed`, so the same inputs give the same interval), take
the (1-level)/2 and 1-(1-level)/2 quantiles (numpy's linear interpolation) of the resampled means.

Read the intervals with the number of pairs in mind: with 3 seeds the bootstrap can only produce 10 distinct
means, its interval is the spread of those and is wide (and optimistic: it cannot exceed the observed range);
with one pair there is no interval at all (NaN), and the claims call such a comparison inconclusive.

`paired_effect` (from `effects`) is the seed x item successor: a crossed random-effects t interval with an MDE.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .effects import paired_effect  # noqa: F401  (re-exported)
from .summary import per_seed

# A variant with only a PoFT arm is compared with the SFT run of this variant (the shuffled-score control).
CONTROL_VARIANT = {"shuffled": "full"}
DIFF_COLUMNS = ["n_pairs", "n_unpaired", "treat_mean", "control_mean", "mean", "ci_low", "ci_high", "diffs"]


def bootstrap_ci(diffs, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(diffs); (nan, nan) for fewer than two values."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan, math.nan
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def summarize(diffs, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> dict:
    """{"n_pairs", "mean", "ci_low", "ci_high"} of one list of paired differences."""
    d = [float(x) for x in diffs]
    lo, hi = bootstrap_ci(d, n_boot, level, seed)
    return {"n_pairs": len(d), "mean": float(np.mean(d)) if d else math.nan, "ci_low": lo, "ci_high": hi}


def seed_diffs(ps: pd.DataFrame, treat: dict, control: dict, by: list[str], stat: str) -> pd.DataFrame:
    """Per-seed treat and control values of `stat` side by side (outer join on `by` + seed) and their diff.

    `ps` is a `summary.per_seed` frame; `treat` / `control` select the arms by column values, e.g.
    {"method": "poft", "variant": "full"}. diff is NaN where either arm lacks the seed or the statistic.
    """
    def pick(sel):
        mask = np.ones(len(ps), dtype=bool)
        for k, v in sel.items():
            mask &= (ps[k] == v).to_numpy()
        return ps.loc[mask, [*by, "seed", stat]].rename(columns={stat: "x"})

    m = pick(treat).merge(pick(control), on=[*by, "seed"], how="outer", suffixes=("_t", "_c"))
    return m.rename(columns={"x_t": "treat", "x_c": "control"}).assign(diff=lambda f: f["treat"] - f["control"])


def paired_contrast(ps: pd.DataFrame, treat: dict, control: dict, by: list[str], stat: str,
                    n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """treat - control of per-seed statistic `stat`, paired by seed, per group `by` (see `seed_diffs`).

    Groups where either arm is absent get no row. Seeds present in only one arm, or with the statistic
    missing, are left out of the pairs and counted in `n_unpaired`.
    """
    rows = []
    for k, g in seed_diffs(ps, treat, control, by, stat).groupby(by, sort=True):
        if g["treat"].isna().all() or g["control"].isna().all():
            continue
        ok = g["diff"].notna()
        d = g.loc[ok, "diff"].to_numpy(dtype=float)
        rows.append({**dict(zip(by, k)), "stat": stat, **summarize(d, n_boot, level, seed),
                     "n_unpaired": int((~ok).sum()),
                     "treat_mean": float(g.loc[ok, "treat"].mean()) if ok.any() else math.nan,
                     "control_mean": float(g.loc[ok, "control"].mean()) if ok.any() else math.nan,
                     "diffs": ";".join(f"{x:.6g}" for x in d)})
    return pd.DataFrame(rows, columns=[*by, "stat", *DIFF_COLUMNS])


def paired_differences(df: pd.DataFrame, stats=("last", "avg", "std", "mean_all"), n_boot: int = 10_000,
                       level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """PoFT - SFT per (base, dataset, variant, task, stat), paired by seed, for every variant with a PoFT arm.

    stat: last = value at the last epoch, avg = mean over epochs excluding the first, std = std over those
    epochs, mean_all = mean over all epochs (see `summary`), and epoch:<k> = the value at epoch k. The SFT arm
    is the same variant's, except for variants in CONTROL_VARIANT (shuffled PoFT vs the plain SFT run).
    """
    ps = per_seed(df)
    ps = ps[ps["method"] != "aligned"]
    by = ["base", "dataset", "task", "metric"]
    epochs = df[df["method"] != "aligned"].assign(stat="epoch:" + df["epoch"].astype("string"))
    ep = epochs.pivot_table(index=[*by, "method", "variant", "seed"], columns="stat", values="value",
                            aggfunc="first").reset_index() if len(epochs) else pd.DataFrame()
    ep.columns.name = None
    ep_stats = sorted((c for c in ep.columns if str(c).startswith("epoch:")), key=lambda c: int(c[6:]))
    out = []
    for variant in sorted(ps.loc[ps["method"] == "poft", "variant"].unique()):
        ctrl = {"method": "sft", "variant": CONTROL_VARIANT.get(variant, variant)}
        treat = {"method": "poft", "variant": variant}
        for frame, names in ((ps, stats), (ep, ep_stats)):
            for stat in names:
                d = paired_contrast(frame, treat, ctrl, by, stat, n_boot, level, seed)
                out.append(d.assign(variant=variant, control_variant=ctrl["variant"]))
    cols = ["base", "dataset", "variant", "control_variant", "task", "metric", "stat", *DIFF_COLUMNS]
    out = [o for o in out if len(o)]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def aligned_scores(obj: dict) -> tuple[np.ndarray, int]:
    """The mean aligned scores of a merged score file {"meta", "rows": [{"id", "score", ...}]}, without the
    samples some aligned model could not score (score None), and how many those were."""
    vals = [r["score"] for r in obj["rows"]]
    kept = np.array([v for v in vals if v is not None], dtype=float)
    return kept, len(vals) - kept.size


def score_spread(obj: dict) -> float:
    """Population std of a dataset's mean aligned scores (nats / token): C5's "spread"; NaN if none."""
    x, _ = aligned_scores(obj)
    return float(x.std()) if x.size else math.nan
