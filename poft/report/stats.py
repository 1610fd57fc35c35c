"""PoFT - SFT for every variant, task and statistic of the grid (differences.csv), and aligned-score spreads.

Each difference is a paired seed x item effect (`contrasts`, `effects.paired_effect`): a t interval from the
crossed seed and item variance components, with its MDE; a per-run statistic (std over epochs) or a grid
without per-item scores is paired by seed alone (`unit` says which). There is no bootstrap: a percentile
bootstrap over two or three seeds' differences cannot exceed their range, and ignores item noise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .contrasts import EFFECT_COLUMNS
from .effects import paired_effect  # noqa: F401  (the entry point, re-exported: poft.report.stats.paired_effect)

# A variant with only a PoFT arm is compared with the SFT run of this variant (the shuffled-score control).
CONTROL_VARIANT = {"shuffled": "full"}


def paired_differences(ev, stats=("last", "avg", "std", "mean_all")) -> pd.DataFrame:
    """PoFT - SFT per (base, dataset, variant, task, stat) for every variant with a PoFT arm; `ev` an
    `verdicts.Evidence`. stat: last = value at the last epoch, avg = mean over epochs excluding the first,
    std = std over all epochs, mean_all = mean over all epochs (see `summary`). The SFT arm is the same
    variant's, except for variants in CONTROL_VARIANT (shuffled PoFT vs the plain SFT run)."""
    out = []
    for variant in sorted(ev.ps.loc[ev.ps["method"] == "poft", "variant"].unique()):
        ctrl = {"method": "sft", "variant": CONTROL_VARIANT.get(variant, variant)}
        for stat in stats:
            d = ev.contrast({"method": "poft", "variant": variant}, ctrl, stat)
            out.append(d.assign(variant=variant, control_variant=ctrl["variant"]))
    cols = ["base", "dataset", "variant", "control_variant", "task", "stat", *EFFECT_COLUMNS]
    out = [o for o in out if len(o)]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


# Baselines compared with both arms of the paper, on the variants where they ran: (treatment, control) methods.
BASELINE_PAIRS = (("dft", "sft"), ("poft", "dft"))


def baseline_differences(ev, stats=("last", "avg")) -> pd.DataFrame:
    """DFT - SFT and PoFT - DFT, paired like `paired_differences`, per variant where a DFT arm ran (none: an empty
    frame); columns `treatment` and `control` name the methods."""
    out = []
    for variant in sorted(ev.ps.loc[ev.ps["method"] == "dft", "variant"].unique()):
        for treat, ctrl in BASELINE_PAIRS:
            for stat in stats:
                d = ev.contrast({"method": treat, "variant": variant}, {"method": ctrl, "variant": variant}, stat)
                out.append(d.assign(variant=variant, treatment=treat, control=ctrl))
    cols = ["base", "dataset", "variant", "treatment", "control", "task", "stat", *EFFECT_COLUMNS]
    out = [o for o in out if len(o)]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def aligned_scores(obj: dict) -> tuple[np.ndarray, int]:
    """The mean aligned scores of a merged score file {"meta", "rows": [{"id", "score", ...}]}, without the
    samples some aligned model could not score (score None), and how many those were."""
    vals = [r["score"] for r in obj["rows"]]
    kept = np.array([v for v in vals if v is not None], dtype=float)
    return kept, len(vals) - kept.size


def score_spread(obj: dict) -> float:
    """Population std of a dataset's mean aligned scores (nats / token): C5's "spread"; NaN if none."""
    x, _ = aligned_scores(obj)
    return float(x.std()) if x.size else math.nan
