"""Load SFT data from common public layouts into one normalized, validated conversation form.

A conversation is `{"id": str, "messages": [{"role", "content"}], "meta": {...}}`. Loading is
read -> convert -> assign stable ids -> validate; every later stage can then trust the shape, and the
fingerprint lets caches and runs prove which data they saw.
"""

from __future__ import annotations

import os

from poft.data.errors import DataError, Problem, RowError
from poft.data.formats import FORMATS, get_converter, peek_id, to_conversation
from poft.data.readers import read_jsonl, read_rows, read_source
from poft.data.validation import ValidationReport, Validator, validate
from poft.io import canonical_json, sha256_text, write_jsonl

__all__ = [
    "DataError", "FORMATS", "ValidationReport", "dataset_fingerprint", "load_conversations", "read_conversations",
    "read_rows", "save_conversations", "validate",
]


def load_conversations(
    source: str, fmt: str = "auto", split: str = "train", strict: bool = True
) -> tuple[list[dict], ValidationReport]:
    """Read, convert, id and validate `source` in one pass; every problem is a drop counted under its reason:
    an entry the reader could not parse, a row that fails conversion, a conversation that fails validation.

    Lenient mode returns what is left and the report; strict mode raises one `DataError` listing every problem
    (in file order) once the pass is done, so one run shows all there is to fix.
    """
    get_converter(fmt)  # an unknown format name is a usage error, raised even when there are no rows
    read = read_source(source, split)
    validator = Validator(read.origin, strict)
    kept = []
    for entry in read.in_order():
        if isinstance(entry, Problem):  # not a row at all: invalid JSON, a cut-off line, a non-object
            validator.drop(entry)
            continue
        row, index, line = entry
        try:
            conv = to_conversation(row, fmt)
        except RowError as e:
            validator.drop(Problem(e.reason, "", e.detail).at(read.origin, row=index, line=line, conv_id=peek_id(row)))
            continue
        if validator.check(index, conv, line):
            kept.append(conv)
    return kept, validator.finish()


def _normalized(conv: dict) -> dict:
    """Fixed key order (id, messages, meta) so saved files diff cleanly and hash the same."""
    return {"id": conv["id"], "messages": conv["messages"], "meta": conv.get("meta", {})}


def save_conversations(path: str | os.PathLike, conversations: list[dict]) -> int:
    """Write normalized JSONL atomically; validated first so every file we write is one we can read back."""
    kept, _ = validate(conversations, str(path), strict=True)
    return write_jsonl(path, (_normalized(c) for c in kept))


def read_conversations(path: str | os.PathLike) -> list[dict]:
    """Read our normalized JSONL back, validating strictly: a hand-edited file fails loudly (listing every
    problem), not downstream."""
    read = read_jsonl(path)
    validator = Validator(read.origin, strict=True)
    for entry in read.in_order():
        if isinstance(entry, Problem):
            validator.drop(entry)
        else:
            row, index, line = entry
            validator.check(index, row, line)
    validator.finish()
    return [_normalized(c) for c in read.rows]


def dataset_fingerprint(conversations: list[dict]) -> str:
    """sha256 over the ordered (id, messages) pairs; meta is excluded so analysis labels do not change it."""
    return sha256_text(canonical_json([[c["id"], c["messages"]] for c in conversations]))
