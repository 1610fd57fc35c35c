"""Load SFT data from common public layouts into one normalized, validated conversation form.

A conversation is `{"id": str, "messages": [{"role", "content"}], "meta": {...}}`. Loading is
read -> convert -> assign stable ids -> validate; every later stage can then trust the shape, and the
fingerprint lets caches and runs prove which data they saw.
"""

from __future__ import annotations

import os
from pathlib import Path

from poft.data.errors import DataError, RowError
from poft.data.formats import FORMATS, conversion_message, to_conversation, get_converter
from poft.data.readers import read_rows
from poft.data.validation import ValidationReport, Validator, validate
from poft.io import canonical_json, sha256_text, write_jsonl

__all__ = [
    "DataError", "FORMATS", "ValidationReport", "dataset_fingerprint", "load_conversations", "read_conversations",
    "read_rows", "save_conversations", "validate",
]


def load_conversations(
    source: str, fmt: str = "auto", split: str = "train", strict: bool = True
) -> tuple[list[dict], ValidationReport]:
    """Read, convert, id and validate `source`; rows that fail conversion count as drops like invalid ones.

    Conversion and validation run in one pass over the rows so strict mode reports the first bad row in
    file order, whichever kind of problem it has.
    """
    get_converter(fmt)  # an unknown format name is a usage error, raised even when there are no rows
    rows, origin = read_rows(source, split)
    validator = Validator(origin, strict)
    kept = []
    for i, row in enumerate(rows):
        try:
            conv = to_conversation(row, fmt)
        except RowError as e:
            validator.report.n_rows += 1
            validator.reject(e.reason, conversion_message(origin, i, row, e))
            continue
        if validator.check(i, conv):
            kept.append(conv)
    return kept, validator.report


def _normalized(conv: dict) -> dict:
    """Fixed key order (id, messages, meta) so saved files diff cleanly and hash the same."""
    return {"id": conv["id"], "messages": conv["messages"], "meta": conv.get("meta", {})}


def save_conversations(path: str | os.PathLike, conversations: list[dict]) -> int:
    """Write normalized JSONL atomically; validated first so every file we write is one we can read back."""
    kept, _ = validate(conversations, str(path), strict=True)
    return write_jsonl(path, (_normalized(c) for c in kept))


def read_conversations(path: str | os.PathLike) -> list[dict]:
    """Read our normalized JSONL back, validating strictly: a hand-edited file fails loudly, not downstream."""
    from poft.data.readers import FILE_READERS

    origin = str(path)
    if not os.path.isfile(origin):
        raise DataError(f"{origin}: no such file or directory")
    rows = FILE_READERS[".jsonl"](Path(path), origin)
    kept, _ = validate(rows, origin, strict=True)
    return [_normalized(c) for c in kept]


def dataset_fingerprint(conversations: list[dict]) -> str:
    """sha256 over the ordered (id, messages) pairs; meta is excluded so analysis labels do not change it."""
    return sha256_text(canonical_json([[c["id"], c["messages"]] for c in conversations]))
