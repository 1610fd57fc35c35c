"""The aggregation stage: metrics files in, tables / differences / claim verdicts / plots / HTML out.

    from poft.report import build_report
    build_report(records, "results/micro", overall_tasks=["micro_arith", "micro_words"], scores={...})

Writes into out_dir (each file atomically; outputs of an earlier call that this call does not produce, e.g.
a plot without data now, are removed so the directory never mixes two runs):
    results.csv        the collected long table + Overall rows (base, dataset, method, variant, seed, epoch, ...)
    runs.csv           per run (seed) and task: first / last / avg / std / mean_all over epochs
    differences.csv    paired PoFT - SFT per (base, dataset, variant, task, stat): seeds x items effects, MDEs
    baselines.csv      DFT - SFT and PoFT - DFT, paired the same way (only when DFT runs are in the grid)
    headroom.csv       the label controls: SFT(clean only) - SFT(all) and each flaw's harm (`headroom`)
    summary.json       headroom vs MDE, harm, captured share, weight shares, verdicts, DAG time (`digest`)
    tables.md          what ran, Overall gaps, Tables 1-5 analogues, noise study, control, paired differences,
                       headroom, PoFT's weights per flaw (data share vs weight share), the most down-weighted samples
    claims.md          a verdict per claim C1-C10 (+ control K1) with its numbers; C11 pointed to unit tests
    plots/*.png        epoch curves, aligned-score distributions, tau vs score (recorded), win rates (those with data)
    paper.md, reproduced_vs_reported.csv   with paper=True: every reported cell beside the reproduced one
    index.md, report.html                  the summary and a self-contained page (PNGs embedded)
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from collections.abc import Iterable, Mapping

import pandas as pd

from ..io import atomic_path, read_json, write_json, write_text
from . import digest, headroom, plots, render, tables
from . import trace as traces
from .claims import Evidence, judge, rules
from .bundle import evidence, read_bundle, write_bundle
from .collect import OVERALL, MetricsFileError, collect, collect_items, overall_gaps
from .paper import reproduced_vs_reported
from .stats import baseline_differences, paired_differences
from .summary import per_seed

FILES = ("results.csv", "runs.csv", "differences.csv", "headroom.csv", "tables.md", "claims.md", "paper.md",
         "reproduced_vs_reported.csv", "index.md", "report.html", "summary.json")
PLOTS = ("forest.png", "epoch_curves.png", "score_distributions.png", "tau_vs_score.png", "win_rates.png")


def _load(what: str, value):
    """A JSON object given inline (dict) or as a path; errors name the file."""
    if isinstance(value, Mapping):
        return value
    try:
        return read_json(value)
    except (OSError, ValueError) as e:
        raise MetricsFileError(f"{value}: cannot read {what} ({e})") from e


def _load_scores(scores) -> dict[str, dict]:
    out = {}
    for ds, v in (scores or {}).items():
        obj = _load("aligned score file", v)
        rows = obj.get("rows") if isinstance(obj, dict) else None
        if not isinstance(rows, list) or any(not isinstance(r, dict) or not {"id", "score"} <= set(r) for r in rows):
            raise MetricsFileError(f"{v if not isinstance(v, Mapping) else ds}: field 'rows': expected a list of "
                                   "{'id', 'score', ...} (a merged score file)")
        out[ds] = obj
    return out


def _load_kept(kept) -> dict[tuple, dict]:
    """{"base/dataset/variant": filter output} -> {(base, dataset, variant): its meta (n_kept, n_input, ...)}."""
    out = {}
    for key, v in (kept or {}).items():
        parts = key.split("/")
        meta = _load("filter output", v).get("meta") or {}
        if len(parts) != 3 or not {"n_kept", "n_input"} <= set(meta):
            raise MetricsFileError(f"{v if not isinstance(v, Mapping) else key}: kept ids for {key!r}: expected a key "
                                   "BASE/DATASET/VARIANT and a filter output with meta.n_kept and meta.n_input")
        out[tuple(parts)] = meta
    return out


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def _paired_frame(d: pd.DataFrame, level: float, means: dict) -> pd.DataFrame:
    """The columns every paired-effect table shows; `means` (column -> values: the arms and their difference) go
    between the seeds x items count and the interval."""
    return pd.DataFrame({
        "base": d["base"], "dataset": d["dataset"], "variant": d["variant"], "task": d["task"], "stat": d["stat"],
        "seeds × items": [f"{s} × {n}" if u == "items" else f"{s} seeds" for s, n, u in
                          zip(d["n_pairs"], d["n_items"], d["unit"])],
        **means, f"{level:.0%} CI": render.intervals(d), "MDE": d["mde"].map(render.fmt), "level": d["level_used"]})


def differences_markdown(diffs: pd.DataFrame, tasks: list[str], level: float) -> str:
    d = diffs[diffs["task"].isin(tasks) & diffs["stat"].isin(["last", "avg"])]
    d = d.sort_values(["variant", "base", "dataset", "task", "stat"], ascending=[True, True, True, True, False])
    frame = _paired_frame(d, level, {"PoFT": d["treat_mean"].map(render.fmt), "SFT": d["control_mean"].map(render.fmt),
                                     "PoFT − SFT": d["mean"].map(render.fmt)})
    return ("## Paired differences PoFT − SFT (seeds × items)\n\nlast = last epoch, avg = mean over epochs excluding "
            "the first. Intervals: t with Satterthwaite df from the seed, item and residual variance components "
            "(level 'method'); 'checkpoint' = one seed, item noise only (no claim about the method); MDE = the "
            "smallest effect detected with power 0.8. All stats are in differences.csv.\n\n" + render.markdown(frame))


def baselines_markdown(base: pd.DataFrame, tasks: list[str], level: float) -> str:
    """DFT beside SFT and PoFT (baselines.csv), paired by seed and item like the PoFT - SFT differences."""
    d = base[base["task"].isin(tasks)].sort_values(["treatment", "variant", "base", "dataset", "task", "stat"],
                                                   ascending=[True, True, True, True, True, False])
    frame = _paired_frame(d, level, {"treatment": d["treat_mean"].map(render.fmt),
                                     "control": d["control_mean"].map(render.fmt),
                                     "difference": d["mean"].map(render.fmt)})
    label = tables.METHOD_LABEL
    frame.insert(0, "comparison", [f"{label[t]} − {label[c]}" for t, c in zip(d["treatment"], d["control"])])
    return ("## Baselines: DFT beside SFT and PoFT (seeds × items)\n\nDFT (Dynamic Fine-Tuning, Wu et al. 2025) weights "
            "each response token by its own detached probability; no claim of the paper is about it. Paired and "
            "read like the PoFT − SFT differences; all stats are in baselines.csv.\n\n" + render.markdown(frame))


def paper_markdown(side: pd.DataFrame) -> str:
    """Each paper table in its own layout, every cell "reported / reproduced" (reproduced: mean ± std over
    seeds, with the seed count when it is not the table's usual; a dash where nothing ran)."""
    out = ["# Reproduced vs reported (arXiv 2412.12865, Tables 1-5)\n",
           "Each cell: the paper's number / ours (mean ± std over seeds, a dash where the grid has no such run). "
           "The paper reports single runs; `delta` per cell is in reproduced_vs_reported.csv.\n"]
    for t, g in side.groupby("table", sort=True):
        n_max = int(g["n_seeds"].max())
        text = [f"{render.fmt(r)} / {render.fmt_cell(m, s, n, n_max)}" for r, m, s, n in
                zip(g["reported"], g["reproduced"], g["std"], g["n_seeds"])]
        wide = g.assign(text=text).pivot(index="row", columns="column", values="text")
        wide = wide.reindex(index=list(dict.fromkeys(g["row"])), columns=list(dict.fromkeys(g["column"])))
        out += [f"## {t} (reproduced with {n_max} seed(s))\n",
                render.markdown(wide.fillna(render.DASH).reset_index())]
    return "\n".join(out)


def build_report(records: Iterable[Mapping], out_dir: str | Path, overall_tasks: list[str], *,
                 chat_tasks: list[str] | None = None, focus_task: str | None = None,
                 noise_datasets: list[str] | None = None, main_datasets: list[str] | None = None,
                 scores: Mapping | None = None, kept: Mapping | None = None,
                 trace_runs: Iterable[Mapping] = (), paper: bool = False, paper_names: dict | None = None,
                 paper_dir: str | Path | None = None, level: float = 0.95, min_effect: float | None = 1.0,
                 dag_seconds: float | None = None) -> dict[str, Path]:
    """Aggregate one grid's metrics into out_dir (see the module docstring); returns {output name: path}.

    overall_tasks: the suite whose mean is "Overall"; chat_tasks: the win-rate / chat tasks of Tables 2-3
    (default: every task with metric "win_rate"); focus_task: C3's task (the paper's GSM8k); noise_datasets:
    the noise study's datasets ordered clean -> noisiest; main_datasets: C1-C5's datasets (the config's
    grid.main; default: see `Evidence.main_datasets`); scores: {dataset: merged score file (path or
    object)}; kept: {"base/dataset/variant": the filter's output (path or object)} for Table 4's kept
    counts; trace_runs: {base, dataset, method, variant, seed, run_dir} of each training run whose recorded
    trace (poft.report.trace) the weights table and the tau plot show;
    paper: also write the reproduced-vs-reported comparison, mapping our names with paper_names;
    level: of every interval; min_effect: delta of the verdict rules (Overall points), declared before the run;
    dag_seconds: the DAG's wall time so far (summary.json).

    Everything the outputs are made of is first written to out_dir/data (`bundle`), and the outputs are built
    from what is read back: `report_from_data` on that folder alone gives the same files.
    """
    out = Path(out_dir)
    records = list(records)
    raw = collect(records)
    if chat_tasks is None:
        chat_tasks = sorted(raw.loc[raw["metric"] == "win_rate", "task"].unique())
    options = {"overall_tasks": list(overall_tasks), "chat_tasks": list(chat_tasks), "focus_task": focus_task,
               "noise_datasets": list(noise_datasets or []), "main_datasets": main_datasets, "paper": paper,
               "paper_names": paper_names, "level": level, "min_effect": min_effect, "dag_seconds": dag_seconds}
    write_bundle(out / "data", raw, collect_items(records), _load_scores(scores), _load_kept(kept), options,
                 traces.collect_traces(trace_runs))
    return report_from_data(out / "data", out, paper_dir)


def report_from_data(data_dir: str | Path, out_dir: str | Path, paper_dir: str | Path | None = None
                     ) -> dict[str, Path]:
    """Every output of `build_report` from a report data folder (`bundle`) alone."""
    out, data = Path(out_dir), read_bundle(data_dir)
    ev = evidence(data)
    o, df, spreads = data["options"], ev.df, ev.spreads or {}
    overall_tasks, chat_tasks, noise_datasets, level = ev.overall_tasks, ev.chat_tasks, ev.noise_datasets, ev.level
    raw, score_objs, trace = data["results"], data["scores"], data["trace"]
    made = {
        "table1": tables.table1(df, overall_tasks), "table2": tables.table2(df, chat_tasks),
        "table3": tables.table3(df, chat_tasks), "table4": tables.table4(df, data["kept"]),
        "table5": tables.table5(df),
    }
    extra = [tables.noise_table(df, noise_datasets)] if noise_datasets else []
    extra.append(tables.control_table(df))
    diffs = paired_differences(ev)
    baselines = baseline_differences(ev)
    head, cap = headroom.headroom(ev), headroom.captured(ev)
    verdicts = judge(ev)
    paper, paper_names = o["paper"], o["paper_names"]

    gaps = overall_gaps(raw, overall_tasks)
    md = ["# Tables\n", "## What ran\n", render.markdown(tables.coverage(raw))]
    if len(gaps):
        md += ["## Checkpoints without Overall (missing suite tasks)\n", render.markdown(gaps)]
    md += [render.table_markdown(t) for t in [*made.values(), *extra]]
    md.append(differences_markdown(diffs, [OVERALL, *chat_tasks], level))
    if len(baselines):
        md.append(baselines_markdown(baselines, [OVERALL, *chat_tasks], level))
    if len(head):
        md.append(headroom.markdown(head, cap, level))
    weights = weights_sections(trace)
    md += [f"## {title}\n\n{note}\n\n{render.markdown(frame)}" for title, note, frame in weights]
    if spreads:
        md += ["## Aligned-score spread per dataset (population std, nats / token)\n",
               render.markdown(pd.DataFrame({"dataset": list(spreads), "spread": list(spreads.values())}))]

    written: dict[str, Path] = {}
    _write_csv(out / "results.csv", df)
    _write_csv(out / "runs.csv", per_seed(df))
    _write_csv(out / "differences.csv", diffs)
    if len(baselines):
        _write_csv(out / "baselines.csv", baselines)
        written["baselines.csv"] = out / "baselines.csv"
    else:  # no DFT arm ran: a baselines file from an earlier report would describe runs that are not here
        (out / "baselines.csv").unlink(missing_ok=True)
    if len(head):
        _write_csv(out / "headroom.csv", head)
        written["headroom.csv"] = out / "headroom.csv"
    write_json(out / "summary.json", digest.summary(ev, diffs, head, cap, verdicts, traces.weight_shares(trace),
                                                    o.get("dag_seconds")))
    written["summary.json"] = out / "summary.json"
    write_text(out / "tables.md", "\n".join(md))
    pdir = out / "plots"
    forest = plots.forest(diffs, ev.min_effect, level, pdir / "forest.png")
    write_text(out / "claims.md", render.claims_markdown(verdicts, rules(), level, ev.min_effect,
                                                         "plots/forest.png" if forest else None))
    written.update({n: out / n for n in ("results.csv", "runs.csv", "differences.csv", "tables.md", "claims.md")})

    figs = {"forest.png": forest,
            "epoch_curves.png": plots.epoch_curves(df, pdir / "epoch_curves.png"),
            "score_distributions.png": plots.score_distributions(score_objs, pdir / "score_distributions.png"),
            "tau_vs_score.png": plots.tau_vs_score(traces.last_epoch_points(trace), ev.main_datasets,
                                                   pdir / "tau_vs_score.png"),
            "win_rates.png": plots.win_rates(df, list(chat_tasks), pdir / "win_rates.png")}
    written.update({f"plots/{k}": v for k, v in figs.items() if v is not None})

    side = None
    if paper:
        side = reproduced_vs_reported(made, paper_dir, paper_names)
        _write_csv(out / "reproduced_vs_reported.csv", side)
        write_text(out / "paper.md", paper_markdown(side))
        written.update({n: out / n for n in ("reproduced_vs_reported.csv", "paper.md")})

    write_text(out / "index.md", _index(written, verdicts, overall_tasks, chat_tasks, ev))
    write_text(out / "report.html", _html(raw, made, extra, diffs, baselines, (head, cap), chat_tasks, verdicts, ev,
                                          written, side, weights))
    written.update({"index.md": out / "index.md", "report.html": out / "report.html"})
    for name in [*FILES, *(f"plots/{p}" for p in PLOTS)]:  # leftovers of an earlier call
        if name not in written:
            (out / name).unlink(missing_ok=True)
    return written


def weights_sections(trace: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, note, formatted frame) of the trace's tables, those with rows: PoFT's weight share per group and
    epoch beside its data share, and the most down-weighted samples of data without group labels."""
    shares, low = traces.shares_table(trace), traces.most_down_weighted(trace)
    out = []
    if len(shares):
        frame = pd.DataFrame({"dataset": shares["dataset"], "group": shares["group"], "epoch": shares["epoch"],
                              **{c.replace("_", " "): shares[c].map(lambda x: render.fmt(x, 3))
                                 for c in ("data_share", "weight_share", "mean_tau")}, "runs": shares["runs"]})
        out.append(("PoFT's weights per flaw (data share vs weight share)",
                    "Per dataset, group (the samples' recorded meta label) and epoch, over PoFT's full runs (mean "
                    "over bases and seeds): data share = the group's share of the samples; weight share = its share "
                    "of the summed tau, the weights PoFT's loss applied (recorded in training). Weight share below "
                    "data share: PoFT weighs the group below an average sample.", frame))
    if len(low):
        frame = low.assign(tau=low["tau"].map(lambda x: render.fmt(x, 3)),
                           aligned=low["aligned"].map(lambda x: render.fmt(x, 3)))
        out.append(("Most down-weighted samples (data without group labels)",
                    "PoFT's full runs at their last epoch: the samples of least tau (mean over bases and seeds), "
                    "with their mean aligned score (nats / token); what PoFT drops first, to be read.", frame))
    return out


def _index(written, verdicts, overall_tasks, chat_tasks, ev: Evidence) -> str:
    lines = ["# PoFT report\n",
             f"Overall = mean of {', '.join(overall_tasks)}; chat / win-rate tasks: {', '.join(chat_tasks) or '—'}; "
             f"focus task (C3): {ev.focus_task or '—'}; noise study: {' < '.join(ev.noise_datasets) or '—'}; "
             f"main datasets (C1-C5): {', '.join(ev.main_datasets) or '—'}.\n",
             "## Verdicts\n",
             render.markdown(pd.DataFrame([render.headline(v, ev.level) for v in verdicts])),
             "## Files\n"]
    lines += [f"- [{n}]({n})" for n in written if not n.startswith("plots/")]
    lines += ["\n## Plots\n"] + [f"![{n}]({n})" for n in written if n.startswith("plots/")]
    return "\n".join(lines) + "\n"


def _img(name: str, path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    name = html.escape(name)
    return f"<h3>{name}</h3><img alt='{name}' src='data:image/png;base64,{data}'>"


def _html(raw, made, extra, diffs, baselines, controls, chat_tasks, verdicts, ev: Evidence, written, side,
          weights) -> str:
    """The claims first (one line each, how to read them, the forest plot), then what ran, the tables, each
    claim's comparisons, the paired differences and the other plots."""
    level = ev.level
    body = ["<h1>PoFT report</h1>", render.claims_summary_html(verdicts, level, ev.min_effect)]
    body += [_img(n, p) for n, p in written.items() if n == "plots/forest.png"]
    body += ["<h2>What ran</h2>", render.frame_html(tables.coverage(raw))]
    body += [render.table_html(t) for t in [*made.values(), *extra]]
    body.append(render.claims_html(verdicts, level))
    d = diffs[diffs["task"].isin([OVERALL, *chat_tasks]) & diffs["stat"].isin(["last", "avg"])]
    body += ["<h2>Paired differences PoFT − SFT</h2>", render.frame_html(d)]
    if len(baselines):
        b = baselines[baselines["task"].isin([OVERALL, *chat_tasks])]
        body += ["<h2>Baselines: DFT − SFT and PoFT − DFT</h2>", render.frame_html(b)]
    head, cap = controls
    if len(head):
        body += ["<h2>Headroom and flaw harm (label controls)</h2>", render.frame_html(head)]
        body += ["<h2>Share of the headroom PoFT captures</h2>", render.frame_html(cap)] if len(cap) else []
    for title, note, frame in weights:
        body += [f"<h2>{html.escape(title)}</h2>", render.frame_html(frame), f"<p class='note'>{html.escape(note)}</p>"]
    body += [_img(n, p) for n, p in written.items() if n.startswith("plots/") and n != "plots/forest.png"]
    if side is not None:
        body += ["<h2>Reproduced vs reported</h2>", render.frame_html(side)]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table.t{border-collapse:collapse;font-size:13px}"
             "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}.note{color:#555}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>PoFT report</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")
