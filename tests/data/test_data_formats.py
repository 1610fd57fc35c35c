"""Format converters: one hand-written row per layout, exact messages, ids and meta."""

from __future__ import annotations

import json
import re

import pytest

from poft.data import FORMATS, DataError, load_conversations
from poft.data.errors import RowError
from poft.data.formats import detect_format

U, A, S = "user", "assistant", "system"


def turns(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def test_registry_names():
    assert sorted(FORMATS) == ["alpaca", "auto", "dolly", "messages", "openhermes", "sharegpt", "sharegpt-pairs",
                               "ultrachat"]


def test_messages():
    row = {"id": "m1", "messages": turns((S, "be nice"), (U, "hi"), (A, "hello")), "flaw": "verbose"}
    assert FORMATS["messages"](row) == (turns((S, "be nice"), (U, "hi"), (A, "hello")), "m1", {"flaw": "verbose"})
    assert FORMATS["messages"]({"messages": turns((U, "a"), (A, "b"))})[1] is None


def test_messages_drop_extra_message_keys():
    row = {"messages": [{"role": U, "content": "a", "name": "x"}, {"role": A, "content": "b"}]}
    assert FORMATS["messages"](row)[0] == turns((U, "a"), (A, "b"))


def test_sharegpt_maps_every_role_alias():
    names = ["system", "human", "gpt", "user", "chatgpt", "Human", "assistant", "user", "bard", "human", "bing"]
    row = {"id": 7, "conversations": [{"from": n, "value": f"t{i}"} for i, n in enumerate(names)], "source": "x"}
    messages, gid, meta = FORMATS["sharegpt"](row)
    assert [m["role"] for m in messages] == [S, U, A, U, A, U, A, U, A, U, A]
    assert [m["content"] for m in messages] == [f"t{i}" for i in range(11)]
    assert (gid, meta) == ("7", {"source": "x"})


def test_sharegpt_unknown_role_passes_through_for_validation():
    row = {"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]}
    assert FORMATS["sharegpt"](row)[0] == turns((U, "a"), ("bot", "b"))


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"instruction": "Sum.", "input": "2 3", "output": "5"}, turns((U, "Sum.\n\n2 3"), (A, "5"))),
        ({"instruction": "Sum.", "input": "", "output": "5"}, turns((U, "Sum."), (A, "5"))),
        ({"instruction": "Sum.", "input": "  ", "output": "5"}, turns((U, "Sum."), (A, "5"))),
        ({"instruction": "Sum.", "output": "5"}, turns((U, "Sum."), (A, "5"))),
        ({"instruction": "Sum.", "input": None, "output": "5"}, turns((U, "Sum."), (A, "5"))),
        ({"instruction": "Sum.", "output": "5", "system": "Be terse."}, turns((S, "Be terse."), (U, "Sum."), (A, "5"))),
    ],
)
def test_alpaca(row, expected):
    assert FORMATS["alpaca"](row) == (expected, None, {})


def test_alpaca_keeps_id_and_unconsumed_fields():
    row = {"id": "x", "instruction": "i", "input": "", "output": "o", "text": "### Instruction: i", "label": 1}
    assert FORMATS["alpaca"](row) == (turns((U, "i"), (A, "o")), "x", {"text": "### Instruction: i", "label": 1})


def test_dolly():
    row = {"instruction": "Who wrote it?", "context": "Ann wrote the book.", "response": "Ann.", "category": "closed_qa"}
    assert FORMATS["dolly"](row) == (turns((U, "Who wrote it?\n\nAnn wrote the book."), (A, "Ann.")), None,
                                     {"category": "closed_qa"})
    row = {"instruction": "Name a color.", "context": "", "response": "Red.", "category": "brainstorming"}
    assert FORMATS["dolly"](row)[0] == turns((U, "Name a color."), (A, "Red."))


def test_sharegpt_pairs():
    row = {"conversation_id": 7, "category": "code",
           "conversation": [{"human": "q1", "assistant": "a1"}, {"human": "q2", "assistant": "a2"}]}
    assert FORMATS["sharegpt-pairs"](row) == (turns((U, "q1"), (A, "a1"), (U, "q2"), (A, "a2")), "7",
                                              {"category": "code"})


def test_ultrachat():
    row = {"prompt": "hi", "prompt_id": "abc123", "messages": turns((U, "hi"), (A, "hello"))}
    assert FORMATS["ultrachat"](row) == (turns((U, "hi"), (A, "hello")), "abc123", {})


def test_openhermes_v1_and_v25():
    v1 = {"instruction": "i", "input": "x", "output": "o"}
    v25 = {
        "conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "r"}],
        "source": "airoboros2.2", "category": "orca", "id": None,
    }
    assert FORMATS["openhermes"](v1) == (turns((U, "i\n\nx"), (A, "o")), None, {})
    assert FORMATS["openhermes"](v25) == (turns((S, "s"), (U, "q"), (A, "r")), None, {"source": "airoboros2.2", "category": "orca"})
    with pytest.raises(RowError, match=re.escape(
        "cannot detect format 'openhermes': expected 'conversations' or 'instruction'+'output', found fields: text"
    )):
        FORMATS["openhermes"]({"text": "t"})


@pytest.mark.parametrize(
    "row, fmt",
    [
        ({"messages": turns((U, "a"), (A, "b"))}, "messages"),
        ({"prompt": "a", "prompt_id": "p", "messages": turns((U, "a"), (A, "b"))}, "ultrachat"),
        ({"conversations": [{"from": "human", "value": "a"}]}, "sharegpt"),
        ({"instruction": "a", "output": "b"}, "alpaca"),
    ],
)
def test_auto_detection(row, fmt):
    assert detect_format(row) == fmt
    assert FORMATS["auto"](row) == FORMATS[fmt](row)


def test_auto_detection_failure_names_fields_found():
    msg = (
        "cannot detect format: expected one of 'prompt_id'+'prompt'+'messages', 'messages', 'conversations', "
        "'instruction'+'output'; found fields: instruction, text"
    )
    with pytest.raises(RowError, match=re.escape(msg) + "$"):
        FORMATS["auto"]({"instruction": "a", "text": "b"})


def _write(tmp_path, rows, name="train.jsonl"):
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return name


GOOD = {"instruction": "i", "output": "o"}
GOOD_ROWS = {
    "alpaca": lambda i: dict(GOOD, id=f"g{i}"),
    "auto": lambda i: dict(GOOD, id=f"g{i}"),
    "sharegpt": lambda i: {"id": f"g{i}", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    "messages": lambda i: {"id": f"g{i}", "messages": turns((U, "q"), (A, "a"))},
    "ultrachat": lambda i: {"prompt": "q", "prompt_id": f"g{i}", "messages": turns((U, "q"), (A, "a"))},
    "dolly": lambda i: {"id": f"g{i}", "instruction": "q", "context": "", "response": "a"},
    "sharegpt-pairs": lambda i: {"conversation_id": f"g{i}", "conversation": [{"human": "q", "assistant": "a"}]},
}


@pytest.mark.parametrize(
    "row, fmt, message",
    [
        ({"id": "abc", "instruction": "i"}, "alpaca", "train.jsonl: line 5 (id=abc): missing field 'output' for format 'alpaca'"),
        ({"instruction": "i", "output": None}, "alpaca", "train.jsonl: line 5: missing field 'output' for format 'alpaca'"),
        ({"id": 3, "conversations": [{"from": "human"}]}, "sharegpt",
         "train.jsonl: line 5 (id=3): missing field 'conversations[0].value' for format 'sharegpt'"),
        ({"messages": "hi"}, "messages", "train.jsonl: line 5: field 'messages': expected a list for format 'messages', got str"),
        ({"messages": ["hi"]}, "messages", "train.jsonl: line 5: field 'messages[0]': expected an object for format 'messages', got str"),
        ({"prompt_id": "p9", "messages": []}, "ultrachat", "train.jsonl: line 5 (id=p9): missing field 'prompt' for format 'ultrachat'"),
        ({"instruction": "i", "input": 5, "output": "o"}, "alpaca",
         "train.jsonl: line 5: field 'input': expected a string for format 'alpaca', got int"),
        ({"id": 1.5, "instruction": "i", "output": "o"}, "alpaca",
         "train.jsonl: line 5: field 'id': id must be a string or integer, got float"),
        ({"foo": 1}, "auto", "train.jsonl: line 5: cannot detect format: expected one of"),
        ({"instruction": "i", "context": ""}, "dolly", "train.jsonl: line 5: missing field 'response' for format 'dolly'"),
        ({"conversation_id": "c9", "conversation": [{"human": "q"}]}, "sharegpt-pairs",
         "train.jsonl: line 5 (id=c9): missing field 'conversation[0].assistant' for format 'sharegpt-pairs'"),
        ({"conversation": ["q"]}, "sharegpt-pairs",
         "train.jsonl: line 5: field 'conversation[0]': expected an object for format 'sharegpt-pairs', got str"),
    ],
)
def test_conversion_errors_name_origin_row_id_and_field(tmp_path, monkeypatch, row, fmt, message):
    monkeypatch.chdir(tmp_path)
    rows = [GOOD_ROWS[fmt](i) for i in range(4)] + [row]  # the bad row is row 4, after four good ones
    with pytest.raises(DataError, match=re.escape(message)):
        load_conversations(_write(tmp_path, rows), fmt=fmt)


def test_unknown_format_lists_valid_ones(tmp_path):
    msg = "unknown format 'csv' (valid formats: auto, messages, sharegpt, alpaca, ultrachat, openhermes, dolly, sharegpt-pairs)"
    with pytest.raises(DataError, match=re.escape(msg)):
        load_conversations(_write(tmp_path, [GOOD]), fmt="csv")
