"""Fuzzed readers of preference pairs, score files and per-item files: malformed in any field, each is accepted
or refused with its own named error (DataError, ScoreFileError, ItemsFileError), never a traceback; an intact
file is always accepted."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from fuzz import FUZZ, garbage_lines, json_values, mutated
from hypothesis import given
from hypothesis import strategies as st

from poft.controls import pairs_from_source
from poft.data import DataError
from poft.data.readers import read_source
from poft.dpo import read_pairs, validate_pairs
from poft.evaluation.items import ItemsFileError, items_file_name, make_items, read_items, write_items
from poft.scoring import ScoreFileError, merge_scores, read_scores

pytestmark = pytest.mark.fuzz
texts = st.text(min_size=1, max_size=10).filter(str.strip)


@st.composite
def pair_row(draw, k: int) -> dict:
    """A valid preference row: TRL's layout, UltraFeedback-binarized's, or plain strings."""
    q, a, b = draw(texts), draw(texts), draw(texts)
    if a == b:
        b = a + "!"
    layout = draw(st.sampled_from(["trl", "ultrafeedback", "plain"]))
    if layout == "trl":
        return {"id": f"p{k}", "prompt": [{"role": "user", "content": q}],
                "chosen": [{"role": "assistant", "content": a}], "rejected": [{"role": "assistant", "content": b}]}
    if layout == "ultrafeedback":
        user = {"role": "user", "content": q}
        return {"prompt_id": f"p{k}", "prompt": q, "chosen": [user, {"role": "assistant", "content": a}],
                "rejected": [user, {"role": "assistant", "content": b}]}
    return {"id": k, "prompt": q, "chosen": a, "rejected": b}


@FUZZ
@given(data=st.data())
def test_preference_pairs_of_any_shape(data):
    rows, lines = [], []
    for k in range(data.draw(st.integers(0, 6))):
        row = data.draw(pair_row(k))
        kind = data.draw(st.sampled_from(["good", "bad", "bad", "garbage"]))
        if kind == "garbage":
            lines.append(data.draw(garbage_lines))
            continue
        row = row if kind == "good" else data.draw(mutated(row))
        rows.append(row)
        lines.append(json.dumps(row))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
        try:
            pairs = pairs_from_source(read_source(str(path)))
        except DataError as e:
            assert str(e).startswith(str(path)) and e.counts
            return
        validate_pairs(pairs)  # what prepare-pairs writes, DPO accepts
        path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
        assert read_pairs(path) == pairs


def _score_file(draw_rows: list[dict], model: str = "m") -> dict:
    return {"meta": {"kind": "aligned", "model": model, "dataset_fingerprint": "fp"}, "rows": draw_rows}


@st.composite
def score_file(draw) -> dict:
    n = draw(st.integers(1, 4))
    rows = [{"id": f"s{i}", "score": draw(st.none() | st.floats(-50, 0)), "n_tokens": 3, "truncated": False}
            for i in range(n)]
    obj = _score_file(rows, draw(st.sampled_from(["a", "b"])))
    return draw(st.sampled_from([obj, draw(mutated(obj))]))


@FUZZ
@given(files=st.lists(score_file(), min_size=1, max_size=3), raw=st.none() | garbage_lines)
def test_score_files_of_any_shape(files, raw):
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, obj in enumerate(files):
            path = Path(tmp) / f"s{k}.json"
            path.write_text(json.dumps(obj))  # ASCII escapes: a lone surrogate stays in the file as \ud800
            paths.append(path)
        if raw is not None:
            paths[0].write_text(raw)
        for path in paths:
            try:
                read = read_scores(path)
            except ScoreFileError as e:
                assert str(e).startswith(str(path))
                continue
            assert all(isinstance(r["id"], str) for r in read["rows"])
        try:
            merged = merge_scores(paths, names=[f"m{k}" for k in range(len(paths))])
        except ScoreFileError:
            return
        assert merged["meta"]["n_samples"] == len(merged["rows"])


@FUZZ
@given(data=st.data())
def test_items_files_of_any_shape(data):
    n = data.draw(st.integers(1, 4))
    items = make_items("t", "acc", [f"t/{i}" for i in range(n)], [100.0] * n, data.draw(st.none() | st.just(["g"] * n)))
    record = {"schema": "poft.metrics/1", "task": "t", "metric": "acc", "value": 100.0,
              "items_file": items_file_name("t"), "n_items": n}
    kind = data.draw(st.sampled_from(["intact", "items", "record", "bytes"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_items(tmp, items)
        if kind == "items":  # any field changed: the checksum (or the shape check) refuses it
            path.write_text(json.dumps(data.draw(mutated(json.loads(path.read_text())))))
        elif kind == "bytes":
            text = path.read_text()
            path.write_text(text[: data.draw(st.integers(0, len(text)))])
        elif kind == "record":
            record = data.draw(mutated(record))
        (Path(tmp) / "t.json").write_text(json.dumps(record if data.draw(st.booleans()) else data.draw(json_values)))
        try:
            got = read_items(Path(tmp) / "t.json")
        except ItemsFileError as e:
            assert kind != "intact" or "record" in str(e) or "t.json" in str(e)
            return
        assert got["ids"] == items["ids"] and got["scores"] == items["scores"]
