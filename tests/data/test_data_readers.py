"""read_rows: every supported source kind, written on the spot in tmp_path (the hub path via a fake)."""

from __future__ import annotations

import json
import re

import datasets
import pandas as pd
import pytest

from poft.data import DataError
from poft.data.readers import read_rows

ROWS = [
    {"id": "a", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "n": 1},
    {"id": "b", "messages": [{"role": "user", "content": "yo"}, {"role": "assistant", "content": "hey"}], "n": 2},
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Relative paths keep the origin in messages short, so tests can assert them exactly."""
    monkeypatch.chdir(tmp_path)


def test_jsonl_skips_blank_lines(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps(ROWS[0]) + "\n\n  \n" + json.dumps(ROWS[1]) + "\n")
    assert read_rows("d.jsonl") == (ROWS, "d.jsonl")


def test_jsonl_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "data.jsonl").write_text(json.dumps(ROWS[0]) + "\n\nnot json\n")
    msg = "data.jsonl: line 3: invalid JSON (Expecting value: line 1 column 1 (char 0))"
    with pytest.raises(DataError, match=re.escape(msg) + "$"):
        read_rows("data.jsonl")


def test_jsonl_non_object_line(tmp_path):
    (tmp_path / "data.jsonl").write_text("[1, 2]\n")
    with pytest.raises(DataError, match=re.escape("data.jsonl: line 1: expected a JSON object, got list")):
        read_rows("data.jsonl")


def test_json_list_and_single_key_wrapper(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps(ROWS))
    (tmp_path / "w.json").write_text(json.dumps({"data": ROWS}))
    assert read_rows("l.json") == (ROWS, "l.json")
    assert read_rows("w.json") == (ROWS, "w.json")


def test_json_other_shapes_fail(tmp_path):
    (tmp_path / "two.json").write_text(json.dumps({"a": [], "b": []}))
    (tmp_path / "items.json").write_text(json.dumps([{"x": 1}, "oops"]))
    msg = "two.json: expected a list of objects or an object with a single list value, got dict with keys: a, b"
    with pytest.raises(DataError, match=re.escape(msg)):
        read_rows("two.json")
    with pytest.raises(DataError, match=re.escape("items.json: row 1: expected a JSON object, got str")):
        read_rows("items.json")


def test_parquet_nested_messages_come_back_as_python_lists(tmp_path):
    df = pd.DataFrame(ROWS, index=[10, 11])  # a non-default index is stored as a column; it must not leak
    df.to_parquet(tmp_path / "d.parquet")
    rows, origin = read_rows("d.parquet")
    assert origin == "d.parquet"
    assert rows == ROWS
    assert type(rows[0]["messages"]) is list and type(rows[0]["messages"][0]) is dict


def test_saved_dataset_directory(tmp_path):
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    assert read_rows("ds", split="anything") == (ROWS, "ds")


def test_saved_dataset_dict_picks_split(tmp_path):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:1])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert read_rows("dd", split="test") == (ROWS[:1], "dd[test]")
    assert read_rows("dd") == (ROWS, "dd[train]")
    with pytest.raises(DataError, match=re.escape("dd: no split 'validation' (available splits: test, train)")):
        read_rows("dd", split="validation")


def test_directory_that_is_not_a_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=re.escape("empty: not a dataset directory written by save_to_disk")):
        read_rows("empty")


def test_hub_source_calls_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(repo_id, name=None, split=None):
        calls.append((repo_id, name, split))
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert read_rows("hf:HuggingFaceH4/ultrachat_200k", split="train_sft") == (
        ROWS, "hf:HuggingFaceH4/ultrachat_200k[train_sft]"
    )
    assert read_rows("hf:teknium/openhermes:default") == (ROWS, "hf:teknium/openhermes:default[train]")
    assert calls == [("HuggingFaceH4/ultrachat_200k", None, "train_sft"), ("teknium/openhermes", "default", "train")]


def test_hub_failure_becomes_data_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    msg = "hf:org/x[train]: cannot load from the Hugging Face Hub (ConnectionError: no network)"
    with pytest.raises(DataError, match=re.escape(msg)):
        read_rows("hf:org/x")
    with pytest.raises(DataError, match=re.escape("hf:: a hub source needs a repo id")):
        read_rows("hf:")


def test_missing_path_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=re.escape("nope.jsonl: no such file or directory") + "$"):
        read_rows("nope.jsonl")
    (tmp_path / "d.csv").write_text("a,b\n")
    msg = (
        "d.csv: unsupported file type '.csv' "
        "(supported: .jsonl, .json, .parquet, a save_to_disk directory, hf:<repo_id>[:<config>])"
    )
    with pytest.raises(DataError, match=re.escape(msg) + "$"):
        read_rows("d.csv")
