"""`poft plan-power` and `poft report --from` on a results folder built from a small item-level grid."""

import random

import pytest

from poft.cli import main
from poft.report import build_report
from poft.report.power import plan_from_results

from .grids import TASKS


def noisy_items(seed, epoch, task, method):
    """12 items per task, 0/100 answers drawn per (seed, task, item); PoFT gets 2 more items of 12 right."""
    rnd = random.Random(f"{seed}-{task}-{method}-{epoch}")
    right = [100.0 if rnd.random() < 0.5 else 0.0 for _ in range(12)]
    if method == "poft":
        right[seed % 12] = right[(seed + 5) % 12] = 100.0
    return right


@pytest.fixture
def results(grid, tmp_path):
    grid.runs(lambda b, d, m, v, s, e, t: noisy_items(s, e, t, m), seeds=(0, 1, 2), datasets=("d1",))
    out = tmp_path / "results"
    build_report(grid.records, out, TASKS, main_datasets=["d1"])
    return out


def test_plan_power_from_measured_components(results):
    plan = plan_from_results(results / "data", delta=5.0, seeds=(2, 3, 5, 8))
    measured = plan[plan["measured"]]
    assert list(measured["cell"]) == ["b1 / d1"] and int(measured["seeds"].iloc[0]) == 3
    assert int(measured["items"].iloc[0]) == 24  # two tasks of 12 equally weighted items
    rows = plan[~plan["measured"] & (plan["items"] == 24)].set_index("seeds")["mde"]
    assert rows[8] < rows[5] < rows[3]  # more seeds, smaller MDE
    same = plan[~plan["measured"] & (plan["items"] == 24) & (plan["seeds"] == 3)]
    assert same["mde"].iloc[0] == pytest.approx(measured["mde"].iloc[0], rel=0.5)  # plan at the measured design


def test_cli_report_from_results_and_plan_power(results, tmp_path, capsys):
    assert main(["report", "--from", str(results), "--out-dir", str(tmp_path / "again")]) == 0
    for name in ("claims.md", "tables.md", "differences.csv", "report.html"):
        assert (tmp_path / "again" / name).read_bytes() == (results / name).read_bytes(), name
    assert main(["plan-power", "--from", str(results), "--delta", "5"]) == 0
    assert "b1 / d1" in capsys.readouterr().out
    assert main(["report", "--from", str(tmp_path), "--out-dir", str(tmp_path / "x")]) == 2
    assert f"poft report: error: {tmp_path}/data: not a report data folder (missing results.parquet, " \
           "items.parquet, scores.parquet, inputs.json)" in capsys.readouterr().err
