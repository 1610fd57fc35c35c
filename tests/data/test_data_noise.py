"""add_noise: seeded, pure, re-matches via a derangement and corrupts characters at the requested rate."""

from __future__ import annotations

import copy
import math
import random
import re

import pytest

from poft.data.noise import ALPHABET, add_noise, corrupt_text, derangement

U, A = "user", "assistant"


def conv(i, turns=1):
    messages = []
    for t in range(turns):
        messages += [{"role": U, "content": f"question {i}.{t}"}, {"role": A, "content": f"answer number {i}.{t}"}]
    return {"id": f"c{i}", "messages": messages, "meta": {"src": "x"}}


DATA = [conv(i, turns=2) for i in range(20)]


def binomial_bounds(n: int, p: float, sigmas: float = 6.0) -> tuple[float, float]:
    """mean +- 6 sd: a false failure has probability ~1e-9, and the test is seeded anyway."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - sigmas * sd, n * p + sigmas * sd


def test_same_seed_same_output_different_seed_different():
    a = add_noise(DATA, rematch_fraction=0.5, char_rate=0.1, seed=3)
    assert a == add_noise(DATA, rematch_fraction=0.5, char_rate=0.1, seed=3)
    assert a != add_noise(DATA, rematch_fraction=0.5, char_rate=0.1, seed=4)


def test_input_is_not_mutated_and_ids_are_kept():
    before = copy.deepcopy(DATA)
    out = add_noise(DATA, rematch_fraction=1.0, char_rate=0.3, seed=0)
    assert DATA == before
    assert [c["id"] for c in out] == [c["id"] for c in DATA]
    assert all(c["meta"]["src"] == "x" for c in out)


def test_rematch_moves_every_chosen_final_response():
    out = add_noise(DATA, rematch_fraction=0.5, char_rate=0.0, seed=1)
    by_id = {c["id"]: c for c in DATA}
    chosen = [c for c in out if "noise" in c["meta"]]
    assert len(chosen) == 10
    for c in chosen:
        src = c["meta"]["noise"]["rematched_from"]
        assert src != c["id"] and src in {x["id"] for x in chosen}
        assert c["messages"][-1]["content"] == by_id[src]["messages"][-1]["content"]
        assert c["messages"][:-1] == by_id[c["id"]]["messages"][:-1]  # only the final response moves
        assert c["meta"]["noise"]["char_edits"] == 0
    # a permutation: every chosen response is used exactly once
    assert sorted(c["meta"]["noise"]["rematched_from"] for c in chosen) == sorted(c["id"] for c in chosen)
    assert [c for c in out if "noise" not in c["meta"]] == [c for c in DATA if c["id"] not in {x["id"] for x in chosen}]


def test_fewer_than_two_chosen_means_no_rematch():
    out = add_noise(DATA, rematch_fraction=0.05, char_rate=0.0, seed=1)  # 20 * 0.05 = 1 chosen
    chosen = [c for c in out if "noise" in c["meta"]]
    assert len(chosen) == 1
    assert chosen[0]["meta"]["noise"] == {"rematched_from": None, "char_edits": 0}
    assert [c["messages"] for c in out] == [c["messages"] for c in DATA]


def test_zero_fraction_is_identity():
    assert add_noise(DATA, rematch_fraction=0.0, char_rate=0.5, seed=1) == DATA


def test_char_rate_zero_leaves_text_unchanged():
    out = add_noise(DATA, rematch_fraction=1.0, char_rate=0.0, seed=2)
    assert sorted(m["content"] for c in out for m in c["messages"]) == sorted(m["content"] for c in DATA for m in c["messages"])
    assert all(c["meta"]["noise"]["char_edits"] == 0 for c in out)


def test_corruption_hits_every_assistant_turn_and_no_user_turn():
    out = add_noise(DATA, rematch_fraction=1.0, char_rate=0.5, seed=5)
    for new, old in zip(out, DATA):
        for j, (m_new, m_old) in enumerate(zip(new["messages"], old["messages"])):
            if m_old["role"] == U:
                assert m_new == m_old
            elif j < len(old["messages"]) - 1:  # a non-final assistant turn: not re-matched, still corrupted
                assert m_new["content"] != m_old["content"]
        assert new["meta"]["noise"]["char_edits"] > 0


def test_char_rate_point_one_changes_about_ten_percent():
    n = 20_000
    text, edits = corrupt_text("a" * n, 0.1, random.Random(0))
    lo, hi = binomial_bounds(n, 0.1)
    assert lo <= edits <= hi
    # Each position yields at most one non-'a' char: always on modify, on insert unless the new char is 'a'.
    p_changed = 0.1 * (1 + (len(ALPHABET) - 1) / len(ALPHABET)) / 3
    lo, hi = binomial_bounds(n, p_changed)
    assert lo <= sum(ch != "a" for ch in text) <= hi
    assert abs(len(text) - n) <= edits  # inserts grow, deletes shrink


def test_add_noise_char_edits_match_rate_on_long_response():
    long = {"id": "L", "messages": [{"role": U, "content": "q"}, {"role": A, "content": "x" * 10_000}], "meta": {}}
    out = add_noise([long], rematch_fraction=1.0, char_rate=0.1, seed=9)
    lo, hi = binomial_bounds(10_000, 0.1)
    assert lo <= out[0]["meta"]["noise"]["char_edits"] <= hi
    assert out[0]["meta"]["noise"]["rematched_from"] is None


def test_edits_use_printable_chars_only():
    text, _ = corrupt_text("b" * 5000, 0.5, random.Random(1))
    assert set(text) <= set(ALPHABET) and "\n" not in text


def test_derangement_has_no_fixed_points():
    rng = random.Random(0)
    for n in range(2, 12):
        perm = derangement(n, rng)
        assert sorted(perm) == list(range(n)) and all(i != p for i, p in enumerate(perm))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rematch_fraction": 1.5, "char_rate": 0.1, "seed": 0}, "rematch_fraction must be a number in [0, 1], got 1.5"),
        ({"rematch_fraction": -0.1, "char_rate": 0.1, "seed": 0}, "rematch_fraction must be a number in [0, 1], got -0.1"),
        ({"rematch_fraction": 0.5, "char_rate": 2, "seed": 0}, "char_rate must be a number in [0, 1], got 2"),
        ({"rematch_fraction": 0.5, "char_rate": "0.1", "seed": 0}, "char_rate must be a number in [0, 1], got '0.1'"),
        ({"rematch_fraction": 0.5, "char_rate": 0.1, "seed": "s"}, "seed must be an integer, got 's'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        add_noise(DATA, **kwargs)


def test_conversation_without_assistant_turn_is_rejected():
    bad = {"id": "q", "messages": [{"role": U, "content": "q"}], "meta": {}}
    with pytest.raises(ValueError, match=re.escape("conversation 'q' has no assistant turn to add noise to")):
        add_noise([bad, conv(1)], rematch_fraction=1.0, char_rate=0.0, seed=0)
