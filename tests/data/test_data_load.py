"""load/save/read round trip, stable ids and the dataset fingerprint."""

from __future__ import annotations

import copy
import json
import re

import pytest

from poft.data import DataError, dataset_fingerprint, load_conversations, read_conversations, save_conversations
from poft.data.ids import stable_id
from poft.io import canonical_json, sha256_text

U, A = "user", "assistant"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write_jsonl(name, rows):
    with open(name, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return name


def msgs(q, a):
    return [{"role": U, "content": q}, {"role": A, "content": a}]


def test_load_end_to_end_mixed_formats():
    rows = [
        {"id": "s1", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "flaw": "none"},
        {"instruction": "i", "output": "o"},
        {"id": 12, "messages": msgs("x", "y")},
    ]
    convs, report = load_conversations(write_jsonl("t.jsonl", rows))
    assert convs == [
        {"id": "s1", "messages": msgs("q", "a"), "meta": {"flaw": "none"}},
        {"id": "h" + sha256_text(canonical_json(msgs("i", "o")))[:16], "messages": msgs("i", "o"), "meta": {}},
        {"id": "12", "messages": msgs("x", "y"), "meta": {}},
    ]
    assert report.summary() == "t.jsonl: kept 3/3 conversations, dropped none"


def test_stable_id_depends_only_on_content():
    assert stable_id(msgs("q", "a")) == stable_id(copy.deepcopy(msgs("q", "a")))
    assert stable_id(msgs("q", "a")) != stable_id(msgs("q", "b"))
    assert stable_id(msgs("q", "a")) == "h" + sha256_text('[{"content":"q","role":"user"},{"content":"a","role":"assistant"}]')[:16]
    a, _ = load_conversations(write_jsonl("a.jsonl", [{"instruction": "q", "output": "a"}]))
    b, _ = load_conversations(write_jsonl("b.jsonl", [{"other": 1, "instruction": "q", "output": "a"}]))
    assert a[0]["id"] == b[0]["id"] == stable_id(msgs("q", "a"))


def test_given_ids_are_kept_and_blank_ids_are_hashed():
    rows = [{"id": "given", **{"messages": msgs("q", "a")}}, {"id": 0, "messages": msgs("q", "b")}, {"id": "  ", "messages": msgs("q", "c")}]
    convs, _ = load_conversations(write_jsonl("t.jsonl", rows))
    assert [c["id"] for c in convs] == ["given", "0", stable_id(msgs("q", "c"))]


def test_identical_content_without_ids_is_a_duplicate():
    rows = [{"instruction": "q", "output": "a"}, {"instruction": "other", "output": "x"}, {"instruction": "q", "output": "a"}]
    hid = stable_id(msgs("q", "a"))
    with pytest.raises(DataError, match=re.escape(f"t.jsonl: row 2 (id={hid}): field 'id': duplicate id (first seen at row 0)")):
        load_conversations(write_jsonl("t.jsonl", rows))
    convs, report = load_conversations("t.jsonl", strict=False)
    assert [c["messages"] for c in convs] == [msgs("q", "a"), msgs("other", "x")]
    assert report.dropped == {"duplicate_id": 1}


def test_lenient_load_counts_conversion_failures_with_source_row_numbers():
    rows = [
        {"instruction": "q", "output": "a"},
        {"instruction": "no output"},
        {"text": "unknown layout"},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]},
        {"id": "ok", "messages": msgs("q2", "a2")},
    ]
    convs, report = load_conversations(write_jsonl("t.jsonl", rows), strict=False)
    assert [c["id"] for c in convs] == [stable_id(msgs("q", "a")), "ok"]
    assert report.to_dict()["dropped"] == {"unknown_format": 2, "unknown_role": 1}
    assert (report.n_rows, report.n_kept) == (5, 2)
    assert report.examples[0].startswith("t.jsonl: row 1: cannot detect format:")
    assert report.examples[2].startswith("t.jsonl: row 3 (id=h")


def test_alpaca_missing_output_counts_as_missing_field():
    convs, report = load_conversations(write_jsonl("t.jsonl", [{"instruction": "q", "input": ""}]), fmt="alpaca", strict=False)
    assert convs == []
    assert report.dropped == {"missing_field": 1}
    assert report.examples == ["t.jsonl: row 0: missing field 'output' for format 'alpaca'"]


def test_save_and_read_round_trip(tmp_path):
    convs = [
        {"meta": {"flaw": "x"}, "messages": msgs("q", "a"), "id": "a"},
        {"id": "b", "messages": msgs("q2", "a2"), "meta": {}},
    ]
    assert save_conversations(tmp_path / "out" / "c.jsonl", convs) == 2
    lines = (tmp_path / "out" / "c.jsonl").read_text().splitlines()
    assert list(json.loads(lines[0])) == ["id", "messages", "meta"]
    back = read_conversations(tmp_path / "out" / "c.jsonl")
    assert back == [{"id": "a", "messages": msgs("q", "a"), "meta": {"flaw": "x"}}, convs[1]]
    assert dataset_fingerprint(back) == dataset_fingerprint(convs)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["c.jsonl"]  # no temp file left behind


def test_save_refuses_invalid_data_and_leaves_no_file(tmp_path):
    with pytest.raises(DataError, match=re.escape("c.jsonl: row 0 (id=a): field 'messages': no assistant turn")):
        save_conversations("c.jsonl", [{"id": "a", "messages": [{"role": U, "content": "q"}], "meta": {}}])
    assert not (tmp_path / "c.jsonl").exists()


def test_read_conversations_validates_strictly(tmp_path):
    write_jsonl("c.jsonl", [{"id": "a", "messages": msgs("q", "a"), "meta": {}}, {"id": "a", "messages": msgs("q", "b"), "meta": {}}])
    with pytest.raises(DataError, match=re.escape("c.jsonl: row 1 (id=a): field 'id': duplicate id (first seen at row 0)")):
        read_conversations("c.jsonl")
    write_jsonl("d.jsonl", [{"id": "a", "messages": msgs("q", "a"), "meta": {}, "label": 1}])
    with pytest.raises(DataError, match=re.escape("d.jsonl: row 0 (id=a): field 'label': unexpected field")):
        read_conversations("d.jsonl")
    with pytest.raises(DataError, match=re.escape("missing.jsonl: no such file or directory")):
        read_conversations("missing.jsonl")


def test_fingerprint_tracks_ids_and_messages_not_meta():
    base = [{"id": "a", "messages": msgs("q", "a"), "meta": {}}, {"id": "b", "messages": msgs("q2", "a2"), "meta": {}}]
    fp = dataset_fingerprint(base)
    assert fp == sha256_text(canonical_json([["a", msgs("q", "a")], ["b", msgs("q2", "a2")]]))
    relabelled = copy.deepcopy(base)
    relabelled[0]["meta"] = {"flaw": "hallucination"}
    assert dataset_fingerprint(relabelled) == fp
    edited = copy.deepcopy(base)
    edited[1]["messages"][1]["content"] = "a2!"
    assert dataset_fingerprint(edited) != fp
    renamed = copy.deepcopy(base)
    renamed[0]["id"] = "z"
    assert dataset_fingerprint(renamed) != fp
    assert dataset_fingerprint(base[::-1]) != fp
