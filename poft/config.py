"""Typed option dataclasses from plain mappings (YAML files, `--set key=value`, the workflow config).

One place checks every run's options: unknown keys fail with the valid list, and values are converted to
the field's declared type — YAML reads `1e-5` as a string and `--set epochs=3` arrives as text — with an
error naming the key when they cannot be.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _convert(key: str, value: Any, hint: Any) -> Any:
    args = typing.get_args(hint)
    if type(None) in args:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"option {key!r}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"option {key!r}: expected {hint.__name__}, got {value!r}")
        try:
            converted = hint(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf), float(10**400)
            raise ValueError(f"option {key!r}: expected {hint.__name__}, got {value!r:.60}") from None
        if hint is int and isinstance(value, float) and value != converted:
            raise ValueError(f"option {key!r}: expected int, got {value!r}")
        if converted != converted:  # NaN: no option means anything with it
            raise ValueError(f"option {key!r}: expected a number, got {value!r}")
        return converted
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"option {key!r}: expected a string, got {value!r}")
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def from_mapping(cls: type[T], options: dict[str, Any], what: str = "option") -> T:
    """Build dataclass `cls` from `options`; unknown keys and badly typed values are errors naming the key."""
    if not isinstance(options, dict):
        raise ValueError(f"expected a mapping of {what}s, got {type(options).__name__}")
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _convert(k, v, hints[k]) for k, v in options.items()})
