"""Verdicts: how paired comparisons add up to "holds" / "fails" / "inconclusive" / "not covered".

Every claim rule is made of COMPARISONS: an effect of a contrast between arms, paired by seed and benchmark
item (`contrasts`, `effects.paired_effect`), read against the claim's direction and the minimum effect delta
declared in the config before the run (`report.min_effect`, Overall points) by `effects.verdict_of`:
    "+"  holds: the method-level interval excludes 0 in the claimed direction
    "-"  fails: the interval excludes 0 against it, or its bound on the claimed side is below delta (an effect of
         delta or more is ruled out: a powered null)
    "?"  inconclusive: anything else, including every comparison without a method-level interval (one seed)
A claim "for every base x dataset" is an intersection-union test: "not covered" when the grid has no
comparison for it, "fails" when any comparison is "-", "holds" when all are "+", else "inconclusive"; the
report adds how many cells hold after Holm and the pooled random-effects effect across cells.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from .collect import OVERALL
from .contrasts import EFFECT_COLUMNS, contrast_effect, contrast_matrix, effect_row, select
from .effects import verdict_of
from .summary import per_seed

VERDICTS = ("holds", "fails", "inconclusive", "not covered")
SIGN = {"holds": "+", "fails": "-", "inconclusive": "?"}
NUMBER_COLUMNS = ["comparison", *EFFECT_COLUMNS, "direction", "sign", "reason"]


@dataclass
class Verdict:
    """One claim's outcome: verdict in VERDICTS, the comparisons behind it (NUMBER_COLUMNS), and a sentence."""

    claim: str
    verdict: str
    numbers: pd.DataFrame
    text: str
    statement: str = ""
    summary: dict = field(default_factory=dict)  # pooled effect, MDE range, seeds x items (the headline line)


@dataclass
class Evidence:
    """The collected grid (with Overall rows), its per-item scores, and what the rules need to know about it."""

    df: pd.DataFrame
    chat_tasks: list[str] = field(default_factory=list)
    overall_tasks: list[str] = field(default_factory=list)
    focus_task: str | None = None  # C3's "GSM8k"
    noise_datasets: list[str] = field(default_factory=list)  # ordered clean -> noisiest
    main: list[str] | None = None  # the config's grid.main datasets (C1-C5); None: see main_datasets
    spreads: dict[str, float] | None = None  # dataset -> std of its mean aligned scores (C5, C4)
    items: pd.DataFrame | None = None  # `collect.collect_items`: per-item scores (None: seed level only)
    min_effect: float | None = 1.0  # delta, Overall points: declared before the run (config report.min_effect)
    level: float = 0.95

    @functools.cached_property
    def ps(self) -> pd.DataFrame:
        ps = per_seed(self.df)
        ps = ps[ps["method"] != "aligned"]
        return ps.assign(change=ps["last"] - ps["first"])

    @functools.cached_property
    def epochs(self) -> dict[tuple, list[int]]:
        """Run (base, dataset, method, variant, seed) -> its sorted epochs (any task evaluated there)."""
        trained = self.df[self.df["method"] != "aligned"]
        g = trained.groupby(["base", "dataset", "method", "variant", "seed"], sort=False)["epoch"]
        return {k: sorted(int(e) for e in v.dropna().unique()) for k, v in g}

    @functools.cached_property
    def main_datasets(self) -> list[str]:
        """C1-C5's datasets: exactly `main` (the DAG passes its grid.main datasets) when given. Otherwise every
        dataset with plain SFT and PoFT runs outside the noise study: its clean control (where PoFT ~ SFT is
        expected, often trained for other epochs) is no main dataset, any more than its noised sets are."""
        if self.main is not None:
            return list(self.main)
        full = self.ps[self.ps["variant"] == "full"]
        both = set(full.loc[full["method"] == "sft", "dataset"]) & set(full.loc[full["method"] == "poft", "dataset"])
        return sorted(both - set(self.noise_datasets))

    @functools.cached_property
    def _items_by_base(self) -> dict[str, pd.DataFrame]:
        return dict(tuple(self.items.groupby("base", sort=False)))  # only reached through base_items' check

    def base_items(self, base: str) -> pd.DataFrame | None:
        """This base's per-item scores (split once, not filtered again by every comparison), or None without
        per-item scores."""
        if self.items is None or not len(self.items):
            return None
        return self._items_by_base.get(base, self.items.iloc[:0])

    def _scoped(self, arms: list[tuple[float, Mapping, str]], base: str, task: str, dataset: str | None,
                items: bool = True):
        """(arms restricted to base and dataset, this base's per-item scores or None -- None too when `items` is
        False, so a seed-level contrast does not filter them -- and the task's leaf tasks)."""
        where = {"base": base, **({"dataset": dataset} if dataset is not None else {})}
        arms = [(c, {**where, **sel}, stat) for c, sel, stat in arms]
        its = self.base_items(base) if items else None
        return arms, its, (self.overall_tasks if task == OVERALL else [task])

    def effect(self, arms: list[tuple[float, Mapping, str]], base: str, task: str, dataset: str | None = None,
               items: bool = True) -> dict | None:
        """The effect of sum_k c_k * arm_k for one base (and dataset, unless the arms name theirs) and task.
        items=False forces the seed level (a per-run contrast whose item noise is not modelled)."""
        arms, its, tasks = self._scoped(arms, base, task, dataset, items)
        ps = self.ps[self.ps["task"] == task] if "task" not in arms[0][1] else self.ps
        return contrast_effect(arms, its, ps, self.epochs, tasks, task, self.level, self.min_effect)

    def matrix(self, arms: list[tuple[float, Mapping, str]], base: str, task: str, dataset: str | None = None):
        """`contrasts.contrast_matrix` of the same contrast as `effect`: (d [S, n], weights, seeds, items), or
        None without per-item scores for every arm."""
        arms, its, tasks = self._scoped(arms, base, task, dataset)
        return None if its is None else contrast_matrix(arms, its, self.epochs, tasks, task)

    def contrast(self, treat: dict, control: dict, stat: str, by=("base", "dataset", "task"), **where) -> pd.DataFrame:
        """treat - control of `stat` per group `by` (EFFECT_COLUMNS), for the groups where both arms ran."""
        ps = select(self.ps, where)
        rows = []
        for key, g in ps.groupby(list(by), sort=True):
            k = dict(zip(by, key))
            if select(g, treat).empty or select(g, control).empty:
                continue
            eff = self.effect([(1.0, treat, stat), (-1.0, control, stat)], k["base"], k["task"], k.get("dataset"))
            if eff is not None:
                rows.append({**k, "stat": stat, **effect_row(eff)})
        return pd.DataFrame(rows, columns=[*by, "stat", *EFFECT_COLUMNS])


def judged(d: pd.DataFrame, label, direction: int = 1, min_effect: float | None = None, verdict=verdict_of
           ) -> pd.DataFrame:
    """Comparison rows (EFFECT_COLUMNS) -> NUMBER_COLUMNS with readable labels, signs and reasons.

    verdict(effect, min_effect, direction) -> (verdict, reason); `effects.verdict_of` unless the claim needs
    another reading (C6's "does not degrade")."""
    if d.empty:
        return pd.DataFrame(columns=NUMBER_COLUMNS)
    out = d.assign(comparison=d.apply(label, axis=1), direction=direction)
    read = [verdict({**r._asdict(), "n_seeds": r.n_pairs}, min_effect, direction)
            for r in out[EFFECT_COLUMNS].itertuples(index=False)]
    out = out.assign(sign=[SIGN[v] for v, _ in read], reason=[why for _, why in read])
    return out[NUMBER_COLUMNS].reset_index(drop=True)


def row(comparison: str, eff: dict, verdict: tuple[str, str], direction: int = 1) -> dict:
    """One NUMBER_COLUMNS row from an effect and its (verdict, reason)."""
    return {"comparison": comparison, **effect_row(eff), "direction": direction, "sign": SIGN[verdict[0]],
            "reason": verdict[1]}


def combine(signs) -> str:
    signs = list(signs)
    if not signs:
        return "not covered"
    if "-" in signs:
        return "fails"
    return "holds" if all(s == "+" for s in signs) else "inconclusive"


def concat(frames) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=NUMBER_COLUMNS)
