"""PoFT's weights in the report: the mechanism trace every `poft train` run records (poft.trace: trace.json in each
epoch checkpoint, r_theta from the forward the loss used), one long frame over the grid's runs.

    frame = collect_traces([{"base": .., "dataset": .., "method": .., "variant": .., "seed": .., "run_dir": ..}])
    weight_shares(frame)       # {dataset: {group: {epoch: share of the summed tau}}}: PoFT full, mean over runs
    shares_table(frame)        # per dataset x group x epoch: data share vs weight share, mean tau, runs
    most_down_weighted(frame)  # datasets without group labels: the samples of least tau at the last epoch

A group is the sample's meta label training recorded (TrainSpec.trace_group: the micro world's hidden flaw); "all"
when the data has none. A run's weight share of a group = its summed tau over the group / its summed tau; data
share = the group's count / the run's count. Means are over the runs (bases x seeds) of a dataset, each run weighing
the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import pandas as pd

from ..io import read_json
from ..runs import epoch_checkpoints
from ..trace import TRACE_FILE, UNLABELLED
from .collect import RUN, MetricsFileError

log = logging.getLogger(__name__)

TRACE_COLUMNS = [*RUN, "epoch", "id", "group", "r_theta", "aligned", "tau"]
NO_GROUP = "(no label)"  # a sample without the meta key where others have it (recorded as null)
_RUN_EPOCH = ["dataset", "base", "seed", "epoch"]


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """TRACE_COLUMNS with their dtypes, in a fixed order (runs, epoch, id): the bundle reads back what it wrote."""
    frame = frame.reindex(columns=TRACE_COLUMNS).astype(
        {"seed": "Int64", "epoch": "Int64", "id": "string", "group": "string", "r_theta": "float64",
         "aligned": "float64", "tau": "float64", **{k: "string" for k in ("base", "dataset", "method", "variant")}})
    return frame.sort_values([*RUN, "epoch", "id"], kind="stable").reset_index(drop=True)


def collect_traces(runs: Iterable[Mapping]) -> pd.DataFrame:
    """Every epoch trace of each run ({base, dataset, method, variant, seed, run_dir}) as one frame. A checkpoint
    without a trace (a run trained before training recorded one) is left out with a warning: `poft trace` fills it."""
    rows = []
    for run in runs:
        checkpoints = epoch_checkpoints(run["run_dir"])
        if not checkpoints:
            raise MetricsFileError(f"{run['run_dir']}: no epoch checkpoint (is it a `poft train` run dir?)")
        for epoch, ckpt in checkpoints.items():
            if not (ckpt / TRACE_FILE).is_file():
                log.warning("%s: no %s (trained before runs recorded it); left out of the report", ckpt, TRACE_FILE)
                continue
            ident = {k: run[k] for k in RUN}
            rows += [{**ident, "epoch": epoch, **r} for r in read_json(ckpt / TRACE_FILE)["rows"]]
    return typed(pd.DataFrame(rows, columns=TRACE_COLUMNS))


def _poft(frame: pd.DataFrame) -> pd.DataFrame:
    """PoFT's full-data runs, where tau is the weight the loss applied; unlabelled samples as NO_GROUP."""
    d = frame[(frame["method"] == "poft") & (frame["variant"] == "full") & frame["tau"].notna()]
    return d.assign(group=d["group"].fillna(NO_GROUP))


def shares_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x group x epoch: data_share, weight_share and mean_tau, each the mean over PoFT's full runs, and
    how many runs that is."""
    d = _poft(frame)
    per = d.groupby([*_RUN_EPOCH, "group"], dropna=False).agg(n=("tau", "size"), tau_sum=("tau", "sum"),
                                                              mean_tau=("tau", "mean")).reset_index()
    totals = per.groupby(_RUN_EPOCH, dropna=False)[["n", "tau_sum"]].transform("sum")
    per = per.assign(data_share=per["n"] / totals["n"], weight_share=per["tau_sum"] / totals["tau_sum"])
    out = per.groupby(["dataset", "group", "epoch"]).agg(
        data_share=("data_share", "mean"), weight_share=("weight_share", "mean"), mean_tau=("mean_tau", "mean"),
        runs=("n", "size")).reset_index()
    return out.astype({"dataset": "string", "group": "string", "epoch": "Int64"})


def weight_shares(frame: pd.DataFrame) -> dict[str, dict[str, dict[int, float]]]:
    """{dataset: {group: {epoch: weight share}}}: each group's share of PoFT's summed tau (full runs, mean over
    bases and seeds). Shares of a dataset's groups sum to 1 per epoch; below the group's data share, PoFT weighs
    it below an average sample."""
    out: dict = {}
    for r in shares_table(frame).itertuples(index=False):
        out.setdefault(str(r.dataset), {}).setdefault(str(r.group), {})[int(r.epoch)] = float(r.weight_share)
    return out


def _last_epoch(frame: pd.DataFrame) -> pd.DataFrame:
    """`_poft` rows of each run's last recorded epoch."""
    d = _poft(frame)
    return d[d["epoch"] == d.groupby(["dataset", "base", "seed"], dropna=False)["epoch"].transform("max")]


def most_down_weighted(frame: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """Per dataset whose samples carry no group label (all "all": a user's data), the k samples with the least tau
    at the last epoch of PoFT's full runs (mean over runs; ties by id): what PoFT drops first, to be read."""
    d = _last_epoch(frame)
    unlabelled = d.groupby("dataset")["group"].transform(lambda g: bool((g == UNLABELLED).all()))
    d = d[unlabelled.astype(bool)]
    means = d.groupby(["dataset", "id", "group"]).agg(tau=("tau", "mean"), aligned=("aligned", "mean"),
                                                      runs=("tau", "size")).reset_index()
    means = means.sort_values(["dataset", "tau", "id"], kind="stable")
    return means.groupby("dataset").head(k).reset_index(drop=True)


def last_epoch_points(frame: pd.DataFrame) -> pd.DataFrame:
    """PoFT's full runs at their last epoch: per dataset and sample, its mean aligned score, group and mean tau over
    the runs (the tau-vs-score plot's points)."""
    points = _last_epoch(frame).groupby(["dataset", "group", "id"])
    return points.agg(aligned=("aligned", "mean"), tau=("tau", "mean")).reset_index()
