"""Report figures as PNGs (matplotlib, Agg backend), each written atomically.

    epoch_curves       Overall per epoch, SFT vs PoFT, one panel per dataset (mean over seeds, band = +- std)
    score_distributions  histogram of the mean aligned score per sample, one curve per dataset (paper Fig. 2)
    tau_vs_score       tau as training applied it (its recorded trace) against the mean aligned score, per group
    win_rates          win rate at the last epoch, SFT vs PoFT bars (mean +- std over seeds)
Each function returns the path it wrote, or None when it has nothing to draw (no file is written then).
Scores are mean per-token log-likelihoods (nats / token); a sample without a score from every aligned model
(score None) is left out and the count is printed on the figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from .collect import OVERALL  # noqa: E402
from .stats import aligned_scores  # noqa: E402

COLORS = {"sft": "tab:blue", "poft": "tab:orange"}  # bars of one base: SFT vs PoFT
LABELS = {"sft": "SFT", "poft": "PoFT"}
LINES = {"sft": "--", "poft": "-"}
PALETTE = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def base_colors(bases) -> dict[str, str]:
    """One colour per base model, the same in every figure of a report (sorted names -> palette order)."""
    return {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(sorted(set(bases)))}


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _panels(n: int, width: float = 4.0, height: float = 3.2):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    # constrained layout keeps axis labels, titles and the suptitle from overlapping
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def epoch_curves(df: pd.DataFrame, path: str | Path, task: str = OVERALL, variant: str = "full") -> Path | None:
    """`task` per epoch for SFT and PoFT (`variant` runs), one panel per dataset, one colour per base (PoFT solid,
    SFT dashed)."""
    d = df[(df["task"] == task) & (df["variant"] == variant) & df["method"].isin(["sft", "poft"])]
    if d.empty:
        return None
    g = d.groupby(["dataset", "base", "method", "epoch"])["value"].agg(["mean", "std"]).reset_index()
    datasets = sorted(g["dataset"].unique())
    fig, axes = _panels(len(datasets))
    colors = base_colors(g["base"])
    for ax, ds in zip(axes, datasets):
        for base, gb in g[g["dataset"] == ds].groupby("base"):
            for method, gm in gb.groupby("method"):
                x, y, s = gm["epoch"].astype(int), gm["mean"], gm["std"].fillna(0)
                ax.plot(x, y, LINES[method], marker="o", color=colors[base], label=f"{base} {LABELS[method]}")
                ax.fill_between(x, y - s, y + s, color=colors[base], alpha=0.12)
        ax.set(title=ds, xlabel="epoch", ylabel=f"{task} (%)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    fig.suptitle(f"{task} per epoch, SFT vs PoFT (mean ± std over seeds)")
    return _save(fig, path)


def score_distributions(scores: dict[str, dict], path: str | Path) -> Path | None:
    """Histogram (density) of each dataset's mean aligned score per sample; legend shows std (the spread)."""
    if not scores:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    data = {ds: aligned_scores(obj) for ds, obj in sorted(scores.items())}
    pooled = np.concatenate([x for x, _ in data.values()])
    if not pooled.size:
        plt.close(fig)
        return None
    bins = np.histogram_bin_edges(pooled, bins=40)  # shared, so the datasets' spreads compare by eye
    for ds, (x, dropped) in data.items():
        if x.size:
            extra = f", {dropped} unscored" if dropped else ""
            ax.hist(x, bins=bins, density=True, histtype="step", linewidth=1.5,
                    label=f"{ds} (n={x.size}, std={x.std():.2f}{extra})")
    ax.set(xlabel="mean aligned score (mean log p per response token)", ylabel="density",
           title="Aligned-score distributions per dataset")
    ax.legend(fontsize=7)
    return _save(fig, path)


def tau_vs_score(points: pd.DataFrame, datasets: list[str], path: str | Path) -> Path | None:
    """PoFT's weight tau as training applied it (y) against the sample's mean aligned score (x) at the last epoch,
    one colour per group (the data's flaw label), one panel per dataset of `datasets` with points
    (poft.report.trace.last_epoch_points: a point per sample, tau the mean over bases and seeds)."""
    shown = [ds for ds in datasets if (points["dataset"] == ds).any()]
    if not shown:
        return None
    fig, axes = _panels(len(shown))
    groups = sorted(points["group"].unique())
    colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}  # the same group, the same colour
    for ax, ds in zip(axes, shown):
        d = points[points["dataset"] == ds]
        for group, g in d.groupby("group"):
            ax.scatter(g["aligned"], g["tau"], s=8, alpha=0.6, color=colors[group], label=f"{group} ({len(g)})")
        ax.set(title=ds, xlabel="mean aligned score (nats / token)", ylabel="tau", ylim=(0, 1))
        ax.legend(fontsize=7)
    fig.suptitle("PoFT's per-sample weight tau at the last epoch, against the aligned score")
    return _save(fig, path)


def forest(diffs: pd.DataFrame, min_effect: float | None, level: float, path: str | Path, task: str = OVERALL,
           stat: str = "last") -> Path | None:
    """Every cell's PoFT - SFT on `task` at `stat` (differences.csv rows) with its interval, one row per
    base x dataset x variant, one colour per base; the band is +-delta (report.min_effect) around 0."""
    d = diffs[(diffs["task"] == task) & (diffs["stat"] == stat)].sort_values(["variant", "dataset", "base"])
    if d.empty:
        return None
    colors = base_colors(d["base"])
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(d) + 1.4), layout="constrained")
    y = np.arange(len(d))[::-1]
    if min_effect:
        ax.axvspan(-min_effect, min_effect, color="0.9", label=f"±δ = {min_effect:g}")
    ax.axvline(0, color="0.4", lw=0.8)
    for yi, r in zip(y, d.itertuples(index=False)):
        c = colors[r.base]
        ax.errorbar(r.mean, yi, xerr=[[r.mean - r.ci_low], [r.ci_high - r.mean]] if not pd.isna(r.ci_low) else None,
                    fmt="o" if r.level_used == "method" else "x", color=c, capsize=2)
    ax.set_yticks(y, [f"{r.base} / {r.dataset} / {r.variant}" for r in d.itertuples(index=False)], fontsize=7)
    for b, c in colors.items():
        ax.plot([], [], "o", color=c, label=b)
    ax.set(xlabel=f"PoFT − SFT, {task} ({stat}), points; {level:.0%} interval",
           title="Every cell's paired effect (x: one seed, no method-level interval)")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def win_rates(df: pd.DataFrame, tasks: list[str], path: str | Path, variant: str = "full") -> Path | None:
    """Bars: each win-rate task at each run's last epoch, SFT vs PoFT per base x dataset (mean +- std over seeds)."""
    d = df[df["task"].isin(tasks) & (df["variant"] == variant) & df["method"].isin(["sft", "poft"])]
    if d.empty:
        return None
    last = d.loc[d.groupby(["base", "dataset", "method", "seed", "task"])["epoch"].idxmax()]
    g = last.groupby(["task", "base", "dataset", "method"])["value"].agg(["mean", "std"]).reset_index()
    task_list = sorted(g["task"].unique())
    fig, axes = _panels(len(task_list), width=5.0)
    for ax, task in zip(axes, task_list):
        gt = g[g["task"] == task]
        groups = sorted({(b, ds) for b, ds in zip(gt["base"], gt["dataset"])})
        x = np.arange(len(groups))
        for j, method in enumerate(["sft", "poft"]):
            gm = gt[gt["method"] == method].set_index(["base", "dataset"])
            y = [gm["mean"].get(k, np.nan) for k in groups]
            e = [gm["std"].get(k, np.nan) for k in groups]
            ax.bar(x + (j - 0.5) * 0.4, y, 0.4, yerr=np.nan_to_num(e), color=COLORS[method], label=LABELS[method])
        ax.set_xticks(x, [f"{b}\n{ds}" for b, ds in groups], fontsize=7)
        ax.set(title=task, ylabel="win rate (%)")
        ax.legend(fontsize=7)
    return _save(fig, path)
