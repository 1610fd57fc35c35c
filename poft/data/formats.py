"""Converters from public SFT dataset layouts to the normalized conversation form.

Each converter is a pure function of one row returning `(messages, given_id_or_None, meta)`, where
`meta` holds every field the converter did not consume, so labels hidden in the source (a flaw tag, a
source name) survive for analysis. Converters map role names they know and pass unknown ones through
unchanged: judging roles is validation's job, which reports them with row and field context.
"""

from __future__ import annotations

from typing import Any, Callable

from poft.data.errors import DataError, RowError
from poft.data.ids import given_id, resolve_id

Converter = Callable[[dict], tuple[list[dict], str | None, dict]]

SHAREGPT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "chatgpt": "assistant", "assistant": "assistant", "bard": "assistant", "bing": "assistant",
    "system": "system",
}


def _get(row: dict, key: str, fmt: str, path: str | None = None) -> Any:
    """A required field; None counts as missing because parquet/datasets fill absent keys with None."""
    value = row.get(key) if isinstance(row, dict) else None
    if value is None:
        raise RowError("missing_field", f"missing field '{path or key}' for format '{fmt}'")
    return value


def _get_list(row: dict, key: str, fmt: str) -> list:
    value = _get(row, key, fmt)
    if not isinstance(value, list):
        raise RowError("bad_field", f"field '{key}': expected a list for format '{fmt}', got {type(value).__name__}")
    return value


def _turns(items: list, list_key: str, role_key: str, content_key: str, fmt: str, roles: dict | None) -> list[dict]:
    """Turn `[{role_key, content_key}, ...]` into `[{role, content}]`, naming the exact missing sub-field."""
    out = []
    for j, item in enumerate(items):
        if not isinstance(item, dict):
            raise RowError(
                "bad_field", f"field '{list_key}[{j}]': expected an object for format '{fmt}', got {type(item).__name__}"
            )
        role = _get(item, role_key, fmt, f"{list_key}[{j}].{role_key}")
        content = _get(item, content_key, fmt, f"{list_key}[{j}].{content_key}")
        if roles is not None and isinstance(role, str):
            role = roles.get(role.strip().lower(), role)
        out.append({"role": role, "content": content})
    return out


def _rest(row: dict, consumed: tuple[str, ...]) -> dict:
    return {k: v for k, v in row.items() if k not in consumed}


def convert_messages(row: dict) -> tuple[list[dict], str | None, dict]:
    """OpenAI style: `{"messages": [{"role", "content"}], "id"?}`."""
    messages = _turns(_get_list(row, "messages", "messages"), "messages", "role", "content", "messages", None)
    return messages, given_id(row.get("id")), _rest(row, ("messages", "id"))


def convert_sharegpt(row: dict) -> tuple[list[dict], str | None, dict]:
    """ShareGPT: `{"conversations": [{"from": human|gpt|system, "value"}], "id"?}`."""
    items = _get_list(row, "conversations", "sharegpt")
    messages = _turns(items, "conversations", "from", "value", "sharegpt", SHAREGPT_ROLES)
    return messages, given_id(row.get("id")), _rest(row, ("conversations", "id"))


def _instruction_reply(row: dict, fmt: str, extra_key: str, output_key: str) -> list[dict]:
    """instruction (+ "\\n\\n" + the extra field when non-empty) -> user, the output field -> assistant."""
    instruction = _get(row, "instruction", fmt)
    output = _get(row, output_key, fmt)
    extra = row.get(extra_key) or ""
    if not isinstance(extra, str):
        raise RowError("bad_field", f"field '{extra_key}': expected a string for format '{fmt}', got {type(extra).__name__}")
    has_extra = bool(extra.strip()) and isinstance(instruction, str)
    user = f"{instruction}\n\n{extra}" if has_extra else instruction
    return [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


def convert_alpaca(row: dict) -> tuple[list[dict], str | None, dict]:
    """Alpaca: instruction (+ "\\n\\n" + input when non-empty) -> user, output -> assistant, system optional."""
    messages = _instruction_reply(row, "alpaca", "input", "output")
    system = row.get("system")
    if isinstance(system, str) and system.strip():
        messages.insert(0, {"role": "system", "content": system})
    return messages, given_id(row.get("id")), _rest(row, ("instruction", "input", "output", "system", "id"))


def convert_dolly(row: dict) -> tuple[list[dict], str | None, dict]:
    """databricks-dolly-15k: instruction (+ "\\n\\n" + context when non-empty) -> user, response -> assistant;
    `category` stays in meta."""
    messages = _instruction_reply(row, "dolly", "context", "response")
    return messages, given_id(row.get("id")), _rest(row, ("instruction", "context", "response", "id"))


def convert_sharegpt_pairs(row: dict) -> tuple[list[dict], str | None, dict]:
    """ShareGPT-Chinese-English-90k: `{"conversation": [{"human", "assistant"}], "conversation_id"?}`, one
    exchange per item."""
    messages = []
    for j, item in enumerate(_get_list(row, "conversation", "sharegpt-pairs")):
        if not isinstance(item, dict):
            raise RowError("bad_field", f"field 'conversation[{j}]': expected an object for format 'sharegpt-pairs', "
                                        f"got {type(item).__name__}")
        for key, role in (("human", "user"), ("assistant", "assistant")):
            messages.append({"role": role, "content": _get(item, key, "sharegpt-pairs", f"conversation[{j}].{key}")})
    gid = given_id(row.get("conversation_id"), "conversation_id")
    return messages, gid, _rest(row, ("conversation", "conversation_id"))


def convert_ultrachat(row: dict) -> tuple[list[dict], str | None, dict]:
    """HuggingFaceH4/ultrachat_200k: `messages` already holds the prompt as its first turn; id = prompt_id."""
    _get(row, "prompt", "ultrachat")
    prompt_id = _get(row, "prompt_id", "ultrachat")
    messages = _turns(_get_list(row, "messages", "ultrachat"), "messages", "role", "content", "ultrachat", None)
    return messages, given_id(prompt_id, "prompt_id"), _rest(row, ("prompt_id", "prompt", "messages"))


def _fields(row: dict) -> str:
    return ", ".join(map(str, row)) or "(none)"


def convert_openhermes(row: dict) -> tuple[list[dict], str | None, dict]:
    """teknium OpenHermes: v1 rows are alpaca-like, OpenHermes-2.5 rows are ShareGPT-like."""
    if row.get("conversations") is not None:
        return convert_sharegpt(row)
    if row.get("instruction") is not None or row.get("output") is not None:
        return convert_alpaca(row)
    raise RowError(
        "unknown_format",
        f"cannot detect format 'openhermes': expected 'conversations' or 'instruction'+'output', found fields: {_fields(row)}",
    )


# (required fields, format) in priority order; ultrachat before messages since its rows carry both.
AUTO_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("prompt_id", "prompt", "messages"), "ultrachat"),
    (("messages",), "messages"),
    (("conversations",), "sharegpt"),
    (("instruction", "output"), "alpaca"),
)


def detect_format(row: dict) -> str:
    for required, name in AUTO_RULES:
        if all(row.get(k) is not None for k in required):
            return name
    expected = ", ".join("+".join(f"'{k}'" for k in req) for req, _ in AUTO_RULES)
    raise RowError("unknown_format", f"cannot detect format: expected one of {expected}; found fields: {_fields(row)}")


def convert_auto(row: dict) -> tuple[list[dict], str | None, dict]:
    """Pick the converter per row from the fields present, so mixed files load too."""
    return FORMATS[detect_format(row)](row)


FORMATS: dict[str, Converter] = {
    "auto": convert_auto,
    "messages": convert_messages,
    "sharegpt": convert_sharegpt,
    "alpaca": convert_alpaca,
    "ultrachat": convert_ultrachat,
    "openhermes": convert_openhermes,
    "dolly": convert_dolly,
    "sharegpt-pairs": convert_sharegpt_pairs,
}


def get_converter(fmt: str) -> Converter:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise DataError(f"unknown format '{fmt}' (valid formats: {', '.join(FORMATS)})") from None


def peek_id(row: Any) -> str | None:
    """The id a row claims, for error context only: never raises, even on a malformed id."""
    if not isinstance(row, dict):
        return None
    for key in ("id", "prompt_id", "conversation_id"):
        try:
            found = given_id(row.get(key), key)
        except RowError:
            continue
        if found is not None:
            return found
    return None


def to_conversation(row: dict, fmt: str) -> dict:
    """Convert one row and give it its stable id; raises `RowError` (without origin/row context)."""
    messages, gid, meta = get_converter(fmt)(row)
    return {"id": resolve_id(gid, messages), "messages": messages, "meta": meta}
