"""The verifier judge decides as a GPT-4 judge would on the micro world's flaws: each flaw the SFT data carries (a
wrong answer, boilerplate, a cut-off statement, the PoFT paper's character noise) loses to a clean right reply."""

import random

import pytest
from eval_fixtures import micro_data, micro_world  # noqa: F401 - fixtures

from poft.data.noise import corrupt_text
from poft.evaluation.judges import Pair, make_judge
from poft.micro.datasets import BOILERPLATE, NOISE, flawed_response
from poft.micro.world import TASKS, canonical_response

WIN, DRAW, LOSS = 2.0, 1.5, 1.0  # alpaca_eval's encoding, from the evaluated model's side


@pytest.fixture(scope="module")
def judge(micro_data):
    return make_judge("verifier", {"world": str(micro_data / "world.json")})


@pytest.fixture(scope="module")
def tasks(micro_world):
    rng = random.Random(0)
    drawn = [TASKS[name].make(rng, micro_world) for name in TASKS for _ in range(20)]  # every task type
    return list({t.prompt: t for t in drawn}.values())  # each prompt once


def _verdicts(judge, tasks, reference, output) -> set[float]:
    """The judge's verdicts on every task with reference(task) as the reference reply and output(task) the model's."""
    return set(judge.preferences([Pair(t.prompt, reference(t), output(t)) for t in tasks], "ref", "model"))


@pytest.mark.parametrize("flaw", ["wrong", "boilerplate", "truncated"])
def test_each_flaw_loses_to_a_clean_reply_and_wins_from_the_model_side(judge, tasks, micro_world, flaw):
    def clean(t):
        return flawed_response(t, "clean", micro_world, random.Random(0))

    def flawed(t):
        return flawed_response(t, flaw, micro_world, random.Random(t.prompt))

    assert _verdicts(judge, tasks, clean, flawed) == {LOSS}
    assert _verdicts(judge, tasks, flawed, clean) == {WIN}


def test_every_boilerplate_reply_loses_and_two_failing_replies_draw(judge, tasks, micro_world):
    for text in BOILERPLATE:
        assert _verdicts(judge, tasks, lambda t: canonical_response(t.answer), lambda t: text) == {LOSS}
    wrong = lambda t: flawed_response(t, "wrong", micro_world, random.Random(0))  # noqa: E731
    assert _verdicts(judge, tasks, wrong, lambda t: BOILERPLATE[0]) == {DRAW}
    truncated = lambda t: flawed_response(t, "truncated", micro_world, random.Random(1))  # noqa: E731
    assert _verdicts(judge, tasks, truncated, wrong) == {DRAW}


def test_two_right_replies_draw_whether_grounded_or_bare(judge, tasks, micro_world):
    clean = lambda t: flawed_response(t, "clean", micro_world, random.Random(0))  # noqa: E731
    assert _verdicts(judge, tasks, clean, clean) == {DRAW}
    assert _verdicts(judge, tasks, clean, lambda t: canonical_response(t.answer)) == {DRAW}


def test_a_character_noised_reply_loses_to_the_clean_one(judge, tasks, micro_world):
    """The PoFT paper's character noise at the micro openhermes rate: wherever it lands (even in the statement only,
    leaving "The answer is X." intact, which the exact checker alone would call right) the clean reply wins."""
    rng = random.Random(0)
    clean = {t.prompt: flawed_response(t, "clean", micro_world, rng) for t in tasks}
    noised = {}
    while len(noised) < len(tasks):  # every task once, with at least one edit
        t = tasks[len(noised)]
        text, n = corrupt_text(clean[t.prompt], NOISE["char_rate"], rng)
        if n:
            noised[t.prompt] = text
    assert _verdicts(judge, tasks, lambda t: clean[t.prompt], lambda t: noised[t.prompt]) == {LOSS}
    # Typos in the statement alone keep the answer readable: that beats a wrong answer, and two such replies draw.
    typo = {t.prompt: "x" + clean[t.prompt] for t in tasks}  # an inserted character, at the statement's start
    wrong = lambda t: flawed_response(t, "wrong", micro_world, rng)  # noqa: E731
    assert _verdicts(judge, tasks, wrong, lambda t: typo[t.prompt]) == {WIN}
    assert _verdicts(judge, tasks, lambda t: typo[t.prompt], lambda t: typo[t.prompt]) == {DRAW}
