"""Micro-world datasets: flaws that the checker catches, profile rates, prompt-disjoint splits with held-out bench items, deterministic files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from poft.data import load_conversations, read_conversations
from poft.dpo import read_pairs, validate_pairs
from poft.io import read_json
from poft.micro.datasets import (
    BENCH_FRACTION, DEFAULT_SIZES, NOISE, PROFILES, SPLITS, make_aligned_set, make_benchmarks, make_conversation, make_preference_pairs,
    make_sft_sets, pools_for, split_items, write_world,
)
from poft.micro.world import TASKS, World, check, prompt_key

SEED = 11
N = 400
SIZES = {"prose": 800, "aligned": 150, "sft": 200, "pairs": 120, "bench_per_task": 12}


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(SEED)


@pytest.fixture(scope="module")
def sft_sets(world):
    return make_sft_sets(world, SEED, N)


def turns(conv: dict) -> list[tuple[str, str]]:
    """(user prompt, assistant reply) pairs of a conversation."""
    msgs = [m for m in conv["messages"] if m["role"] != "system"]
    return [(msgs[i]["content"], msgs[i + 1]["content"]) for i in range(0, len(msgs), 2)]


def test_split_items_partitions_prompts(world):
    pools = split_items(world, random.Random(0))
    from poft.micro.world import TASKS

    for name, task in TASKS.items():
        items = {s: {it for it, _ in pools[s][name]} for s in SPLITS}
        # each prompt in exactly one split; bench items in every wording, the held-out ones too, which no
        # training prompt ever uses
        every = sorted((tuple(it), ph) for it in task.items(world)
                       for ph in range(len(task.all_phrasings if tuple(it) in items["bench"] else task.phrasings)))
        got = sorted(p for s in SPLITS for p in pools[s][name])
        assert got == every, name
        assert len(task.held_out) == 2 and not set(task.held_out) & set(task.phrasings), name
        assert all(ph < len(task.phrasings) for s in ("aligned", "sft") for _, ph in pools[s][name]), name
        assert all(items.values()), name
        # bench items are held out whole; every train item is asked in both the aligned and the sft data
        assert not items["bench"] & (items["aligned"] | items["sft"]), name
        assert items["aligned"] == items["sft"], name
        assert abs(len(items["bench"]) - BENCH_FRACTION * len(task.items(world))) <= 1, name
    assert pools_for(world, 3) == pools_for(world, 3)


def test_conversation_shapes(world):
    rng = random.Random(0)
    pool = pools_for(world, 0)["sft"]
    convs = [make_conversation(rng, world, pool, conv_id=f"c{i}") for i in range(1000)]
    multi = sum(len(c["meta"]["tasks"]) == 2 for c in convs) / len(convs)
    system = sum(c["messages"][0]["role"] == "system" for c in convs) / len(convs)
    assert 0.24 < multi < 0.36 and 0.15 < system < 0.25
    c = make_conversation(rng, world, pool, 2, flaw="wrong", system=True, split="sft", conv_id="x")
    assert [m["role"] for m in c["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert c["meta"]["flaw"] == "wrong" and c["meta"]["flaw_turn"] in (0, 1) and c["meta"]["split"] == "sft"
    ok = [check(p, r, world) for p, r in turns(c)]
    assert ok == [j != c["meta"]["flaw_turn"] for j in range(2)]


def test_flawed_turns_fail_and_clean_turns_pass(sft_sets, world):
    for name, convs in sft_sets.items():
        for conv in convs:
            meta = conv["meta"]
            for j, (prompt, reply) in enumerate(turns(conv)):
                ok = check(prompt, reply, world)
                if meta["flaw"] == "noise":
                    continue  # corrupted / re-matched: may or may not pass
                if meta["flaw"] != "clean" and j == meta["flaw_turn"]:
                    assert not ok, (name, conv)
                else:
                    assert ok, (name, conv)


def test_flaw_rates_match_profiles(sft_sets):
    for name, profile in PROFILES.items():
        flaws = [c["meta"]["flaw"] for c in sft_sets[name]]
        assert len(flaws) == N
        for kind in ("wrong", "boilerplate", "truncated"):
            assert abs(flaws.count(kind) / N - profile.get(kind, 0.0)) <= 0.01, (name, kind)
        total = 1 - flaws.count("clean") / N
        assert abs(total - sum(profile.values())) <= 0.02
    assert {c["meta"]["flaw"] for c in sft_sets["openhermes"]} == {"clean", "wrong", "boilerplate", "truncated"}


def test_noisy_set_is_openhermes_through_add_noise(sft_sets, world):
    base, noisy = sft_sets["openhermes"], sft_sets["noisy"]
    assert [c["id"] for c in noisy] == [c["id"] for c in base]
    marked = [c for c in noisy if c["meta"]["flaw"] == "noise"]
    assert len(marked) == round(NOISE["rematch_fraction"] * N)
    for conv, orig in zip(noisy, base):
        if conv["meta"]["flaw"] == "noise":
            assert "noise" in conv["meta"] and conv["meta"]["base_flaw"] == orig["meta"]["flaw"]
        else:
            assert conv == orig
    # re-matched + corrupted replies mostly fail the checker
    passing = sum(all(check(p, r, world) for p, r in turns(c)) for c in marked)
    assert passing / len(marked) < 0.5


def test_splits_are_disjoint_in_generated_data(world, sft_sets):
    aligned = make_aligned_set(world, SEED, DEFAULT_SIZES["aligned"])
    pairs = make_preference_pairs(world, SEED, 300)
    bench = make_benchmarks(world, SEED, 50)
    prompts = {
        "aligned": {p for c in aligned for p, _ in turns(c)},
        "sft": {p for convs in sft_sets.values() for c in convs for p, _ in turns(c) if c["meta"]["flaw"] != "noise"}
        | {m["content"] for pr in pairs for m in pr["prompt"] if m["role"] == "user"},
        "bench": {r["prompt"] for rows in bench.values() for r in rows},
    }
    keys = {s: {prompt_key(p) for p in ps} for s, ps in prompts.items()}
    # no prompt text is shared by any two splits; benchmark items are never trained on in any phrasing
    for a, b in (("aligned", "sft"), ("aligned", "bench"), ("sft", "bench")):
        assert not prompts[a] & prompts[b], (a, b)
    for a in ("aligned", "sft"):
        assert not keys[a] & keys["bench"], a
    # ... while the aligned models learn the very items the SFT sets ask about, in other words
    assert len(keys["aligned"] & keys["sft"]) > 0.5 * len(keys["sft"])
    for ks in keys.values():
        assert {k.split(":")[0] for k in ks} == set(TASKS)


def test_prose_asks_train_prompts_only(tmp_path):
    """The prose's FAQ lines ask train prompts with grounded answers; no benchmark prompt or item appears."""
    write_world(tmp_path, SEED, SIZES)
    world = World.from_dict(read_json(tmp_path / "world.json"))
    faq = [line for line in (tmp_path / "prose.txt").read_text().splitlines() if line.startswith("Q: ")]
    assert len(faq) > 0.1 * SIZES["prose"]
    pools = pools_for(world, SEED)
    train = {TASKS[n].make_item(it, world, ph).prompt for s in ("aligned", "sft") for n, ps in pools[s].items() for it, ph in ps}
    bench_keys = {TASKS[n].key(it) for n, ps in pools["bench"].items() for it, _ in ps}
    for line in faq:
        prompt, answer = line.removeprefix("Q: ").split(" A: ")
        assert prompt in train and prompt_key(prompt) not in bench_keys, line
        assert check(prompt, answer, world), line


def test_aligned_set_is_clean(world):
    aligned = make_aligned_set(world, SEED, 300)
    assert all(c["meta"]["flaw"] == "clean" and c["meta"]["split"] == "aligned" for c in aligned)
    assert all(check(p, r, world) for c in aligned for p, r in turns(c))


def test_preference_pairs(world):
    pairs = make_preference_pairs(world, SEED, 300)
    validate_pairs(pairs)
    for p in pairs:
        prompt = p["prompt"][-1]
        assert prompt["role"] == "user"
        assert check(prompt["content"], p["chosen"][0]["content"], world)
        assert not check(prompt["content"], p["rejected"][0]["content"], world)
        assert p["chosen"][0]["role"] == p["rejected"][0]["role"] == "assistant"


def test_benchmarks(world):
    bench = make_benchmarks(world, SEED, 20)
    gen, mc = bench["gen"], bench["mc"]
    assert len(gen) == len(mc) and len({r["id"] for r in gen}) == len(gen)
    assert len({(r["task"], r["prompt"]) for r in gen}) == len(gen)  # no duplicate prompts
    for r in gen:
        assert set(r) == {"id", "task", "prompt", "answer"}
        assert check(r["prompt"], f"The answer is {r['answer']}.", world)
    golds = [r["gold"] for r in mc]
    assert set(golds) == {0, 1, 2, 3}
    for r in mc:
        assert set(r) == {"id", "task", "prompt", "choices", "gold"}
        assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
        assert [check(r["prompt"], c, world) for c in r["choices"]] == [i == r["gold"] for i in range(4)]


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_write_world_is_deterministic(tmp_path):
    m1 = write_world(tmp_path / "a", 5, SIZES)
    m2 = write_world(tmp_path / "b", 5, SIZES)
    write_world(tmp_path / "c", 6, SIZES)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert m1 == m2
    assert set(a) == {
        "world.json", "prose.txt", "aligned.jsonl", "pairs.jsonl", "bench/gen.jsonl", "bench/mc.jsonl",
        "sft/ultrachat.jsonl", "sft/sharegpt.jsonl", "sft/openhermes.jsonl", "sft/clean.jsonl", "sft/noisy.jsonl",
    }
    assert a == b
    assert set(c) == set(a) and all(a[k] != c[k] for k in a)
    assert set(m1["files"]) == set(a)


def test_written_files_load(tmp_path):
    manifest = write_world(tmp_path, 5, SIZES)
    world = World.from_dict(read_json(tmp_path / "world.json"))
    assert world == World.generate(5)
    for name in ("sharegpt", "openhermes", "clean", "noisy", "ultrachat"):
        fmt = "ultrachat" if name == "ultrachat" else "sharegpt"
        convs, report = load_conversations(str(tmp_path / "sft" / f"{name}.jsonl"), fmt)
        assert report.n_kept == report.n_rows == SIZES["sft"] and not report.dropped
        flaws = [c["meta"]["flaw"] for c in convs]
        rates = manifest["files"][f"sft/{name}.jsonl"]["flaw_rates"]
        assert rates == {k: round(flaws.count(k) / len(flaws), 6) for k in rates}
        if name != "noisy":
            for c in convs:
                for j, (p, r) in enumerate(turns(c)):
                    assert check(p, r, world) == (c["meta"]["flaw"] == "clean" or j != c["meta"]["flaw_turn"])
    convs, report = load_conversations(str(tmp_path / "sft" / "sharegpt.jsonl"), "auto")
    assert report.n_kept == SIZES["sft"]
    aligned = read_conversations(tmp_path / "aligned.jsonl")
    assert len(aligned) == SIZES["aligned"]
    pairs = read_pairs(tmp_path / "pairs.jsonl")
    validate_pairs(pairs)
    assert len(pairs) == SIZES["pairs"]
    prose = (tmp_path / "prose.txt").read_text(encoding="utf-8").splitlines()
    assert len(prose) == SIZES["prose"] and all(prose)
    assert manifest["files"]["bench/gen.jsonl"]["n"] == len((tmp_path / "bench" / "gen.jsonl").read_text().splitlines())


def test_wrong_replies_are_wrong_throughout_and_on_the_wrong_skills(sft_sets, world):
    """A wrong turn states the false fact, restates it and answers it (several wrong tokens, not one), and its
    task is one of WRONG_TASKS: the skills where low-quality sets are wrong."""
    from poft.micro.datasets import WRONG_TASKS
    from poft.micro.world import TASKS, parse_prompt

    wrong = [(conv, j) for convs in sft_sets.values() for conv in convs
             if conv["meta"]["flaw"] == "wrong" for j in [conv["meta"]["flaw_turn"]]]
    assert wrong
    for conv, j in wrong:
        prompt, reply = turns(conv)[j]
        task, _ = parse_prompt(prompt)
        assert task in WRONG_TASKS
        answer = reply.rsplit("The answer is ", 1)[1].rstrip(".")
        item = next(it for it in TASKS[task].items(world) if TASKS[task].key(it) == conv["meta"]["keys"][j])
        assert reply == TASKS[task].hallucinate(item, answer) and reply.count(answer) >= 3


@pytest.mark.parametrize("world_seed", range(5))
def test_the_openhermes_like_set_is_wrong_on_most_turns_of_the_wrong_skills(world_seed):
    """The design of tuning step 4 (workflows/README.md), at five world seeds with the default config's 300
    conversations per set: every wrong turn is on one of WRONG_TASKS; the openhermes-like set is wrong on the
    majority of each one's turns (56-65% at seeds 0-4), so that greedy decoding after SFT on it gives the
    misconception; and the sets keep their quality order, ultrachat < sharegpt < openhermes on each of them."""
    from collections import Counter

    from poft.micro.datasets import WRONG_TASKS

    sets = make_sft_sets(World.generate(world_seed), world_seed, 300)  # micro.yaml's `micro.options.sft`

    def wrong_share(convs) -> dict[str, float]:
        turns = Counter(t for c in convs for t in c["meta"]["tasks"])
        wrong = Counter(c["meta"]["tasks"][c["meta"]["flaw_turn"]] for c in convs if c["meta"]["flaw"] == "wrong")
        return {t: wrong[t] / turns[t] for t in turns}

    shares = {name: wrong_share(sets[name]) for name in ("ultrachat", "sharegpt", "openhermes")}
    for name, share in shares.items():
        assert all(share[t] == 0 for t in share if t not in WRONG_TASKS), name
    assert all(shares["openhermes"][t] > 0.5 for t in WRONG_TASKS), shares["openhermes"]
    for t in WRONG_TASKS:
        assert shares["ultrachat"][t] < shares["sharegpt"][t] < shares["openhermes"][t], (t, shares)
