"""The committed results/micro is self-contained: its data/ folder rebuilds its tables and claims byte for byte."""

from pathlib import Path

import pytest

from poft.report import report_from_data

RESULTS = Path(__file__).resolve().parents[2] / "results" / "micro"


@pytest.mark.skipif(not (RESULTS / "data").is_dir(), reason="results/micro/data is not committed in this checkout")
def test_committed_micro_results_rebuild_byte_for_byte(tmp_path):
    written = report_from_data(RESULTS / "data", tmp_path)
    for name in ("claims.md", "tables.md", "differences.csv", "results.csv", "runs.csv", "index.md"):
        assert name in written
        assert (tmp_path / name).read_bytes() == (RESULTS / name).read_bytes(), \
            f"{name}: results/micro is stale; rebuild it with `poft report --from results/micro --out-dir results/micro`"
