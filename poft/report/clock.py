"""The DAG's wall time up to its report: a stamp the Snakefile's `onstart` writes, read back by `poft report`.

Apart from the rest of poft.report (pandas, scipy, torch) because the Snakefile imports it: every snakemake call,
a dry run included, pays for what it imports.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..io import read_json, write_json


def mark_dag_start(path) -> None:
    """Write the time a DAG run starts (the Snakefile's `onstart`), for `dag_seconds`."""
    write_json(path, {"started": time.time()})


def dag_seconds(start_file) -> float | None:
    """Wall seconds since `mark_dag_start` wrote `start_file` (None when it did not): the DAG's time up to its
    report. A DAG that was stopped and resumed counts from the resuming run's start."""
    if not Path(start_file).is_file():
        return None
    return round(time.time() - float(read_json(start_file)["started"]), 1)
