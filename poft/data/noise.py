"""The PoFT paper's synthetic noise: re-matched responses plus character-level corruption.

To test robustness to low-quality SFT data, PoFT re-pairs a share of responses with other prompts and
corrupts their characters. This is a seeded pure transform: same input and seed give the same output,
the input is never mutated, and each noisy conversation records in `meta["noise"]` what was done to it
(ids are kept, so noisy and clean runs stay comparable example by example).
"""

from __future__ import annotations

import copy
import math
import random
import string

# Printable characters without the layout-changing whitespace (\t\n\r\x0b\x0c), so edits never
# introduce line structure a chat template could misread.
ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "


def _insert(ch: str, rng: random.Random) -> str:
    return rng.choice(ALPHABET) + ch


def _delete(ch: str, rng: random.Random) -> str:
    return ""


def _modify(ch: str, rng: random.Random) -> str:
    new = rng.choice(ALPHABET)
    while new == ch:
        new = rng.choice(ALPHABET)
    return new


EDITS = (_insert, _delete, _modify)


def corrupt_text(text: str, rate: float, rng: random.Random) -> tuple[str, int]:
    """Each position independently, with probability `rate`, gets an insert/delete/modify chosen uniformly.

    Returns the new text and the number of edits applied.
    """
    out, n = [], 0
    for ch in text:
        if rng.random() < rate:
            out.append(rng.choice(EDITS)(ch, rng))
            n += 1
        else:
            out.append(ch)
    return "".join(out), n


def _check_fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _last_assistant(conv: dict) -> int:
    for j in range(len(conv["messages"]) - 1, -1, -1):
        if conv["messages"][j]["role"] == "assistant":
            return j
    raise ValueError(f"conversation {conv.get('id')!r} has no assistant turn to add noise to")


def derangement(n: int, rng: random.Random) -> list[int]:
    """A uniformly random permutation with no fixed point (rejection sampling; ~e tries on average)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    perm = list(range(n))
    while True:
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def add_noise(conversations: list[dict], *, rematch_fraction: float, char_rate: float, seed: int) -> list[dict]:
    """Return noisy copies: a `rematch_fraction` share (chosen with `random.Random(seed)`) is re-matched and corrupted.

    (a) The chosen conversations' final assistant responses are permuted by a random derangement, so no
    chosen one keeps its own (skipped when fewer than 2 are chosen). (b) Every assistant turn of the
    chosen conversations is then character-corrupted at `char_rate`. Only chosen conversations get
    `meta["noise"] = {"rematched_from": id | None, "char_edits": n}`; the rest are unchanged copies.
    """
    _check_fraction("rematch_fraction", rematch_fraction)
    _check_fraction("char_rate", char_rate)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    # Copy each conversation on its own: a list holding the same dict twice must yield independent copies.
    out = [copy.deepcopy(c) for c in conversations]
    rng = random.Random(seed)
    k = math.floor(rematch_fraction * len(out) + 0.5)
    chosen = sorted(rng.sample(range(len(out)), k))
    last = {i: _last_assistant(out[i]) for i in chosen}
    sources = {i: None for i in chosen}
    if len(chosen) >= 2:
        perm = derangement(len(chosen), rng)
        originals = {i: out[i]["messages"][last[i]]["content"] for i in chosen}
        for a, i in enumerate(chosen):
            src = chosen[perm[a]]
            out[i]["messages"][last[i]]["content"] = originals[src]
            sources[i] = out[src]["id"]
    for i in chosen:
        edits = 0
        for msg in out[i]["messages"]:
            if msg["role"] == "assistant":
                msg["content"], n = corrupt_text(msg["content"], char_rate, rng)
                edits += n
        meta = dict(out[i].get("meta") or {})
        meta["noise"] = {"rematched_from": sources[i], "char_edits": edits}
        out[i]["meta"] = meta
    return out
