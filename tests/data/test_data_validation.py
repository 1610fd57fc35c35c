"""validate(): every failure has its own exact message; lenient mode drops and counts each by reason."""

from __future__ import annotations

import re

import pytest

from poft.data import DataError, ValidationReport, validate

U, A, S = "user", "assistant", "system"


def conv(cid, *roles_contents, meta=None):
    return {"id": cid, "messages": [{"role": r, "content": c} for r, c in roles_contents], "meta": meta or {}}


GOOD = conv("ok", (S, "sys"), (U, "q"), (A, "a"), (U, "q2"), (A, "a2"))

# (conversation, reason key, exact message for origin "d.jsonl" at row 1)
CASES = [
    (conv("c", (U, "q"), ("bot", "a")), "unknown_role",
     "d.jsonl: row 1 (id=c): field 'messages[1].role': unknown role 'bot' (expected one of: system, user, assistant)"),
    (conv("c", (U, "q"), (A, " \n ")), "empty_content", "d.jsonl: row 1 (id=c): field 'messages[1].content': empty content"),
    (conv("c", (U, 42), (A, "a")), "content_type",
     "d.jsonl: row 1 (id=c): field 'messages[0].content': content must be a string, got int"),
    (conv("c", (U, "q")), "no_assistant_turn", "d.jsonl: row 1 (id=c): field 'messages': no assistant turn"),
    (conv("c"), "no_assistant_turn", "d.jsonl: row 1 (id=c): field 'messages': no assistant turn"),
    (conv("c", (S, "s"), (U, "q"), (U, "q"), (A, "a")), "not_alternating",
     "d.jsonl: row 1 (id=c): field 'messages': turns do not alternate: user followed by user at messages[2]"),
    (conv("c", (U, "q"), (A, "a"), (A, "a")), "not_alternating",
     "d.jsonl: row 1 (id=c): field 'messages': turns do not alternate: assistant followed by assistant at messages[2]"),
    (conv("c", (U, "q"), (A, "a"), (U, "q"), (S, "s"), (A, "a")), "system_not_first",
     "d.jsonl: row 1 (id=c): field 'messages': system turn only allowed first, found at messages[3]"),
    (conv("c", (S, "s"), (A, "a"), (U, "q"), (A, "a")), "first_not_user",
     "d.jsonl: row 1 (id=c): field 'messages': first non-system turn must be user, got assistant"),
    (conv("c", (U, "q"), (A, "a"), (U, "q")), "last_not_assistant",
     "d.jsonl: row 1 (id=c): field 'messages': last turn must be assistant, got user"),
    (conv("ok", (U, "other"), (A, "thing")), "duplicate_id",
     "d.jsonl: row 1 (id=ok): field 'id': duplicate id (first seen at row 0)"),
    ({"id": "c", "messages": [], "extra": 1}, "bad_shape",
     "d.jsonl: row 1 (id=c): field 'extra': unexpected field (expected only: id, messages, meta)"),
    ({"id": "", "messages": []}, "bad_id", "d.jsonl: row 1: field 'id': id must be a non-empty string, got ''"),
    ({"id": "c", "messages": "hi"}, "bad_shape", "d.jsonl: row 1 (id=c): field 'messages': messages must be a list, got str"),
    ({"id": "c", "messages": ["hi"]}, "bad_shape",
     "d.jsonl: row 1 (id=c): field 'messages[0]': message must be an object, got str"),
    ({"id": "c", "messages": [], "meta": []}, "bad_shape", "d.jsonl: row 1 (id=c): field 'meta': meta must be an object, got list"),
    ("text", "bad_shape", "d.jsonl: row 1: conversation must be an object, got str"),
]
IDS = [f"{reason}-{i}" for i, (_, reason, _) in enumerate(CASES)]


def test_valid_conversations_pass_unchanged():
    kept, report = validate([GOOD, conv("x", (U, "q"), (A, "a"))], "d.jsonl")
    assert kept == [GOOD, conv("x", (U, "q"), (A, "a"))]
    assert report == ValidationReport("d.jsonl", n_rows=2, n_kept=2, dropped={}, examples=[])
    assert report.summary() == "d.jsonl: kept 2/2 conversations, dropped none"


@pytest.mark.parametrize("bad, reason, message", CASES, ids=IDS)
def test_strict_raises_specific_message(bad, reason, message):
    with pytest.raises(DataError, match=re.escape(message) + "$"):
        validate([GOOD, bad], "d.jsonl", strict=True)


@pytest.mark.parametrize("bad, reason, message", CASES, ids=IDS)
def test_lenient_drops_and_counts(bad, reason, message):
    kept, report = validate([GOOD, bad, conv("z", (U, "q"), (A, "a"))], "d.jsonl", strict=False)
    assert [c["id"] for c in kept] == ["ok", "z"]
    assert report.to_dict() == {
        "origin": "d.jsonl", "n_rows": 3, "n_kept": 2, "n_dropped": 1, "dropped": {reason: 1}, "examples": [message],
        "unparsable_lines": [],
    }


def test_strict_lists_every_problem_in_one_error_in_row_order():
    rows = [GOOD, conv("a", (U, "q")), conv("b", ("bot", "x"), (A, "a")), conv("c", (U, "q"), (A, "a"))]
    with pytest.raises(DataError) as e:
        validate(rows, "d.jsonl")
    assert str(e.value) == (
        "d.jsonl: 2 problems in 4 rows:\n"
        "  d.jsonl: row 1 (id=a): field 'messages': no assistant turn\n"
        "  d.jsonl: row 2 (id=b): field 'messages[0].role': unknown role 'bot' (expected one of: system, user, assistant)\n"
        "by reason: no_assistant_turn=1, unknown_role=1"
    )
    assert [p.id for p in e.value.problems] == ["a", "b"] and e.value.counts == {"no_assistant_turn": 1, "unknown_role": 1}


def test_strict_lists_the_first_20_and_counts_the_rest():
    rows = [conv(f"c{i}", (U, "q")) for i in range(24)] + [conv("x", (U, "q"), (A, " "))]
    with pytest.raises(DataError) as e:
        validate(rows, "d.jsonl")
    lines = str(e.value).splitlines()
    assert lines[0] == "d.jsonl: 25 problems in 25 rows:"
    assert lines[1:21] == [f"  d.jsonl: row {i} (id=c{i}): field 'messages': no assistant turn" for i in range(20)]
    assert lines[21:] == ["  ... and 5 more", "by reason: empty_content=1, no_assistant_turn=24"]


def test_lenient_report_counts_every_reason():
    rows = [GOOD] + [bad for bad, _, _ in CASES]
    kept, report = validate(rows, "d.jsonl", strict=False)
    assert kept == [GOOD]
    assert report.n_rows == len(CASES) + 1 and report.n_kept == 1 and report.n_dropped == len(CASES)
    assert report.dropped == {
        "bad_id": 1, "bad_shape": 5, "content_type": 1, "duplicate_id": 1, "empty_content": 1, "first_not_user": 1,
        "last_not_assistant": 1, "no_assistant_turn": 2, "not_alternating": 2, "system_not_first": 1, "unknown_role": 1,
    }
    assert report.summary() == (
        "d.jsonl: kept 1/18 conversations, dropped 17 (bad_id=1, bad_shape=5, content_type=1, duplicate_id=1, "
        "empty_content=1, first_not_user=1, last_not_assistant=1, no_assistant_turn=2, not_alternating=2, "
        "system_not_first=1, unknown_role=1)"
    )


def test_examples_are_capped_but_counts_are_not():
    rows = [conv(f"c{i}", (U, "q")) for i in range(25)]
    kept, report = validate(rows, "d.jsonl", strict=False)
    assert kept == [] and report.dropped == {"no_assistant_turn": 25}
    assert len(report.examples) == 20
    assert report.examples[19] == "d.jsonl: row 19 (id=c19): field 'messages': no assistant turn"


def test_dropped_conversation_does_not_reserve_its_id():
    """Ids are claimed by kept conversations only, so a valid later copy of a broken row survives."""
    rows = [conv("a", (U, "q")), conv("a", (U, "q"), (A, "a")), conv("a", (U, "q2"), (A, "a2"))]
    kept, report = validate(rows, "d.jsonl", strict=False)
    assert kept == [rows[1]]
    assert report.dropped == {"no_assistant_turn": 1, "duplicate_id": 1}
    assert report.examples[1] == "d.jsonl: row 2 (id=a): field 'id': duplicate id (first seen at row 1)"


def test_validate_does_not_mutate_input():
    rows = [conv("a", (U, "q"), (A, "a")), conv("b", (U, "q"))]
    before = repr(rows)
    validate(rows, "d.jsonl", strict=False)
    assert repr(rows) == before
