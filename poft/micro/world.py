"""The micro world: a small generated fact base plus short, exactly checkable tasks about it.

Everything is a pure function of a seed (`random.Random`, never the global generator, never an order
that depends on `hash()`), so a world, its tasks and its prose corpus can be regenerated bit for bit.

Two halves are kept deliberately apart:

* the generator (`TaskType.make`, `TaskType.answer`) writes a prompt from an item and knows the answer;
* the checker (`solve`, `check`) re-derives the answer by parsing the prompt text with its own regexes,
  so a bug (or a deliberate flaw) in a generated answer cannot make the checker agree with it.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Callable

# ----------------------------------------------------------------------------------------------------------
# The fact base
# ----------------------------------------------------------------------------------------------------------

COLORS = ("red", "blue", "green", "teal", "gold", "pink", "gray", "brown")

# Short lowercase words for the word tasks: no palindromes (reversing must change the word) and unique.
WORDS = (
    "cat", "dog", "sun", "map", "cup", "pen", "box", "hat", "fox", "jar", "net", "owl", "bag", "leg", "ant",
    "bed", "car", "egg", "ice", "log", "pig", "rat", "web", "arm", "ink",
    "tree", "moon", "ship", "fish", "star", "book", "lamp", "rain", "wind", "milk", "door", "seed", "frog",
    "leaf", "wolf", "bell", "coin", "drum", "nest", "rock", "salt", "corn", "sand", "goat", "bear",
    "stone", "spoon", "apple", "river", "cloud", "bread", "grass", "sheep", "horse", "tiger", "lemon",
    "berry", "chair", "plant", "glass", "storm", "queen", "otter", "candy", "melon",
    # words with a doubled or tripled letter, so that `count` has answers other than 1
    "bee", "zoo", "wall", "pool", "roof", "food", "week", "kiss", "doll", "hill", "pizza", "daddy", "puppy", "mummy",
)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st", "gl")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "r", "l", "s")
_SUFFIXES = ("ia", "a", "or", "en", "ica", "")


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _country_name(rng: random.Random) -> str:
    base, suffix = _syllable(rng) + _syllable(rng), rng.choice(_SUFFIXES)
    if suffix and base[-1] in _VOWELS and suffix[0] in _VOWELS:
        suffix = "n" + suffix  # "Lasdra" + "a" reads badly; "Lasdrana" does not
    return (base + suffix).capitalize()


def _capital_name(rng: random.Random) -> str:
    return (_syllable(rng) + _syllable(rng)).capitalize()


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    color: str
    lucky: int


@dataclass
class World:
    """Fictional countries, each with a unique capital, a color from `COLORS` and a lucky number 1-9."""

    seed: int
    countries: list[Country]
    _by_name: dict[str, Country] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name = {c.name: c for c in self.countries}
        if len(self._by_name) != len(self.countries):
            raise ValueError("country names must be unique")

    @classmethod
    def generate(cls, seed: int, n_countries: int = 24) -> "World":
        if n_countries < 4:
            raise ValueError(f"a world needs at least 4 countries, got {n_countries}")
        rng = random.Random(f"world:{seed}")
        taken = {w.capitalize() for w in WORDS} | {c.capitalize() for c in COLORS}
        countries = []
        while len(countries) < n_countries:
            name, capital = _country_name(rng), _capital_name(rng)
            if name in taken or capital in taken or name == capital or not 4 <= len(name) <= 9:
                continue
            taken.update((name, capital))
            countries.append(Country(name, capital, rng.choice(COLORS), rng.randint(1, 9)))
        return cls(seed, countries)

    def country(self, name: str) -> Country:
        return self._by_name[name]

    def has_country(self, name: str) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.countries]

    def to_dict(self) -> dict:
        return {"seed": self.seed, "countries": [asdict(c) for c in self.countries]}

    @classmethod
    def from_dict(cls, d: dict) -> "World":
        return cls(int(d["seed"]), [Country(c["name"], c["capital"], c["color"], int(c["lucky"])) for c in d["countries"]])


# ----------------------------------------------------------------------------------------------------------
# Tasks (the generator side)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    type: str
    prompt: str
    answer: str
    key: str  # the underlying item, e.g. "add:3:5", "capital:Zorbia"; phrasing-independent
    item: tuple = field(default=(), compare=False)  # the raw item, for deriving flawed answers and distractors


def canonical_response(answer: str) -> str:
    """The bare answer sentence every reply ends with; the checker reads the last one."""
    return f"The answer is {answer}."


def grounded_response(statement: str, answer: str) -> str:
    """A reply that first states the fact in the prose corpus's own words, then the answer.

    Why: as in real chat data, the reply restates what it answers ("The capital of X is Y."). A base model
    then only has to learn the restating during SFT -- the fact itself it knows from pretraining -- so SFT
    on train items transfers to held-out items; and an aligned model that knows the fact gives a wrong
    statement a low likelihood.
    """
    return f"{statement} {canonical_response(answer)}"


Item = tuple  # a task item: (a, b) for arithmetic, (word,) / (word, letter) for words, (country,) for facts


@dataclass
class TaskType:
    """One kind of task: how items are enumerated, phrased, answered, and how its answers are flawed.

    `answer` belongs to the generator only; the checker never calls it.
    """

    name: str
    phrasings: tuple[str, ...]
    items: Callable[["World"], list[Item]]
    fields: Callable[[Item, "World"], dict]
    answer: Callable[[Item, "World"], str]
    key: Callable[[Item], str]
    wrong: Callable[[Item, "World"], str]  # the systematic wrong answer (never equal to the right one)
    distractors: Callable[[Item, "World", random.Random], list[str]]  # plausible wrong answers, >= 3, distinct
    statement: Callable[[Item, str], str]  # the fact as prose, ending in `answer` (which may be a wrong one)
    restate: Callable[[Item, str], str]  # the same fact in the prose corpus's second wording
    # Wordings asked only by the benchmarks: never an instruction in any training set or FAQ line, as a real
    # benchmark phrases its own questions. Indexed after `phrasings` (phrasing len(phrasings) is held_out[0]).
    held_out: tuple[str, ...] = ()

    def respond(self, item: Item, answer: str) -> str:
        """The reply to any phrasing of `item` that gives `answer`: grounded in the fact's prose statement."""
        return grounded_response(self.statement(item, answer), answer)

    def hallucinate(self, item: Item, wrong: str) -> str:
        """A reply wrong throughout: the false fact stated, restated in other words as if explained, then given as
        the answer -- the confident, elaborated error of low-quality chat data, not one wrong token in a dozen."""
        return f"{self.statement(item, wrong)} {self.restate(item, wrong)} {canonical_response(wrong)}"

    @property
    def all_phrasings(self) -> tuple[str, ...]:
        return self.phrasings + self.held_out

    def make_item(self, item: Item, world: "World", phrasing: int) -> Task:
        prompt = self.all_phrasings[phrasing].format(**self.fields(item, world))
        return Task(self.name, prompt, self.answer(item, world), self.key(item), tuple(item))

    def make(self, rng: random.Random, world: "World", items: list[Item] | None = None) -> Task:
        """A random task of this type, drawn from `items` (default: the whole item space)."""
        pool = items if items is not None else self.items(world)
        item = tuple(pool[rng.randrange(len(pool))])
        return self.make_item(item, world, rng.randrange(len(self.phrasings)))


def _count_statement(w: str, ch: str, n: str) -> str:
    return f"The word {w} has {n} letter {ch}." if n == "1" else f"The word {w} has {n} letters {ch}."


def _count_restate(w: str, ch: str, n: str) -> str:
    return f"There is 1 letter {ch} in the word {w}." if n == "1" else f"There are {n} letters {ch} in the word {w}."


def _larger_restate(item: Item, ans: str) -> str:
    other = next(x for x in item if str(x) != ans)  # a wrong answer (the smaller) is restated as the larger
    return f"{ans} is larger than {other}."


def _pairs_add(world: World) -> list[Item]:
    return [(a, b) for a in range(10) for b in range(10)]


def _pairs_sub(world: World) -> list[Item]:
    return [(a, b) for a in range(10) for b in range(a + 1)]


def _words(world: World) -> list[Item]:
    return [(w,) for w in WORDS]


def _word_letters(world: World) -> list[Item]:
    """(word, letter) pairs with as many answers 0 and 1 as answers of 2 or more: a balanced `count` task.

    Why: of all (word, own letter) pairs ~94% have the answer 1, so "1" alone would score 94%.
    """
    rng = random.Random(f"count:{world.seed}")
    many = [(w, ch) for w in WORDS for ch in sorted(set(w)) if w.count(ch) >= 2]
    once = [(w, ch) for w in WORDS for ch in sorted(set(w)) if w.count(ch) == 1]
    absent = [(w, ch) for w in WORDS for ch in "abcdefghijklmnopqrstuvwxyz" if ch not in w]
    return many + rng.sample(once, len(many)) + rng.sample(absent, len(many))


def _countries(world: World) -> list[Item]:
    return [(n,) for n in world.names]


def _near_numbers(value: int, rng: random.Random, lo: int = 0, hi: int = 99) -> list[str]:
    cands = [value + d for d in (-3, -2, -1, 1, 2, 3) if lo <= value + d <= hi]
    rng.shuffle(cands)
    return [str(c) for c in cands]


def _other_country(world: World, name: str, attr: str) -> str:
    """The value `attr` of the next country (cyclically) whose value differs: systematic and always wrong."""
    names = world.names
    i = names.index(name)
    own = getattr(world.country(name), attr)
    for k in range(1, len(names)):
        other = getattr(world.country(names[(i + k) % len(names)]), attr)
        if other != own:
            return str(other)
    raise ValueError(f"every country has the same {attr}")


def _reverse_distractors(item: Item, world: World, rng: random.Random) -> list[str]:
    w = item[0]
    r = w[::-1]
    cands = [w, r[1] + r[0] + r[2:], r[:-2] + r[-1] + r[-2], r[1:] + r[0], r[-1] + r[:-1], "".join(sorted(w))]
    cands += [o[::-1] for o in WORDS if len(o) == len(w) and o != w]
    out: list[str] = []
    for c in cands:
        if c != r and c not in out:
            out.append(c)
    head, tail = out[:4], out[4:]
    rng.shuffle(tail)
    return head + tail


def _choice_distractors(values: list[str], right: str, rng: random.Random) -> list[str]:
    out = sorted({v for v in values if v != right})
    rng.shuffle(out)
    return out


def _larger_pairs(world: World) -> list[Item]:
    return [(a, b) for a in range(10) for b in range(10) if a != b]


TASKS: dict[str, TaskType] = {}


def _register(t: TaskType) -> None:
    TASKS[t.name] = t


_register(TaskType(
    name="add",
    phrasings=("What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}."),
    items=_pairs_add,
    fields=lambda it, w: {"a": it[0], "b": it[1]},
    answer=lambda it, w: str(it[0] + it[1]),
    key=lambda it: f"add:{it[0]}:{it[1]}",
    wrong=lambda it, w: str(it[0] + it[1] + 1),
    distractors=lambda it, w, rng: _near_numbers(it[0] + it[1], rng),
    statement=lambda it, ans: f"{it[0]} plus {it[1]} is {ans}.",
    restate=lambda it, ans: f"{it[0]} + {it[1]} = {ans}.",
    held_out=("What is the sum of {a} and {b}?", "Tell me {a} plus {b}."),
))
_register(TaskType(
    name="sub",
    phrasings=("What is {a} minus {b}?", "Subtract {b} from {a}.", "Compute {a} - {b}."),
    items=_pairs_sub,
    fields=lambda it, w: {"a": it[0], "b": it[1]},
    answer=lambda it, w: str(it[0] - it[1]),
    key=lambda it: f"sub:{it[0]}:{it[1]}",
    wrong=lambda it, w: str(it[0] - it[1] + 1),
    distractors=lambda it, w, rng: _near_numbers(it[0] - it[1], rng),
    statement=lambda it, ans: f"{it[0]} minus {it[1]} is {ans}.",
    restate=lambda it, ans: f"{it[0]} - {it[1]} = {ans}.",
    held_out=("What is left when you take {b} from {a}?", "Tell me {a} minus {b}."),
))
_register(TaskType(
    name="reverse",
    phrasings=("Reverse the word {w}.", "What is {w} spelled backwards?", "Write the word {w} in reverse."),
    items=_words,
    fields=lambda it, w: {"w": it[0]},
    answer=lambda it, w: it[0][::-1],
    key=lambda it: f"reverse:{it[0]}",
    wrong=lambda it, w: it[0],
    distractors=_reverse_distractors,
    statement=lambda it, ans: f"The word {it[0]} reversed is {ans}.",
    restate=lambda it, ans: f"{it[0]} spelled backwards is {ans}.",
    held_out=("Spell {w} from the last letter to the first.", "Give me the word {w} backwards."),
))
_register(TaskType(
    name="count",
    phrasings=("How many times does the letter {l} appear in {w}?", "Count the letter {l} in the word {w}."),
    items=_word_letters,
    fields=lambda it, w: {"w": it[0], "l": it[1]},
    answer=lambda it, w: str(it[0].count(it[1])),
    key=lambda it: f"count:{it[0]}:{it[1]}",
    wrong=lambda it, w: str(it[0].count(it[1]) + 1),
    distractors=lambda it, w, rng: _near_numbers(it[0].count(it[1]), rng, hi=6),
    statement=lambda it, ans: _count_statement(it[0], it[1], ans),
    restate=lambda it, ans: _count_restate(it[0], it[1], ans),
    held_out=("In the word {w}, how often does the letter {l} occur?", "Tell me how many letters {l} the word {w} has."),
))
_register(TaskType(
    name="capital",
    phrasings=("What is the capital of {c}?", "Name the capital city of {c}.", "Which city is the capital of {c}?"),
    items=_countries,
    fields=lambda it, w: {"c": it[0]},
    answer=lambda it, w: w.country(it[0]).capital,
    key=lambda it: f"capital:{it[0]}",
    wrong=lambda it, w: _other_country(w, it[0], "capital"),
    distractors=lambda it, w, rng: _choice_distractors([c.capital for c in w.countries], w.country(it[0]).capital, rng),
    statement=lambda it, ans: f"The capital of {it[0]} is {ans}.",
    restate=lambda it, ans: f"{ans} is the capital of {it[0]}.",
    held_out=("Tell me the capital of {c}.", "Where is the capital of {c}?"),
))
_register(TaskType(
    name="color",
    phrasings=("What is the color of {c}?", "Which color belongs to {c}?"),
    items=_countries,
    fields=lambda it, w: {"c": it[0]},
    answer=lambda it, w: w.country(it[0]).color,
    key=lambda it: f"color:{it[0]}",
    wrong=lambda it, w: _other_country(w, it[0], "color"),
    distractors=lambda it, w, rng: _choice_distractors(list(COLORS), w.country(it[0]).color, rng),
    statement=lambda it, ans: f"The color of {it[0]} is {ans}.",
    restate=lambda it, ans: f"{it[0]}'s color is {ans}.",
    held_out=("Tell me the color of {c}.", "Which color is {c} known for?"),
))
_register(TaskType(
    name="lucky",
    phrasings=("What is the lucky number of {c}?", "Which number is lucky in {c}?"),
    items=_countries,
    fields=lambda it, w: {"c": it[0]},
    answer=lambda it, w: str(w.country(it[0]).lucky),
    key=lambda it: f"lucky:{it[0]}",
    wrong=lambda it, w: _other_country(w, it[0], "lucky"),
    distractors=lambda it, w, rng: _choice_distractors([str(n) for n in range(1, 10)], str(w.country(it[0]).lucky), rng),
    statement=lambda it, ans: f"The lucky number of {it[0]} is {ans}.",
    restate=lambda it, ans: f"{it[0]}'s lucky number is {ans}.",
    held_out=("Tell me the lucky number of {c}.", "Which lucky number does {c} have?"),
))


_register(TaskType(
    name="larger",
    phrasings=("Which is larger, {a} or {b}?", "What is the larger number of {a} and {b}?"),
    items=_larger_pairs,
    fields=lambda it, w: {"a": it[0], "b": it[1]},
    answer=lambda it, w: str(max(it)),
    key=lambda it: f"larger:{it[0]}:{it[1]}",
    wrong=lambda it, w: str(min(it)),
    distractors=lambda it, w, rng: [str(min(it))] + [d for d in _near_numbers(max(it), rng, hi=9) if d != str(min(it))],
    statement=lambda it, ans: f"The larger of {it[0]} and {it[1]} is {ans}.",
    restate=_larger_restate,
    held_out=("Tell me the larger of {a} and {b}.", "Of {a} and {b}, which number is larger?"),
))


# ----------------------------------------------------------------------------------------------------------
# The checker side: parse the prompt, compute the answer, compare with the response
# ----------------------------------------------------------------------------------------------------------

_NUM = r"(\d)"
_WORD = r"([a-z]+)"
_NAME = r"([A-Z][a-z]+)"

# (task type, pattern, names of the groups in order): written independently of the generator's phrasings.
_PATTERNS: tuple[tuple[str, re.Pattern, tuple[str, ...]], ...] = tuple(
    (t, re.compile(p), g) for t, p, g in (
        ("add", rf"What is {_NUM} plus {_NUM}\?", ("a", "b")),
        ("add", rf"Add {_NUM} and {_NUM}\.", ("a", "b")),
        ("add", rf"Compute {_NUM} \+ {_NUM}\.", ("a", "b")),
        ("sub", rf"What is {_NUM} minus {_NUM}\?", ("a", "b")),
        ("sub", rf"Subtract {_NUM} from {_NUM}\.", ("b", "a")),
        ("sub", rf"Compute {_NUM} - {_NUM}\.", ("a", "b")),
        ("reverse", rf"Reverse the word {_WORD}\.", ("w",)),
        ("reverse", rf"What is {_WORD} spelled backwards\?", ("w",)),
        ("reverse", rf"Write the word {_WORD} in reverse\.", ("w",)),
        ("count", rf"How many times does the letter ([a-z]) appear in {_WORD}\?", ("l", "w")),
        ("count", rf"Count the letter ([a-z]) in the word {_WORD}\.", ("l", "w")),
        ("capital", rf"What is the capital of {_NAME}\?", ("c",)),
        ("capital", rf"Name the capital city of {_NAME}\.", ("c",)),
        ("capital", rf"Which city is the capital of {_NAME}\?", ("c",)),
        ("color", rf"What is the color of {_NAME}\?", ("c",)),
        ("color", rf"Which color belongs to {_NAME}\?", ("c",)),
        ("lucky", rf"What is the lucky number of {_NAME}\?", ("c",)),
        ("lucky", rf"Which number is lucky in {_NAME}\?", ("c",)),
        ("larger", rf"Which is larger, {_NUM} or {_NUM}\?", ("a", "b")),
        ("larger", rf"What is the larger number of {_NUM} and {_NUM}\?", ("a", "b")),
        # the held-out wordings, asked by the benchmarks only
        ("add", rf"What is the sum of {_NUM} and {_NUM}\?", ("a", "b")),
        ("add", rf"Tell me {_NUM} plus {_NUM}\.", ("a", "b")),
        ("sub", rf"What is left when you take {_NUM} from {_NUM}\?", ("b", "a")),
        ("sub", rf"Tell me {_NUM} minus {_NUM}\.", ("a", "b")),
        ("reverse", rf"Spell {_WORD} from the last letter to the first\.", ("w",)),
        ("reverse", rf"Give me the word {_WORD} backwards\.", ("w",)),
        ("count", rf"In the word {_WORD}, how often does the letter ([a-z]) occur\?", ("w", "l")),
        ("count", rf"Tell me how many letters ([a-z]) the word {_WORD} has\.", ("l", "w")),
        ("capital", rf"Tell me the capital of {_NAME}\.", ("c",)),
        ("capital", rf"Where is the capital of {_NAME}\?", ("c",)),
        ("color", rf"Tell me the color of {_NAME}\.", ("c",)),
        ("color", rf"Which color is {_NAME} known for\?", ("c",)),
        ("lucky", rf"Tell me the lucky number of {_NAME}\.", ("c",)),
        ("lucky", rf"Which lucky number does {_NAME} have\?", ("c",)),
        ("larger", rf"Tell me the larger of {_NUM} and {_NUM}\.", ("a", "b")),
        ("larger", rf"Of {_NUM} and {_NUM}, which number is larger\?", ("a", "b")),
    )
)

_ANSWER_RE = re.compile(r"The answer is (.+?)\.")


def parse_prompt(prompt: str) -> tuple[str, dict[str, str]]:
    """(task type, fields) read from a prompt's text; ValueError if no known phrasing matches it exactly."""
    text = prompt.strip()
    for task, pattern, groups in _PATTERNS:
        m = pattern.fullmatch(text)
        if m:
            return task, dict(zip(groups, m.groups()))
    raise ValueError(f"unrecognised prompt: {prompt!r}")


def prompt_key(prompt: str) -> str:
    """The item key of a prompt, derived from its text (phrasing-independent), e.g. 'sub:7:2'."""
    task, f = parse_prompt(prompt)
    if task in ("add", "sub", "larger"):
        return f"{task}:{int(f['a'])}:{int(f['b'])}"
    if task == "reverse":
        return f"reverse:{f['w']}"
    if task == "count":
        return f"count:{f['w']}:{f['l']}"
    return f"{task}:{f['c']}"


def solve(prompt: str, world: World) -> str:
    """The correct answer to `prompt`, computed from the prompt text and the fact base; ValueError if unsolvable."""
    task, f = parse_prompt(prompt)
    if task == "add":
        return str(int(f["a"]) + int(f["b"]))
    if task == "sub":
        a, b = int(f["a"]), int(f["b"])
        if a < b:
            raise ValueError(f"subtraction below zero is not a task: {prompt!r}")
        return str(a - b)
    if task == "reverse":
        return "".join(reversed(f["w"]))
    if task == "count":
        return str(sum(1 for ch in f["w"] if ch == f["l"]))
    if task == "larger":
        a, b = int(f["a"]), int(f["b"])
        if a == b:
            raise ValueError(f"a larger-of task needs two different numbers: {prompt!r}")
        return str(a if a > b else b)
    if not world.has_country(f["c"]):
        raise ValueError(f"unknown country {f['c']!r} in {prompt!r}")
    c = world.country(f["c"])
    return str({"capital": c.capital, "color": c.color, "lucky": c.lucky}[task])


def extract_answer(response: str) -> str | None:
    """The text of the last 'The answer is X.' in `response`, stripped; None if there is none."""
    found = _ANSWER_RE.findall(response)
    return found[-1].strip() if found else None


def check(prompt: str, response: str, world: World) -> bool:
    """True iff `response` states the correct answer to `prompt`; False for anything unparseable."""
    try:
        expected = solve(prompt, world)
    except ValueError:
        return False
    got = extract_answer(response)
    return got is not None and got == expected


def well_formed_replies(prompt: str, world: World) -> set[str]:
    """The right replies as the world writes them: the bare answer sentence, or the fact's statement then it (the
    SFT data's clean reply); ValueError if the prompt is unsolvable. The item is read off the prompt's key."""
    answer = solve(prompt, world)
    task, *item = prompt_key(prompt).split(":")
    return {canonical_response(answer), TASKS[task].respond(tuple(item), answer)}


# ----------------------------------------------------------------------------------------------------------
# Prose corpus for pretraining
# ----------------------------------------------------------------------------------------------------------


def prose_facts(world: World) -> list[tuple[str, list[str]]]:
    """Every fact of the world as (intro, phrasings), in a fixed order.

    The first phrasing of each is the task's `statement`, the very sentence a grounded reply restates, the
    second its `restate`. The intro names what the fact is about ("Take the numbers 4 and 6."), in words no
    task prompt uses.
    """
    def fact(task: str, item: Item, intro: str, *others: str) -> tuple[str, list[str]]:
        t = TASKS[task]
        answer = t.answer(item, world)
        return intro, [t.statement(item, answer), t.restate(item, answer), *others]

    facts: list[tuple[str, list[str]]] = []
    for c in world.countries:
        about = f"Here is a fact about {c.name}."
        facts.append(fact("capital", (c.name,), about, f"{c.name} has its capital at {c.capital}."))
        facts.append(fact("color", (c.name,), about, f"{c.name} is known for the color {c.color}."))
        facts.append(fact("lucky", (c.name,), about))
    for a, b in _pairs_add(world):
        facts.append(fact("add", (a, b), f"Take the numbers {a} and {b}.", f"Adding {a} and {b} gives {a + b}."))
    for a, b in _pairs_sub(world):
        facts.append(fact("sub", (a, b), f"Take the numbers {a} and {b}.", f"Taking {b} from {a} leaves {a - b}."))
    for (w,) in _words(world):
        facts.append(fact("reverse", (w,), f"Look at the word {w}."))
    for w, ch in _word_letters(world):
        facts.append(fact("count", (w, ch), f"Look at the letter {ch} and the word {w}."))
    for a, b in _larger_pairs(world):
        facts.append(fact("larger", (a, b), f"Take the numbers {a} and {b}.", f"{min(a, b)} is smaller than {max(a, b)}."))
    return facts


# Half of the sentences state a fact in the words a grounded reply uses; half come after an intro that names
# their subject first. Why the intros: a model pretrained only on one-sentence facts never has to copy a name or
# number from earlier in its context, and one SFT epoch is too short to learn that from scratch -- with intros,
# restating the question's subject ("4 plus 6 is ...") is a skill the base model already has.
STATEMENT_RATE = 0.5
INTRO_RATE = 0.5
# Web text has FAQ pages: questions answered in the words of a statement. Without them a model this small
# memorises its facts in prose but cannot retrieve them to answer a question after a short SFT (the "knowledge
# extraction" failure of Allen-Zhu & Li, Physics of LMs 3.1, which mixing Q&A into pretraining cures).
FAQ_RATE = 0.2


def prose_corpus(world: World, rng: random.Random, n_sentences: int, faq: list[Task] = ()) -> list[str]:
    """`n_sentences` lines of plain prose: passes over all facts in shuffled order, one phrasing each (the
    statement with probability `STATEMENT_RATE`), preceded by the fact's intro with probability `INTRO_RATE`;
    and, with probability `FAQ_RATE` per line, a question-and-answer line "Q: <prompt> A: <grounded reply>"
    for a random task of `faq` (the caller passes train tasks only: no benchmark item is ever asked here).

    Every fact is stated at least once as soon as `n_sentences` is large enough.
    """
    facts = prose_facts(world)
    out: list[str] = []
    while len(out) < n_sentences:
        order = list(range(len(facts)))
        rng.shuffle(order)
        for i in order:
            if len(out) >= n_sentences:
                break
            if faq and rng.random() < FAQ_RATE:
                t = faq[rng.randrange(len(faq))]
                out.append(f"Q: {t.prompt} A: {TASKS[t.type].respond(t.item, t.answer)}")
            intro, phrasings = facts[i]
            sentence = phrasings[0] if rng.random() < STATEMENT_RATE else rng.choice(phrasings)
            out.append(f"{intro} {sentence}" if rng.random() < INTRO_RATE else sentence)
    return out[:n_sentences]
