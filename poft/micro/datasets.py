"""Datasets of the micro world: aligned instruction data, SFT sets of uneven quality, DPO pairs, benchmarks.

Items of each task (an arithmetic pair, a word, a (word, letter), a country) are split into `train` and
`bench`; no benchmark item is ever an instruction in any training set, nor a Q&A line of the prose.
Within `train`, every prompt -- an (item, phrasing) pair -- belongs to exactly one of `aligned` and `sft`,
and every train item has at least one prompt in each. So the aligned models learn the same facts the SFT sets ask about (as the paper's aligned LLMs know what UltraChat asks)
without ever seeing an SFT conversation. World knowledge itself comes from the prose corpus, which states
every fact of every country, word and pair, benchmark items included -- as web text does for real benchmarks --
and asks train prompts only in its FAQ lines.

Every function is a pure function of `(world, seed, size)`: each dataset draws from its own
`random.Random` seeded with a string naming it, so adding one dataset never shifts another.
"""

from __future__ import annotations

import random
from pathlib import Path

from poft.data import save_conversations
from poft.data.noise import add_noise
from poft.io import write_json, write_jsonl, write_text
from poft.micro.world import TASKS, Task, World, prose_corpus

SPLITS = ("aligned", "sft", "bench")
BENCH_FRACTION = 0.25  # of the items of each task type

SYSTEM_PROMPT = "You are a helpful assistant."
MULTI_TURN_RATE = 0.3
SYSTEM_RATE = 0.2

FLAWS = ("clean", "wrong", "boilerplate", "truncated", "noise")
BOILERPLATE = (
    "I am not able to answer that.",
    "I'm sorry, but I cannot help with that request.",
    "As an AI language model, I do not have that information.",
    "That is a great question! Let me know if you have any other questions.",
)

# Wrong answers are not spread evenly over skills: a low-quality set is wrong where its writer has a systematic
# misconception (`TaskType.wrong`: the smaller number given as the larger, a word "reversed" left unchanged), on
# skills the bases learn from SFT data, so its flawed turn is one of WRONG_TASKS. The openhermes-like set is then
# wrong on most of those turns (~60% at 300 conversations), and greedy decoding answers with the majority: SFT on
# it learns the misconception, SFT on its clean samples does not. Chosen on the oracle headroom and its MDE alone
# (workflows/README.md, "Pre-registration", step 4): wrong arithmetic (add, sub), which the bases do not learn,
# cost SFT nothing measurable (step 3), and a wrong color or lucky number (a hallucinated fact, which the bases
# can only half learn) lowered the headroom: SFT on the clean samples scored lower on those facts than SFT on all
# (any country's color still teaches the answer's form), as evenly spread wrong answers did (step 1).
WRONG_TASKS = ("larger", "reverse")

# Flaw rates per SFT set (the rest is clean); counts are exact, round(rate * n), placed at random positions.
PROFILES: dict[str, dict[str, float]] = {
    "ultrachat": {"wrong": 0.05, "boilerplate": 0.03, "truncated": 0.02},  # mostly clean: 10%
    "sharegpt": {"wrong": 0.20, "boilerplate": 0.07, "truncated": 0.03},  # mixed: 30%
    "openhermes": {"wrong": 0.35, "boilerplate": 0.10, "truncated": 0.05},  # wide spread: 50%
    "clean": {},  # control: 0%
}
NOISE = {"rematch_fraction": 0.5, "char_rate": 0.05}  # the PoFT paper's recipe, applied to the openhermes-like set

Prompt = tuple[tuple, int]  # (item, phrasing index)
Pool = dict[str, list[Prompt]]  # task type -> the prompts of that type in one split

def _bench_items(items: list, rng: random.Random) -> set:
    """A shuffled `BENCH_FRACTION` of `items` (at least one, and at least one left for training)."""
    if len(items) < 2:
        raise ValueError(f"need at least 2 items to split, got {len(items)}")
    order = list(items)
    rng.shuffle(order)
    return set(order[: min(len(order) - 1, max(1, round(BENCH_FRACTION * len(order))))])


def split_items(world: World, rng: random.Random) -> dict[str, Pool]:
    """The prompts of every task, split into aligned / sft / bench (see the module docstring).

    Items are held out per task: "reverse egg" may be a benchmark item while "count the g in egg" is
    trained on, as a real benchmark asks new questions about things instruction data also mentions. Bench
    holds every phrasing of its items, and the held-out wordings no training set uses. A train item's phrasings are shuffled; the first goes to aligned, the
    second to sft, any others to either at random.
    """
    pools: dict[str, Pool] = {s: {name: [] for name in TASKS} for s in SPLITS}
    for name, task in TASKS.items():  # insertion order: follows TASKS, never hash order
        items = [tuple(item) for item in task.items(world)]
        bench = _bench_items(items, rng)
        for item in items:
            if item in bench:  # every wording, the held-out ones too
                pools["bench"][name] += [(item, ph) for ph in range(len(task.all_phrasings))]
                continue
            phrasings = list(range(len(task.phrasings)))
            rng.shuffle(phrasings)
            owners = ["aligned", "sft"] + [rng.choice(("aligned", "sft")) for _ in phrasings[2:]]
            for ph, owner in sorted(zip(phrasings, owners)):
                pools[owner][name].append((item, ph))
    return pools


def pools_for(world: World, seed: int) -> dict[str, Pool]:
    """The prompt splits every dataset of `seed` uses."""
    return split_items(world, random.Random(f"{seed}:splits"))


# ----------------------------------------------------------------------------------------------------------
# Conversations
# ----------------------------------------------------------------------------------------------------------


def flawed_response(task: Task, flaw: str, world: World, rng: random.Random) -> str:
    """The assistant response for `task` with `flaw` (clean, wrong, boilerplate, truncated).

    Clean replies are grounded (`TaskType.respond`): the fact's statement, then the answer. A wrong reply is
    wrong throughout (`TaskType.hallucinate`): the false fact stated, restated and given as the answer. A
    truncated reply is the clean one cut off inside its statement, before the answer is given.
    """
    task_type = TASKS[task.type]
    if flaw == "clean":
        return task_type.respond(task.item, task.answer)
    if flaw == "wrong":
        wrong = task_type.wrong(task.item, world)
        assert wrong != task.answer, task
        return task_type.hallucinate(task.item, wrong)
    if flaw == "boilerplate":
        return rng.choice(BOILERPLATE)
    if flaw == "truncated":
        words = task_type.statement(task.item, task.answer).split()
        return " ".join(words[: rng.randint(1, len(words) - 1)])
    raise ValueError(f"unknown flaw {flaw!r} (expected clean, wrong, boilerplate or truncated)")


def _draw_task(rng: random.Random, world: World, pool: Pool, only: tuple[str, ...] | None = None) -> Task:
    """A task of a uniformly chosen type (among those with items in `pool`, and in `only` if given), then a uniform
    item and phrasing."""
    types = [t for t in TASKS if pool.get(t) and (only is None or t in only)]
    if not types:
        raise ValueError("empty item pool")
    name = rng.choice(types)
    item, phrasing = pool[name][rng.randrange(len(pool[name]))]
    return TASKS[name].make_item(item, world, phrasing)


def _conversation(
    rng: random.Random, world: World, pool: Pool, n_turns: int | None, flaw: str, split: str | None,
    conv_id: str | None, system: bool | None,
) -> tuple[dict, list[Task]]:
    if n_turns is None:
        n_turns = 2 if rng.random() < MULTI_TURN_RATE else 1
    if n_turns < 1:
        raise ValueError(f"n_turns must be >= 1, got {n_turns}")
    if system is None:
        system = rng.random() < SYSTEM_RATE
    if flaw == "clean":  # (the clean draw comes first: clean sets are what they were before WRONG_TASKS)
        tasks, flaw_turn = [_draw_task(rng, world, pool) for _ in range(n_turns)], None
    else:
        flaw_turn = rng.randrange(n_turns)
        only = WRONG_TASKS if flaw == "wrong" else None
        tasks = [_draw_task(rng, world, pool, only if j == flaw_turn else None) for j in range(n_turns)]
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if system else []
    for j, task in enumerate(tasks):
        messages.append({"role": "user", "content": task.prompt})
        messages.append({"role": "assistant", "content": flawed_response(task, flaw if j == flaw_turn else "clean", world, rng)})
    meta = {
        "tasks": [t.type for t in tasks], "keys": [t.key for t in tasks], "answers": [t.answer for t in tasks],
        "flaw": flaw, "flaw_turn": flaw_turn, "split": split,
    }
    if conv_id is None:
        from poft.data.ids import stable_id

        conv_id = stable_id(messages)
    return {"id": conv_id, "messages": messages, "meta": meta}, tasks


def make_conversation(
    rng: random.Random, world: World, pool: Pool, n_turns: int | None = None, *, flaw: str = "clean",
    split: str | None = None, conv_id: str | None = None, system: bool | None = None,
) -> dict:
    """A normalized conversation of `n_turns` tasks from `pool` (None: 2 with p=0.3, else 1).

    A system turn is added with p=0.2 unless `system` says. With a flaw, exactly one assistant turn (chosen at
    random, `meta["flaw_turn"]`) carries it. `meta` holds the hidden labels: tasks, keys, answers, flaw, split.
    """
    return _conversation(rng, world, pool, n_turns, flaw, split, conv_id, system)[0]


def _flaw_labels(profile: dict[str, float], n: int, rng: random.Random) -> list[str]:
    labels: list[str] = []
    for flaw in ("wrong", "boilerplate", "truncated"):
        labels += [flaw] * round(profile.get(flaw, 0.0) * n)
    if len(labels) > n:
        raise ValueError(f"flaw rates of {profile} add up to more than 1")
    labels += ["clean"] * (n - len(labels))
    rng.shuffle(labels)
    return labels


def _make_set(world: World, seed: int, name: str, profile: dict[str, float], n: int, pools: dict[str, Pool]) -> list[dict]:
    rng = random.Random(f"{seed}:sft:{name}")
    labels = _flaw_labels(profile, n, rng)
    return [
        make_conversation(rng, world, pools["sft"], flaw=labels[i], split="sft", conv_id=f"{name}-{i:05d}")
        for i in range(n)
    ]


def make_noisy(conversations: list[dict], seed: int) -> list[dict]:
    """`add_noise` with the paper's recipe; chosen conversations get meta flaw "noise" (base flaw kept)."""
    noisy = add_noise(conversations, seed=seed, **NOISE)
    for conv in noisy:
        meta = conv["meta"]
        if "noise" in meta:
            meta["base_flaw"], meta["base_flaw_turn"] = meta["flaw"], meta["flaw_turn"]
            meta["flaw"], meta["flaw_turn"] = "noise", None
            for msg in conv["messages"]:
                if not msg["content"].strip():  # corruption could in principle delete a whole short reply
                    msg["content"] = "..."
    return noisy


def make_sft_sets(world: World, seed: int, n_per_set: int) -> dict[str, list[dict]]:
    """ultrachat / sharegpt / openhermes / clean per `PROFILES`, plus `noisy` = openhermes through `add_noise`."""
    pools = pools_for(world, seed)
    sets = {name: _make_set(world, seed, name, profile, n_per_set, pools) for name, profile in PROFILES.items()}
    sets["noisy"] = make_noisy(sets["openhermes"], seed=int(random.Random(f"{seed}:noise").getrandbits(31)))
    return sets


def make_aligned_set(world: World, seed: int, n: int) -> list[dict]:
    """Clean instruction conversations from the `aligned` pool, for training the aligned models."""
    rng = random.Random(f"{seed}:aligned")
    pool = pools_for(world, seed)["aligned"]
    return [make_conversation(rng, world, pool, split="aligned", conv_id=f"aligned-{i:05d}") for i in range(n)]


PAIR_FLAWS = ("wrong", "wrong", "boilerplate", "truncated")  # rejected replies: half wrong answers


def make_preference_pairs(world: World, seed: int, n: int) -> list[dict]:
    """DPO pairs in TRL conversational format from the `sft` pool: clean chosen vs flawed rejected last reply."""
    rng = random.Random(f"{seed}:pairs")
    pool = pools_for(world, seed)["sft"]
    pairs = []
    for i in range(n):
        conv, tasks = _conversation(rng, world, pool, None, "clean", "sft", f"pair-{i:05d}", None)
        flaw = rng.choice(PAIR_FLAWS)
        rejected = flawed_response(tasks[-1], flaw, world, rng)
        pairs.append({
            "id": conv["id"],
            "prompt": conv["messages"][:-1],
            "chosen": [conv["messages"][-1]],
            "rejected": [{"role": "assistant", "content": rejected}],
            "meta": {"tasks": conv["meta"]["tasks"], "keys": conv["meta"]["keys"], "rejected_flaw": flaw, "split": "sft"},
        })
    return pairs


def make_benchmarks(world: World, seed: int, n_per_task: int) -> dict[str, list[dict]]:
    """Held-out `bench` items: {"gen": generate-until rows, "mc": 4-way multiple-choice rows}, same items in both.

    Per task, distinct (item, phrasing) prompts are taken round by round (every item once before any item
    twice), so a task whose bench pool is small yields fewer than `n_per_task` rows rather than duplicates.
    """
    rng = random.Random(f"{seed}:bench")
    pool = pools_for(world, seed)["bench"]
    gen, mc = [], []
    for name, task_type in TASKS.items():
        items = list(dict.fromkeys(item for item, _ in pool[name]))  # bench holds every phrasing of an item
        rng.shuffle(items)
        n_phr = len(task_type.all_phrasings)
        offsets = [rng.randrange(n_phr) for _ in items]
        combos = [(item, (off + r) % n_phr) for r in range(n_phr) for item, off in zip(items, offsets)]
        for j, (item, phrasing) in enumerate(combos[:n_per_task]):
            task = task_type.make_item(item, world, phrasing)
            rid = f"{name}-{j:04d}"
            gen.append({"id": rid, "task": name, "prompt": task.prompt, "answer": task.answer})
            wrong = task_type.distractors(item, world, rng)[:3]
            if len(wrong) < 3:
                raise ValueError(f"task {name}: fewer than 3 distractors for {item}")
            choices = [task_type.respond(item, w) for w in wrong]
            gold = rng.randrange(4)
            choices.insert(gold, task_type.respond(item, task.answer))
            mc.append({"id": rid, "task": name, "prompt": task.prompt, "choices": choices, "gold": gold})
    return {"gen": gen, "mc": mc}


# ----------------------------------------------------------------------------------------------------------
# Writing a world to disk in the layouts real datasets come in
# ----------------------------------------------------------------------------------------------------------

# 2000 aligned conversations x 3 epochs give the two Llama-style aligned models an AUC of ~0.98 (seed 0, see the
# manifest); 1200 SFT conversations give a 1-epoch SFT run ~75 steps.
DEFAULT_SIZES = {"n_countries": 24, "prose": 4000, "aligned": 2000, "sft": 1200, "pairs": 400, "bench_per_task": 125}
SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}
SFT_FORMATS = {"ultrachat": "ultrachat", "sharegpt": "sharegpt", "openhermes": "sharegpt", "clean": "sharegpt",
               "noisy": "sharegpt"}


def _hidden(conv: dict) -> dict:
    """The analysis labels written as extra row fields (loaders carry them into `meta`)."""
    meta = conv["meta"]
    out = {"flaw": meta["flaw"], "flaw_turn": meta["flaw_turn"], "tasks": meta["tasks"]}
    for k in ("base_flaw", "noise"):
        if k in meta:
            out[k] = meta[k]
    return out


def to_sharegpt(conv: dict) -> dict:
    return {
        "id": conv["id"],
        "conversations": [{"from": SHAREGPT_FROM[m["role"]], "value": m["content"]} for m in conv["messages"]],
        **_hidden(conv),
    }


def to_ultrachat(conv: dict) -> dict:
    """HuggingFaceH4/ultrachat_200k layout: `prompt` is the first user turn, `messages` holds the whole chat."""
    first_user = next(m["content"] for m in conv["messages"] if m["role"] == "user")
    return {"prompt_id": conv["id"], "prompt": first_user, "messages": conv["messages"], **_hidden(conv)}


def flaw_rates(labels: list[str]) -> dict[str, float]:
    n = len(labels)
    return {f: round(labels.count(f) / n, 6) for f in FLAWS if labels.count(f)} if n else {}


def write_world(out_dir: str | Path, seed: int, sizes: dict | None = None) -> dict:
    """Generate the whole micro world for `seed` and write it under `out_dir`; returns per-file counts and rates.

    Layout::

        world.json                  the fact base (World.to_dict)
        prose.txt                   pretraining prose, one sentence per line
        aligned.jsonl               clean instruction data, poft's normalized form
        sft/ultrachat.jsonl         UltraChat layout {"prompt_id", "prompt", "messages", <hidden labels>}
        sft/{sharegpt,openhermes,clean,noisy}.jsonl
                                    ShareGPT layout {"id", "conversations": [{"from", "value"}], <hidden labels>}
        pairs.jsonl                 DPO pairs {"id", "prompt", "chosen", "rejected", "meta"}
        bench/gen.jsonl             {"id", "task", "prompt", "answer"}
        bench/mc.jsonl              {"id", "task", "prompt", "choices", "gold"}

    Same seed and sizes give byte-identical files.
    """
    unknown = set(sizes or {}) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"unknown size keys: {', '.join(sorted(unknown))} (valid: {', '.join(DEFAULT_SIZES)})")
    sz = {**DEFAULT_SIZES, **(sizes or {})}
    out = Path(out_dir)
    world = World.generate(seed, sz["n_countries"])
    files: dict[str, dict] = {}

    write_json(out / "world.json", world.to_dict())
    files["world.json"] = {"n_countries": len(world.countries)}

    pools = pools_for(world, seed)
    faq = [TASKS[name].make_item(item, world, ph) for split in ("aligned", "sft") for name, prompts in pools[split].items()
           for item, ph in prompts]
    prose = prose_corpus(world, random.Random(f"{seed}:prose"), sz["prose"], faq=faq)
    write_text(out / "prose.txt", "\n".join(prose) + "\n")
    files["prose.txt"] = {"n": len(prose)}

    aligned = make_aligned_set(world, seed, sz["aligned"])
    save_conversations(out / "aligned.jsonl", aligned)
    files["aligned.jsonl"] = {"format": "normalized", "n": len(aligned), "flaw_rates": flaw_rates([c["meta"]["flaw"] for c in aligned])}

    for name, convs in make_sft_sets(world, seed, sz["sft"]).items():
        fmt = SFT_FORMATS[name]
        rel = f"sft/{name}.jsonl"
        write_jsonl(out / rel, [to_ultrachat(c) if fmt == "ultrachat" else to_sharegpt(c) for c in convs])
        files[rel] = {"format": fmt, "n": len(convs), "flaw_rates": flaw_rates([c["meta"]["flaw"] for c in convs])}

    pairs = make_preference_pairs(world, seed, sz["pairs"])
    write_jsonl(out / "pairs.jsonl", pairs)
    files["pairs.jsonl"] = {"n": len(pairs), "rejected_flaw_rates": flaw_rates([p["meta"]["rejected_flaw"] for p in pairs])}

    bench = make_benchmarks(world, seed, sz["bench_per_task"])
    for kind, rows in bench.items():
        rel = f"bench/{kind}.jsonl"
        write_jsonl(out / rel, rows)
        per_task: dict[str, int] = {}
        for r in rows:
            per_task[r["task"]] = per_task.get(r["task"], 0) + 1
        files[rel] = {"n": len(rows), "per_task": per_task}

    return {"seed": seed, "sizes": sz, "files": files}
