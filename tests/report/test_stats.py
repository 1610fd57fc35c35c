"""Paired differences and percentile-bootstrap intervals against numbers worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from poft.report.collect import collect, with_overall
from poft.report.stats import bootstrap_ci, paired_contrast, paired_differences, score_spread, summarize

from .grids import TASKS


def test_mean_of_differences():
    s = summarize([1.0, 2.0, 3.0], n_boot=500)
    assert s["n_pairs"] == 3 and s["mean"] == 2.0
    assert 1.0 <= s["ci_low"] <= 2.0 <= s["ci_high"] <= 3.0  # the bootstrap cannot leave the observed range


def test_constant_difference_has_zero_width_interval():
    assert bootstrap_ci([0.7, 0.7, 0.7, 0.7], n_boot=300) == (pytest.approx(0.7), pytest.approx(0.7))


def test_two_pairs_by_hand():
    # resampled means of [0, 2] are 0, 1, 2 with probabilities 1/4, 1/2, 1/4: the 95% interval is [0, 2]
    assert bootstrap_ci([0.0, 2.0], n_boot=4000, seed=1) == (0.0, 2.0)
    # at level 0.4 the 30% and 70% quantiles both fall on the middle value 1
    assert bootstrap_ci([0.0, 2.0], n_boot=4000, level=0.4, seed=1) == (1.0, 1.0)


def test_seeded_and_deterministic():
    d = np.random.default_rng(5).normal(size=6)
    assert bootstrap_ci(d, n_boot=1000, seed=3) == bootstrap_ci(d, n_boot=1000, seed=3)
    assert bootstrap_ci(d, n_boot=1000, seed=3) != bootstrap_ci(d, n_boot=1000, seed=4)


def test_one_pair_has_no_interval():
    lo, hi = bootstrap_ci([1.5])
    assert math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)


def test_paired_by_seed_and_unpaired_counted():
    ps = pd.DataFrame({"base": "b", "dataset": "d", "method": ["sft", "sft", "sft", "poft", "poft"],
                       "variant": "full", "seed": [0, 1, 2, 0, 1], "last": [50.0, 60.0, 70.0, 51.0, 63.0]})
    d = paired_contrast(ps, {"method": "poft"}, {"method": "sft"}, ["base", "dataset"], "last", n_boot=200)
    r = d.iloc[0]
    assert (r["n_pairs"], r["n_unpaired"], r["mean"], r["diffs"]) == (2, 1, 2.0, "1;3")  # seed 2 has no PoFT run
    assert (r["treat_mean"], r["control_mean"]) == (57.0, 55.0)


def test_paired_differences_per_variant_stat_and_epoch(grid):
    grid.runs(lambda b, d, m, v, s, e, t: 50 + e + s + (e if m == "poft" else 0), variants=("full", "dpo"))
    grid.runs(lambda b, d, m, v, s, e, t: 50 + s, methods=("poft",), variants=("shuffled",))
    diffs = paired_differences(with_overall(collect(grid.records), TASKS), n_boot=200)
    o = diffs[(diffs["task"] == "Overall") & (diffs["variant"] == "full")].set_index("stat")["mean"]
    # std over epochs 1-3 (population): SFT 51, 52, 53 -> sqrt(2/3); PoFT 52, 54, 56 -> 2 sqrt(2/3)
    assert o["last"] == 3.0 and o["avg"] == 2.5 and o["epoch:1"] == 1.0
    assert o["std"] == pytest.approx(math.sqrt(2 / 3))
    sh = diffs[(diffs["variant"] == "shuffled") & (diffs["task"] == "Overall")].set_index("stat")
    assert sh.loc["last", "control_variant"] == "full" and sh.loc["last", "mean"] == -3.0  # 50 + s vs 53 + s


def test_score_spread_population_std_without_unscored():
    obj = {"meta": {}, "rows": [{"id": "a", "score": -1.0}, {"id": "b", "score": -3.0}, {"id": "c", "score": None}]}
    assert score_spread(obj) == 1.0
