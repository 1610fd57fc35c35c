"""The label controls in the report: headroom (SFT on clean only - SFT), flaw harm, the share of the headroom PoFT
captures with Fieller's interval, summary.json and the DAG time read from Snakemake's benchmark files."""

import json
import math

import numpy as np
import pytest

from poft.report import build_report
from poft.report.collect import collect, collect_items, with_overall
from poft.report.clock import dag_seconds, mark_dag_start
from poft.report.digest import summary
from poft.report.headroom import captured, fieller_share, headroom
from poft.report.stats import paired_differences
from poft.report.verdicts import Evidence

from .grids import TASKS

# Item noise of the oracle and PoFT arms per seed x item (sums to 0 over each arm: the means are exact).
NOISE = {0: [4, -4, 2, -2], 1: [-4, 4, -2, 2], 2: [1, -1, -1, 1]}


def scores(method, variant, seed, task):
    base = {"arith": [20, 60, 40, 80], "words": [30, 50, 70, 90]}[task]
    if variant == "oracle:oracle":  # 6 points of headroom on every task
        return [b + 6 + n + seed for b, n in zip(base, NOISE[seed])]
    if variant == "oracle:no_wrong":  # dropping the wrong answers gains 2 on arith, costs 1 on words
        return [b + seed + (2 if task == "arith" else -1) for b in base]
    if method == "poft":  # PoFT gets half of it
        return [b + 3 + n / 2 + seed for b, n in zip(base, NOISE[(seed + 1) % 3])]
    return [b + seed for b in base]


@pytest.fixture
def ev(grid):
    for s in (0, 1, 2):
        for t in TASKS:
            for e in (1, 2, 3):
                grid.add("b1", "d1", "sft", "full", s, e, t, scores("sft", "full", s, t))
                grid.add("b1", "d1", "poft", "full", s, e, t, scores("poft", "full", s, t))
            for v in ("oracle:oracle", "oracle:no_wrong"):  # label controls: the last epoch only
                grid.add("b1", "d1", "sft", v, s, 3, t, scores("sft", v, s, t))
    return Evidence(with_overall(collect(grid.records), TASKS), overall_tasks=TASKS,
                    items=collect_items(grid.records)), grid


def test_headroom_and_harm_are_paired_last_epoch_differences(ev):
    ev, _ = ev
    h = headroom(ev).set_index(["variant", "task"])
    assert h.loc[("oracle:oracle", "Overall"), "mean"] == pytest.approx(6.0)
    assert h.loc[("oracle:oracle", "Overall"), "n_pairs"] == 3 and h.loc[("oracle:oracle", "Overall"), "n_items"] == 8
    assert h.loc[("oracle:oracle", "Overall"), "ci_low"] < 6 < h.loc[("oracle:oracle", "Overall"), "ci_high"]
    # per flaw: +2 on arith, -1 on words -> +0.5 on Overall (the mean of the two task means)
    assert h.loc[("oracle:no_wrong", "Overall"), "mean"] == pytest.approx(0.5)
    assert set(h["stat"]) == {"last"}


def test_captured_share_is_gain_over_headroom_with_an_interval_around_it(ev):
    ev, _ = ev
    c = captured(ev).set_index("task").loc["Overall"]
    assert c["gain"] == pytest.approx(3.0) and c["headroom"] == pytest.approx(6.0)
    assert c["share"] == pytest.approx(0.5)
    assert c["share_low"] < 0.5 < c["share_high"]


def test_fieller_interval_covers_the_true_share_in_simulations():
    """Known truth: headroom 6, gain 3 (share 0.5), seed and item noise; 3 seeds x 60 items. The interval is the
    inversion of the paired seed x item test, so it covers as often as that test's interval does (~95%)."""
    rng = np.random.default_rng(7)
    covered, n = 0, 100
    for _ in range(n):
        item = rng.normal(0, 8, (1, 60))
        room = 6 + rng.normal(0, 1, (3, 1)) + 0.3 * item + rng.normal(0, 6, (3, 60))
        gain = 3 + rng.normal(0, 1, (3, 1)) + 0.1 * item + rng.normal(0, 6, (3, 60))
        _, low, high = fieller_share(gain, room)
        covered += (math.isnan(low) or low <= 0.5) and (math.isnan(high) or 0.5 <= high)
    assert 0.88 <= covered / n <= 1.0


def test_fieller_share_is_unbounded_when_the_headroom_is_noise():
    rng = np.random.default_rng(3)
    room, gain = rng.normal(0, 5, (3, 40)), rng.normal(1, 5, (3, 40))
    share, low, high = fieller_share(gain, room)
    assert math.isnan(low) or math.isnan(high)


def test_summary_json_relates_headroom_to_the_c1_mde(ev, tmp_path):
    ev, grid = ev
    diffs = paired_differences(ev)
    out = summary(ev, diffs, headroom(ev), captured(ev), verdicts=[], dag_seconds=912.34)
    cell = out["headroom"]["b1/d1"]
    mde = max(out["mde"]["b1/d1/last"], out["mde"]["b1/d1/avg"])
    assert cell["mean"] == pytest.approx(6.0) and cell["c1_mde"] == pytest.approx(mde)
    assert cell["over_c1_mde"] == pytest.approx(6.0 / mde, abs=0.01)
    assert out["harm"]["b1/d1/no_wrong"]["Overall"]["mean"] == pytest.approx(0.5)
    assert (out["n_seeds"], out["n_items"], out["dag_seconds"]) == (3, 8, 912.3)
    written = build_report(grid.records, tmp_path / "r", TASKS, dag_seconds=912.34)
    data = json.loads(written["summary.json"].read_text())
    assert data["headroom"]["b1/d1"]["mean"] == pytest.approx(6.0) and data["dag_seconds"] == 912.3
    assert "## Headroom and flaw harm" in (tmp_path / "r" / "tables.md").read_text()
    assert (tmp_path / "r" / "headroom.csv").is_file()


def test_dag_seconds_count_from_the_start_stamp(tmp_path):
    stamp = tmp_path / "dag_start.json"
    assert dag_seconds(stamp) is None  # outside a DAG run
    mark_dag_start(stamp)
    data = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({"started": data["started"] - 125.0}))
    assert 125.0 <= dag_seconds(stamp) < 135.0
