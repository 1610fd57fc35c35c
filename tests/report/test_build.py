"""build_report end to end on a small grid, and each plot on its own."""

import json
import random

import pandas as pd
import pytest

from poft.report import MetricsFileError, build_report, plots, report_from_data
from poft.report.collect import collect, with_overall

from poft.report.trace import collect_traces, last_epoch_points

from .grids import TASKS, WIN, write_trace_run

PNG = b"\x89PNG\r\n\x1a\n"


def scores(datasets=("d1", "d2"), n=60):
    rnd = random.Random(0)
    out = {}
    for i, d in enumerate(datasets):
        rows = [{"id": f"{d}-{k}", "score": rnd.gauss(-1.0, 0.2 * (i + 1)), "scores": {}} for k in range(n)]
        rows[0]["score"] = None  # a sample some aligned model could not score
        out[d] = {"meta": {"models": ["a", "b", "c"]}, "rows": rows}
    return out


def trace_runs(root):
    """Recorded traces: d1's PoFT runs (seeds 0, 1) with flaw labels, an SFT run beside them, and d2 unlabelled."""
    out = []
    for method, seed, dataset in (("poft", 0, "d1"), ("poft", 1, "d1"), ("sft", 0, "d1"), ("poft", 0, "d2")):
        groups = ["clean", "clean", "typo"] if dataset == "d1" else ["all"] * 3
        taus = {e: {f"{dataset}-{k}": (g, 0.2 + 0.1 * k + 0.05 * e + 0.01 * seed) for k, g in enumerate(groups)}
                for e in (1, 2, 3)}
        run_dir = write_trace_run(root / f"{method}-{dataset}-{seed}", taus)
        out.append({"base": "b1", "dataset": dataset, "method": method, "variant": "full", "seed": seed,
                    "run_dir": run_dir})
    return out


@pytest.fixture
def small(grid):
    grid.runs(lambda b, d, m, v, s, e, t: 50 + e + s + (2 if m == "poft" else 0), datasets=("d1", "d2"),
              tasks=(*TASKS, WIN))
    return grid


def test_build_report_writes_everything(small, tmp_path):
    sc = scores()
    score_file = tmp_path / "d2_scores.json"
    score_file.write_text(json.dumps(sc["d2"]))
    out = tmp_path / "report"
    written = build_report(small.records, out, TASKS, focus_task="arith", scores={"d1": sc["d1"], "d2": score_file},
                           trace_runs=trace_runs(tmp_path / "runs"), paper=True,
                           paper_names={"dataset": {"d1": "OpenHermes"}})
    expected = {"results.csv", "runs.csv", "differences.csv", "tables.md", "claims.md", "paper.md",
                "reproduced_vs_reported.csv", "index.md", "report.html", "plots/forest.png", "plots/epoch_curves.png",
                "plots/score_distributions.png", "plots/tau_vs_score.png", "plots/win_rates.png", "summary.json"}
    assert set(written) == expected
    for name in expected:
        assert (out / name).stat().st_size > 0, name
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries
    tables_md = (out / "tables.md").read_text()
    assert "## Table 1 analogue" in tables_md and "| b1 | sft | d1 |" in tables_md and WIN in tables_md
    assert "## C1: holds" in (out / "claims.md").read_text()
    # PoFT's weights per flaw, d1 epoch 1: seed 0's taus 0.25, 0.35 (clean), 0.45 (typo): typo's share 0.45 / 1.05;
    # seed 1's each 0.01 more: 0.46 / 1.08. Mean 0.4272 (weight share), mean tau 0.455, data share 1/3; SFT left out.
    assert "## PoFT's weights per flaw (data share vs weight share)" in tables_md
    assert "| d1 | typo | 1 | 0.333 | 0.427 | 0.455 | 2 |" in tables_md
    assert "## Most down-weighted samples (data without group labels)" in tables_md
    assert "| d2 | d2-0 | all | 0.350 |" in tables_md  # its least tau at epoch 3: 0.2 + 0.05 * 3
    assert len(pd.read_parquet(out / "data" / "trace.parquet")) == 4 * 3 * 3
    html = (out / "report.html").read_text()
    assert "<h2>PoFT&#x27;s weights per flaw (data share vs weight share)</h2>" in html
    assert html.count("data:image/png;base64,") == 5 and "Claims" in html
    assert html.index("<h2>Claims</h2>") < html.index("plots/forest.png") < html.index("<h2>What ran</h2>")
    assert "| C1 | holds |" in (out / "index.md").read_text()

    # Everything is rebuilt from out/data alone, byte for byte: no metrics file, score file or record needed.
    again = report_from_data(out / "data", tmp_path / "again", paper_dir=None)
    assert set(again) == expected
    for name in expected:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name

    # a second call with less to show removes what it no longer produces
    written = build_report(small.records, out, TASKS)
    assert not (out / "plots/score_distributions.png").exists() and not (out / "paper.md").exists()
    assert not (out / "plots/tau_vs_score.png").exists() and "PoFT's weights" not in (out / "tables.md").read_text()
    assert (out / "plots/epoch_curves.png").exists() and "plots/epoch_curves.png" in written


def test_bad_score_file_is_named(small, tmp_path):
    bad = tmp_path / "scores.json"
    bad.write_text(json.dumps({"meta": {}, "rows": [{"id": "x"}]}))
    with pytest.raises(MetricsFileError, match="scores.json: field 'rows'"):
        build_report(small.records, tmp_path / "r", TASKS, scores={"d1": str(bad)})
    with pytest.raises(MetricsFileError, match="missing.json: cannot read aligned score file"):
        build_report(small.records, tmp_path / "r", TASKS, scores={"d1": str(tmp_path / "missing.json")})


def test_plots_alone(small, tmp_path):
    df = with_overall(collect(small.records), TASKS)
    sc = scores()
    points = last_epoch_points(collect_traces(trace_runs(tmp_path / "runs")))
    assert len(points) == 6 and set(points["group"]) == {"clean", "typo", "all"}  # one point per sample
    paths = [plots.epoch_curves(df, tmp_path / "a.png"), plots.score_distributions(sc, tmp_path / "b.png"),
             plots.tau_vs_score(points, ["d1", "d2"], tmp_path / "c.png"),
             plots.win_rates(df, [WIN], tmp_path / "d.png")]
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 1000
    assert plots.win_rates(df, [], tmp_path / "e.png") is None and not (tmp_path / "e.png").exists()
    assert plots.tau_vs_score(points, ["d3"], tmp_path / "f.png") is None
    assert plots.epoch_curves(df[df["method"] == "aligned"], tmp_path / "g.png") is None


def test_bad_kept_file_is_named(small, tmp_path):
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps({"meta": {"n_kept": 3}, "kept_ids": ["a", "b", "c"]}))
    with pytest.raises(MetricsFileError, match="kept.json: kept ids for 'b1/d1/filter:ifd:0.8': expected a key "
                                               "BASE/DATASET/VARIANT and a filter output with meta.n_kept and "
                                               "meta.n_input"):
        build_report(small.records, tmp_path / "r", TASKS, kept={"b1/d1/filter:ifd:0.8": str(kept)})


def test_dft_runs_bring_baseline_differences(grid, tmp_path):
    """A DFT arm (the token-weighting baseline) is compared with both of the paper's arms, paired by seed: here
    SFT = 50 + epoch + seed, DFT = SFT + 1, PoFT = SFT + 2, so DFT - SFT = PoFT - DFT = 1 in every cell."""
    bump = {"sft": 0, "dft": 1, "poft": 2}
    grid.runs(lambda b, d, m, v, s, e, t: 50 + e + s + bump[m], methods=("sft", "poft", "dft"), tasks=TASKS)
    out = tmp_path / "report"
    written = build_report(grid.records, out, TASKS)
    assert "baselines.csv" in written

    base = pd.read_csv(out / "baselines.csv")
    overall = base[base["task"] == "Overall"]
    assert set(zip(overall["treatment"], overall["control"])) == {("dft", "sft"), ("poft", "dft")}
    assert overall["mean"].tolist() == pytest.approx([1.0] * len(overall)) and set(overall["stat"]) == {"last", "avg"}
    md = (out / "tables.md").read_text()
    assert "## Baselines: DFT beside SFT and PoFT" in md and "| DFT − SFT | b1 | d1 | full | Overall | last |" in md
    assert "Baselines: DFT − SFT and PoFT − DFT" in (out / "report.html").read_text()
    # the paper's own comparison is unchanged by the third arm
    diffs = pd.read_csv(out / "differences.csv").query("task == 'Overall' and stat in ['last', 'avg']")
    assert diffs["mean"].tolist() == pytest.approx([2.0, 2.0])
    build_report([r for r in grid.records if r["method"] != "dft"], out, TASKS)
    assert not (out / "baselines.csv").exists()  # no DFT arm any more: no stale baselines file

