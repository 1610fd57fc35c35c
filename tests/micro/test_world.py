"""The micro world: deterministic generation, an independent checker, and prose covering every fact."""

from __future__ import annotations

import random
import re

import pytest

from poft.micro.world import (
    COLORS, TASKS, WORDS, World, canonical_response, check, extract_answer, parse_prompt, prompt_key, prose_corpus,
    prose_facts, solve,
)


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(7)


def all_tasks(world: World):
    """Every (item, phrasing) of every task type."""
    for t in TASKS.values():
        for item in t.items(world):
            for p in range(len(t.phrasings)):
                yield t.make_item(item, world, p)


def test_world_is_deterministic_and_serializable(world):
    assert World.generate(7) == world
    assert World.generate(8) != world
    assert World.from_dict(world.to_dict()) == world
    assert len(World.generate(3, n_countries=40).countries) == 40


def test_world_facts_are_well_formed(world):
    names = [c.name for c in world.countries]
    capitals = [c.capital for c in world.countries]
    assert len(names) == 24
    assert len(set(names)) == 24 and len(set(capitals)) == 24 and not set(names) & set(capitals)
    for c in world.countries:
        assert re.fullmatch(r"[A-Z][a-z]+", c.name) and re.fullmatch(r"[A-Z][a-z]+", c.capital)
        assert c.color in COLORS and 1 <= c.lucky <= 9


def test_task_registry_shape():
    assert len(TASKS) >= 5
    assert {"add", "sub", "reverse", "count", "capital", "color"} <= set(TASKS)
    for t in TASKS.values():
        assert 2 <= len(t.phrasings) <= 3
    assert all(3 <= len(w) <= 5 and w != w[::-1] for w in WORDS) and len(set(WORDS)) == len(WORDS)


def test_checker_agrees_with_every_generated_task(world):
    n = 0
    for task in all_tasks(world):
        assert solve(task.prompt, world) == task.answer, task
        assert check(task.prompt, canonical_response(task.answer), world), task
        assert prompt_key(task.prompt) == task.key
        assert parse_prompt(task.prompt)[0] == task.type
        n += 1
    rng = random.Random(0)
    for _ in range(3000):  # and random draws through `make`
        t = TASKS[rng.choice(list(TASKS))].make(rng, world)
        assert check(t.prompt, canonical_response(t.answer), world)
        n += 1
    assert n > 3000


def test_known_answers(world):
    c = world.countries[0]
    assert solve("What is 3 plus 5?", world) == "8"
    assert solve("Subtract 4 from 9.", world) == "5"
    assert solve("Write the word stone in reverse.", world) == "enots"
    assert solve("How many times does the letter o appear in spoon?", world) == "2"
    assert solve(f"Name the capital city of {c.name}.", world) == c.capital
    assert solve(f"Which color belongs to {c.name}?", world) == c.color


def test_checker_rejects_flawed_responses(world):
    rng = random.Random(1)
    for task in all_tasks(world):
        t = TASKS[task.type]
        assert not check(task.prompt, canonical_response(t.wrong(task.item, world)), world), task
        for d in t.distractors(task.item, world, rng)[:3]:
            assert not check(task.prompt, canonical_response(d), world), (task, d)
        for bad in ("I am not able to answer that.", "The answer", "The answer is", "The ans", ""):
            assert not check(task.prompt, bad, world)


def test_checker_on_unparseable_input(world):
    assert not check("What is the meaning of life?", "The answer is 42.", world)
    assert not check("What is the capital of Nowhereland?", "The answer is X.", world)
    assert not check("Compute 3 - 5.", "The answer is -2.", world)
    with pytest.raises(ValueError):
        solve("Tell me a joke.", world)


def test_extract_answer_takes_the_last_statement():
    assert extract_answer("The answer is 3. No wait, the answer is 4. The answer is 5.") == "5"
    assert extract_answer("The answer is teal.") == "teal"
    assert extract_answer("I am not able to answer that.") is None
    assert extract_answer("The answer is 7") is None


def test_checker_is_independent_of_the_generator(world, monkeypatch):
    """A generator that states wrong answers must not make the checker accept them."""
    rng = random.Random(2)
    for name in TASKS:
        monkeypatch.setattr(TASKS[name], "answer", lambda item, w: "999")
    for _ in range(200):
        t = TASKS[rng.choice(list(TASKS))].make(rng, world)
        assert t.answer == "999"
        assert not check(t.prompt, canonical_response(t.answer), world)


def test_prose_covers_every_fact_with_several_phrasings(world):
    facts = prose_facts(world)
    assert all(2 <= len(f) <= 3 for f in facts)
    corpus = prose_corpus(world, random.Random(0), 3 * len(facts))
    assert len(corpus) == 3 * len(facts)
    text = set(corpus)
    for f in facts:
        assert text & set(f), f  # every fact stated at least once
    c = world.countries[0]
    assert f"The capital of {c.name} is {c.capital}." in facts[0]
    assert "3 plus 5 is 8." in {s for f in facts for s in f}
    assert "The word stone reversed is enots." in {s for f in facts for s in f}
    assert "There are 2 letters o in the word spoon." in {s for f in facts for s in f}
    assert not any("The answer is" in s for s in corpus)
    assert prose_corpus(world, random.Random(0), 500) == prose_corpus(world, random.Random(0), 500)
    assert prose_corpus(world, random.Random(0), 500) != prose_corpus(world, random.Random(1), 500)


def test_no_global_random_use(world, monkeypatch):
    """Generation must not touch the global `random` state."""
    random.seed(123)
    before = random.getstate()
    World.generate(5)
    prose_corpus(world, random.Random(0), 100)
    TASKS["add"].make(random.Random(0), world)
    assert random.getstate() == before
