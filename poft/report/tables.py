"""The paper's tables, computed from the collected long table (see `summary` for what each statistic means).

Every table function returns a LONG DataFrame: the row keys, `column`, and `mean`, `std`, `n` = the mean,
sample std and count over seeds of one per-seed number. `attrs` carry `title`, `row_keys`, `columns` (the
display order) and `note`; `render.table_markdown` lays it out like the paper. Rows exist only for runs that
ran: nothing is filled in, and a cell whose numbers are missing (a task not evaluated, too few epochs for
Avg/Std) stays NaN with n = 0 and renders as a dash.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .collect import OVERALL, RUN
from .summary import over_seeds, per_seed

METHOD_ORDER = {"aligned": 0, "sft": 1, "poft": 2, "dft": 3}
METHOD_LABEL = {"aligned": "aligned", "sft": "SFT", "poft": "PoFT", "dft": "DFT"}
CELL = ["column", "mean", "std", "n"]


def _finish(cells: list[pd.DataFrame], keys: list[str], columns: list[str], title: str, note: str,
            order: list[str] | None = None) -> pd.DataFrame:
    out = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(columns=[*keys, *CELL])
    out = out[[*keys, *CELL]]
    if len(out):
        sort = out.assign(_m=out["method"].map(METHOD_ORDER) if "method" in keys else 0,
                          _c=out["column"].map({c: i for i, c in enumerate(columns)}))
        by = order or keys
        by = [("_m" if k == "method" else k) for k in by]
        out = sort.sort_values([*by, "_c"], kind="stable").drop(columns=["_m", "_c"]).reset_index(drop=True)
    out.attrs.update(title=title, row_keys=keys, columns=columns, note=note)
    return out


def _spec_cells(ps: pd.DataFrame, keys: list[str], specs: list[tuple[str, str, str]]) -> list[pd.DataFrame]:
    """One block of cells per (column label, task, per-seed statistic)."""
    cells = []
    for label, task, stat in specs:
        sub = ps[ps["task"] == task]
        if len(sub):
            cells.append(over_seeds(sub, keys, stat).assign(column=label))
    return cells


def table1(df: pd.DataFrame, overall_tasks: list[str], variant: str = "full") -> pd.DataFrame:
    """Table 1: per base x method x dataset, each benchmark at the last epoch, then Overall (last epoch), Avg
    (mean Overall over epochs excluding the first) and Std (population std of Overall over all epochs); the
    aligned reference models first. Each cell: mean +- sample std over seeds."""
    ps = per_seed(df)
    ps = ps[(ps["variant"] == variant) | (ps["method"] == "aligned")]
    keys = ["base", "method", "dataset"]
    specs = [(t, t, "last") for t in overall_tasks] + [(OVERALL, OVERALL, "last"), ("Avg", OVERALL, "avg"),
                                                        ("Std", OVERALL, "std")]
    return _finish(_spec_cells(ps, keys, specs), keys, [s[0] for s in specs],
                   f"Table 1 analogue: benchmarks at the last epoch, Overall, Avg and Std over epochs ({variant})",
                   "Overall = mean of " + ", ".join(overall_tasks) + "; Avg is the mean over epochs excluding the "
                   "first; Std is the population std over all epochs, the first included (the paper excludes "
                   "the first epoch from Avg only). Cells: mean ± std over seeds.",
                   order=["method", "dataset", "base"])


def table2(df: pd.DataFrame, chat_tasks: list[str], variant: str = "full") -> pd.DataFrame:
    """Table 2: each chat / win-rate task at the last epoch and its mean over epochs excluding the first."""
    ps = per_seed(df)
    ps = ps[((ps["variant"] == variant) | (ps["method"] == "aligned")) & ps["task"].isin(chat_tasks)]
    keys = ["base", "method", "dataset"]
    specs = [s for t in chat_tasks for s in ((f"{t} last", t, "last"), (f"{t} avg", t, "avg"))]
    return _finish(_spec_cells(ps, keys, specs), keys, [s[0] for s in specs],
                   "Table 2 analogue: win rates, last epoch / mean over epochs (excluding the first)",
                   "Cells: mean ± std over seeds.", order=["dataset", "base", "method"])


def table3(df: pd.DataFrame, chat_tasks: list[str]) -> pd.DataFrame:
    """Table 3: DPO continued from the SFT / PoFT model: mean and population std over ALL DPO epochs (the
    paper's "mean (std) over epochs"), of Overall and each chat task."""
    ps = per_seed(df)
    ps = ps[ps["variant"] == "dpo"]
    keys = ["base", "dataset", "method"]
    specs = [s for t in [OVERALL, *chat_tasks] for s in ((f"{t} mean", t, "mean_all"), (f"{t} std", t, "std"))]
    return _finish(_spec_cells(ps, keys, specs), keys, [s[0] for s in specs],
                   "Table 3 analogue: SFT -> DPO vs PoFT -> DPO, mean (std) over DPO epochs",
                   "method = the model DPO started from. Cells: mean ± std over seeds.")


def _by_method(sub: pd.DataFrame, keys: list[str], stat: str) -> list[pd.DataFrame]:
    sub = sub.assign(column=sub["method"].map(METHOD_LABEL))
    return [over_seeds(sub, [*keys, "column"], stat)] if len(sub) else []


def kept_label(meta: Mapping | None) -> str:
    """"94/300 (31%)" from a filter file's meta: what a filtered variant actually trained on, which can be far
    from its nominal keep fraction (IFD drops every sample with IFD >= 1 before keeping the top share)."""
    if not meta:
        return "?"
    n, total = int(meta["n_kept"]), int(meta["n_input"])
    return f"{n}/{total} ({n / total:.0%})" if total else f"{n}/0"


def table4(df: pd.DataFrame, kept: Mapping | None = None) -> pd.DataFrame:
    """Table 4: data filters x {SFT, PoFT}, Overall at the last epoch; only for base x dataset pairs that
    have at least one `filter:` variant; "none" is the unfiltered (`full`) run. `kept`: {(base, dataset,
    variant): the filter file's meta}, shown as the samples each variant actually kept ("?" where not given)."""
    ps = per_seed(df)
    ps = ps[(ps["task"] == OVERALL) & (ps["method"] != "aligned")]
    filtered = ps[ps["variant"].str.startswith("filter:")][["base", "dataset"]].drop_duplicates()
    sub = ps.merge(filtered, on=["base", "dataset"])
    sub = sub[(sub["variant"] == "full") | sub["variant"].str.startswith("filter:")]
    kept = kept or {}
    totals = {(b, d): m["n_input"] for (b, d, _), m in kept.items()}
    labels = [kept_label(kept.get((b, d, v))) if v != "full" else
              (f"{totals[b, d]}/{totals[b, d]} (100%)" if (b, d) in totals else "all")
              for b, d, v in zip(sub["base"], sub["dataset"], sub["variant"])]
    sub = sub.assign(filter=sub["variant"].where(sub["variant"] != "full", "none"), kept=labels)
    keys = ["base", "dataset", "filter", "kept"]
    t = _finish(_by_method(sub, keys, "last"), keys, ["SFT", "PoFT"],
                "Table 4 analogue: filtered data, Overall at the last epoch",
                "filter:<method>:<keep> asks for that share of the data; `kept` is what it actually kept (IFD "
                "first drops every sample with IFD >= 1, as Li et al. do). Cells: mean ± std over seeds.")
    return _first(t, "filter", "none")


def _first(t: pd.DataFrame, key: str, value: str) -> pd.DataFrame:
    """`t` with the rows whose `key` is `value` first within each (base, dataset), order otherwise kept."""
    out = t.assign(_k=t[key] != value).sort_values(["base", "dataset", "_k"], kind="stable").drop(columns="_k")
    out.attrs.update(t.attrs)
    return out.reset_index(drop=True)


def table5(df: pd.DataFrame) -> pd.DataFrame:
    """Table 5: SFT / PoFT on the original data vs on responses regenerated by each aligned model (distillation
    baseline), Overall at the last epoch; only for base x dataset pairs that have a `distill:` variant."""
    ps = per_seed(df)
    ps = ps[(ps["task"] == OVERALL) & (ps["method"] != "aligned")]
    distilled = ps[ps["variant"].str.startswith("distill:")][["base", "dataset"]].drop_duplicates()
    sub = ps.merge(distilled, on=["base", "dataset"])
    sub = sub[(sub["variant"] == "full") | sub["variant"].str.startswith("distill:")]
    data = sub["variant"].map(lambda v: "original" if v == "full" else "regenerated by " + v[len("distill:"):])
    keys = ["base", "dataset", "training data"]
    return _finish(_by_method(sub.assign(**{"training data": data}), keys, "last"), keys, ["SFT", "PoFT"],
                   "Table 5 analogue: distillation baseline, Overall at the last epoch",
                   "Cells: mean ± std over seeds.")


def noise_table(df: pd.DataFrame, noise_datasets: list[str]) -> pd.DataFrame:
    """Per-epoch Overall of SFT and PoFT on the noise study's datasets (ordered clean -> noisiest), with the
    paired PoFT - SFT difference (per seed, then mean +- std over seeds)."""
    o = df[(df["task"] == OVERALL) & (df["variant"] == "full") & df["dataset"].isin(noise_datasets)
           & df["method"].isin(["sft", "poft"])]
    keys = ["base", "dataset", "epoch"]
    cells = _by_method(o, keys, "value")
    wide = o.pivot_table(index=[*keys, "seed"], columns="method", values="value", aggfunc="first")
    if {"sft", "poft"} <= set(wide.columns):
        d = (wide["poft"] - wide["sft"]).dropna().rename("diff").reset_index()
        cells.append(over_seeds(d, keys, "diff").assign(column="PoFT − SFT"))
    t = _finish(cells, keys, ["SFT", "PoFT", "PoFT − SFT"],
                "Noise study: Overall per epoch, SFT vs PoFT, clean -> noised data",
                "datasets in noise order: " + " < ".join(noise_datasets) + ". Cells: mean ± std over seeds.")
    order = {d: i for i, d in enumerate(noise_datasets)}
    t2 = t.assign(_d=t["dataset"].map(order)).sort_values(["base", "_d", "epoch"], kind="stable")
    t2 = t2.drop(columns="_d").reset_index(drop=True)
    t2.attrs.update(t.attrs)
    return t2


def control_table(df: pd.DataFrame) -> pd.DataFrame:
    """Shuffled-score control: SFT, PoFT and PoFT with shuffled aligned scores; Overall last and Avg."""
    ps = per_seed(df)
    ps = ps[(ps["task"] == OVERALL) & (ps["method"] != "aligned")]
    shuffled = ps[ps["variant"] == "shuffled"][["base", "dataset"]].drop_duplicates()
    sub = ps.merge(shuffled, on=["base", "dataset"])
    sub = sub[sub["variant"].isin(["full", "shuffled"])]
    arm = sub["method"].map(METHOD_LABEL).where(sub["variant"] == "full", "PoFT (shuffled scores)")
    sub = sub.assign(arm=arm)
    keys, cells = ["base", "dataset"], []
    arms = ["SFT", "PoFT", "PoFT (shuffled scores)"]
    for stat, name in (("last", "Overall"), ("avg", "Avg")):
        s = over_seeds(sub, [*keys, "arm"], stat)
        cells.append(s.assign(column=s["arm"] + " " + name).drop(columns="arm"))
    return _finish(cells, keys, [f"{a} {n}" for n in ("Overall", "Avg") for a in arms],
                   "Control: PoFT with shuffled aligned scores (quality signal destroyed)",
                   "If PoFT's gain comes from the quality signal, the shuffled arm should fall back towards SFT.")


def coverage(df: pd.DataFrame) -> pd.DataFrame:
    """What ran: per (base, dataset, method, variant): seeds, epochs, tasks and evaluated checkpoints."""
    rows = []
    for k, g in df[df["task"] != OVERALL].groupby(RUN[:4], sort=True):
        seeds = sorted(int(s) for s in g["seed"].dropna().unique())
        epochs = sorted(int(e) for e in g["epoch"].dropna().unique())
        rows.append({**dict(zip(RUN[:4], k)), "seeds": ", ".join(map(str, seeds)) or "—",
                     "epochs": ", ".join(map(str, epochs)) or "—", "tasks": g["task"].nunique(),
                     "evaluations": len(g)})
    return pd.DataFrame(rows, columns=[*RUN[:4], "seeds", "epochs", "tasks", "evaluations"])
