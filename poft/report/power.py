"""How many seeds and benchmark items a comparison needs: `poft plan-power --from results/micro --delta 1`.

For each C1 cell (base x main dataset: PoFT - SFT on Overall at the last epoch) of a results folder, the seed,
item and residual variance components are estimated from its paired d[seed, item] (`effects.variance_components`)
and `effects.plan_power` gives the expected se, df and MDE for other numbers of seeds and items. Overall weighs
tasks equally, so its items count as n_eff = 1 / sum(w_i^2) equally weighted items (n_eff = n for equal
task sizes); the item counts of the plan are in those units. A user sizes a grid here before paying for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .bundle import evidence, read_bundle
from .claims import PO, SF
from .collect import OVERALL
from .effects import paired_effect, plan_power, variance_components


def plan_from_results(data_dir: str | Path, delta: float, seeds=(2, 3, 5, 8), items=None, level: float = 0.95
                      ) -> pd.DataFrame:
    """One row per (C1 cell, seeds, items): the measured design first (`measured` True), then the plan."""
    ev = evidence(read_bundle(data_dir))
    rows = []
    for base in sorted(ev.ps["base"].unique()):
        for ds in ev.main_datasets:
            m = ev.matrix([(1.0, PO, "last"), (-1.0, SF, "last")], base, OVERALL, ds)
            if m is None or len(m[2]) < 2:
                continue
            d, w = m[0], m[1]
            measured = paired_effect(d, level=level, min_effect=delta, weights=w)
            n_eff = int(round(1 / np.sum((w / w.sum()) ** 2)))
            comp = variance_components(d)
            cell = f"{base} / {ds}"
            rows.append({"cell": cell, "seeds": measured["n_seeds"], "items": n_eff, "measured": True,
                         "se": measured["se"], "df": measured["df"], "mde": measured["mde"],
                         "powered": bool(measured["mde"] <= delta)})
            plan = plan_power(comp, delta, seeds=seeds, items=items or (n_eff, 2 * n_eff, 4 * n_eff), level=level)
            rows += [{"cell": cell, **r, "measured": False} for r in plan.to_dict("records")]
    cols = ["cell", "seeds", "items", "measured", "se", "df", "mde", "powered"]
    out = pd.DataFrame(rows, columns=cols)
    for c in ("se", "df", "mde"):
        out[c] = out[c].astype(float).round(3)
    return out
