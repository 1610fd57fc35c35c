"""The normalized metrics JSON: one file per (checkpoint, task), the same top-level shape for lm-eval tasks
and win rates, so that the report reads every score the same way.

    {"schema": "poft.metrics/1", "checkpoint", "task", "metric", "value" (percent), "stderr" (percent | null),
     "n", "higher_is_better", "metrics" (raw), "settings", "versions", ...task-kind extras}
"""

from __future__ import annotations

import math
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .. import __version__ as poft_version
from ..io import write_json

SCHEMA = "poft.metrics/1"


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def percent(x) -> float | None:
    """lm-eval and alpaca_eval report fractions or "N/A"; poft records percent or null."""
    if x is None or isinstance(x, str):
        return None
    x = float(x)
    return None if math.isnan(x) else 100.0 * x


def metrics_record(checkpoint: str, task: str, metric: str, value: float, stderr: float | None, n: int,
                   metrics: dict, settings: dict, versions: dict, higher_is_better: bool = True, **extra) -> dict:
    return {
        "schema": SCHEMA, "checkpoint": str(checkpoint), "task": task, "metric": metric, "value": float(value),
        "stderr": None if stderr is None else float(stderr), "n": int(n), "higher_is_better": bool(higher_is_better),
        **extra, "metrics": metrics, "settings": settings, "versions": {**versions, "poft": poft_version},
    }


def write_record(out_dir: str | Path, record: dict) -> Path:
    """<out_dir>/<task>.json, written atomically."""
    path = Path(out_dir) / f"{record['task']}.json"
    write_json(path, record)
    return path
