"""Aggregation: the DAG's last stage. Metrics files + run identities -> tables in the paper's layout, paired
PoFT - SFT effects over seeds x items, claim verdicts, plots and an HTML report.

    collect.py    records + metrics JSON (+ per-item files) -> long DataFrames; "Overall" = mean of the suite
    bundle.py     the report's inputs as one compact folder (<results>/data): `poft report --from` rebuilds all
    summary.py    per run: last / avg / std over epochs; over seeds: mean +- std
    tables.py     Tables 1-5 analogues, noise study, shuffled-score control, what ran
    effects.py    seed x item effects: crossed random-effects intervals, MDEs, verdicts, cells, power plans
    contrasts.py  arms of the grid -> d[seed, item] -> effects;  stats.py  PoFT - SFT for every cell
    power.py      `poft plan-power`: seeds x items needed per claim cell, from measured variance components
    claims.py     C1-C10 (+ control K1) as rules -> Verdict
    trace.py      the traces training recorded -> PoFT's weight share per flaw group, most down-weighted samples
    paper.py      the paper's numbers (results/paper/) beside the reproduced ones
    plots.py      PNG figures;  render.py  Markdown / HTML;  build.py  `build_report`, the entry point
    digest.py     summary.json;  headroom.py  oracle headroom, harm, captured share;  clock.py  the DAG's time
"""

import importlib

# Imported on first use: the Snakefile imports poft.report.clock (its start stamp), which runs this file first, and
# every snakemake call (a dry run, a lint, each job under SLURM) would otherwise pay ~2.7 s importing build's
# torch, scipy and plots.
_LAZY = {"build_report": "build", "report_from_data": "build", "MetricsFileError": "collect", "collect": "collect",
         "read_records": "collect", "with_overall": "collect"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
