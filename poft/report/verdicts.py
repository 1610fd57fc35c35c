"""Verdicts: how paired comparisons add up to "holds" / "fails" / "inconclusive" / "not covered".

Every claim rule is made of COMPARISONS (a paired difference over seeds with its bootstrap interval, see
`stats`), each read as
    "+"  the interval supports the claim's direction  (lower bound >= 0, or > 0 where the claim says "beats")
    "-"  the interval contradicts it                  (upper bound < 0, or <= 0 for "beats")
    "?"  the interval straddles 0, or there is no interval (fewer than two paired seeds)
and combined: "not covered" when the grid has no comparison for the claim; "fails" when any comparison is
"-" (the claims are universal: "for every base model x dataset"); "holds" when all are "+"; otherwise
"inconclusive". Directions are flipped where less is better (C2: std over epochs).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import pandas as pd

from .stats import paired_contrast
from .summary import per_seed

VERDICTS = ("holds", "fails", "inconclusive", "not covered")
NUMBER_COLUMNS = ["comparison", "n_pairs", "mean", "ci_low", "ci_high", "sign"]


@dataclass
class Verdict:
    """One claim's outcome: verdict in VERDICTS, the comparisons behind it (NUMBER_COLUMNS), and a sentence."""

    claim: str
    verdict: str
    numbers: pd.DataFrame
    text: str
    statement: str = ""


@dataclass
class Evidence:
    """The collected grid (with Overall rows) plus what the rules need to know about it."""

    df: pd.DataFrame
    chat_tasks: list[str] = field(default_factory=list)
    overall_tasks: list[str] = field(default_factory=list)
    focus_task: str | None = None  # C3's "GSM8k"
    noise_datasets: list[str] = field(default_factory=list)  # ordered clean -> noisiest
    main: list[str] | None = None  # the config's grid.main datasets (C1-C5); None: see main_datasets
    spreads: dict[str, float] | None = None  # dataset -> std of its mean aligned scores (C5, C4)
    n_boot: int = 10_000
    level: float = 0.95
    seed: int = 0

    @functools.cached_property
    def ps(self) -> pd.DataFrame:
        ps = per_seed(self.df)
        ps = ps[ps["method"] != "aligned"]
        return ps.assign(change=ps["last"] - ps["first"])

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

    def contrast(self, treat: dict, control: dict, stat: str, by=("base", "dataset", "task"), **where) -> pd.DataFrame:
        ps = self.ps
        for k, v in where.items():
            ps = ps[ps[k].isin(v) if isinstance(v, (list, tuple, set)) else ps[k] == v]
        return paired_contrast(ps, treat, control, list(by), stat, self.n_boot, self.level, self.seed)


def sign(lo: float, hi: float, lower_is_better: bool = False, strict: bool = False) -> str:
    """'+' / '-' / '?' for one interval (see the module docstring)."""
    if math.isnan(lo) or math.isnan(hi):
        return "?"
    if lower_is_better:
        lo, hi = -hi, -lo
    if lo > 0 or (not strict and lo >= 0):
        return "+"
    if hi < 0 or (strict and hi <= 0):
        return "-"
    return "?"


def combine(signs) -> str:
    signs = list(signs)
    if not signs:
        return "not covered"
    if "-" in signs:
        return "fails"
    return "holds" if all(s == "+" for s in signs) else "inconclusive"


def _label(d: pd.DataFrame, label) -> pd.DataFrame:
    """Comparison rows -> NUMBER_COLUMNS with a readable `comparison` label and signs (set by the caller)."""
    if d.empty:
        return pd.DataFrame(columns=NUMBER_COLUMNS)
    out = d.assign(comparison=d.apply(label, axis=1))
    return out[[c for c in NUMBER_COLUMNS if c in out.columns]]


def comparison_rows(d: pd.DataFrame, label, lower_is_better=False, strict=False) -> pd.DataFrame:
    """Comparison rows (from `paired_contrast`) -> NUMBER_COLUMNS with labels and signs."""
    out = _label(d, label)
    signs = [sign(r.ci_low, r.ci_high, lower_is_better, strict) for r in out.itertuples(index=False)]
    return out.assign(sign=signs)[NUMBER_COLUMNS]


def concat(frames) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=NUMBER_COLUMNS)
