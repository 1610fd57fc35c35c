"""Fuzzed readers: files of every supported format with rows malformed in any field, unparsable and cut-off lines,
bad bytes and a truncated end. Whatever the file, loading accepts it or raises `DataError` (never a traceback);
lenient mode keeps exactly the rows that are valid on their own (first of duplicate ids) and reports every other
entry at its own line; strict mode fails with exactly the problems lenient mode dropped."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from fuzz import FUZZ, garbage_lines, mutated
from hypothesis import given
from hypothesis import strategies as st

from poft.data import DataError, load_conversations
from poft.data.errors import RowError
from poft.data.formats import to_conversation
from poft.data.validation import find_problem

pytestmark = pytest.mark.fuzz
FORMATS = ["auto", "messages", "sharegpt", "alpaca", "ultrachat", "openhermes", "dolly", "sharegpt-pairs"]
LAYOUTS = {"auto": ["messages", "sharegpt", "alpaca", "ultrachat"], "openhermes": ["alpaca", "sharegpt"]}
texts = st.text(min_size=1, max_size=15).filter(str.strip)


@st.composite
def good_row(draw, fmt: str, rid: str) -> dict:
    """A valid row of `fmt` (one of its layouts) with id `rid`."""
    layout = draw(st.sampled_from(LAYOUTS.get(fmt, [fmt])))
    q, a = draw(texts), draw(texts)
    turns = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    if layout == "messages":
        system = draw(st.booleans())
        return {"id": rid, "messages": ([{"role": "system", "content": "s"}] if system else []) + turns}
    if layout == "sharegpt":
        return {"id": rid, "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
    if layout == "alpaca":
        return {"id": rid, "instruction": q, "input": draw(st.sampled_from(["", "ctx"])), "output": a}
    if layout == "ultrachat":
        return {"prompt_id": rid, "prompt": q, "messages": turns}
    if layout == "dolly":
        return {"id": rid, "instruction": q, "context": "", "response": a, "category": "qa"}
    return {"conversation_id": rid, "conversation": [{"human": q, "assistant": a}]}


def alone(row, fmt: str) -> dict | None:
    """The conversation a row makes on its own, or None if it is invalid by itself (the test's oracle)."""
    if not isinstance(row, dict):
        return None
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: not text
        return None
    try:
        conv = to_conversation(row, fmt)
    except RowError:
        return None
    return conv if find_problem(conv) is None else None


def expected(rows: list, fmt: str) -> list[bool | dict]:
    """Per row, its conversation if lenient mode must keep it (valid alone, id not kept before), else False."""
    seen, out = set(), []
    for row in rows:
        conv = alone(row, fmt)
        keep = conv is not None and conv["id"] not in seen
        seen.update([conv["id"]] if keep else [])
        out.append(conv if keep else False)
    return out


@st.composite
def entries(draw, fmt: str) -> list[tuple[str, object]]:
    """A file's entries: valid rows, rows malformed in one field, garbage, lines cut off mid-object, bad bytes and
    blank lines, in any order."""
    out = []
    for k in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["good", "good", "bad", "bad", "garbage", "cut", "bytes", "blank"]))
        row = draw(good_row(fmt, f"g{k}"))
        if kind == "good":
            out.append(("row", row))
        elif kind == "bad":
            out.append(("row", draw(mutated(row))))
        elif kind == "garbage":
            out.append(("text", draw(garbage_lines)))
        elif kind == "cut":
            text = json.dumps(row)
            out.append(("text", text[: draw(st.integers(1, len(text) - 1))]))
        elif kind == "bytes":
            out.append(("bytes", draw(st.sampled_from([b'{"id": "\xff"}', b"\xc3\x28", b'{"x": "\xed\xa0\x80"}']))))
        else:
            out.append(("text", draw(st.sampled_from(["", "  ", "\t"]))))
    return out


def _line_of(message: str, origin: str) -> int:
    return int(re.match(rf"{re.escape(origin)}: line (\d+)", message).group(1))


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("fmt", FORMATS)
def test_jsonl_of_any_damage_loses_no_valid_row(fmt, data):
    items = data.draw(entries(fmt))
    newline = data.draw(st.sampled_from([b"\n", b"\r\n"]))
    ensure_ascii = data.draw(st.booleans())
    lines: list[bytes] = []
    rows, row_lines, unparsable = [], [], []  # what the oracle sees: each parsed object and its line
    for lineno, (kind, value) in enumerate(items, start=1):
        raw = value if kind == "bytes" else (json.dumps(value, ensure_ascii=ensure_ascii) if kind == "row" else value)
        raw = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
        lines.append(raw)
        if not raw.strip(b" \t\r"):
            continue
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            unparsable.append(lineno)
            continue
        rows.append(parsed)
        row_lines.append(lineno)
    truncated = data.draw(st.booleans()) and items and items[-1][0] == "row"
    body = newline.join(lines) + (b"" if truncated and data.draw(st.booleans()) else newline)
    keep = expected(rows, fmt)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.jsonl"
        path.write_bytes(body)
        origin = str(path)
        convs, report = load_conversations(origin, fmt, strict=False)
        assert [(c["id"], c["messages"]) for c in convs] == [(c["id"], c["messages"]) for c in keep if c]
        dropped = sorted(set(unparsable) | {line for line, k in zip(row_lines, keep) if not k})
        assert report.n_rows == len(dropped) + len(convs) and report.n_kept == len(convs)
        assert report.n_dropped == len(dropped) and report.unparsable_lines == unparsable
        assert [_line_of(m, origin) for m in report.examples] == dropped[:20]  # every drop at its own line
        if not dropped:
            assert load_conversations(origin, fmt)[0] == convs
            return
        with pytest.raises(DataError) as e:
            load_conversations(origin, fmt)
        assert e.value.counts == report.dropped and [p.message for p in e.value.problems] == report.examples


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("fmt", FORMATS)
def test_json_list_cut_anywhere_keeps_every_complete_valid_row(fmt, data):
    elements = []
    for k in range(data.draw(st.integers(0, 6))):
        row = data.draw(good_row(fmt, f"g{k}"))
        kind = data.draw(st.sampled_from(["good", "bad", "other"]))
        elements.append(row if kind == "good" else data.draw(mutated(row)) if kind == "bad"
                        else data.draw(st.sampled_from([1, "x", None, [], 12345])))
    sep = data.draw(st.sampled_from([", ", ",\n  ", ","]))
    head = data.draw(st.sampled_from(["[", '{"data": [', "\ufeff[\n"]))
    text, ends = head, []
    for k, element in enumerate(elements):
        text += (sep if k else "") + json.dumps(element)
        ends.append(len(text))
    text += "]" + ("}" if head.startswith("{") else "")
    cut = data.draw(st.integers(1, len(text)))
    text = text[:cut]
    keep = expected([e for e, end in zip(elements, ends) if end <= cut], fmt)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        if cut <= head.index("["):  # cut before the list begins: nothing to salvage, the file is refused by name
            with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: line \d+ column \d+: invalid JSON"):
                load_conversations(str(path), fmt, strict=False)
            return
        convs, report = load_conversations(str(path), fmt, strict=False)
        assert [(c["id"], c["messages"]) for c in convs] == [(c["id"], c["messages"]) for c in keep if c]
        assert report.n_kept == len(convs)
