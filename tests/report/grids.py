"""Synthetic grids for the report tests: metrics JSON files written in a tmp dir, plus their records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

TASKS = ["arith", "words"]  # the micro-like "Overall" suite of these tests
WIN = "winrate_micro"


def write_metrics(path: Path, task: str, value: float, metric: str = "acc", items: list[float] | None = None,
                  **extra) -> str:
    """A metrics file; with `items` (scores of items i0, i1, ...) also its items file, and value = their mean."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if items is not None:
        value = sum(items) / len(items)
        name = path.name.replace(".json", ".items.json")
        (path.parent / name).write_text(json.dumps({"schema": "poft.items/1", "task": task, "metric": metric,
                                                    "ids": [f"i{k}" for k in range(len(items))], "scores": items,
                                                    "groups": None}))
        extra = {**extra, "items_file": name, "n_items": len(items)}
    path.write_text(json.dumps({"schema": "poft.metrics/1", "checkpoint": str(path.parent), "task": task,
                                "metric": metric, "value": value, "stderr": 0.5, "n": 100, **extra}))
    return str(path)


class Grid:
    """Records for runs whose metric values come from `value(base, dataset, method, variant, seed, epoch, task)`."""

    def __init__(self, root: Path):
        self.root, self.records = root, []

    def add(self, base, dataset, method, variant, seed, epoch, task, value, metric="acc"):
        """value: a number, or a list of item scores (then the metric is their mean)."""
        name = f"{base}_{dataset}_{method}_{variant}_{seed}_{epoch}_{task}.json".replace(":", "-")
        items = list(value) if isinstance(value, (list, tuple)) else None
        f = write_metrics(self.root / name, task, 0.0 if items else value, metric, items=items)
        self.records.append({"base": base, "dataset": dataset, "method": method, "variant": variant,
                             "seed": seed, "epoch": epoch, "metrics_file": f})

    def runs(self, value: Callable, bases=("b1",), datasets=("d1",), methods=("sft", "poft"), variants=("full",),
             seeds=(0, 1), epochs=(1, 2, 3), tasks=tuple(TASKS)):
        for b in bases:
            for d in datasets:
                for m in methods:
                    for v in variants:
                        for s in seeds:
                            for e in epochs:
                                for t in tasks:
                                    metric = "win_rate" if t == WIN else "acc"
                                    self.add(b, d, m, v, s, e, t, value(b, d, m, v, s, e, t), metric)
        return self


def write_trace_run(run_dir: Path, taus: dict[int, dict[str, tuple[str, float]]], aligned: float = -1.0) -> Path:
    """A `poft train` run dir as the report reads its traces: per epoch a checkpoint (its marker names the epoch)
    with trace.json rows {id: (group, tau)}, r_theta and aligned made up."""
    for epoch, rows in taus.items():
        ckpt = run_dir / f"checkpoint-{10 * epoch}"
        ckpt.mkdir(parents=True)
        (ckpt / "poft_train_config.json").write_text(json.dumps({"epoch": epoch}))
        (ckpt / "trace.json").write_text(json.dumps({"meta": {"epoch": epoch}, "rows": [
            {"id": i, "group": g, "r_theta": -1.5, "aligned": aligned - k / 10, "tau": t}
            for k, (i, (g, t)) in enumerate(sorted(rows.items()))]}))
    return run_dir
