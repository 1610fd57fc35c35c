"""Claim verdicts flip with the grid: PoFT wins -> holds, loses -> fails, straddles -> inconclusive,
absent -> not covered."""

import pytest

from poft.report.claims import CLAIMS, judge, rules
from poft.report.collect import collect, with_overall
from poft.report.render import claims_markdown
from poft.report.verdicts import Evidence, combine

from .grids import TASKS, WIN

SEEDS = (0, 1, 2)


def evidence(grid, **kw) -> Evidence:
    df = with_overall(collect(grid.records), TASKS)
    return Evidence(df, overall_tasks=TASKS, **kw)


def gain_grid(grid, gain, datasets=("d1",), variants=("full",), tasks=tuple(TASKS), epochs=(1, 2, 3), seeds=SEEDS):
    """SFT = 50 + epoch + seed; PoFT adds gain(seed, task, dataset, variant)."""
    return grid.runs(lambda b, d, m, v, s, e, t: 50 + e + s + (gain(s, t, d, v) if m == "poft" else 0),
                     datasets=datasets, variants=variants, tasks=tasks, epochs=epochs, seeds=seeds)


def verdict(ev, claim):
    return CLAIMS[claim][1](ev).verdict


def test_combine():
    assert combine([]) == "not covered" and combine(["+", "+"]) == "holds"
    assert combine(["+", "?"]) == "inconclusive" and combine(["+", "?", "-"]) == "fails"


@pytest.mark.parametrize("gain, expected", [
    (lambda s, *_: 2 + 0.1 * s, "holds"),
    (lambda s, *_: -2 - 0.1 * s, "fails"),
    (lambda s, *_: [1.0, -1.0, 0.5][s], "inconclusive"),  # seeds disagree: the interval straddles 0 and delta
    (lambda s, *_: [0.1, 0.0, 0.2][s], "fails"),  # a powered null: the interval [-0.15, 0.35] rules out 1
])
def test_c1_flips(grid, gain, expected):
    ev = evidence(gain_grid(grid, gain, datasets=("d1", "d2")))
    v = CLAIMS["C1"][1](ev)
    assert v.verdict == expected
    assert len(v.numbers) == 4  # 2 datasets x (last, avg)


def test_c1_one_losing_dataset_fails_the_universal_claim(grid):
    ev = evidence(gain_grid(grid, lambda s, t, d, v: (2 if d == "d1" else -2) + 0.1 * s, datasets=("d1", "d2")))
    assert verdict(ev, "C1") == "fails"


def test_single_seed_is_inconclusive_and_missing_arm_not_covered(grid):
    ev = evidence(gain_grid(grid, lambda *_: 5.0, seeds=(0,)))
    assert verdict(ev, "C1") == "inconclusive"  # one pair: no interval
    only_sft = grid.__class__(grid.root / "sft_only")
    only_sft.runs(lambda *a: 50.0, methods=("sft",))
    assert verdict(evidence(only_sft), "C1") == "not covered"


def test_c2_stability(grid):
    # PoFT flat over epochs; SFT's odd epochs move by 2 + 0.1 seed (std over epochs 0.94 + 0.05 seed)
    grid.runs(lambda b, d, m, v, s, e, t: 50 + (0 if m == "poft" else (2 + 0.1 * s) * (e % 2)), seeds=SEEDS)
    assert verdict(evidence(grid), "C2") == "holds"
    assert verdict(evidence(gain_grid(grid.__class__(grid.root / "one"), lambda *_: 1, epochs=(1,))), "C2") == \
        "not covered"  # a std over epochs needs >= 2 epochs
    # Two epochs suffice (the paper's Std spans every epoch): SFT moves by 2 from epoch 1 to 2, PoFT by 0.
    two = grid.__class__(grid.root / "two")
    two.runs(lambda b, d, m, v, s, e, t: 50 + s + (2 * e if m == "sft" else 0), seeds=SEEDS, epochs=(1, 2))
    assert verdict(evidence(two), "C2") == "holds"


def test_c3_concentration(grid):
    gain_grid(grid, lambda s, t, *_: (3 + 0.1 * s) if t == "arith" else 0.5)
    assert verdict(evidence(grid, focus_task="arith"), "C3") == "holds"
    assert verdict(evidence(grid, focus_task="words"), "C3") == "fails"
    assert verdict(evidence(grid, focus_task=None), "C3") == "not covered"


def test_c4_win_rates_and_widest_spread(grid):
    gain_grid(grid, lambda s, t, d, v: (3 if d == "wide" else 1) + 0.1 * s, datasets=("narrow", "wide"),
              tasks=(*TASKS, WIN))
    assert verdict(evidence(grid, chat_tasks=[WIN]), "C4") == "holds"
    assert verdict(evidence(grid, chat_tasks=[WIN], spreads={"narrow": 0.2, "wide": 0.9}), "C4") == "holds"
    assert verdict(evidence(grid, chat_tasks=[WIN], spreads={"narrow": 0.9, "wide": 0.2}), "C4") == "inconclusive"
    assert verdict(evidence(grid, chat_tasks=[]), "C4") == "not covered"


def test_c5_gain_follows_spread(grid):
    gain_grid(grid, lambda s, t, d, v: {"a": 1, "b": 2, "c": 3}[d] + 0.1 * s, datasets=("a", "b", "c"))
    assert verdict(evidence(grid, spreads={"a": 0.1, "b": 0.2, "c": 0.3}), "C5") == "holds"
    assert verdict(evidence(grid, spreads={"a": 0.3, "b": 0.2, "c": 0.1}), "C5") == "fails"
    assert verdict(evidence(grid), "C5") == "not covered"


def test_c6_noise(grid):
    # clean: PoFT + 1; noisy: SFT loses 1 per epoch, PoFT holds: the gap widens
    grid.runs(lambda b, d, m, v, s, e, t: 50 + s + (1 if m == "poft" else 0), datasets=("clean",), seeds=SEEDS)
    grid.runs(lambda b, d, m, v, s, e, t: 50 + s * 0.1 - (e if m == "sft" else 0), datasets=("noisy",), seeds=SEEDS)
    ev = evidence(grid, noise_datasets=["clean", "noisy"])
    assert verdict(ev, "C6") == "holds"
    assert verdict(evidence(grid, noise_datasets=["noisy", "clean"]), "C6") == "fails"  # "noised" set improves
    assert verdict(evidence(grid), "C6") == "not covered"
    # The noise study's clean control is no main dataset (C1-C5): there PoFT ~ SFT is expected.
    assert ev.main_datasets == []


def test_main_datasets_are_exactly_the_configs(grid):
    """C1-C5 read the config's grid.main datasets and nothing else. d1 gains +2, the noise study's clean
    control (trained on the same grid) loses 1: with the control counted as a main dataset, as before, C1
    would read "fails"; restricted to grid.main (d1), it holds."""
    gain_grid(grid, lambda s, t, d, v: 2 if d == "d1" else -1, datasets=("d1", "clean", "noisy"))
    ev = evidence(grid, noise_datasets=["clean", "noisy"], main=["d1"])
    assert ev.main_datasets == ["d1"] and verdict(ev, "C1") == "holds"
    assert evidence(grid, noise_datasets=["clean", "noisy"]).main_datasets == ["d1"]  # default: outside the study
    assert verdict(evidence(grid, noise_datasets=["clean", "noisy"], main=["d1", "clean"]), "C1") == "fails"


def test_filters_dpo_distill_and_control(grid):
    def gain(s, t, d, v):
        return 2 + 0.1 * s
    grid.runs(lambda b, d, m, v, s, e, t: 50 + e + s + (1 if v.startswith("filter:") else 0)
              + (gain(s, t, d, v) if m == "poft" else 0) - (3 if v.startswith("distill:") else 0),
              variants=("full", "filter:preference:0.8", "filter:ifd:0.8", "dpo", "distill:zephyr"), seeds=SEEDS)
    grid.runs(lambda b, d, m, v, s, e, t: 50 + e + s, methods=("poft",), variants=("shuffled",), seeds=SEEDS)
    ev = evidence(grid)
    assert [verdict(ev, c) for c in ("C7", "C8", "C9", "C10", "K1")] == ["holds"] * 5
    bare = grid.__class__(grid.root / "bare")
    gain_grid(bare, lambda *_: 1)
    ev = evidence(bare)
    assert [verdict(ev, c) for c in ("C7", "C8", "C9", "C10", "K1")] == ["not covered"] * 5


def test_claims_markdown_lists_every_claim_and_c11(grid):
    ev = evidence(gain_grid(grid, lambda s, *_: 2 + 0.1 * s))
    verdicts = judge(ev)
    assert [v.claim for v in verdicts] == [*(f"C{i}" for i in range(1, 11)), "K1"]
    assert all(v.verdict in ("holds", "fails", "inconclusive", "not covered") for v in verdicts)
    text = claims_markdown(verdicts, rules(), 0.95, 1.0)
    assert "## C1: holds" in text and "## C11" in text and "unit tests" in text
    # d = 2.0, 2.1, 2.2 over 3 seeds (no items files): mean 2.1, sd 0.1, se 0.1/sqrt(3) = 0.05774, t(0.975, 2)
    # = 4.3027 -> [1.85, 2.35]; MDE = (4.3027 + t(0.8, 2) = 1.0607) * 0.05774 = 0.31
    assert "| b1 / d1: PoFT − SFT Overall (last) | 3 seeds | 2.10 | [1.85, 2.35] | 0.31 | method | + |" in text
    head = text.split("\n")[2]
    assert head.startswith("| claim | verdict | pooled effect | MDE | seeds × items |")


def test_c3_and_c5_pair_items_across_tasks_and_datasets(grid):
    """Item-level C3: PoFT gains 10 on arith items 0-1 of 4 (task gain 5) and 5 on words item 0 of 2 (2.5), so
    c = 5 - 2.5 = 2.5 in every seed. C5: dataset "wide" doubles every gain: gain(wide) - gain(narrow) = 3.75."""
    from poft.report.collect import collect_items

    from .test_stats import item_scores

    def scores(b, d, m, v, s, e, t):  # "wide": PoFT's item gains doubled
        sft, poft = item_scores(s, e, t, "sft"), item_scores(s, e, t, m)
        return [x + (2 if d == "wide" else 1) * (y - x) for x, y in zip(sft, poft)]

    grid.runs(scores, datasets=("narrow", "wide"), seeds=SEEDS)
    ev = evidence(grid, focus_task="arith", items=collect_items(grid.records), spreads={"narrow": 0.1, "wide": 0.5})
    c3 = CLAIMS["C3"][1](ev).numbers.set_index("comparison")
    narrow = c3.loc[c3.index.str.startswith("b1 / narrow")].iloc[0]
    assert narrow["unit"] == "items" and narrow["n_items"] == 6 and narrow["mean"] == pytest.approx(2.5)
    c5 = CLAIMS["C5"][1](ev)
    assert c5.numbers.iloc[0]["mean"] == pytest.approx(3.75) and c5.numbers.iloc[0]["unit"] == "items"
    assert c5.verdict == "inconclusive"  # six items that differ by 0 to 10 points: the interval includes 0
