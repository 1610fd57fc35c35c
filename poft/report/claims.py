"""The paper's claims C1-C10 (+ the shuffled-score control K1) as rules over the measured grid.

Each rule's docstring is its crisp definition (copied into claims.md); how comparisons combine into a verdict
is in `verdicts`. Point-estimate parts (which dataset gains most, C5's rank correlation) can turn a "holds"
into "inconclusive" or, where they contradict the claim, into "fails"; the text says which.

C1-C5 use the "main" datasets: the config's `grid.main` datasets (`Evidence.main`), or, when none are given,
every dataset with plain (variant "full") SFT and PoFT runs outside the noise study, whose clean control and
noised sets belong to C6. C11 (the gradient identity)
is a property of the loss, checked by unit tests, not by the grid.
"""

from __future__ import annotations

import math

import pandas as pd

from .collect import OVERALL
from .stats import seed_diffs, summarize
from .verdicts import NUMBER_COLUMNS, Evidence, Verdict, combine, comparison_rows, concat, sign


def _verdict(claim: str, numbers: pd.DataFrame, text: str, override: str | None = None) -> Verdict:
    v = combine(numbers["sign"]) if len(numbers) else "not covered"
    if override and v == "holds":
        v = override
    counts = numbers["sign"].value_counts().to_dict() if len(numbers) else {}
    tally = (f"{len(numbers)} comparisons: {counts.get('+', 0)} support, {counts.get('-', 0)} contradict, "
             f"{counts.get('?', 0)} inconclusive.") if len(numbers) else "The grid has no rows for this claim."
    return Verdict(claim, v, numbers, f"{tally} {text}".strip(), CLAIMS[claim][0])


def _largest(d: pd.DataFrame) -> dict:
    """base -> dataset with the largest mean gain in comparison rows `d`."""
    return {b: g.loc[g["mean"].idxmax(), "dataset"] for b, g in d.groupby("base") if g["mean"].notna().any()}


def _widest(datasets, spreads) -> str | None:
    s = {d: spreads[d] for d in datasets if spreads and d in spreads}
    return max(s, key=s.get) if len(s) >= 2 else None


PO = {"method": "poft", "variant": "full"}
SF = {"method": "sft", "variant": "full"}
lbl = lambda fmt: (lambda r: fmt.format(**r))  # noqa: E731


def c1(ev: Evidence) -> Verdict:
    """Holds if for every base x main dataset the paired PoFT - SFT difference of Overall, at the last epoch
    and averaged over epochs (excluding the first), has an interval >= 0."""
    d = concat(ev.contrast(PO, SF, s, task=OVERALL, dataset=ev.main_datasets) for s in ("last", "avg"))
    n = comparison_rows(d, lbl("{base} / {dataset}: PoFT − SFT Overall ({stat})"))
    big = _largest(d[d["stat"] == "last"]) if len(d) else {}
    text = "Largest mean gain (last epoch): " + (", ".join(f"{b}: {x}" for b, x in big.items()) or "—") + "."
    if len(d) and not (d["stat"] == "avg").any():
        text += " Avg is not available (runs have fewer than 2 epochs): judged on the last epoch only."
    return _verdict("C1", n, text)


def c2(ev: Evidence) -> Verdict:
    """Holds if for every base x main dataset PoFT's std of Overall over all epochs (the first included, as
    the paper's Std) minus SFT's has an interval <= 0. Needs >= 2 epochs."""
    d = ev.contrast(PO, SF, "std", task=OVERALL, dataset=ev.main_datasets)
    return _verdict("C2", comparison_rows(d, lbl("{base} / {dataset}: std(PoFT) − std(SFT) over epochs"), True), "")


def c3(ev: Evidence) -> Verdict:
    """Concentration on `focus_task`: per base x main dataset and seed, c = d_focus - mean of the other
    suite tasks' d (d = PoFT - SFT at the last epoch). Holds if every c interval is > 0 and the focus task has
    the largest mean gain; fails if some interval is < 0."""
    others = [t for t in ev.overall_tasks if t != ev.focus_task]
    if ev.focus_task not in ev.overall_tasks or not others:
        return _verdict("C3", concat([]), f"No focus task among the suite tasks (focus_task={ev.focus_task!r}).")
    sd = seed_diffs(ev.ps[ev.ps["dataset"].isin(ev.main_datasets)], PO, SF, ["base", "dataset", "task"], "last")
    w = sd.pivot_table(index=["base", "dataset", "seed"], columns="task", values="diff", aggfunc="first")
    if ev.focus_task not in w.columns or not set(others) <= set(w.columns):
        return _verdict("C3", concat([]), "")
    rows = []
    for (b, ds), g in w.groupby(level=[0, 1]):
        c = (g[ev.focus_task] - g[others].mean(axis=1, skipna=False)).dropna()
        s = summarize(c, ev.n_boot, ev.level, ev.seed)
        top = g[ev.overall_tasks].mean().idxmax()
        sg = sign(s["ci_low"], s["ci_high"], strict=True)
        rows.append({"comparison": f"{b} / {ds}: d({ev.focus_task}) − mean d(others); top gain: {top}", **s,
                     "sign": "?" if sg == "+" and top != ev.focus_task else sg})
    return _verdict("C3", pd.DataFrame(rows)[NUMBER_COLUMNS], "")


def c4(ev: Evidence) -> Verdict:
    """Holds if for every base x main dataset x chat task the PoFT - SFT difference (last epoch and average
    over epochs) has an interval > 0 and, when aligned-score spreads are known, the largest last-epoch gain is
    on the widest-spread dataset (else inconclusive). "Smaller than the leaderboard gains" is not judged."""
    d = concat(ev.contrast(PO, SF, s, task=list(ev.chat_tasks), dataset=ev.main_datasets) for s in ("last", "avg"))
    n = comparison_rows(d, lbl("{base} / {dataset}: PoFT − SFT {task} ({stat})"), strict=True)
    override, text = None, ""
    widest = _widest(ev.main_datasets, ev.spreads)
    if len(d) and widest:
        big = {(b, t): x for t in ev.chat_tasks
               for b, x in _largest(d[(d["stat"] == "last") & (d["task"] == t)]).items()}
        off = {k: x for k, x in big.items() if x != widest}
        tops = ", ".join(f"{b}/{t}: {x}" for (b, t), x in big.items())
        text = f"Widest aligned-score spread: {widest}; largest gain: {tops}."
        override = "inconclusive" if off else None
    return _verdict("C4", n, text, override)


def c5(ev: Evidence) -> Verdict:
    """Per base: Spearman rank correlation between each main dataset's aligned-score spread and its mean
    PoFT - SFT Overall gain (last epoch). Holds if for every base rho > 0 and the widest-spread dataset has the
    largest gain; fails if some rho < 0; otherwise inconclusive. Point estimates (with the gains' intervals
    listed), needs spreads for >= 2 datasets."""
    if not ev.spreads:
        return _verdict("C5", concat([]), "No aligned-score spreads were given.")
    d = ev.contrast(PO, SF, "last", task=OVERALL, dataset=[x for x in ev.main_datasets if x in ev.spreads])
    rows = []
    for b, g in d.groupby("base"):
        if len(g) < 2:
            continue
        sp = g["dataset"].map(ev.spreads)
        rho = float(sp.rank().corr(g["mean"].rank()))
        top_ok = g.loc[g["mean"].idxmax(), "dataset"] == g.loc[sp.idxmax(), "dataset"]
        pairs = ", ".join(f"{x}: spread {s:.3g}, gain {m:.2f} [{lo:.2f}, {hi:.2f}]" for x, s, m, lo, hi in
                          zip(g["dataset"], sp, g["mean"], g["ci_low"], g["ci_high"]))
        sg = "+" if rho > 0 and top_ok else "-" if rho < 0 else "?"
        rows.append({"comparison": f"{b}: Spearman rho(spread, gain) = {rho:.2f} ({pairs})", "n_pairs": len(g),
                     "mean": rho, "ci_low": math.nan, "ci_high": math.nan, "sign": sg})
    return _verdict("C5", pd.DataFrame(rows, columns=NUMBER_COLUMNS), "mean = Spearman rho.")


def c6(ev: Evidence) -> Verdict:
    """Noise study (datasets ordered clean -> noisiest). Per base x noised dataset: SFT's Overall change from
    the first to the last epoch has an interval < 0 (it degrades) and PoFT's an interval >= 0 (it does not;
    '-' if < 0). Per base: the gap widens: (PoFT - SFT at noisiest) - (PoFT - SFT at clean), last epoch, per seed, > 0
    and the mean gaps never shrink along the noise order."""
    if len(ev.noise_datasets) < 2:
        return _verdict("C6", concat([]), "No noise study (noise_datasets needs a clean and >= 1 noised set).")
    ps = ev.ps[(ev.ps["variant"] == "full") & (ev.ps["task"] == OVERALL)]
    rows = []
    noised = ps[ps["dataset"].isin(ev.noise_datasets[1:]) & (ps["n_epochs"] >= 2)]
    for (b, ds, m), g in noised.groupby(["base", "dataset", "method"]):
        s = summarize(g["change"].dropna(), ev.n_boot, ev.level, ev.seed)
        # SFT is claimed to degrade (change < 0), PoFT not to (change >= 0)
        sg = sign(s["ci_low"], s["ci_high"], lower_is_better=True, strict=True) if m == "sft" else \
            sign(s["ci_low"], s["ci_high"])
        rows.append({"comparison": f"{b} / {ds}: {m.upper() if m == 'sft' else 'PoFT'} Overall change first → last "
                                   f"epoch", **s, "sign": sg})
    gaps = seed_diffs(ps, PO, SF, ["base", "dataset"], "last")
    for b, g in gaps.groupby("base"):
        w = g.pivot_table(index="seed", columns="dataset", values="diff", aggfunc="first")
        order = [x for x in ev.noise_datasets if x in w.columns]
        if len(order) < 2:
            continue
        s = summarize((w[order[-1]] - w[order[0]]).dropna(), ev.n_boot, ev.level, ev.seed)
        means = w[order].mean()
        mono = bool((means.diff().dropna() >= 0).all())
        sg = sign(s["ci_low"], s["ci_high"], strict=True)
        path = " → ".join(f"{x} {means[x]:.2f}" for x in order)
        rows.append({"comparison": f"{b}: gap({order[-1]}) − gap({order[0]}); mean gaps {path}", **s,
                     "sign": "?" if sg == "+" and not mono else sg})
    return _verdict("C6", pd.DataFrame(rows, columns=NUMBER_COLUMNS), "")


def _variants(ev: Evidence, prefix: str, exclude: str | None = None) -> list[str]:
    vs = sorted(v for v in ev.ps["variant"].unique() if v.startswith(prefix))
    return [v for v in vs if not (exclude and v.startswith(exclude))]


def c7(ev: Evidence) -> Verdict:
    """Per base x dataset x preference-score filter: SFT(filtered) - SFT(full) > 0 and PoFT(filtered) -
    SFT(filtered) > 0, Overall at the last epoch, intervals > 0."""
    fr = []
    for v in _variants(ev, "filter:preference:"):
        a = ev.contrast({"method": "sft", "variant": v}, SF, "last", task=OVERALL)
        b = ev.contrast({"method": "poft", "variant": v}, {"method": "sft", "variant": v}, "last", task=OVERALL)
        fr += [comparison_rows(a, lbl(f"{{base}} / {{dataset}}: SFT {v} − SFT full"), strict=True),
               comparison_rows(b, lbl(f"{{base}} / {{dataset}}: PoFT {v} − SFT {v}"), strict=True)]
    return _verdict("C7", concat(fr), "")


def c8(ev: Evidence) -> Verdict:
    """Per base x dataset x other filter (IFD, InsTag, Deita, ...): PoFT - SFT on the same filtered data,
    Overall at the last epoch, interval > 0."""
    fr = [comparison_rows(ev.contrast({"method": "poft", "variant": v}, {"method": "sft", "variant": v}, "last",
                                      task=OVERALL), lbl(f"{{base}} / {{dataset}}: PoFT − SFT on {v}"), strict=True)
          for v in _variants(ev, "filter:", exclude="filter:preference:")]
    return _verdict("C8", concat(fr), "")


def c9(ev: Evidence) -> Verdict:
    """Per base x dataset and benchmark (Overall and each chat task): (PoFT -> DPO) - (SFT -> DPO) of the mean
    over DPO epochs, interval > 0."""
    tasks = [OVERALL, *ev.chat_tasks]
    d = ev.contrast({"method": "poft", "variant": "dpo"}, {"method": "sft", "variant": "dpo"}, "mean_all", task=tasks)
    missing = [t for t in tasks if t not in set(d["task"])] if len(d) else []
    text = f"Benchmarks without DPO rows: {', '.join(missing)}." if missing else ""
    return _verdict("C9", comparison_rows(d, lbl("{base} / {dataset}: PoFT→DPO − SFT→DPO {task} (mean over epochs)"),
                                strict=True), text)


def c10(ev: Evidence) -> Verdict:
    """Table 5's reading: per base x dataset x regenerating model m: PoFT on the original data - SFT on the
    responses regenerated by m, Overall at the last epoch, interval > 0."""
    fr = [comparison_rows(ev.contrast(PO, {"method": "sft", "variant": v}, "last", task=OVERALL),
                lbl(f"{{base}} / {{dataset}}: PoFT (original) − SFT ({v})"), strict=True)
          for v in _variants(ev, "distill:")]
    return _verdict("C10", concat(fr), "")


def control(ev: Evidence) -> Verdict:
    """Control K1: per base x dataset with a shuffled-score run: PoFT(true scores) - PoFT(shuffled), Overall
    last and Avg, interval > 0 ("holds" = the gain needs the quality signal)."""
    d = concat(ev.contrast(PO, {"method": "poft", "variant": "shuffled"}, s, task=OVERALL) for s in ("last", "avg"))
    n = comparison_rows(d, lbl("{base} / {dataset}: PoFT − PoFT(shuffled) Overall ({stat})"), strict=True)
    return _verdict("K1", n, "")


CLAIMS = {
    "C1": ("PoFT's Overall (last epoch and mean over epochs) >= SFT's for every base model x dataset.", c1),
    "C2": ("PoFT's std over epochs <= SFT's.", c2),
    "C3": ("The gain concentrates on GSM8k (here: the focus task).", c3),
    "C4": ("MT-Bench / AlpacaEval gains are smaller but positive, largest on OpenHermes (widest spread).", c4),
    "C5": ("The gain grows with the spread of the aligned-score distribution.", c5),
    "C6": ("On noisy data SFT degrades over epochs while PoFT does not; the gap widens with noise.", c6),
    "C7": ("Filtering by preference score helps SFT; PoFT on the filtered data helps further.", c7),
    "C8": ("PoFT + (IFD | InsTag | Deita) beats the same filter + SFT.", c8),
    "C9": ("PoFT -> DPO beats SFT -> DPO on all three benchmarks.", c9),
    "C10": ("PoFT beats SFT on responses regenerated by the aligned LLMs.", c10),
    "K1": ("Control: PoFT with shuffled aligned scores loses PoFT's advantage.", control),
}


def judge(ev: Evidence) -> list[Verdict]:
    """Every claim's Verdict, in registry order."""
    return [fn(ev) for fn in (entry[1] for entry in CLAIMS.values())]


def rules() -> dict[str, str]:
    """claim -> its rule (the rule function's docstring on one line), for claims.md."""
    return {k: " ".join((fn.__doc__ or "").split()) for k, (_, fn) in CLAIMS.items()}
