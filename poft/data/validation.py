"""Check normalized conversations before they reach training, and account for every rejected one.

Each check returns its own specific problem (reason key, field path, detail) instead of a generic
"invalid row", so a failing dataset says exactly what to fix. Every row is checked in one pass: lenient mode
drops each bad conversation and counts it under its reason, strict mode then fails once, listing them all
(the first `MAX_LISTED`, then counts by reason), so nothing disappears unreported and one run shows every fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from poft.data.errors import MAX_LISTED, DataErrors, Problem, place
from poft.data.readers import UNPARSABLE

ROLES = ("system", "user", "assistant")
FIELDS = ("id", "messages", "meta")


@dataclass
class ValidationReport:
    """What validation kept and dropped; `examples` holds the first messages verbatim for a quick look and
    `unparsable_lines` the line of every entry that was not JSON (or cut off), which holds no row to count."""

    origin: str
    n_rows: int = 0
    n_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    unparsable_lines: list[int] = field(default_factory=list)
    errors: DataErrors | None = field(default=None, compare=False, repr=False)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def record_drop(self, problem: Problem) -> None:
        self.dropped[problem.reason] = self.dropped.get(problem.reason, 0) + 1
        if len(self.examples) < MAX_LISTED:
            self.examples.append(problem.message)
        if problem.reason in UNPARSABLE and problem.line is not None:
            self.unparsable_lines.append(problem.line)
        if self.errors is None:
            self.errors = DataErrors(self.origin)
        self.errors.add(problem)

    def raise_if_dropped(self) -> None:
        """Strict mode's end of the pass: one `DataError` listing every problem, if there was any."""
        if self.errors is not None:
            self.errors.raise_if_any(self.n_rows)

    def to_dict(self) -> dict:
        return {
            "origin": self.origin, "n_rows": self.n_rows, "n_kept": self.n_kept,
            "n_dropped": self.n_dropped, "dropped": dict(sorted(self.dropped.items())), "examples": list(self.examples),
            "unparsable_lines": list(self.unparsable_lines),
        }

    def summary(self) -> str:
        head = f"{self.origin}: kept {self.n_kept}/{self.n_rows} conversations"
        if not self.dropped:
            return head + ", dropped none"
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items()))
        return head + f", dropped {self.n_dropped} ({reasons})"


def _type(x: object) -> str:
    return type(x).__name__


def check_shape(conv: dict) -> Problem | None:
    """The normalized layout itself; matters for files read back from disk, which anyone may have edited."""
    if not isinstance(conv, dict):
        return Problem("bad_shape", "", f"conversation must be an object, got {_type(conv)}")
    extra = [k for k in conv if k not in FIELDS]
    if extra:
        return Problem("bad_shape", str(extra[0]), f"unexpected field (expected only: {', '.join(FIELDS)})")
    if not isinstance(conv.get("id"), str) or not conv["id"]:
        return Problem("bad_id", "id", f"id must be a non-empty string, got {conv.get('id')!r}")
    if not isinstance(conv.get("messages"), list):
        return Problem("bad_shape", "messages", f"messages must be a list, got {_type(conv.get('messages'))}")
    if not isinstance(conv.get("meta", {}), dict):
        return Problem("bad_shape", "meta", f"meta must be an object, got {_type(conv.get('meta'))}")
    return None


def check_turn(j: int, msg: object) -> Problem | None:
    where = f"messages[{j}]"
    if not isinstance(msg, dict):
        return Problem("bad_shape", where, f"message must be an object, got {_type(msg)}")
    role, content = msg.get("role"), msg.get("content")
    if role not in ROLES:
        return Problem("unknown_role", f"{where}.role", f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
    if not isinstance(content, str):
        return Problem("content_type", f"{where}.content", f"content must be a string, got {_type(content)}")
    if not content.strip():
        return Problem("empty_content", f"{where}.content", "empty content")
    return None


def check_turns(conv: dict) -> Problem | None:
    for j, msg in enumerate(conv["messages"]):
        if problem := check_turn(j, msg):
            return problem
    return None


def check_has_assistant(conv: dict) -> Problem | None:
    if not any(m["role"] == "assistant" for m in conv["messages"]):
        return Problem("no_assistant_turn", "messages", "no assistant turn")
    return None


def check_order(conv: dict) -> Problem | None:
    """An optional leading system turn, then user/assistant alternating from user: what chat templates expect."""
    roles = [m["role"] for m in conv["messages"]]
    for j, role in enumerate(roles):
        if role == "system" and j > 0:
            return Problem("system_not_first", "messages", f"system turn only allowed first, found at messages[{j}]")
    start = 1 if roles and roles[0] == "system" else 0
    if roles[start] != "user":
        return Problem("first_not_user", "messages", f"first non-system turn must be user, got {roles[start]}")
    for j in range(start + 1, len(roles)):
        if roles[j] == roles[j - 1]:
            return Problem(
                "not_alternating", "messages", f"turns do not alternate: {roles[j - 1]} followed by {roles[j]} at messages[{j}]"
            )
    return None


def check_last(conv: dict) -> Problem | None:
    """A trailing user turn has no response to learn from, so it is a data error rather than silently cut."""
    last = conv["messages"][-1]["role"]
    if last != "assistant":
        return Problem("last_not_assistant", "messages", f"last turn must be assistant, got {last}")
    return None


# Run in order; each assumes the previous ones passed (e.g. order checks assume known roles, >= 1 assistant).
CHECKS: tuple[Callable[[dict], Problem | None], ...] = (
    check_shape, check_turns, check_has_assistant, check_order, check_last,
)


def find_problem(conv: dict) -> Problem | None:
    for check in CHECKS:
        if problem := check(conv):
            return problem
    return None


class Validator:
    """Stateful row-by-row validation (duplicate ids need memory), shared by `validate` and the loader.

    The loader feeds rows with their source index (and line, for line-based files), so messages point at the
    right place even when earlier rows failed to parse or convert. Call `finish` after the last row: in strict
    mode it raises one `DataError` for everything recorded.
    """

    def __init__(self, origin: str, strict: bool = True) -> None:
        self.report = ValidationReport(origin)
        self.strict = strict
        self._first_seen: dict[str, str] = {}

    def reject(self, problem: Problem) -> None:
        """A located problem: the row is dropped and counted (and, in strict mode, reported by `finish`)."""
        self.report.record_drop(problem)

    def drop(self, problem: Problem) -> None:
        """An entry that never became a conversation (invalid JSON, a cut-off line, a failed conversion): a row
        read and dropped."""
        self.report.n_rows += 1
        self.reject(problem)

    def check(self, index: int, conv: dict, line: int | None = None) -> bool:
        """True if `conv` is kept; ids are reserved only by kept conversations."""
        self.report.n_rows += 1
        problem = find_problem(conv)
        if problem is None and conv["id"] in self._first_seen:
            problem = Problem("duplicate_id", "id", f"duplicate id (first seen at {self._first_seen[conv['id']]})")
        if problem is not None:
            conv_id = conv.get("id") if isinstance(conv, dict) else None
            self.reject(problem.at(self.report.origin, row=index, line=line, conv_id=conv_id))
            return False
        self._first_seen[conv["id"]] = place(index, line)
        self.report.n_kept += 1
        return True

    def finish(self) -> ValidationReport:
        if self.strict:
            self.report.raise_if_dropped()
        return self.report


def validate(conversations: Iterable[dict], origin: str, strict: bool = True) -> tuple[list[dict], ValidationReport]:
    """Return the valid conversations (in order) and a report; strict mode raises one `DataError` listing every
    problem instead of dropping."""
    validator = Validator(origin, strict)
    kept = [conv for i, conv in enumerate(conversations) if validator.check(i, conv)]
    return kept, validator.finish()
