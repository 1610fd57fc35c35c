"""Lay long tables out like the paper (rows x columns of "mean ± std" strings) as Markdown or HTML.

A cell reads "63.52 ± 0.41" (mean ± sample std over seeds), "63.52" with one seed, "—" when missing; the
`seeds` column is the most seeds any cell of the row has, and a cell built from fewer says "(n=k)".
"""

from __future__ import annotations

import html
import math

import pandas as pd

DASH = "—"


def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return DASH
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def fmt_cell(mean: float, std: float, n: int, row_n: int, digits: int = 2) -> str:
    if not n or math.isnan(mean):
        return DASH
    text = fmt(mean, digits) if n < 2 or math.isnan(std) else f"{fmt(mean, digits)} ± {fmt(std, digits)}"
    return text if n == row_n else f"{text} (n={n})"


def display(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A long table (row keys, column, mean, std, n; attrs) -> a frame of strings in the paper's layout."""
    keys, columns = list(table.attrs["row_keys"]), list(table.attrs["columns"])
    present = [c for c in columns if c in set(table["column"])]
    rows = []
    for k, g in table.groupby(keys, sort=False, dropna=False):
        k = k if isinstance(k, tuple) else (k,)
        row_n = int(g["n"].max()) if len(g) else 0
        cells = {r.column: fmt_cell(r.mean, r.std, int(r.n), row_n, digits) for r in g.itertuples(index=False)}
        rows.append({**{key: fmt(v) for key, v in zip(keys, k)}, **{c: cells.get(c, DASH) for c in present},
                     "seeds": str(row_n)})
    return pd.DataFrame(rows, columns=[*keys, *present, "seeds"])


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a frame of (already formatted) values."""
    if frame.empty:
        return "_(no rows: nothing in the grid for this table)_\n"
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(esc(fmt(v)) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def table_markdown(table: pd.DataFrame, level: int = 2) -> str:
    a = table.attrs
    return f"{'#' * level} {a['title']}\n\n{markdown(display(table))}\n{a.get('note', '')}\n"


def frame_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>(no rows: nothing in the grid for this table)</em></p>"
    return frame.map(fmt).to_html(index=False, escape=True, border=0, classes="t")


def table_html(table: pd.DataFrame) -> str:
    a = table.attrs
    return (f"<h2>{html.escape(a['title'])}</h2>\n{frame_html(display(table))}\n"
            f"<p class='note'>{html.escape(a.get('note', ''))}</p>")


C11 = ("C11 (the PoFT gradient equals the CE gradient scaled by tau = sigmoid(mean_j r_j - r_theta)) is a property "
       "of the loss, not of the grid: it is checked by unit tests (tests/test_losses.py), not here.")


def numbers_frame(numbers: pd.DataFrame, level: float) -> pd.DataFrame:
    ci = [DASH if math.isnan(lo) else f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(numbers["ci_low"], numbers["ci_high"])]
    return pd.DataFrame({"comparison": numbers["comparison"], "pairs": numbers["n_pairs"],
                         "mean": [fmt(float(m)) for m in numbers["mean"]], f"{level:.0%} CI": ci,
                         "sign": numbers["sign"]})


def verdict_frame(verdicts, bold: bool = False) -> pd.DataFrame:
    """claim | verdict | statement, one row per Verdict."""
    return pd.DataFrame({"claim": [v.claim for v in verdicts],
                         "verdict": [f"**{v.verdict}**" if bold else v.verdict for v in verdicts],
                         "statement": [v.statement for v in verdicts]})


def claims_markdown(verdicts, rules: dict[str, str], level: float, n_boot: int, seed: int) -> str:
    """claims.md: a summary table, then per claim its statement, rule, tally and numbers."""
    out = ["# Claims: verdicts on the measured grid\n",
           f"Comparisons are paired by seed; intervals are {level:.0%} percentile bootstraps of the mean difference "
           f"({n_boot} resamples, seed {seed}); with few seeds they are wide, with one seed there is none. "
           "A sign reads '+' (supports), '-' (contradicts), '?' (straddles 0 or no interval).\n",
           markdown(verdict_frame(verdicts, bold=True))]
    for v in verdicts:
        out.append(f"\n## {v.claim}: {v.verdict}\n\n> {v.statement}\n\nRule: {rules.get(v.claim, '')}\n\n{v.text}\n")
        if len(v.numbers):
            out.append(markdown(numbers_frame(v.numbers, level)))
    out.append(f"\n## C11\n\n{C11}\n")
    return "\n".join(out)


def claims_html(verdicts, level: float) -> str:
    parts = ["<h2>Claims</h2>", frame_html(verdict_frame(verdicts))]
    for v in verdicts:
        parts.append(f"<h3>{html.escape(v.claim)}: {html.escape(v.verdict)}</h3><p>{html.escape(v.statement)}</p>"
                     f"<p>{html.escape(v.text)}</p>")
        if len(v.numbers):
            parts.append(frame_html(numbers_frame(v.numbers, level)))
    parts.append(f"<p>{html.escape(C11)}</p>")
    return "\n".join(parts)
