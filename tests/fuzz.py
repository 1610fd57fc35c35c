"""Shared pieces of the property-based (hypothesis) tests: malformed values, row mutations, damaged lines.

Each fuzz test asks one thing of a reader or a config check: whatever it is given, it accepts it or raises its
own named error, never a traceback. `POFT_FUZZ_EXAMPLES` sets the examples per test (default 150: the suite stays
fast); `POFT_FUZZ_EXAMPLES=500 pytest -m fuzz --hypothesis-show-statistics` runs 24 tests x 500 = 12,000 cases.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("POFT_FUZZ_EXAMPLES", "150"))
# CI draws the same examples every run (a red CI must not depend on the draw); elsewhere each run draws anew.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# Any JSON value, odd ones included: NaN and infinities (Python's json reads and writes them), huge and negative
# numbers, empty and whitespace strings, control and non-BMP characters, nested lists and objects.
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from([float("inf"), float("-inf"), float("nan"), 10**400, -(10**400), 2**63])
           | st.sampled_from(["", " ", "\n", "user", "assistant", "system", "gpt", "human", "bot", "\u2028", "🙂", "\ud800"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def paths(value, prefix=()) -> list[tuple]:
    """Every key / index path inside a JSON value (the value itself is ())."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, prefix + (i,))
    return out


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@st.composite
def mutated(draw, row: dict):
    """`row` with one field anywhere in it (every path is a candidate) deleted, replaced by any JSON value, or
    emptied; or an unknown field added."""
    row = _copy(row)
    path = draw(st.sampled_from(paths(row)[1:] or [()]))
    op = draw(st.sampled_from(["delete", "replace", "empty", "add"]))
    if op == "add" or not path:
        row[draw(st.text(max_size=6))] = draw(json_values)
        return row
    parent = row
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if op == "delete":
        del parent[key]
    elif op == "empty":
        parent[key] = type(parent[key])() if isinstance(parent[key], (list, dict, str)) else None
    else:
        parent[key] = draw(json_values)
    return row


garbage_lines = st.sampled_from([
    "not json", "{", "}", "[1, 2", '{"a": 1} extra', "'single quotes'", '{"a": NaN,}', "1" * 5000, "[" * 5000,
    '{"messages": "\\ud800"}', '"just a string"', "42", "null", "[]", "{}", "\t", "\u00a0", "\x00",
]) | st.text(max_size=30).filter(lambda s: "\n" not in s and "\r" not in s)
