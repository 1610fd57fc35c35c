"""PoFT - SFT for every cell of the grid (differences.csv): item-level where items exist, seeds otherwise."""

import math

import numpy as np
import pytest

from poft.report.collect import collect, collect_items, with_overall
from poft.report.effects import paired_effect
from poft.report.stats import paired_differences, score_spread
from poft.report.verdicts import Evidence

from .grids import TASKS


def evidence(grid, items=True):
    df = with_overall(collect(grid.records), TASKS)
    return Evidence(df, overall_tasks=TASKS, items=collect_items(grid.records) if items else None)


def test_paired_differences_per_variant_stat_and_epoch(grid):
    grid.runs(lambda b, d, m, v, s, e, t: 50 + e + s + (e if m == "poft" else 0), variants=("full", "dpo"))
    grid.runs(lambda b, d, m, v, s, e, t: 50 + s, methods=("poft",), variants=("shuffled",))
    diffs = paired_differences(evidence(grid))
    o = diffs[(diffs["task"] == "Overall") & (diffs["variant"] == "full")].set_index("stat")
    # std over epochs 1-3 (population): SFT 51, 52, 53 -> sqrt(2/3); PoFT 52, 54, 56 -> 2 sqrt(2/3)
    assert o.loc["last", "mean"] == 3.0 and o.loc["avg", "mean"] == 2.5
    assert o.loc["std", "mean"] == pytest.approx(math.sqrt(2 / 3))
    assert set(o["unit"]) == {"seeds"} and set(o["level_used"]) == {"method"}  # no items files: seeds alone
    sh = diffs[(diffs["variant"] == "shuffled") & (diffs["task"] == "Overall")].set_index("stat")
    assert sh.loc["last", "control_variant"] == "full" and sh.loc["last", "mean"] == -3.0  # 50 + s vs 53 + s


def item_scores(seed, epoch, task, method):
    """Item scores of one checkpoint: arith has 4 items, words 2 (Overall weighs the two tasks equally).
    PoFT gains 10 points on arith items 0-1, nothing on items 2-3, and 5 on words item 0; seeds shift all."""
    base = {"arith": [0, 100, 0, 100], "words": [100, 0]}[task]
    gain = {"arith": [10, 10, 0, 0], "words": [5, 0]}[task] if method == "poft" else [0] * len(base)
    return [b + g + seed for b, g in zip(base, gain)]


def test_item_level_effects_weigh_tasks_as_overall_does(grid):
    """Per seed, PoFT - SFT on arith = mean(10, 10, 0, 0) = 5, on words = mean(5, 0) = 2.5, so Overall (the mean
    of the two task means) gains 3.75. Pooling the 6 items unweighted would give 35/6 = 5.83: the item weights
    1 / (n_task * n_tasks) = 1/8 (arith) and 1/4 (words) give 4 * 10/8 + 5/4 = 3.75 again."""
    grid.runs(lambda b, d, m, v, s, e, t: item_scores(s, e, t, m), seeds=(0, 1, 2))
    diffs = paired_differences(evidence(grid))
    o = diffs[(diffs["task"] == "Overall") & (diffs["stat"] == "last")].iloc[0]
    assert o["unit"] == "items" and o["n_items"] == 6 and o["n_pairs"] == 3 and o["level_used"] == "method"
    assert o["mean"] == pytest.approx(3.75)
    assert (o["treat_mean"] - o["control_mean"]) == pytest.approx(3.75)
    a = diffs[(diffs["task"] == "arith") & (diffs["stat"] == "last")].iloc[0]
    d = np.tile([10.0, 10.0, 0.0, 0.0], (3, 1))  # identical in every seed: no seed or residual variance
    ref = paired_effect(d)
    assert a["mean"] == 5.0 and a["se"] == pytest.approx(ref["se"]) and a["df"] == pytest.approx(ref["df"])
    seeds_only = paired_differences(evidence(grid, items=False))
    assert (seeds_only["unit"] == "seeds").all()
    assert seeds_only.set_index(["task", "stat"]).loc[("Overall", "last"), "mean"] == pytest.approx(3.75)


def test_no_bootstrap_left_in_any_verdict_path():
    """The seed bootstrap is gone from the report package: no resampling function, no resample count, no
    random generator; the intervals are the seeds x items t intervals of `effects`."""
    import inspect
    import pkgutil

    import poft.report as report

    for info in pkgutil.iter_modules(report.__path__):
        src = inspect.getsource(__import__(f"poft.report.{info.name}", fromlist=["x"]))
        for banned in ("bootstrap_ci", "def summarize", "n_boot", "default_rng", "percentile bootstrap interval"):
            assert banned not in src, (info.name, banned)


def test_score_spread_population_std_without_unscored():
    obj = {"meta": {}, "rows": [{"id": "a", "score": -1.0}, {"id": "b", "score": -3.0}, {"id": "c", "score": None}]}
    assert score_spread(obj) == 1.0
