"""The smoke config end to end (CI's run of the whole DAG), what re-running it does, and resuming after a kill.

    python -m pytest -q tests/workflow/test_smoke.py
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from .conftest import ROOT, SMOKE, env, job_counts, snakemake

pytestmark = pytest.mark.slow  # a whole DAG run: minutes

REPORT_FILES = ("tables.md", "claims.md", "index.md", "report.html", "results.csv", "runs.csv", "differences.csv",
                "records.jsonl", "data/results.parquet", "data/items.parquet", "data/scores.parquet",
                "data/trace.parquet", "data/inputs.json")
KEYS = ["base", "dataset", "method", "variant", "seed", "epoch", "task"]


def smoke_args(work: Path) -> list[str]:
    return ["--configfile", str(SMOKE), "--config", f"work_dir={work}", f"results_dir={work / 'results'}"]


def test_smoke_runs_end_to_end(smoke):
    """Its time is printed, not asserted: machines of this kind differ up to 2x (workflows/README.md, Time)."""
    work, seconds, log = smoke
    print(f"smoke DAG: {seconds:.0f} s")
    for name in REPORT_FILES:
        assert (work / "results" / name).is_file(), name
    counts = job_counts(log)
    # evaluation.per: group -- openhermes full / filter / shuffled, ultrachat full / dpo; with_training: the groups
    # train their 7 runs but the 2 DPO starts (ultrachat SFT and PoFT), which have train jobs
    assert counts["train_model"] == 2 and counts["dpo_model"] == 2 and counts["evaluate_checkpoint"] == 5


def test_every_epoch_of_every_run_is_in_the_report(smoke):
    work = smoke[0]
    df = pd.read_csv(work / "results" / "results.csv")
    runs = df.groupby(["base", "dataset", "method", "variant", "seed"])["epoch"].agg(lambda e: sorted(set(e)))
    epochs = {k[2:4]: v for k, v in runs.items() if k[1] == "openhermes"}
    assert epochs == {("poft", "full"): [1, 2], ("sft", "full"): [1, 2], ("poft", "shuffled"): [1, 2],
                      ("sft", "filter:preference:0.8"): [1, 2], ("poft", "filter:preference:0.8"): [1, 2]}
    assert runs[("micro-llama3", "ultrachat", "poft", "dpo", 0)] == [1]
    assert {"Overall", "winrate_micro", "micro_gen_arith"} <= set(df["task"])
    claims = (work / "results" / "claims.md").read_text()
    assert all(c in claims for c in ("C1", "C7", "C9", "K1"))
    # every evaluation kept its items, and the report paired them item by item
    diffs = pd.read_csv(work / "results" / "differences.csv")
    last = diffs[(diffs["task"] == "Overall") & (diffs["stat"] == "last") & (diffs["variant"] == "full")]
    assert set(last["unit"]) == {"items"} and (last["n_items"] > 0).all()
    assert set(last["level_used"]) == {"checkpoint"}  # one seed: no claim about the method


def test_the_report_shows_the_traces_training_recorded(smoke):
    """Every `poft train` run's trace reaches the report (runs trained by evaluation jobs too): per epoch each
    sample once, grouped by the micro world's flaw label; PoFT's weight shares per flaw are in tables.md."""
    work = smoke[0]
    trace = pd.read_parquet(work / "results" / "data" / "trace.parquet")
    runs = trace.groupby(["dataset", "method", "variant"])["epoch"].agg(lambda e: sorted(set(e)))
    assert runs[("openhermes", "poft", "full")] == [1, 2] and runs[("ultrachat", "sft", "full")] == [1, 2]
    assert "dpo" not in set(trace["variant"])  # DPO runs record none
    run = trace[(trace["dataset"] == "openhermes") & (trace["method"] == "poft") & (trace["variant"] == "full")]
    assert (run.groupby("epoch")["id"].agg(lambda i: i.is_unique and len(i))).tolist() == [32, 32]
    assert "all" not in set(run["group"]) and run["tau"].between(0, 1).all()
    assert "## PoFT's weights per flaw (data share vs weight share)" in (work / "results" / "tables.md").read_text()


def test_jobs_record_what_they_used(smoke):
    work = smoke[0]
    run = work / "runs" / "micro-llama3" / "openhermes" / "full" / "poft-seed0"
    resolved = json.loads((run / "resolved_config.json").read_text())
    assert resolved["resolved_spec"]["loss"] == "poft" and resolved["resolved_spec"]["num_train_epochs"] == 2
    assert resolved["scores"].endswith("scores/openhermes/merged.json") and resolved["inputs"]["data"]
    sft = json.loads((run.parent / "sft-seed0" / "resolved_config.json").read_text())
    assert sft["scores"] == resolved["scores"]  # SFT gets the scores too: the same samples, the same batches
    index = json.loads((work / "metrics" / "micro-llama3" / "openhermes" / "full" / "evaluation.json").read_text())
    assert [(e["record"]["method"], e["epoch"]) for e in index["evaluations"]] == [("sft", 1), ("sft", 2), ("poft", 1),
                                                                                  ("poft", 2)]
    assert index["evaluations"][2]["record"] == {"base": "micro-llama3", "dataset": "openhermes", "method": "poft",
                                                 "variant": "full", "seed": 0, "epoch": 1}
    assert index["evaluations"][2]["model"].endswith("poft-seed0/checkpoint-2")  # 32 samples / 16 per step


def test_rerun_does_nothing_even_after_touching_docs_and_code(smoke):
    work = smoke[0]
    paths = [ROOT / "README.md", ROOT / "poft" / "report" / "tables.py"]
    stats = {p: p.stat() for p in paths}
    try:
        for p in paths:  # a newer mtime with the same content (Snakemake compares checksums) changes nothing
            os.utime(p)
        r = snakemake("-n", *smoke_args(work))
        assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]
    finally:
        for p, st in stats.items():
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_only_the_report_depends_on_report_code_and_no_job_on_docs(tmp_path):
    """Editing the tables code re-runs the report job and nothing else; editing docs re-runs nothing."""
    r = snakemake("-n", *smoke_args(tmp_path / "work"))
    assert r.returncode == 0, r.stderr[-2000:]
    inputs = {}  # rule -> every input path of its jobs, from the dry-run's job listing
    rule = None
    for line in r.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("input:") and rule:
            inputs.setdefault(rule, set()).update(x.strip() for x in line.split(":", 1)[1].split(","))
    assert any(p.startswith("poft/report/") for p in inputs["report"])
    for rule, paths in inputs.items():
        repo_files = [p for p in paths if not p.startswith(str(tmp_path))]  # not a product of the DAG
        assert not any(p.endswith(".md") for p in repo_files), rule
        if rule != "report":
            assert not any(p.startswith("poft/") for p in repo_files), rule


# One interrupted history of the smoke DAG, restarted the documented way each time (after a SIGKILL,
# `snakemake --unlock` first; every run with --rerun-incomplete): a SIGKILL while the aligned LLMs score, Ctrl-C
# (SIGINT to the whole process group) as soon as some run has saved its first epoch of two, then seeded random
# kills -- wait for the next job to start (any job, or for the last two the report's), let it run a random while,
# kill the whole process tree (Snakemake and its jobs) with a signal drawn from the seeded generator as well.
KILL_SEED = 20261130
N_ANY, N_REPORT = 6, 2
PHASES = {"prepare_dataset": "data", "prepare_pairs": "data", "filter_dataset": "data", "shuffle_scores": "data",
          "score_dataset": "scoring", "score_ifd": "scoring", "merge_scores": "scoring", "train_model": "training",
          "dpo_model": "training", "evaluate_checkpoint": "evaluation", "reference_outputs": "evaluation",
          "report": "report"}


def start_dag(cmd: list[str], **kwargs) -> subprocess.Popen:
    # SIGINT restored to its default in the DAG's process tree: a shell that starts the suite in the background
    # (`nohup ... &`) makes its children ignore SIGINT, and ignored signals stay ignored across exec.
    return subprocess.Popen(cmd, cwd=ROOT, env=env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def cut_runs(work: Path) -> list[Path]:
    """Runs with a checkpoint saved and no summary: cut mid-training."""
    return sorted({c.parent.parent for c in (work / "runs").glob("**/checkpoint-*/poft_train_config.json")
                   if not (c.parent.parent / "train_summary.json").exists()})


def ctrl_c_mid_training(cmd: list[str], work: Path) -> None:
    """Start the DAG and send SIGINT to its process group once some run has saved its first epoch (of two; one
    caught at its last could finish before the signal lands)."""
    proc, seen = start_dag(cmd, stderr=subprocess.DEVNULL), False
    try:
        while proc.poll() is None and not seen:
            seen = any(len(list(run.glob("checkpoint-*"))) == 1 for run in cut_runs(work))
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
    finally:
        proc.wait(timeout=120)
    assert seen, "the DAG finished before any run could be interrupted"


def run_until_killed(cmd: list[str], rule: str | None, sig: int, delay: float) -> str | None:
    """Start the DAG; once a job of `rule` (None: of any rule) starts, wait `delay` s and kill everything. Returns
    the rule of that job, or None if the DAG finished first (no kill landed)."""
    proc = start_dag(cmd, stderr=subprocess.PIPE, text=True)
    started, hit = None, None
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
        while proc.poll() is None:
            try:
                line = lines.get(timeout=0.05).strip()
            except queue.Empty:
                line = ""
            job = re.match(r"(?:local)?rule (\w+):$", line)
            if started is None and job and job.group(1) != "all" and rule in (None, job.group(1)):
                started, hit = time.monotonic(), job.group(1)
            if started is not None and time.monotonic() - started >= delay:
                os.killpg(proc.pid, sig)
                return hit
        return None
    finally:
        proc.wait(timeout=120)


def test_kills_change_nothing(smoke, tmp_path):
    """A SIGKILL while scoring, Ctrl-C mid-training, then 8 seeded kills (SIGTERM and SIGKILL) at random moments,
    the last two in the report: the runs cut mid-training resume from their checkpoints, and after the last re-run
    every result, per-item score and weight equals the uninterrupted run's, and no file is half-written."""
    from poft.evaluation.items import read_items
    from poft.runs import checkpoint_problem, run_checkpoints
    from poft.scoring import read_scores

    rng = random.Random(KILL_SEED)
    reference, work = smoke[0], tmp_path / "work"
    shutil.copytree(reference / "world", work / "world", copy_function=shutil.copy2)  # the world build is not tested
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--rerun-incomplete", *smoke_args(work)]
    assert run_until_killed(cmd, "score_dataset", signal.SIGKILL, 1.0) == "score_dataset"
    assert snakemake("--unlock", *smoke_args(work)).returncode == 0  # Snakemake had no chance to release its lock
    ctrl_c_mid_training(cmd, work)
    cut = cut_runs(work)  # the one seen first may have finished before the signal landed; one beside it is cut
    assert cut, "Ctrl-C cut no run mid-training"
    landed = [("score_dataset", "SIGKILL"), ("mid-training", "SIGINT")]
    for rule in [None] * N_ANY + ["report"] * N_REPORT:
        sig = rng.choice([signal.SIGTERM, signal.SIGKILL])
        hit = run_until_killed(cmd, rule, sig, rng.uniform(0.5, 10.0) if rule is None else rng.uniform(0.5, 5.0))
        if hit is None:
            break
        landed.append((hit, sig.name))
        if sig == signal.SIGKILL:
            assert snakemake("--unlock", *smoke_args(work)).returncode == 0
    print(f"kills: {len(landed)} landed: {landed}")
    assert len(landed) == 2 + N_ANY + N_REPORT
    assert {PHASES[r] for r, _ in landed[2:]} >= {"evaluation", "report"}
    assert {s for _, s in landed} == {"SIGINT", "SIGTERM", "SIGKILL"}

    r = snakemake("--cores", "2", "--rerun-incomplete", *smoke_args(work))
    assert r.returncode == 0, r.stderr[-5000:]
    for name in ("results.csv", "data/items.parquet", "data/scores.parquet"):
        read = pd.read_csv if name.endswith(".csv") else pd.read_parquet
        pd.testing.assert_frame_equal(read(reference / "results" / name), read(work / "results" / name))
    for path in (work / "scores").glob("*/*.json"):  # every score file whole and readable
        read_scores(path)
    items = sorted((work / "metrics").glob("**/*.items.json"))
    assert len(items) == len(list((reference / "metrics").glob("**/*.items.json"))) > 0
    for path in items:  # every per-item file passes its checksum and agrees with its metrics record
        read_items(path.with_name(path.name.replace(".items.json", ".json")))
    for run in cut:
        assert json.loads((run / "train_summary.json").read_text())["resumed_from"], f"{run} did not resume"
    runs = sorted(p.parent for p in (reference / "runs").glob("**/resolved_config.json"))
    assert len(runs) == 7
    for run in runs:
        ours = run_checkpoints(work / run.relative_to(reference))
        assert ours.keys() == run_checkpoints(run).keys()
        for epoch, ckpt in ours.items():
            assert checkpoint_problem(ckpt) is None
            a, b = load_file(ckpt / "model.safetensors"), load_file(run_checkpoints(run)[epoch] / "model.safetensors")
            assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
