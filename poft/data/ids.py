"""Stable conversation ids.

Downstream stages (splits, caches, per-example analysis) key on ids, so an id must not depend on row
order or on the machine: a given id is kept verbatim, and a missing one is derived from the content.
"""

from __future__ import annotations

from typing import Any

from poft.data.errors import RowError
from poft.io import canonical_json, sha256_text


def given_id(value: Any, field: str = "id") -> str | None:
    """Normalise an id a source row gave: non-empty strings and ints are ids; None/"" mean "none given".

    Anything else (a float from a pandas NaN column, a list) is rejected rather than stringified, since
    "1.0" or "nan" would silently become ids that collide or never match the source.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RowError("bad_id", f"field '{field}': id must be a string or integer, got {type(value).__name__}")


def stable_id(messages: list[dict]) -> str:
    """`"h" + sha256(canonical_json(messages))[:16]`: same content gives the same id on every run.

    Content that JSON cannot encode (e.g. bytes from a parquet file) still needs an id so validation can
    report it against that row; it is hashed through `repr` instead, and validation then rejects it.
    """
    try:
        text = canonical_json(messages)
    except (TypeError, ValueError):
        text = repr(messages)
    return "h" + sha256_text(text)[:16]


def resolve_id(given: str | None, messages: list[dict]) -> str:
    return given if given is not None else stable_id(messages)
