"""Aggregation: the DAG's last stage. Metrics files + run identities -> tables in the paper's layout, paired
PoFT - SFT differences with bootstrap intervals, claim verdicts, plots and an HTML report.

    collect.py   records + metrics JSON -> one long DataFrame; "Overall" = mean of the suite's tasks
    summary.py   per run: last / avg / std over epochs; over seeds: mean +- std
    tables.py    Tables 1-5 analogues, noise study, shuffled-score control, what ran
    stats.py     paired differences by seed, percentile bootstrap
    effects.py   seed x item effects: crossed random-effects intervals, MDEs, verdicts, cells, power plans
    claims.py    C1-C10 (+ control K1) as rules -> Verdict
    paper.py     the paper's numbers (results/paper/) beside the reproduced ones
    plots.py     PNG figures;  render.py  Markdown / HTML;  build.py  `build_report`, the entry point
"""

from .build import build_report
from .collect import MetricsFileError, collect, read_records, with_overall

__all__ = ["MetricsFileError", "build_report", "collect", "read_records", "with_overall"]
