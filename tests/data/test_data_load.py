"""load/save/read round trip, stable ids and the dataset fingerprint."""

from __future__ import annotations

import copy
import os
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
    with pytest.raises(DataError, match=re.escape(f"t.jsonl: line 3 (id={hid}): field 'id': duplicate id (first seen at line 1)")):
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
    assert report.examples[0].startswith("t.jsonl: line 2: cannot detect format:")
    assert report.examples[2].startswith("t.jsonl: line 4 (id=h")


def test_alpaca_missing_output_counts_as_missing_field():
    convs, report = load_conversations(write_jsonl("t.jsonl", [{"instruction": "q", "input": ""}]), fmt="alpaca", strict=False)
    assert convs == []
    assert report.dropped == {"missing_field": 1}
    assert report.examples == ["t.jsonl: line 1: missing field 'output' for format 'alpaca'"]


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
    with pytest.raises(DataError, match=re.escape("c.jsonl: line 2 (id=a): field 'id': duplicate id (first seen at line 1)")):
        read_conversations("c.jsonl")
    write_jsonl("d.jsonl", [{"id": "a", "messages": msgs("q", "a"), "meta": {}, "label": 1}])
    with pytest.raises(DataError, match=re.escape("d.jsonl: line 1 (id=a): field 'label': unexpected field")):
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


def damaged_file(name):
    """14 valid rows, 7 malformed ones (each its own reason), a line cut off mid-object and a truncated last line,
    as a user's hand-made corpus after a bad merge and an interrupted download. 23 lines; returns the name."""
    good = [json.dumps({"id": f"v{i}", "messages": msgs(f"q{i}", f"a{i}")}) for i in range(14)]
    bad = [json.dumps(r) for r in (
        {"id": 1.5, "messages": msgs("q", "a")},  # line 4
        {"text": "no known layout"},  # line 8
        {"id": "b-role", "messages": [{"role": U, "content": "q"}, {"role": "bot", "content": "a"}]},  # line 11
        {"id": "b-alpaca", "instruction": "q"},  # line 13
        {"id": "b-empty", "messages": msgs("q", "  ")},  # line 15
        {"id": "b-noreply", "messages": [{"role": U, "content": "q"}]},  # line 19
        {"id": "v0", "messages": msgs("again", "again")},  # line 21
    )]
    cut = '{"id": "cut", "messages": [{"role": "user", "content": "q"}, {"role": "assi'  # line 9
    lines = (good[:3] + bad[:1] + good[3:6] + bad[1:2] + [cut] + [good[6], bad[2], good[7], bad[3], good[8], bad[4]]
             + good[9:12] + [bad[5], good[12], bad[6], good[13]])
    truncated = '{"id": "last", "messages": [{"role": "user", "content": "q"}, {"ro'  # line 23, no newline
    with open(name, "w") as f:
        f.write("\n".join(lines) + "\n" + truncated)
    return name


DAMAGED_PROBLEMS = [
    "damaged.jsonl: line 4: field 'id': id must be a string or integer, got float",
    "damaged.jsonl: line 8: cannot detect format: expected one of 'prompt_id'+'prompt'+'messages', 'messages', "
    "'conversations', 'instruction'+'output'; found fields: text",
    "damaged.jsonl: line 9 column 71: line cut off mid-value, the next line starts a new one (Unterminated string)",
    "damaged.jsonl: line 11 (id=b-role): field 'messages[1].role': unknown role 'bot' (expected one of: system, user, "
    "assistant)",
    "damaged.jsonl: line 13 (id=b-alpaca): cannot detect format: expected one of 'prompt_id'+'prompt'+'messages', "
    "'messages', 'conversations', 'instruction'+'output'; found fields: id, instruction",
    "damaged.jsonl: line 15 (id=b-empty): field 'messages[1].content': empty content",
    "damaged.jsonl: line 19 (id=b-noreply): field 'messages': no assistant turn",
    "damaged.jsonl: line 21 (id=v0): field 'id': duplicate id (first seen at line 1)",
    "damaged.jsonl: line 23 column 64: truncated last line: no newline at the end of the file and the JSON stops "
    "mid-value (Unterminated string)",
]
DAMAGED_REASONS = {"bad_id": 1, "cut_off_line": 1, "duplicate_id": 1, "empty_content": 1, "no_assistant_turn": 1,
                   "truncated_last_line": 1, "unknown_format": 2, "unknown_role": 1}


def test_damaged_file_lenient_keeps_exactly_the_valid_rows_and_reports_every_drop():
    convs, report = load_conversations(damaged_file("damaged.jsonl"), strict=False)
    assert [c["id"] for c in convs] == [f"v{i}" for i in range(14)]
    assert convs[0]["messages"] == msgs("q0", "a0")  # the first v0, not the later duplicate
    assert report.to_dict() == {"origin": "damaged.jsonl", "n_rows": 23, "n_kept": 14, "n_dropped": 9,
                                "dropped": DAMAGED_REASONS, "examples": DAMAGED_PROBLEMS, "unparsable_lines": [9, 23]}


def test_damaged_file_strict_lists_all_nine_problems_in_one_run():
    with pytest.raises(DataError) as e:
        load_conversations(damaged_file("damaged.jsonl"))
    assert str(e.value) == "\n".join(
        ["damaged.jsonl: 9 problems in 23 rows:"] + [f"  {p}" for p in DAMAGED_PROBLEMS]
        + ["by reason: bad_id=1, cut_off_line=1, duplicate_id=1, empty_content=1, no_assistant_turn=1, "
           "truncated_last_line=1, unknown_format=2, unknown_role=1"])
    assert e.value.counts == DAMAGED_REASONS and len(e.value.problems) == 9


def test_prepare_on_the_damaged_file(capsys):
    """`poft prepare` fails once (exit 2) listing all nine; with --lenient it writes the 14 and reports the 9."""
    from poft.cli import main

    damaged_file("damaged.jsonl")
    assert main(["prepare", "--source", "damaged.jsonl", "--out", "out.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("poft prepare: error: damaged.jsonl: 9 problems in 23 rows:\n")
    assert all(p in err for p in DAMAGED_PROBLEMS) and not os.path.exists("out.jsonl")
    assert main(["prepare", "--source", "damaged.jsonl", "--lenient", "--out", "out.jsonl"]) == 0
    assert [c["id"] for c in read_conversations("out.jsonl")] == [f"v{i}" for i in range(14)]
    report = json.loads(open("out.jsonl.report.json").read())
    assert (report["n_kept"], report["n_dropped"], report["unparsable_lines"]) == (14, 9, [9, 23])
    assert report["dropped"] == DAMAGED_REASONS
