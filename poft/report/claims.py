"""The paper's claims C1-C10 (+ the shuffled-score control K1) as rules over the measured grid.

Each rule's docstring is its crisp definition (copied into claims.md); how comparisons combine into a verdict
is in `verdicts`. Point-estimate parts (which dataset gains most, C5's rank correlation) can turn a "holds"
into "inconclusive", never into "fails": only an interval can contradict a claim.

C1-C5 use the "main" datasets: the config's `grid.main` datasets (`Evidence.main`), or, when none are given,
every dataset with plain (variant "full") SFT and PoFT runs outside the noise study, whose clean control and
noised sets belong to C6. C11 (the gradient identity)
is a property of the loss, checked by unit tests, not by the grid.
"""

from __future__ import annotations


import pandas as pd

from .collect import OVERALL
from .contrasts import task_contrast_matrix
from .effects import combine_cells, paired_effect, verdict_of
from .verdicts import NUMBER_COLUMNS, Evidence, Verdict, combine, concat, judged, row

DIRECTION = "Directions: every claim is read as an effect > 0 except C2 (PoFT's std - SFT's < 0) and C6's SFT rows."


def _summary(numbers: pd.DataFrame, level: float, min_effect) -> dict:
    """The claim's headline: cells, seeds x items, the MDE range and -- when every cell is read in one direction
    -- the cells holding after Holm and the pooled random-effects effect of the method-level cells."""
    out = {"n_cells": len(numbers), "seeds": int(numbers["n_pairs"].max()), "items": int(numbers["n_items"].max()),
           "mde_min": float(numbers["mde"].min()), "mde_max": float(numbers["mde"].max()),
           "n_seed_level": int((numbers["unit"] == "seeds").sum())}
    directions = set(numbers["direction"])
    cells = numbers[(numbers["level_used"] == "method") & numbers["se"].notna()]
    if len(directions) == 1 and len(cells):
        effs = [{"mean": r.mean, "se": r.se, "df": r.df, "ci_low": r.ci_low, "ci_high": r.ci_high,
                 "level_used": "method", "level": level} for r in cells.itertuples(index=False)]
        c = combine_cells(effs, min_effect, directions.pop())
        out.update(pooled=c["pooled"], n_holm=c["n_holm"], n_method=len(cells))
    return out


def _verdict(claim: str, numbers: pd.DataFrame, text: str, override: str | None = None, ev: Evidence | None = None
             ) -> Verdict:
    v = combine(numbers["sign"]) if len(numbers) else "not covered"
    if override and v == "holds":
        v = override
    counts = numbers["sign"].value_counts().to_dict() if len(numbers) else {}
    tally = (f"{len(numbers)} comparisons: {counts.get('+', 0)} hold, {counts.get('-', 0)} fail, "
             f"{counts.get('?', 0)} inconclusive.") if len(numbers) else "The grid has no rows for this claim."
    summary = _summary(numbers, ev.level, ev.min_effect) if ev is not None and len(numbers) else {}
    return Verdict(claim, v, numbers, f"{tally} {text}".strip(), CLAIMS[claim][0], summary)


def _largest(d: pd.DataFrame) -> dict:
    """base -> dataset with the largest mean gain in comparison rows `d`."""
    return {b: g.loc[g["mean"].idxmax(), "dataset"] for b, g in d.groupby("base") if g["mean"].notna().any()}


def _widest(datasets, spreads) -> str | None:
    s = {d: spreads[d] for d in datasets if spreads and d in spreads}
    return max(s, key=s.get) if len(s) >= 2 else None


PO = {"method": "poft", "variant": "full"}
SF = {"method": "sft", "variant": "full"}
lbl = lambda fmt: (lambda r: fmt.format(**r))  # noqa: E731


def _judged(ev: Evidence, d: pd.DataFrame, label, direction: int = 1) -> pd.DataFrame:
    return judged(d, label, direction, ev.min_effect)


def c1(ev: Evidence) -> Verdict:
    """Holds if for every base x main dataset the paired PoFT - SFT effect on Overall, at the last epoch and
    averaged over epochs (excluding the first), holds (method-level interval > 0); fails if one is
    significantly negative or rules out a gain of min_effect (a powered null)."""
    d = concat(ev.contrast(PO, SF, s, task=OVERALL, dataset=ev.main_datasets) for s in ("last", "avg"))
    n = _judged(ev, d, lbl("{base} / {dataset}: PoFT − SFT Overall ({stat})"))
    big = _largest(d[d["stat"] == "last"]) if len(d) else {}
    text = "Largest mean gain (last epoch): " + (", ".join(f"{b}: {x}" for b, x in big.items()) or "—") + "."
    if len(d) and not (d["stat"] == "avg").any():
        text += " Avg is not available (runs have fewer than 2 epochs): judged on the last epoch only."
    return _verdict("C1", n, text, ev=ev)


def c2(ev: Evidence) -> Verdict:
    """Holds if for every base x main dataset PoFT's std of Overall over all epochs (the first included, as the
    paper's Std) minus SFT's has a method-level interval < 0 (per-run statistic: seeds are the unit). Needs
    >= 2 epochs."""
    d = ev.contrast(PO, SF, "std", task=OVERALL, dataset=ev.main_datasets)
    return _verdict("C2", _judged(ev, d, lbl("{base} / {dataset}: std(PoFT) − std(SFT) over epochs"), -1), "", ev=ev)


def c3(ev: Evidence) -> Verdict:
    """Concentration on `focus_task`: per base x main dataset, c = d_focus - mean of the other suite tasks' d
    (d = PoFT - SFT at the last epoch), paired by seed and item (each task's items scaled so that their mean is
    c; seeds alone where items are missing). Holds if every c holds and the focus task has the largest mean
    gain; fails if some c fails."""
    others = [t for t in ev.overall_tasks if t != ev.focus_task]
    if ev.focus_task not in ev.overall_tasks or not others:
        return _verdict("C3", concat([]), f"No focus task among the suite tasks (focus_task={ev.focus_task!r}).")
    rows = []
    full = ev.ps[ev.ps["dataset"].isin(ev.main_datasets) & (ev.ps["variant"] == "full")]
    coefs = {ev.focus_task: 1.0, **{t: -1.0 / len(others) for t in others}}
    for (b, ds), g in full.groupby(["base", "dataset"], sort=True):
        if not set(ev.overall_tasks) <= set(g["task"]) or g["method"].nunique() < 2:
            continue
        eff = None
        if (its := ev.base_items(b)) is not None:
            arms = [(1.0, {**PO, "base": b, "dataset": ds}, "last"), (-1.0, {**SF, "base": b, "dataset": ds}, "last")]
            d = task_contrast_matrix(arms, its, ev.epochs, coefs)
            eff = None if d is None else {**paired_effect(d, ev.level, ev.min_effect), "unit": "items"}
            if eff is not None:
                eff["n_pairs"] = eff["n_seeds"]
        if eff is None:  # no per-item scores: the per-seed c values
            arms = [(c * m_c, {**m, "task": t}, "last") for t, c in coefs.items() for m_c, m in ((1.0, PO), (-1.0, SF))]
            eff = ev.effect(arms, b, ev.focus_task, ds, items=False)
        if eff is None:
            continue
        gains = {t: ev.contrast(PO, SF, "last", base=b, dataset=ds, task=t)["mean"].mean() for t in ev.overall_tasks}
        top = max(gains, key=lambda t: gains[t])
        v = verdict_of(eff, ev.min_effect)
        if v[0] == "holds" and top != ev.focus_task:
            v = ("inconclusive", f"{v[1]}, but the largest gain is on {top}")
        rows.append(row(f"{b} / {ds}: d({ev.focus_task}) − mean d(others); top gain: {top}", eff, v))
    return _verdict("C3", pd.DataFrame(rows, columns=NUMBER_COLUMNS), "", ev=ev)


def c4(ev: Evidence) -> Verdict:
    """Holds if for every base x main dataset x chat task the PoFT - SFT effect (last epoch and average over
    epochs) holds and, when aligned-score spreads are known, the largest last-epoch gain is on the widest-spread
    dataset (else inconclusive). "Smaller than the leaderboard gains" is not judged."""
    d = concat(ev.contrast(PO, SF, s, task=list(ev.chat_tasks), dataset=ev.main_datasets) for s in ("last", "avg"))
    n = _judged(ev, d, lbl("{base} / {dataset}: PoFT − SFT {task} ({stat})"))
    override, text = None, ""
    widest = _widest(ev.main_datasets, ev.spreads)
    if len(d) and widest:
        big = {(b, t): x for t in ev.chat_tasks
               for b, x in _largest(d[(d["stat"] == "last") & (d["task"] == t)]).items()}
        off = {k: x for k, x in big.items() if x != widest}
        tops = ", ".join(f"{b}/{t}: {x}" for (b, t), x in big.items())
        text = f"Widest aligned-score spread: {widest}; largest gain: {tops}."
        override = "inconclusive" if off else None
    return _verdict("C4", n, text, override, ev=ev)


def c5(ev: Evidence) -> Verdict:
    """Per base: the gain on the widest-spread main dataset minus the gain on the narrowest (PoFT - SFT, Overall,
    last epoch), paired by seed and item, holds > 0 and the Spearman rank correlation between spread and mean
    gain over the main datasets is > 0; fails if that difference fails (significantly negative, or a powered
    null). Needs aligned-score spreads for >= 2 main datasets. (A rank correlation of point estimates alone can
    make a "holds" inconclusive, never a "fails".)"""
    if not ev.spreads:
        return _verdict("C5", concat([]), "No aligned-score spreads were given.")
    main = [x for x in ev.main_datasets if x in ev.spreads]
    d = ev.contrast(PO, SF, "last", task=OVERALL, dataset=main)
    rows = []
    for b, g in d.groupby("base"):
        if len(g) < 2:
            continue
        sp = g["dataset"].map(ev.spreads)
        rho = float(sp.rank().corr(g["mean"].rank()))
        wide, narrow = g.loc[sp.idxmax(), "dataset"], g.loc[sp.idxmin(), "dataset"]
        arms = [(1.0, {**PO, "dataset": wide}, "last"), (-1.0, {**SF, "dataset": wide}, "last"),
                (-1.0, {**PO, "dataset": narrow}, "last"), (1.0, {**SF, "dataset": narrow}, "last")]
        eff = ev.effect(arms, b, OVERALL)
        if eff is None:
            continue
        v = verdict_of(eff, ev.min_effect)
        if v[0] == "holds" and not rho > 0:
            v = ("inconclusive", f"{v[1]}, but the rank correlation of spread and gain is {rho:.2f}")
        gains = ", ".join(f"{x}: spread {s:.3g}, gain {m:.2f}" for x, s, m in zip(g["dataset"], sp, g["mean"]))
        rows.append(row(f"{b}: gain({wide}) − gain({narrow}); Spearman rho(spread, gain) = {rho:.2f} ({gains})",
                        eff, v))
    return _verdict("C5", pd.DataFrame(rows, columns=NUMBER_COLUMNS), "", ev=ev)


def no_degradation(effect: dict, min_effect, direction: int = 1) -> tuple[str, str]:
    """C6's PoFT rows, "does not degrade" (a non-inferiority reading with margin delta): holds when the interval
    rules out a loss of delta or more (lower bound > -delta), fails on a significant loss (upper bound < 0)."""
    if effect.get("level_used") != "method":
        return "inconclusive", "no method-level interval"
    lo, hi = effect["ci_low"], effect["ci_high"]
    if hi < 0:
        return "fails", f"interval [{lo:.4g}, {hi:.4g}] shows a significant loss"
    if min_effect is not None and lo > -min_effect:
        return "holds", f"interval [{lo:.4g}, {hi:.4g}] rules out a loss of {min_effect:g} or more"
    return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}] does not rule out a loss of {min_effect}"


def c6(ev: Evidence) -> Verdict:
    """Noise study (datasets ordered clean -> noisiest). Per base x noised dataset: SFT's Overall change from the
    first to the last epoch holds < 0 (it degrades) and PoFT's does not degrade (its interval rules out a loss
    of min_effect; fails on a significant loss). Per base: the gap widens: (PoFT - SFT at noisiest) - (PoFT -
    SFT at clean), last epoch, holds > 0, and the mean gaps never shrink along the noise order."""
    if len(ev.noise_datasets) < 2:
        return _verdict("C6", concat([]), "No noise study (noise_datasets needs a clean and >= 1 noised set).")
    ps = ev.ps[(ev.ps["variant"] == "full") & (ev.ps["task"] == OVERALL)]
    rows = []
    noised = ps[ps["dataset"].isin(ev.noise_datasets[1:]) & (ps["n_epochs"] >= 2)]
    for (b, ds, m), g in noised.groupby(["base", "dataset", "method"]):
        arm = {"method": m, "variant": "full"}
        eff = ev.effect([(1.0, arm, "last"), (-1.0, arm, "first")], b, OVERALL, ds)
        if eff is None:
            continue
        # SFT is claimed to degrade (change < 0), PoFT not to (change >= -delta)
        v = verdict_of(eff, ev.min_effect, -1) if m == "sft" else no_degradation(eff, ev.min_effect)
        rows.append(row(f"{b} / {ds}: {m.upper() if m == 'sft' else 'PoFT'} Overall change first → last epoch",
                        eff, v, -1 if m == "sft" else 1))
    for b, g in ps.groupby("base"):
        order = [x for x in ev.noise_datasets if x in set(g["dataset"])]
        if len(order) < 2:
            continue
        noisy, clean = order[-1], order[0]
        arms = [(1.0, {**PO, "dataset": noisy}, "last"), (-1.0, {**SF, "dataset": noisy}, "last"),
                (-1.0, {**PO, "dataset": clean}, "last"), (1.0, {**SF, "dataset": clean}, "last")]
        eff = ev.effect(arms, b, OVERALL)
        if eff is None:
            continue
        means = {x: ev.contrast(PO, SF, "last", base=b, dataset=x, task=OVERALL)["mean"].mean() for x in order}
        mono = all(means[a] <= means[c] for a, c in zip(order, order[1:]))
        v = verdict_of(eff, ev.min_effect)
        if v[0] == "holds" and not mono:
            v = ("inconclusive", f"{v[1]}, but the mean gaps shrink somewhere along the noise order")
        path = " → ".join(f"{x} {means[x]:.2f}" for x in order)
        rows.append(row(f"{b}: gap({noisy}) − gap({clean}); mean gaps {path}", eff, v))
    return _verdict("C6", pd.DataFrame(rows, columns=NUMBER_COLUMNS), "", ev=ev)


def _variants(ev: Evidence, prefix: str, exclude: str | None = None) -> list[str]:
    vs = sorted(v for v in ev.ps["variant"].unique() if v.startswith(prefix))
    return [v for v in vs if not (exclude and v.startswith(exclude))]


def c7(ev: Evidence) -> Verdict:
    """Per base x dataset x preference-score filter: SFT(filtered) - SFT(full) > 0 and PoFT(filtered) -
    SFT(filtered) > 0, Overall at the last epoch, each effect holding."""
    fr = []
    for v in _variants(ev, "filter:preference:"):
        a = ev.contrast({"method": "sft", "variant": v}, SF, "last", task=OVERALL)
        b = ev.contrast({"method": "poft", "variant": v}, {"method": "sft", "variant": v}, "last", task=OVERALL)
        fr += [_judged(ev, a, lbl(f"{{base}} / {{dataset}}: SFT {v} − SFT full")),
               _judged(ev, b, lbl(f"{{base}} / {{dataset}}: PoFT {v} − SFT {v}"))]
    return _verdict("C7", concat(fr), "", ev=ev)


def c8(ev: Evidence) -> Verdict:
    """Per base x dataset x other filter (IFD, InsTag, Deita, ...): PoFT - SFT on the same filtered data,
    Overall at the last epoch, the effect holding."""
    fr = [_judged(ev, ev.contrast({"method": "poft", "variant": v}, {"method": "sft", "variant": v}, "last",
                                  task=OVERALL), lbl(f"{{base}} / {{dataset}}: PoFT − SFT on {v}"))
          for v in _variants(ev, "filter:", exclude="filter:preference:")]
    return _verdict("C8", concat(fr), "", ev=ev)


def c9(ev: Evidence) -> Verdict:
    """Per base x dataset and benchmark (Overall and each chat task): (PoFT -> DPO) - (SFT -> DPO) of the mean
    over DPO epochs, the effect holding."""
    tasks = [OVERALL, *ev.chat_tasks]
    d = ev.contrast({"method": "poft", "variant": "dpo"}, {"method": "sft", "variant": "dpo"}, "mean_all", task=tasks)
    missing = [t for t in tasks if t not in set(d["task"])] if len(d) else []
    text = f"Benchmarks without DPO rows: {', '.join(missing)}." if missing else ""
    return _verdict("C9", _judged(ev, d, lbl("{base} / {dataset}: PoFT→DPO − SFT→DPO {task} (mean over epochs)")),
                    text, ev=ev)


def c10(ev: Evidence) -> Verdict:
    """Table 5's reading: per base x dataset x regenerating model m: PoFT on the original data - SFT on the
    responses regenerated by m, Overall at the last epoch, the effect holding."""
    fr = [_judged(ev, ev.contrast(PO, {"method": "sft", "variant": v}, "last", task=OVERALL),
                  lbl(f"{{base}} / {{dataset}}: PoFT (original) − SFT ({v})"))
          for v in _variants(ev, "distill:")]
    return _verdict("C10", concat(fr), "", ev=ev)


def control(ev: Evidence) -> Verdict:
    """Control K1: per base x dataset with a shuffled-score run: PoFT(true scores) - PoFT(shuffled), Overall
    last and Avg, the effect holding ("holds" = the gain needs the quality signal)."""
    d = concat(ev.contrast(PO, {"method": "poft", "variant": "shuffled"}, s, task=OVERALL) for s in ("last", "avg"))
    return _verdict("K1", _judged(ev, d, lbl("{base} / {dataset}: PoFT − PoFT(shuffled) Overall ({stat})")), "", ev=ev)


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
