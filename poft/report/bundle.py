"""The report's inputs in one compact, self-contained folder, so anyone can recompute every table and verdict.

    <results>/data/results.parquet   every checkpoint x task metric (collect's long table, no Overall rows)
    <results>/data/items.parquet     every checkpoint x task x item score (percent), with item groups
    <results>/data/scores.parquet    each dataset's mean aligned score per sample
    <results>/data/trace.parquet     every run's recorded trace: per epoch and sample, r_theta, aligned, tau, group
    <results>/data/inputs.json       filter outputs' counts (Table 4) and the report's options

`poft report` writes this folder first and builds every output from what it reads back, so
`poft report --from <results> --out-dir DIR` (no work dir, no metrics files) gives the same files byte for
byte. Parquet keeps float64 exactly; the run records in records.jsonl are kept beside it as provenance only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..io import atomic_path, read_json, write_json
from .collect import COLUMNS, ITEM_COLUMNS, MetricsFileError, _typed, with_overall
from .stats import score_spread
from .trace import TRACE_COLUMNS, typed as typed_trace
from .verdicts import Evidence

SCHEMA = "poft.report-data/1"
FILES = ("results.parquet", "items.parquet", "scores.parquet", "inputs.json")
TRACE = "trace.parquet"  # written by every report since runs record traces; a folder from before has none


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_bundle(folder: str | Path, results: pd.DataFrame, items: pd.DataFrame, scores: dict[str, dict],
                 kept: dict[tuple, dict], options: dict, trace: pd.DataFrame) -> None:
    """scores: {dataset: merged score file}; trace: poft.report.trace.collect_traces' frame."""
    folder = Path(folder)
    _write_parquet(folder / "results.parquet", results[COLUMNS])
    _write_parquet(folder / "items.parquet", items[ITEM_COLUMNS])
    _write_parquet(folder / TRACE, typed_trace(trace))
    # "kind": the layout of earlier folders, which held the target's scores too (kind "target")
    rows = [{"dataset": ds, "kind": "aligned", "id": str(r["id"]),
             "score": math.nan if r["score"] is None else float(r["score"])}
            for ds, obj in sorted(scores.items()) for r in obj["rows"]]
    _write_parquet(folder / "scores.parquet", pd.DataFrame(rows, columns=["dataset", "kind", "id", "score"]))
    write_json(folder / "inputs.json", {"schema": SCHEMA, "options": options,
                                        "kept": [{"base": b, "dataset": d, "variant": v, **meta}
                                                 for (b, d, v), meta in sorted(kept.items())]})


def read_bundle(folder: str | Path) -> dict:
    """{"results", "items", "scores", "kept", "options", "trace"} as `write_bundle` took them."""
    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise MetricsFileError(f"{folder}: not a report data folder (missing {', '.join(missing)}); "
                               "`poft report` writes one under <results>/data")
    inputs = read_json(folder / "inputs.json")
    if inputs.get("schema") != SCHEMA:
        raise MetricsFileError(f"{folder / 'inputs.json'}: field 'schema': expected {SCHEMA!r}")
    results = _typed(pd.read_parquet(folder / "results.parquet"))
    items = pd.read_parquet(folder / "items.parquet").astype({"seed": "Int64", "epoch": "Int64", "score": "float64",
                                                              "item": "string", "group": "string"})
    sc = pd.read_parquet(folder / "scores.parquet")
    aligned = sc[sc["kind"] == "aligned"]
    scores = {ds: {"meta": {}, "rows": [{"id": i, "score": None if math.isnan(s) else s}
                                        for i, s in zip(g["id"], g["score"])]}
              for ds, g in aligned.groupby("dataset", sort=True)}
    kept = {(k.pop("base"), k.pop("dataset"), k.pop("variant")): k for k in (dict(x) for x in inputs["kept"])}
    trace = pd.read_parquet(folder / TRACE) if (folder / TRACE).is_file() else pd.DataFrame(columns=TRACE_COLUMNS)
    return {"results": results, "items": items, "scores": scores, "kept": kept, "options": inputs["options"],
            "trace": typed_trace(trace)}


def evidence(data: dict) -> Evidence:
    """The `verdicts.Evidence` a report data folder (`read_bundle`) describes: Overall rows added, the aligned-
    score spreads computed, every option applied. `build` and `power` read a folder through this alone."""
    o = data["options"]
    spreads = {ds: score_spread(obj) for ds, obj in data["scores"].items()}
    return Evidence(with_overall(data["results"], o["overall_tasks"]), chat_tasks=list(o["chat_tasks"]),
                    overall_tasks=list(o["overall_tasks"]), focus_task=o["focus_task"],
                    noise_datasets=list(o["noise_datasets"]), main=o["main_datasets"], spreads=spreads or None,
                    items=data["items"], min_effect=o["min_effect"], level=o["level"])
