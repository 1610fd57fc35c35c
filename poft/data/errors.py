"""The one exception type data loading raises, the located `Problem`s it is made of, and their accumulator.

`DataError` subclasses `ValueError` so callers that already catch bad-input errors keep working, while
code that wants to tell "your data is wrong" apart from programming errors can catch it precisely.

Loading makes one pass over a source and meets every problem in it: `DataErrors` collects them (the first
`MAX_LISTED` verbatim, all of them counted by reason), so strict mode fails once with the whole list instead
of once per bad row, and lenient mode reports the same list as what it dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

MAX_LISTED = 20  # problems listed verbatim in an error or a report; the rest are counted by reason


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a source, and where: the file (`origin`), its line and column (line-based files),
    or its row (0-based index among the source's rows), the id the row claims, and the field at fault."""

    reason: str  # key under which it is counted, e.g. "unknown_role", "invalid_json"
    field: str  # path inside the row, e.g. "messages[2].role"; "" when the detail names it or none applies
    detail: str
    origin: str | None = None
    row: int | None = None
    line: int | None = None  # 1-based line of the file
    column: int | None = None  # 1-based character column on that line
    id: str | None = None

    def at(self, origin: str, row: int | None = None, line: int | None = None, conv_id: object = None) -> Problem:
        """This problem located in a source; an id that is not a non-empty string is left out of messages."""
        conv_id = conv_id if isinstance(conv_id, str) and conv_id else None
        return dataclasses.replace(self, origin=origin, row=row, line=line, id=conv_id)

    @property
    def message(self) -> str:
        """`origin: line L column C (id=x): field 'f': detail`, or `origin: row i ...` where no line is known."""
        return f"{location(self.origin, self.row, self.line, self.column, self.id)}: " + (
            f"field '{self.field}': " if self.field else "") + self.detail


def place(row: int | None, line: int | None, column: int | None = None) -> str:
    """`line L` (with `column C` when known) for line-based files, else `row i`: what a user looks up."""
    if line is not None:
        return f"line {line}" + (f" column {column}" if column is not None else "")
    return f"row {row}" if row is not None else ""


def location(origin: str | None, row: int | None, line: int | None = None, column: int | None = None,
             conv_id: str | None = None) -> str:
    """The common head of every per-row message, so they read (and grep) alike."""
    where = place(row, line, column)
    head = f"{origin}: {where}" if where else str(origin)
    return head + (f" (id={conv_id})" if conv_id is not None else "")


class DataError(ValueError):
    """Input data is unusable; the message names the origin (file), line or row, id and field at fault.

    `problems` holds the problems behind it (the first `MAX_LISTED`), `counts` all of them by reason.
    """

    def __init__(self, message: str, problems: list[Problem] | None = None, counts: dict[str, int] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])
        self.counts = dict(counts or {})


class RowError(DataError):
    """A problem with one row found where the origin and row index are not known (inside a converter).

    The caller that iterates rows adds the context and records it as a `Problem` under `reason`, so converters
    stay pure functions of a single row.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class DataErrors:
    """Every problem one pass over `origin` met: the first `limit` kept, all counted by reason."""

    origin: str
    limit: int = MAX_LISTED
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, problem: Problem) -> None:
        self.counts[problem.reason] = self.counts.get(problem.reason, 0) + 1
        if len(self.problems) < self.limit:
            self.problems.append(problem)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def error(self, n_rows: int | None = None, unit: str = "rows") -> DataError:
        """One `DataError` for all of them: a single problem is its own message; several are listed (the first
        `limit`), then counted by reason."""
        if len(self) == 1:
            return DataError(self.problems[0].message, self.problems, self.counts)
        of = f" in {n_rows} {unit}" if n_rows is not None else ""
        lines = [f"{self.origin}: {len(self)} problems{of}:"]
        lines += [f"  {p.message}" for p in self.problems]
        if len(self) > len(self.problems):
            lines.append(f"  ... and {len(self) - len(self.problems)} more")
        lines.append("by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items())))
        return DataError("\n".join(lines), self.problems, self.counts)

    def raise_if_any(self, n_rows: int | None = None, unit: str = "rows") -> None:
        if self.counts:
            raise self.error(n_rows, unit)
