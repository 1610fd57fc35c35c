"""The paper's reported numbers (results/paper/table{1..5}.csv) beside the reproduced ones.

The CSVs transcribe Tables 1-5 of arXiv 2412.12865 exactly as printed (see results/paper/README.md); they are
single numbers per cell (the paper reports one seed). `reproduced_vs_reported` lists EVERY reported cell with
the reproduced mean +- std over seeds next to it, or a dash where the grid has no such run: a reported number
is never matched to something that did not run. Our names (hub ids, lm-eval task names, variants) are mapped
onto the paper's labels by `names` (merged over DEFAULT_NAMES; a name without an entry maps to itself).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"
PAPER_TABLES = ("table1", "table2", "table3", "table4", "table5")
KEY_COLUMNS = {"table1": ["base", "method", "data"], "table2": ["method", "data"], "table3": ["model"],
               "table4": ["filter"], "table5": ["training data"]}
DEFAULT_NAMES = {
    "base": {}, "dataset": {},
    "method": {"sft": "SFT", "poft": "PoFT", "dft": "DFT", "aligned": "aligned"},
    "task": {"arc_challenge": "ARC", "truthfulqa_mc2": "TQA", "winogrande": "Wino", "gsm8k": "GSM8k",
             "hellaswag": "HellaS", "mmlu": "MMLU", "mt_bench": "MT", "alpaca_eval": "AE"},
    "filter": {"preference": "preference score (mean aligned score)", "ifd": "IFD", "instag": "InsTag",
               "deita": "Deita"},
    "keep": 0.8,                 # the paper removes 20%
    "paper_base": "Mistral-7B",  # Tables 2-5 are Mistral-7B only
    # Table 3's SFT data is not stated (UltraChat assumed, as for zephyr); Table 5's "original" rows equal
    # Table 1's Mistral-7B / OpenHermes cells
    "table3_dataset": "UltraChat", "table4_dataset": "OpenHermes", "table5_dataset": "OpenHermes",
}
_T3 = {"MT": "MT-Bench", "AE": "AlpacaEval %"}
CELL_COLUMNS = ["table", "row", "column", "mean", "std", "n"]


def load_paper(paper_dir: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """{table name: the CSV as printed}; key columns as text, numbers as floats, empty cells NaN."""
    d = Path(paper_dir or PAPER_DIR)
    return {t: pd.read_csv(d / f"{t}.csv", dtype={k: str for k in KEY_COLUMNS[t]}, keep_default_na=False,
                           na_values=[""]) for t in PAPER_TABLES}


def paper_cells(paper: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long form of the reported tables: table, row (key columns joined by ' | '), column, reported."""
    out = []
    for t, f in paper.items():
        keys = KEY_COLUMNS[t]
        row = f[keys].astype(str).agg(" | ".join, axis=1)
        if t == "table1":  # an aligned model's row is matched on the model alone (its data column is loose)
            row = row.where(f["method"] != "aligned", f["base"] + " | aligned")
        if t == "table2":  # here the aligned model's name stands in the method column
            row = row.where(f["method"].isin(["SFT", "PoFT"]), f["method"])
        long = f.drop(columns=keys).assign(row=row).melt(id_vars="row", var_name="column", value_name="reported")
        out.append(long.dropna(subset=["reported"]).assign(table=t))
    return pd.concat(out, ignore_index=True)[["table", "row", "column", "reported"]]


def _names(names: dict | None) -> dict:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_NAMES.items()}
    for k, v in (names or {}).items():
        merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) else v
    return merged


def _relabel(t: str, r: dict, n: dict) -> tuple[str | None, str | None]:
    """One cell of our table `t` (a dict of its row keys + column) -> (paper row, paper column), or Nones."""
    name = lambda kind, x: str(n[kind].get(x, x))  # noqa: E731
    base, data = name("base", r.get("base")), name("dataset", r.get("dataset"))
    method, col = name("method", r.get("method")), r["column"]
    if t == "table1":
        row = f"{base} | aligned" if r["method"] == "aligned" else f"{base} | {method} | {data}"
        return row, col if col in ("Overall", "Avg", "Std") else name("task", col)
    if t == "table2":
        if r["method"] != "aligned" and base != n["paper_base"]:
            return None, None
        task, stat = col.rsplit(" ", 1)
        return (base if r["method"] == "aligned" else f"{method} | {data}"), f"{name('task', task)} {stat}"
    if base != n["paper_base"] or data != n[f"{t}_dataset"]:
        return None, None
    if t == "table3":  # "Overall mean" -> "Open LLM avg"; "mt_bench std" -> "MT-Bench std"
        task, stat = col.rsplit(" ", 1)
        if task == "Overall":
            return f"{method} + DPO", "Open LLM " + ("avg" if stat == "mean" else "std")
        label = _T3.get(name("task", task))
        if label is None:
            return None, None
        return f"{method} + DPO", label if stat == "mean" else label.replace(" %", "") + " std"
    if t == "table4":
        if r["filter"] == "none":
            return "none", col
        _, m, keep = r["filter"].split(":")
        return (n["filter"].get(m, m), col) if float(keep) == float(n["keep"]) else (None, None)
    d = r["training data"]  # table5
    d = d if d == "original" else "regenerated by " + name("base", d[len("regenerated by "):])
    return f"{d}, {col}", "Overall"


def reproduced_cells(tables: dict[str, pd.DataFrame], names: dict | None = None) -> pd.DataFrame:
    """Our tables' cells in the paper's labels (CELL_COLUMNS); cells without a paper counterpart left out."""
    n, rows = _names(names), []
    for t in PAPER_TABLES:
        for r in (tables[t].to_dict("records") if t in tables else []):
            row, col = _relabel(t, r, n)
            if row is not None and col is not None:
                rows.append({"table": t, "row": row, "column": col, "mean": r["mean"], "std": r["std"], "n": r["n"]})
    ours = pd.DataFrame(rows, columns=CELL_COLUMNS)
    dup = ours[ours.duplicated(["table", "row", "column"], keep=False)]
    if len(dup):
        raise ValueError(f"several reproduced cells map onto one paper cell, e.g. {dup.iloc[0].to_dict()}: "
                         "make `names` map distinct runs to distinct paper labels")
    return ours


def reproduced_vs_reported(tables: dict[str, pd.DataFrame], paper_dir: str | Path | None = None,
                           names: dict | None = None) -> pd.DataFrame:
    """Every reported cell of Tables 1-5 with the reproduced mean, std over seeds, n_seeds and the delta
    (reproduced - reported). `tables` maps "table1".."table5" to our `tables.table1..5` outputs (missing
    ones simply leave the reproduced side empty)."""
    out = paper_cells(load_paper(paper_dir)).merge(reproduced_cells(tables, names), on=["table", "row", "column"],
                                                   how="left")
    out = out.rename(columns={"mean": "reproduced", "n": "n_seeds"})
    out["reproduced"] = out["reproduced"].astype(float)
    out["std"] = out["std"].astype(float)
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["delta"] = out["reproduced"] - out["reported"]
    return out[["table", "row", "column", "reported", "reproduced", "std", "n_seeds", "delta"]]
