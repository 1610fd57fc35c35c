"""Table cells worked out by hand on a 2-seed x 3-epoch grid, and rows that did not run staying absent."""

import math

import pytest

from poft.report import render, tables
from poft.report.collect import collect, with_overall
from poft.report.summary import epoch_stats, seed_stats

from .grids import TASKS

# Overall per (method, seed) over epochs 1, 2, 3; arith = Overall - 1, words = Overall + 1.
OVERALL = {("sft", 0): [50, 52, 56], ("sft", 1): [51, 55, 55], ("poft", 0): [53, 54, 55], ("poft", 1): [52, 56, 56]}


def hand_grid(grid, **kw):
    return grid.runs(lambda b, d, m, v, s, e, t: OVERALL[m, s][e - 1] + (-1 if t == "arith" else 1), **kw)


def cell(table, column, **keys):
    t = table[table["column"] == column]
    for k, v in keys.items():
        t = t[t[k] == v]
    assert len(t) == 1, t
    return t.iloc[0]


def test_epoch_stats_by_hand():
    """Overall 50, 52, 56 at epochs 1-3. Avg (the paper excludes the first epoch) = (52 + 56) / 2 = 54.
    Std (the paper's "std over epochs": every epoch) = population std of {50, 52, 56}: mean 158/3 = 52.667,
    squared deviations 7.111 + 0.444 + 11.111 = 18.667, / 3 = 6.222, sqrt = 2.4944. (Over {52, 56} alone it
    would be 2.0: the window main used before the paper's text was checked.)"""
    s = epoch_stats({1: 50.0, 2: 52.0, 3: 56.0}, [1, 2, 3])
    assert (s["first"], s["last"], s["avg"]) == (50.0, 56.0, 54.0)
    assert s["std"] == pytest.approx(2.494438, abs=1e-6)
    assert s["mean_all"] == pytest.approx(158 / 3)
    gap = epoch_stats({1: 50.0, 3: 56.0}, [1, 2, 3])  # epoch 2 missing: no Avg / Std over a subset
    assert gap["last"] == 56.0 and math.isnan(gap["avg"]) and math.isnan(gap["std"])
    two = epoch_stats({1: 50.0, 2: 52.0}, [1, 2])  # Avg over one epoch; Std over both
    assert two["avg"] == 52.0 and two["std"] == 1.0
    one = epoch_stats({1: 50.0}, [1])  # one epoch: no Avg, no Std
    assert math.isnan(one["avg"]) and math.isnan(one["std"])
    assert seed_stats([56.0, 55.0]) == (55.5, pytest.approx(math.sqrt(0.5)), 2)
    assert seed_stats([3.0, None])[1:] == (pytest.approx(float("nan"), nan_ok=True), 1)


def test_table1_cells_by_hand(grid):
    df = with_overall(collect(hand_grid(grid).records), TASKS)
    t1 = tables.table1(df, TASKS)
    # SFT: last Overall 56, 55 -> 55.5 +- sqrt(.5); Avg (52+56)/2=54, (55+55)/2=55 -> 54.5;
    # Std over all three epochs: {50, 52, 56} -> sqrt(56/9) = 2.4944, {51, 55, 55} -> sqrt(32/9) = 1.8856
    #   -> mean 2.1900, sample std |2.49444 - 1.88562| / sqrt(2) = 0.43050
    o, a, s = (cell(t1, c, method="sft") for c in ("Overall", "Avg", "Std"))
    assert (o["mean"], o["std"], o["n"]) == (55.5, pytest.approx(math.sqrt(0.5)), 2)
    assert (a["mean"], a["std"]) == (54.5, pytest.approx(math.sqrt(0.5)))
    assert (s["mean"], s["std"]) == (pytest.approx(2.190028, abs=1e-6), pytest.approx(0.430501, abs=1e-6))
    assert cell(t1, "arith", method="sft")["mean"] == 54.5 and cell(t1, "words", method="poft")["mean"] == 56.5
    p = cell(t1, "Std", method="poft")  # std over {53, 54, 55} = sqrt(2/3) and {52, 56, 56} = sqrt(32/9)
    assert p["mean"] == pytest.approx((math.sqrt(2 / 3) + math.sqrt(32 / 9)) / 2)
    text = render.table_markdown(t1)
    assert "| b1 | sft | d1 | 54.50 ± 0.71 | 56.50 ± 0.71 | 55.50 ± 0.71 | 54.50 ± 0.71 | 2.19 ± 0.43 | 2 |" in text
    assert t1.attrs["columns"] == [*TASKS, "Overall", "Avg", "Std"]


def test_missing_cells_are_marked_not_invented(grid):
    hand_grid(grid, epochs=(1,))  # one epoch: no Avg, no Std
    grid.add("b1", "d2", "sft", "full", 0, 1, "arith", 40.0)  # a run without "words": no Overall
    df = with_overall(collect(grid.records), TASKS)
    t1 = tables.table1(df, TASKS)
    assert cell(t1, "Avg", method="sft", dataset="d1")["n"] == 0
    shown = render.display(t1)
    row = shown[(shown["dataset"] == "d2")].iloc[0]
    assert row["arith"] == "40.00" and row["Overall"] == "—" and row["words"] == "—"
    assert tables.table4(df).empty and tables.table5(df).empty and tables.table3(df, []).empty
    assert "no rows" in render.table_markdown(tables.table4(df))


def test_fewer_seeds_in_a_cell_are_counted():
    assert render.fmt_cell(55.5, 0.71, 2, 2) == "55.50 ± 0.71"
    assert render.fmt_cell(55.0, float("nan"), 1, 3) == "55.00 (n=1)"
    assert render.fmt_cell(float("nan"), float("nan"), 0, 3) == "—"


def test_filter_distill_dpo_noise_and_control_tables(grid):
    value = lambda b, d, m, v, s, e, t: 50 + e + (2 if m == "poft" else 0) + (1 if v != "full" else 0) + s  # noqa: E731
    grid.runs(value, variants=("full", "filter:preference:0.8", "distill:zephyr", "dpo"))
    grid.runs(lambda *a: 40.0, methods=("poft",), variants=("shuffled",))
    grid.runs(lambda b, d, m, v, s, e, t: 60 - e * (m == "sft"), datasets=("noisy",))
    df = with_overall(collect(grid.records), TASKS)
    t4 = tables.table4(df)
    assert t4["filter"].tolist()[:2] == ["none", "none"]  # the unfiltered row first
    assert cell(t4, "PoFT", filter="filter:preference:0.8")["mean"] == 50 + 3 + 2 + 1 + 0.5
    assert set(t4["kept"]) == {"all", "?"}  # no filter outputs given: the nominal share is not assumed
    kept = {("b1", "d1", "filter:preference:0.8"): {"n_kept": 94, "n_input": 300, "keep_fraction": 0.8}}
    t4 = tables.table4(df, kept)
    assert cell(t4, "SFT", filter="filter:preference:0.8")["kept"] == "94/300 (31%)"
    assert cell(t4, "SFT", filter="none")["kept"] == "300/300 (100%)"
    assert "| b1 | d1 | filter:preference:0.8 | 94/300 (31%) |" in render.table_markdown(t4)
    t5 = tables.table5(df)
    assert set(t5["training data"]) == {"original", "regenerated by zephyr"}
    t3 = tables.table3(df, [])  # DPO: mean over ALL epochs (1, 2, 3) -> 52 + 1 + 0.5 for SFT
    assert cell(t3, "Overall mean", method="sft", dataset="d1")["mean"] == 53.5
    nt = tables.noise_table(df, ["d1", "noisy"])
    assert cell(nt, "PoFT − SFT", dataset="noisy", epoch=3)["mean"] == 3.0
    assert nt["dataset"].tolist()[0] == "d1"
    ct = tables.control_table(df)
    assert cell(ct, "PoFT (shuffled scores) Overall", dataset="d1")["mean"] == 40.0
    cov = tables.coverage(df)
    assert cov.loc[cov["variant"] == "shuffled", "seeds"].item() == "0, 1"


def test_a_dft_arm_gets_its_own_rows_after_sft_and_poft(grid):
    """The DFT baseline (poft.losses.dft_objective) as a grid method: Table 1 shows it beside SFT and PoFT."""
    hand_grid(grid)
    grid.runs(lambda b, d, m, v, s, e, t: 60.0 + e, methods=("dft",))
    t1 = tables.table1(with_overall(collect(grid.records), TASKS), TASKS)
    assert cell(t1, "Overall", method="dft")["mean"] == 63.0 and cell(t1, "Avg", method="dft")["mean"] == 62.5
    assert list(dict.fromkeys(t1["method"])) == ["sft", "poft", "dft"]
    assert "| b1 | dft | d1 |" in render.table_markdown(t1)
