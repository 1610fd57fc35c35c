"""What PoFT would make of a dataset, before any training: `poft audit`.

    poft audit --data data.jsonl --scores merged.json [--base-scores base.json] --out-dir audit/

Reads a dataset and its aligned scores (a merged score file, or one model's) and answers "what in my data will
PoFT down-weight, and why?": the score distribution per source (the paper's Fig. 2), the lowest- and
highest-scored samples with their text, how far the aligned LLMs agree, the share of PoFT's weight each score
decile gets at the start of training (from the base model's own scores, `poft score --model BASE`), and, when the
data carry labels (meta.flaw in the micro world), each label's share of data and of weight and how many of the
lowest-scored samples are flawed. Writes audit.json and a self-contained audit.html (plots inlined).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass

import numpy as np
import torch

from .losses import poft_weight

SECTIONS = ("summary", "distribution", "lowest", "highest", "agreement", "weights", "labels")


@dataclass
class AuditSpec:
    top: int = 10  # samples listed at each end
    group_field: str = "source"  # meta field that names a sample's source, when the data carry one
    label_field: str = "flaw"  # meta field holding a quality label, when the data carry one
    clean_label: str = "clean"  # the label of samples with nothing wrong
    bottom_share: float = 0.2  # the lowest-scored share whose labels are checked
    beta: float = 1.0
    gamma: float = 0.0


def _text(conv: dict, limit: int = 300) -> str:
    """The first user turn and the reply to it, cut to `limit` characters each."""
    msgs = [m for m in conv["messages"] if m["role"] != "system"]
    user = next((m["content"] for m in msgs if m["role"] == "user"), "")
    reply = next((m["content"] for m in msgs if m["role"] == "assistant"), "")
    cut = lambda s: s if len(s) <= limit else s[:limit] + "…"  # noqa: E731
    return f"USER: {cut(user)}\nASSISTANT: {cut(reply)}"


def _stats(x: np.ndarray) -> dict:
    q = np.quantile(x, [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1]) if x.size else [math.nan] * 7
    return {"n": int(x.size), "mean": float(x.mean()) if x.size else math.nan,
            "std": float(x.std()) if x.size else math.nan,
            **dict(zip(("min", "p10", "p25", "median", "p75", "p90", "max"), map(float, q)))}


def audit(conversations: list[dict], scores: dict, base_scores: dict | None = None,
          spec: AuditSpec | None = None, progress: bool = False) -> dict:
    """The audit as plain data (audit.json). scores: a score file ({"meta", "rows"}); base_scores: the base
    model's own score file on the same data (r_theta at the start of training), for PoFT's weights."""
    spec = spec or AuditSpec()
    by_id = {r["id"]: r for r in scores["rows"]}
    base = {r["id"]: r["score"] for r in base_scores["rows"]} if base_scores else None
    models = scores["meta"].get("models") or [scores["meta"].get("model", "score")]
    rows, unscored = [], []
    iterator = conversations
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(conversations, desc="audit", unit="sample")
    for c in iterator:
        if c["id"] not in by_id:
            raise KeyError(f"sample {c['id']!r} has no row in the score file ({scores['meta'].get('sources')})")
        r = by_id[c["id"]]
        if r["score"] is None or (base is not None and base.get(c["id"]) is None):
            unscored.append(c["id"])
            continue
        meta = c.get("meta") or {}
        rows.append({"id": c["id"], "score": r["score"], "scores": r.get("scores") or {models[0]: r["score"]},
                     "group": str(meta.get(spec.group_field, "all")), "label": meta.get(spec.label_field),
                     "base": base[c["id"]] if base is not None else None, "text": _text(c)})
    if not rows:
        raise ValueError("no sample has a score: nothing to audit")
    score = np.array([r["score"] for r in rows])
    order = np.argsort(score, kind="stable")
    shown = ("id", "score", "scores", "label", "text")
    listed = lambda idx: [{k: rows[i][k] for k in shown} for i in idx]  # noqa: E731
    out = {
        "schema": "poft.audit/1", "models": models, "n_samples": len(conversations), "n_scored": len(rows),
        "n_unscored": len(unscored), "unscored_ids_first_50": unscored[:50],
        "distribution": {g: _stats(score[[r["group"] == g for r in rows]]) for g in sorted({r["group"] for r in rows})},
        "histogram": dict(zip(("counts", "edges"), (a.tolist() for a in np.histogram(score, bins=30)))),
        "lowest": listed(order[: spec.top]), "highest": listed(order[::-1][: spec.top]),
        "agreement": _agreement(rows, models, spec.top),
        "weights": None, "labels": None,
    }
    tau = None
    if base is not None:
        tau = poft_weight(torch.tensor([r["base"] for r in rows], dtype=torch.float64),
                          torch.tensor(score, dtype=torch.float64), spec.beta, spec.gamma).numpy()
        out["weights"] = _deciles(score, tau)
    labels = [r["label"] for r in rows]
    if any(label is not None for label in labels):
        out["labels"] = _labels(score, labels, tau, spec)
    return out


def _agreement(rows: list[dict], models: list[str], top: int) -> dict:
    """Spearman's rho between every two aligned models, and the samples they disagree on most (std of their
    scores). One model: nothing to compare."""
    from scipy.stats import spearmanr

    if len(models) < 2:
        return {"spearman": {}, "most_disputed": []}
    table = np.array([[r["scores"][m] for m in models] for r in rows])
    rho = {f"{a} | {b}": float(spearmanr(table[:, i], table[:, j]).statistic)
           for i, a in enumerate(models) for j, b in enumerate(models) if i < j}
    spread = table.std(axis=1)
    disputed = [{"id": rows[i]["id"], "std": float(spread[i]), "scores": rows[i]["scores"], "label": rows[i]["label"],
                 "text": rows[i]["text"]} for i in np.argsort(-spread, kind="stable")[:top]]
    return {"spearman": rho, "most_disputed": disputed}


def _deciles(score: np.ndarray, tau: np.ndarray) -> dict:
    """Share of the data and of PoFT's weight tau in each decile of the mean aligned score (1 = lowest)."""
    ranks = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    decile = ranks * 10 // len(score)
    rows = [{"decile": d + 1, "score_min": float(score[decile == d].min()),
             "score_max": float(score[decile == d].max()), "data_share": float((decile == d).mean()),
             "weight_share": float(tau[decile == d].sum() / tau.sum())}
            for d in range(10) if (decile == d).any()]
    return {"mean_tau": float(tau.mean()), "deciles": rows}


def _labels(score: np.ndarray, labels: list, tau: np.ndarray | None, spec: AuditSpec) -> dict:
    """Per label: data share, mean score and weight share; and the labels of the lowest-scored `bottom_share`:
    precision = flawed among them / their number, recall = flawed among them / all flawed."""
    labels = np.array([str(x) for x in labels])
    per = {}
    for name in sorted(set(labels)):
        mask = labels == name
        per[name] = {"n": int(mask.sum()), "data_share": float(mask.mean()), "mean_score": float(score[mask].mean()),
                     "weight_share": float(tau[mask].sum() / tau.sum()) if tau is not None else None}
    k = max(1, round(spec.bottom_share * len(score)))
    bottom = np.argsort(score, kind="stable")[:k]
    flawed = labels != spec.clean_label
    hits = int(flawed[bottom].sum())
    return {"field": spec.label_field, "clean_label": spec.clean_label, "per_label": per,
            "bottom": {"share": spec.bottom_share, "n": k, "flawed": hits, "precision": hits / k,
                       "recall": hits / int(flawed.sum()) if flawed.any() else None,
                       "flawed_share_of_data": float(flawed.mean())}}


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------


def _histogram_png(result: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts, edges = result["histogram"]["counts"], result["histogram"]["edges"]
    fig, ax = plt.subplots(figsize=(7, 3), constrained_layout=True)
    ax.stairs(counts, edges, fill=True, alpha=0.7)
    ax.set_xlabel("mean aligned score (nats / token)")
    ax.set_ylabel("samples")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _table(header: list[str], rows: list[list]) -> str:
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _samples(items: list[dict], key: str = "score") -> str:
    rows = [[s["id"], s[key], s.get("label") or "", s["text"]] for s in items]
    return _table(["id", key, "label", "text"], rows)


def bottom_line(bottom: dict) -> str:
    recall = "—" if bottom["recall"] is None else f"{bottom['recall']:.2f}"
    return (f"lowest-scored {bottom['share']:.0%} ({bottom['n']} samples): {bottom['flawed']} flawed, precision "
            f"{bottom['precision']:.2f}, recall {recall} "
            f"(flawed share of all data {bottom['flawed_share_of_data']:.2f})")


def _bottom_line(bottom: dict) -> str:
    return f"<p>{html.escape(bottom_line(bottom))}</p>"


def render_html(result: dict, title: str = "poft audit") -> str:
    """A self-contained page (inline CSS and plot) with one section per SECTIONS entry."""
    dist = _table(["source", "n", "mean", "std", "p10", "median", "p90"],
                  [[g, s["n"], s["mean"], s["std"], s["p10"], s["median"], s["p90"]]
                   for g, s in result["distribution"].items()])
    agree = result["agreement"]
    weights, labels = result["weights"], result["labels"]
    parts = {
        "summary": f"<p>{result['n_scored']} of {result['n_samples']} samples scored by {len(result['models'])} "
                   f"aligned model(s): {html.escape(', '.join(result['models']))}; {result['n_unscored']} without a "
                   "score (left out).</p>",
        "distribution": dist + f'<img alt="score histogram" src="data:image/png;base64,{_histogram_png(result)}">',
        "lowest": _samples(result["lowest"]),
        "highest": _samples(result["highest"]),
        "agreement": (_table(["models", "Spearman rho"], list(agree["spearman"].items()))
                      + "<h3>Samples they disagree on most</h3>" + _samples(agree["most_disputed"], "std"))
        if agree["spearman"] else "<p>One aligned model: nothing to compare.</p>",
        "weights": _table(["decile", "score min", "score max", "data share", "PoFT weight share"],
                          [[d["decile"], d["score_min"], d["score_max"], d["data_share"], d["weight_share"]]
                           for d in weights["deciles"]]) if weights else
        "<p>No base-model scores given (<code>--base-scores</code>): PoFT's weights need r_theta.</p>",
        "labels": (_table(["label", "n", "data share", "mean score", "PoFT weight share"],
                          [[k, v["n"], v["data_share"], v["mean_score"],
                            v["weight_share"] if v["weight_share"] is not None else "—"]
                           for k, v in labels["per_label"].items()]) + _bottom_line(labels["bottom"]))
        if labels else "<p>The data carry no labels.</p>",
    }
    titles = {"summary": "Summary", "distribution": "Score distribution", "lowest": "Lowest-scored samples",
              "highest": "Highest-scored samples", "agreement": "Aligned models' agreement",
              "weights": "PoFT's weight by score decile, at the start of training", "labels": "Labels"}
    body = "".join(f'<section id="{k}"><h2>{titles[k]}</h2>{parts[k]}</section>' for k in SECTIONS)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "vertical-align:top;text-align:left}td:last-child{white-space:pre-wrap}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
