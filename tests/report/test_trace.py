"""The report's view of the recorded trace: weight shares per group worked out by hand, the most down-weighted
samples of unlabelled data, and the frame read back from run dirs."""

import pandas as pd
import pytest

from poft.report.trace import TRACE_COLUMNS, collect_traces, most_down_weighted, shares_table, weight_shares

from .grids import write_trace_run


def frame(rows):
    return pd.DataFrame([dict(zip(TRACE_COLUMNS, r)) for r in rows], columns=TRACE_COLUMNS)


def run(method, variant, seed, epoch, taus, dataset="d1", base="b1"):
    """taus: [(id, group, tau)]; r_theta -1, aligned -1 - tau (made up)."""
    return [(base, dataset, method, variant, seed, epoch, i, g, -1.0, -1.0 - t, t) for i, g, t in taus]


HAND = frame(
    # seed 0, epoch 1: clean 0.8 of the summed tau 1.0, typo 0.2; seed 1: clean 0.6, typo 0.4 -> means 0.7, 0.3
    run("poft", "full", 0, 1, [("a", "clean", 0.4), ("b", "clean", 0.4), ("c", "typo", 0.2)])
    + run("poft", "full", 1, 1, [("a", "clean", 0.3), ("b", "clean", 0.3), ("c", "typo", 0.4)])
    # epoch 2 of seed 0 only: typo 0 of 1.0
    + run("poft", "full", 0, 2, [("a", "clean", 0.5), ("b", "clean", 0.5), ("c", "typo", 0.0)])
    # not PoFT's full runs: never in the shares
    + run("sft", "full", 0, 1, [("a", "clean", 0.9), ("b", "clean", 0.9), ("c", "typo", 0.01)])
    + run("poft", "shuffled", 0, 1, [("a", "clean", 0.1), ("b", "clean", 0.1), ("c", "typo", 0.9)])
    # unlabelled data: every sample in "all"; the last epoch (2) is the one listed
    + run("poft", "full", 0, 1, [("u1", "all", 0.1), ("u2", "all", 0.9), ("u3", "all", 0.5)], dataset="d2")
    + run("poft", "full", 0, 2, [("u1", "all", 0.7), ("u2", "all", 0.2), ("u3", "all", 0.2)], dataset="d2"))


def test_weight_shares_by_hand():
    shares = weight_shares(HAND)
    assert shares.keys() == {"d1", "d2"} and shares["d2"] == {"all": {1: 1.0, 2: 1.0}}
    assert shares["d1"]["clean"] == pytest.approx({1: 0.7, 2: 1.0}) and shares["d1"]["typo"] == pytest.approx(
        {1: 0.3, 2: 0.0})
    table = shares_table(HAND).set_index(["dataset", "group", "epoch"])
    assert table.loc[("d1", "clean", 1), "data_share"] == pytest.approx(2 / 3)
    assert table.loc[("d1", "typo", 1), "mean_tau"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2 runs
    assert table.loc[("d1", "typo", 1), "runs"] == 2 and table.loc[("d1", "typo", 2), "runs"] == 1


def test_most_down_weighted_lists_unlabelled_data_at_the_last_epoch():
    low = most_down_weighted(HAND, k=2)
    assert low["dataset"].tolist() == ["d2", "d2"]  # d1 has labels: its table says more
    assert low["id"].tolist() == ["u2", "u3"] and low["tau"].tolist() == pytest.approx([0.2, 0.2])  # tie: by id
    assert low["aligned"].tolist() == pytest.approx([-1.2, -1.2])


def test_a_sample_without_a_label_among_labelled_ones_is_its_own_group():
    shares = weight_shares(frame(run("poft", "full", 0, 1, [("a", "clean", 0.25), ("b", None, 0.75)])))
    assert shares == {"d1": {"(no label)": {1: 0.75}, "clean": {1: 0.25}}}


def test_collect_traces_reads_every_epoch_checkpoint(tmp_path):
    rec = {"base": "b1", "dataset": "d1", "method": "poft", "variant": "full", "seed": 3}
    write_trace_run(tmp_path / "run", {1: {"x": ("clean", 0.5)}, 2: {"x": ("clean", 0.25), "y": ("typo", 0.75)}})
    (tmp_path / "old" / "checkpoint-5").mkdir(parents=True)  # a run trained before traces: left out, no failure
    (tmp_path / "old" / "checkpoint-5" / "poft_train_config.json").write_text('{"epoch": 1}')
    got = collect_traces([{**rec, "run_dir": tmp_path / "run"}, {**rec, "seed": 4, "run_dir": tmp_path / "old"}])
    assert got[["seed", "epoch", "id", "group", "tau"]].values.tolist() == [
        [3, 1, "x", "clean", 0.5], [3, 2, "x", "clean", 0.25], [3, 2, "y", "typo", 0.75]]
    assert list(got.columns) == TRACE_COLUMNS
