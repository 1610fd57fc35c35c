"""results/paper/*.csv transcribe POFT_PAPER.md's Tables 1-5 cell for cell; the side-by-side matches names."""

import csv
import math
import os
import re
from pathlib import Path

import pytest

from poft.report import tables
from poft.report.collect import collect, with_overall
from poft.report.paper import PAPER_DIR, PAPER_TABLES, load_paper, reproduced_vs_reported

from .grids import TASKS

# The paper notes the CSVs were transcribed from, committed beside them so that this check always runs.
PAPER_MD = Path(os.environ.get("POFT_PAPER_MD", Path(__file__).resolve().parents[2] / "results/paper/POFT_PAPER.md"))


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """'table1'..'table5' -> body rows (cells stripped) of the first pipe table under '## Table N'."""
    out = {}
    for section in re.split(r"^## ", text, flags=re.M):
        m = re.match(r"Table (\d)", section)
        if m:
            lines = [ln for ln in section.splitlines() if ln.startswith("|")]
            out[f"table{m.group(1)}"] = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines[2:]]
    return out


def test_csvs_match_the_paper_markdown_exactly():
    md = markdown_tables(PAPER_MD.read_text(encoding="utf-8"))
    assert sorted(md) == list(PAPER_TABLES)
    for t in PAPER_TABLES:
        with open(PAPER_DIR / f"{t}.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[1:] == md[t], t  # every cell, as printed ("58.10", "–", empty)


def test_loaded_numbers():
    p = load_paper()
    t1 = p["table1"].set_index(["base", "method", "data"])
    assert t1.loc[("Mistral-7B", "PoFT", "OpenHermes"), "Overall"] == 63.52
    assert math.isnan(t1.loc[("Yi-6B-Chat", "aligned", "–"), "Avg"])
    assert p["table4"].set_index("filter").loc["IFD", "PoFT"] == 64.95
    assert p["table3"].set_index("model").loc["PoFT + DPO", "AlpacaEval std"] == 3.06


NAMES = {"base": {"mistral": "Mistral-7B"}, "dataset": {"hermes": "OpenHermes"},
         "task": {"arith": "GSM8k", "words": "ARC"}}


def test_reproduced_vs_reported_side_by_side(grid):
    grid.runs(lambda b, d, m, v, s, e, t: 60 + s + (2 if m == "poft" else 0), bases=("mistral",),
              datasets=("hermes",), variants=("full", "filter:ifd:0.8", "filter:ifd:0.5"))
    df = with_overall(collect(grid.records), TASKS)
    made = {"table1": tables.table1(df, TASKS), "table4": tables.table4(df), "table5": tables.table5(df)}
    side = reproduced_vs_reported(made, names=NAMES).set_index(["table", "row", "column"])
    r = side.loc[("table1", "Mistral-7B | PoFT | OpenHermes", "Overall")]
    assert (r["reported"], r["reproduced"], r["n_seeds"]) == (63.52, 62.5, 2)
    assert r["delta"] == pytest.approx(62.5 - 63.52)
    assert side.loc[("table1", "Mistral-7B | SFT | OpenHermes", "GSM8k"), "reproduced"] == 60.5
    assert side.loc[("table4", "IFD", "PoFT"), "reproduced"] == 62.5  # keep 0.8 only: the paper removes 20%
    missing = side.loc[("table1", "Llama-3-8B | SFT | UltraChat", "Overall")]
    assert math.isnan(missing["reproduced"]) and missing["n_seeds"] == 0  # never matched to what did not run
    # every reported cell is listed once: T1 3x7 + 12x9, T2 2 + 6x4, T3 3 + 2x6, T4 5x2, T5 5
    assert len(side) == 129 + 26 + 15 + 10 + 5


def test_ambiguous_mapping_refused(grid):
    grid.runs(lambda *a: 60.0, bases=("m1", "m2"), datasets=("hermes",))
    df = with_overall(collect(grid.records), TASKS)
    names = {**NAMES, "base": {"m1": "Mistral-7B", "m2": "Mistral-7B"}}
    with pytest.raises(ValueError, match="several reproduced cells map onto one paper cell"):
        reproduced_vs_reported({"table1": tables.table1(df, TASKS)}, names=names)
