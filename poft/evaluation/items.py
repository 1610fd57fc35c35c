"""Per-item scores of one evaluation, in a compact file beside its metrics JSON, for item-level paired statistics.

    <out_dir>/<task>.json        the metrics record; it names its items file: "items_file", "n_items"
    <out_dir>/<task>.items.json  {"schema": "poft.items/1", "task", "metric", "ids": [str], "scores": [float],
                                  "groups": [str] | null, "checksum": "sha256:..."}

`scores[i]` is item `ids[i]`'s score in the record's units (percent: a right answer 100, a wrong one 0; a win 100,
a draw 50, a loss 0; continuous metrics scaled alike), so that the record's `value` is their plain mean. Ids are
stable across checkpoints (a bench row's id or index in a fixed data file, a win-rate prompt's id): two arms
evaluated on the same data pair item by item. `groups[i]` is the cluster item i belongs to (e.g. the micro task
type), where the suite names a field for it. `checksum` is the sha256 of the rest (poft.io.payload_checksum): a file
changed after it was written is refused by name, never averaged (files written before checksums existed have none,
and are checked for shape only).

    read_items("metrics/<run>/epoch1/micro_gen_arith.json")  # -> {"task", "metric", "ids", "scores", "groups", "path"}
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..io import CHECKSUM, CorruptFileError, verify_checksum, with_checksum, write_json

SCHEMA = "poft.items/1"


class ItemsFileError(ValueError):
    """A malformed or corrupted items file, or a metrics record that names none; the message names the file and
    the field."""


def items_file_name(task: str) -> str:
    return f"{task}.items.json"


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_items(obj, where: str) -> dict:
    """`obj` if it is a valid poft.items/1 object, else ItemsFileError naming `where` and the field."""
    if not isinstance(obj, dict):
        raise ItemsFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for field in ("schema", "task", "metric", "ids", "scores", "groups"):
        if field not in obj:
            raise ItemsFileError(f"{where}: missing field {field!r}")
    if obj["schema"] != SCHEMA:
        raise ItemsFileError(f"{where}: field 'schema': expected {SCHEMA!r}, got {obj['schema']!r}")
    for field in ("task", "metric"):
        if not isinstance(obj[field], str) or not obj[field]:
            raise ItemsFileError(f"{where}: field {field!r}: expected a non-empty string, got {obj[field]!r}")
    ids, scores, groups = obj["ids"], obj["scores"], obj["groups"]
    if not isinstance(ids, list) or not ids:
        raise ItemsFileError(f"{where}: field 'ids': expected a non-empty list, got {ids!r:.60}")
    seen = {}
    for i, item in enumerate(ids):
        if not isinstance(item, str) or not item:
            raise ItemsFileError(f"{where}: field 'ids': item {i}: expected a non-empty string, got {item!r}")
        if item in seen:
            raise ItemsFileError(f"{where}: field 'ids': duplicate id {item!r} (items {seen[item]} and {i})")
        seen[item] = i
    for field, values in (("scores", scores), ("groups", groups)):
        if field == "groups" and values is None:
            continue
        if not isinstance(values, list) or len(values) != len(ids):
            size = len(values) if isinstance(values, list) else type(values).__name__
            raise ItemsFileError(f"{where}: field {field!r}: expected a list of {len(ids)} (one per id), got {size}")
    for i, x in enumerate(scores):
        if not _is_number(x):
            raise ItemsFileError(f"{where}: field 'scores': item {i} ({ids[i]!r}): expected a finite number, got {x!r}")
    for i, g in enumerate(groups or []):
        if not isinstance(g, str):
            raise ItemsFileError(f"{where}: field 'groups': item {i} ({ids[i]!r}): expected a string, got {g!r}")
    return obj


def make_items(task: str, metric: str, ids: list[str], scores: list[float], groups: list[str] | None = None) -> dict:
    """A checked poft.items/1 object (writing one the reader would refuse is an error at once)."""
    items = {"schema": SCHEMA, "task": task, "metric": metric, "ids": list(ids), "scores": [float(s) for s in scores],
             "groups": None if groups is None else list(groups)}
    return check_items(items, f"items of task {task!r}")


def mean_score(items: dict) -> float:
    return math.fsum(items["scores"]) / len(items["scores"])


def _agrees(mean: float, value) -> bool:
    # lm-eval and alpaca_eval average fractions, poft scales to percent: float noise only, far below 1e-6 points.
    return _is_number(value) and math.isclose(mean, value, rel_tol=1e-9, abs_tol=1e-6)


def check_mean(items: dict, value: float, where: str) -> None:
    """The record's value must be the plain mean of its item scores (both percent)."""
    mean = mean_score(items)
    if not _agrees(mean, value):
        raise ValueError(f"{where}: the mean of the {len(items['scores'])} item scores is {mean!r}, but the metric "
                         f"value is {value!r}")


def write_items(out_dir: str | Path, items: dict) -> Path:
    """<out_dir>/<task>.items.json, written atomically on one line (thousands of items: no indentation)."""
    path = Path(out_dir) / items_file_name(items["task"])
    write_json(path, with_checksum(items), indent=None)
    return path


def _load(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ItemsFileError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ItemsFileError(f"{path}: not JSON ({e})") from None


def read_items(metrics_path: str | Path, record: dict | None = None) -> dict:
    """The per-item scores behind a metrics JSON: {"task", "metric", "ids", "scores", "groups", "path"}.

    The items file is the one the record names ("items_file", beside it). It must agree with the record: same
    task and metric, `n_items` items, and scores whose mean is the record's value. `record`: the metrics JSON
    already read (by a caller that needed it anyway), else it is read here.
    """
    metrics_path = Path(metrics_path)
    record = _load(metrics_path) if record is None else record
    if not isinstance(record, dict):
        raise ItemsFileError(f"{metrics_path}: expected a JSON object, got {type(record).__name__}")
    name = record.get("items_file")
    if not isinstance(name, str) or not name:
        raise ItemsFileError(f"{metrics_path}: field 'items_file': expected the name of the items file beside it, "
                             f"got {name!r}")
    path = metrics_path.parent / name
    obj = _load(path)
    if isinstance(obj, dict) and CHECKSUM in obj:
        try:
            verify_checksum(obj, path)
        except CorruptFileError as e:
            raise ItemsFileError(f"{e}; re-run the evaluation that wrote it") from None
    items = check_items(obj, str(path))
    for field in ("task", "metric"):
        if items[field] != record.get(field):
            raise ItemsFileError(f"{path}: field {field!r}: {items[field]!r}, but its metrics record {metrics_path} "
                                 f"says {record.get(field)!r}")
    n = record.get("n_items")
    if n != len(items["ids"]):
        raise ItemsFileError(f"{path}: field 'ids': {len(items['ids'])} items, but its metrics record {metrics_path} "
                             f"says n_items={n!r}")
    if not _agrees(mean_score(items), record.get("value")):
        raise ItemsFileError(f"{path}: field 'scores': their mean is {mean_score(items)!r}, but its metrics record "
                             f"{metrics_path} says value={record.get('value')!r}")
    return {"task": items["task"], "metric": items["metric"], "ids": items["ids"], "scores": items["scores"],
            "groups": items["groups"], "path": str(path)}
