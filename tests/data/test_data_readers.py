"""read_rows: every supported source kind, written on the spot in tmp_path (the hub path via a fake)."""

from __future__ import annotations

import json
import re

import datasets
import pandas as pd
import pytest

from poft.data import DataError
from poft.data.readers import read_rows, read_source

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
    msg = "data.jsonl: line 3 column 1: invalid JSON (Expecting value)"
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


LINE = json.dumps(ROWS[0])  # 111 characters


def test_jsonl_problems_are_located_at_the_files_line_and_column(tmp_path):
    """A BOM, CRLF endings and a bad line deep in the file: the column is the decoder's on that line, the line
    the file's (not "line 1" of the fragment the decoder saw)."""
    text = "\ufeff" + LINE + "\r\n\r\n" + '{"id": "x",, "n": 1}\r\n' + json.dumps(ROWS[1]) + "\r\n"
    (tmp_path / "d.jsonl").write_text(text, newline="")
    read = read_source("d.jsonl")
    assert read.rows == ROWS and read.lines == [1, 4] and read.index == [0, 2]
    assert [p.message for p in read.problems] == ["d.jsonl: line 3 column 12: invalid JSON (Expecting property name "
                                                  "enclosed in double quotes)"]


def test_jsonl_cut_off_line_and_truncated_last_line_are_problems_not_the_end(tmp_path):
    cut = LINE[:70]  # cut just after the quote that opens "assistant" (column 70)
    (tmp_path / "d.jsonl").write_text(f"{LINE}\n{cut}\n{json.dumps(ROWS[1])}\n{LINE[:-2]}")
    read = read_source("d.jsonl")
    assert read.rows == ROWS and read.lines == [1, 3]
    assert [(p.reason, p.line, p.column) for p in read.problems] == [("cut_off_line", 2, 70),
                                                                      ("truncated_last_line", 4, 110)]
    with pytest.raises(DataError) as e:
        read_rows("d.jsonl")
    assert str(e.value) == (
        "d.jsonl: 2 problems in 4 entries:\n"
        "  d.jsonl: line 2 column 70: line cut off mid-value, the next line starts a new one (Unterminated string)\n"
        "  d.jsonl: line 4 column 110: truncated last line: no newline at the end of the file and the JSON stops "
        "mid-value (Expecting value)\n"
        "by reason: cut_off_line=1, truncated_last_line=1"
    )


def test_jsonl_bad_bytes_and_non_objects_are_located(tmp_path):
    (tmp_path / "d.jsonl").write_bytes(b'{"id": "caf\xe9"}\n[1, 2]\n' + b"[" * 100_000 + b"\n" + LINE.encode() + b"\n")
    read = read_source("d.jsonl")
    assert read.rows == [ROWS[0]] and read.lines == [4]
    assert [p.message for p in read.problems] == [
        "d.jsonl: line 1 column 12: not valid UTF-8 (invalid continuation byte)",
        "d.jsonl: line 2: expected a JSON object, got list",
        "d.jsonl: line 3: invalid JSON (nested too deeply to read)",
    ]


def test_json_list_cut_off_keeps_the_complete_rows(tmp_path):
    text = json.dumps(ROWS + [ROWS[0]], indent=1)
    (tmp_path / "l.json").write_text(text[:-30])
    (tmp_path / "w.json").write_text(json.dumps({"data": ROWS + [ROWS[0]]})[:-30])
    for name in ("l.json", "w.json"):
        read = read_source(name)
        assert read.rows == ROWS and [p.reason for p in read.problems] == ["truncated_file"]
    assert read_source("l.json").problems[0].message == (
        "l.json: line 39 column 16: file cut off inside the list of rows (Unterminated string); 2 complete entries "
        "before it are read, nothing after it can be")
    with pytest.raises(DataError, match=re.escape("l.json: line 39 column 16: file cut off")):
        read_rows("l.json")


def test_json_broken_outside_the_list_is_an_error_at_its_line_and_column(tmp_path):
    (tmp_path / "x.json").write_text('[\n  {"a": 1}\n] trailing\n')
    with pytest.raises(DataError, match=re.escape("x.json: line 3 column 3: invalid JSON (Extra data)") + "$"):
        read_rows("x.json")
    (tmp_path / "u.json").write_bytes(b'[\n {"a": "\xff"}]')
    with pytest.raises(DataError, match=re.escape("u.json: line 2 column 9: not valid UTF-8 (invalid start byte)")):
        read_rows("u.json")


def test_lone_surrogate_escapes_are_a_problem_of_their_row(tmp_path):
    """`"\\ud800"` is valid JSON but not Unicode text: no later stage could hash or write the row."""
    (tmp_path / "d.jsonl").write_text('{"id": "a", "meta": {"k": ["ok", "\\ud800"]}}\n{"id": "\\ud83d\\ude00"}\n')
    read = read_source("d.jsonl")
    assert read.rows == [{"id": "\U0001f600"}]  # a proper surrogate pair is an emoji
    assert [p.message for p in read.problems] == [
        "d.jsonl: line 1: field 'meta.k[1]': a lone surrogate (\\ud800-\\udfff escape): not valid Unicode text"]
