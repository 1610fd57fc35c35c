"""The one exception type data loading raises, plus the row-level problem converters report.

`DataError` subclasses `ValueError` so callers that already catch bad-input errors keep working, while
code that wants to tell "your data is wrong" apart from programming errors can catch it precisely.
"""

from __future__ import annotations


class DataError(ValueError):
    """Input data is unusable; the message names the origin (file), row, id and field at fault."""


class RowError(DataError):
    """A problem with one row found where the origin and row index are not known (inside a converter).

    The caller that iterates rows adds the context and either raises a `DataError` (strict) or counts the
    row under `reason` (lenient), so converters stay pure functions of a single row.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def row_prefix(origin: str, index: int, conv_id: str | None) -> str:
    """`origin: row i (id=x)` — the common head of every per-row message, so they read (and grep) alike."""
    id_part = f" (id={conv_id})" if conv_id is not None else ""
    return f"{origin}: row {index}{id_part}"
