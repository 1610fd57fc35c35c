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
        assert check(task.prompt, TASKS[task.type].respond(task.item, task.answer), world), task
        assert prompt_key(task.prompt) == task.key
        assert parse_prompt(task.prompt)[0] == task.type
        n += 1
    rng = random.Random(0)
    for _ in range(3000):  # and random draws through `make`
        t = TASKS[rng.choice(list(TASKS))].make(rng, world)
        assert check(t.prompt, canonical_response(t.answer), world)
        n += 1
    assert n > 3000


def test_grounded_replies_state_the_fact_then_the_answer(world):
    c = world.countries[0]
    assert TASKS["add"].respond((3, 5), "8") == "3 plus 5 is 8. The answer is 8."
    assert TASKS["sub"].respond((9, 4), "6") == "9 minus 4 is 6. The answer is 6."  # a wrong answer, stated
    assert TASKS["count"].respond(("spoon", "o"), "2") == "The word spoon has 2 letters o. The answer is 2."
    assert TASKS["count"].respond(("cat", "a"), "1") == "The word cat has 1 letter a. The answer is 1."
    assert TASKS["larger"].respond((3, 7), "7") == "The larger of 3 and 7 is 7. The answer is 7."
    assert TASKS["capital"].respond((c.name,), c.capital) == f"The capital of {c.name} is {c.capital}. The answer is {c.capital}."


def test_count_answers_are_balanced(world):
    """Equal numbers of items answered 0, 1 and 2+, so the majority answer scores about a third, not 94%."""
    items = TASKS["count"].items(world)
    answers = [w.count(ch) for w, ch in items]
    assert answers.count(0) == answers.count(1) == sum(a >= 2 for a in answers) == 30
    assert ("daddy", "d") in items and ("spoon", "o") in items  # every item answered 2 or 3 is in
    assert len(set(items)) == len(items) and items == TASKS["count"].items(World.generate(7))


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
        grounded = t.respond(task.item, task.answer)
        assert not check(task.prompt, t.respond(task.item, t.wrong(task.item, world)), world), task
        for cut in range(1, len(grounded.split())):  # a reply cut off anywhere before its last word
            assert not check(task.prompt, " ".join(grounded.split()[:cut]), world), (task, cut)
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
    assert all(2 <= len(phrasings) <= 3 for _, phrasings in facts)
    corpus = prose_corpus(world, random.Random(0), 3 * len(facts))
    assert len(corpus) == 3 * len(facts)
    for intro, phrasings in facts:  # every fact stated at least once, alone or after its intro
        assert any(line in phrasings or line.removeprefix(intro + " ") in phrasings for line in corpus), phrasings
    sentences = {s for _, f in facts for s in f}
    c = world.countries[0]
    assert facts[0] == (f"Here is a fact about {c.name}.", [f"The capital of {c.name} is {c.capital}.",
                        f"{c.capital} is the capital of {c.name}.", f"{c.name} has its capital at {c.capital}."])
    assert {"3 plus 5 is 8.", "The word stone reversed is enots.", "There are 2 letters o in the word spoon.",
            "The larger of 7 and 3 is 7."} <= sentences
    w, ch = next((w, ch) for w, ch in TASKS["count"].items(world) if ch not in w)
    assert f"The word {w} has 0 letters {ch}." in sentences
    statements = {t.respond(item, t.answer(item, world)).removesuffix(f" The answer is {t.answer(item, world)}.")
                  for t in TASKS.values() for item in t.items(world)}
    assert statements == {f[0] for _, f in facts}  # the first phrasing of each fact is what a grounded reply restates
    assert not any("The answer is" in s for s in corpus)  # no FAQ lines unless train tasks are passed in
    assert sum(line.startswith("Here is a fact about") for line in corpus) > 0.3 * len(corpus) * 72 / len(facts)
    assert prose_corpus(world, random.Random(0), 500) == prose_corpus(world, random.Random(0), 500)
    assert prose_corpus(world, random.Random(0), 500) != prose_corpus(world, random.Random(1), 500)


def test_prose_faq_lines_ask_only_the_tasks_given(world):
    faq = [TASKS["add"].make_item((2, 3), world, 0), TASKS["reverse"].make_item(("cat",), world, 1)]
    corpus = prose_corpus(world, random.Random(0), 2000, faq=faq)
    asked = {line for line in corpus if line.startswith("Q: ")}
    assert asked == {"Q: What is 2 plus 3? A: 2 plus 3 is 5. The answer is 5.",
                     "Q: What is cat spelled backwards? A: The word cat reversed is tac. The answer is tac."}
    assert len(corpus) == 2000


def test_no_global_random_use(world, monkeypatch):
    """Generation must not touch the global `random` state."""
    random.seed(123)
    before = random.getstate()
    World.generate(5)
    prose_corpus(world, random.Random(0), 100)
    TASKS["add"].make(random.Random(0), world)
    assert random.getstate() == before
