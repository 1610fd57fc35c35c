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


def intervals(frame: pd.DataFrame) -> list[str]:
    return [DASH if pd.isna(lo) else f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"])]


def _design(seeds, items, unit) -> str:
    if unit == "items":
        return f"{int(seeds)} × {int(items)}"
    return f"{int(seeds)} seeds" if unit == "seeds" else str(unit)


def numbers_frame(numbers: pd.DataFrame, level: float) -> pd.DataFrame:
    return pd.DataFrame({"comparison": numbers["comparison"],
                         "seeds × items": [_design(s, n, u) for s, n, u in
                                           zip(numbers["n_pairs"], numbers["n_items"], numbers["unit"])],
                         "effect": [fmt(float(m)) for m in numbers["mean"]], f"{level:.0%} CI": intervals(numbers),
                         "MDE": [fmt(float(m)) for m in numbers["mde"]], "level": numbers["level_used"].fillna(DASH),
                         "sign": numbers["sign"], "why": numbers["reason"]})


def headline(v, level: float) -> dict:
    """One claim on one line: verdict, pooled effect with interval, MDE, seeds x items, the level it rests on."""
    s = v.summary or {}
    pooled = s.get("pooled") or {}
    effect = DASH
    if pooled.get("n_cells") and not math.isnan(pooled["mean"]):
        het = "" if math.isnan(pooled["tau2"]) else f"τ² {pooled['tau2']:.2f}, I² {pooled['i2']:.0%}, "
        effect = (f"{pooled['mean']:.2f} [{pooled['ci_low']:.2f}, {pooled['ci_high']:.2f}] "
                  f"({het}{pooled['n_cells']} cells)")
    mde = DASH if not s.get("n_cells") or math.isnan(s["mde_min"]) else (
        f"{s['mde_min']:.2f}" if abs(s["mde_max"] - s["mde_min"]) < 0.005 else f"{s['mde_min']:.2f}–{s['mde_max']:.2f}")
    design = DASH if not s.get("n_cells") else _design(s["seeds"], s["items"], "items" if s["items"] else "seeds")
    levels = DASH
    if len(v.numbers):
        used = v.numbers["level_used"].fillna(v.numbers["unit"]).value_counts()
        levels = ", ".join(f"{k} ({n})" for k, n in used.items())
    holm = f"{s['n_holm']}/{s['n_cells']}" if "n_holm" in s else DASH
    return {"claim": v.claim, "verdict": v.verdict, "pooled effect": effect, "MDE": mde, "seeds × items": design,
            "cells holding after Holm": holm, "rests on": levels}


def reading(level: float, min_effect: float | None) -> str:
    """How to read the verdicts: the paragraph under the headline table (claims.md and report.html)."""
    return (f"Every comparison is paired by seed and benchmark item: d[s, i] = treatment − control. Intervals are "
            f"{level:.0%} t intervals from the crossed seed, item and residual variance components (Satterthwaite "
            "df; level 'method'); a comparison with one seed has only a 'checkpoint'-level interval, which says "
            "nothing about the method and is never more than inconclusive. A comparison 'holds' when its interval "
            "excludes 0 in the claimed direction; it 'fails' when the interval excludes 0 against it, or rules "
            f"out an effect of δ = {min_effect} Overall points or more (a powered null: δ was declared in the "
            "config before the run); otherwise it is 'inconclusive', with the MDE (the smallest effect detected "
            "with power 0.8) saying what it could have detected. A claim over cells holds only if every cell "
            "holds (intersection-union test) and fails if any cell fails. The pooled effect is a "
            "DerSimonian-Laird random-effects mean over the method-level cells, with heterogeneity τ² and I² "
            "(normal interval; a single cell keeps its own t interval). "
            "'seeds' rows are per-run statistics (std over epochs) or grids without per-item scores: seeds are "
            "the only unit there.")


def claims_markdown(verdicts, rules: dict[str, str], level: float, min_effect: float | None,
                    forest: str | None = None) -> str:
    """claims.md: one line per claim, the forest plot (a relative link), how to read them, then per claim its
    statement, rule, tally and numbers."""
    out = ["# Claims: verdicts on the measured grid\n", markdown(pd.DataFrame([headline(v, level) for v in verdicts]))]
    out += [f"\n![every cell's PoFT − SFT with its interval and the ±δ band]({forest})\n"] if forest else []
    out.append("\n" + reading(level, min_effect) + "\n")
    for v in verdicts:
        out.append(f"\n## {v.claim}: {v.verdict}\n\n> {v.statement}\n\nRule: {rules.get(v.claim, '')}\n\n{v.text}\n")
        if len(v.numbers):
            out.append(markdown(numbers_frame(v.numbers, level)))
    out.append(f"\n## C11\n\n{C11}\n")
    return "\n".join(out)


def claims_summary_html(verdicts, level: float, min_effect: float | None) -> str:
    """The headline: one line per claim and how to read it (the forest plot follows it in report.html)."""
    return (f"<h2>Claims</h2>{frame_html(pd.DataFrame([headline(v, level) for v in verdicts]))}"
            f"<p class='note'>{html.escape(reading(level, min_effect))}</p>")


def claims_html(verdicts, level: float) -> str:
    """Per claim: statement, tally and its comparisons (the long tables, after the summary and the tables)."""
    parts = ["<h2>Claims in detail</h2>"]
    for v in verdicts:
        parts.append(f"<h3>{html.escape(v.claim)}: {html.escape(v.verdict)}</h3><p>{html.escape(v.statement)}</p>"
                     f"<p>{html.escape(v.text)}</p>")
        if len(v.numbers):
            parts.append(frame_html(numbers_frame(v.numbers, level)))
    parts.append(f"<p>{html.escape(C11)}</p>")
    return "\n".join(parts)
