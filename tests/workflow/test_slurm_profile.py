"""The SLURM profile (workflows/profiles/slurm) through snakemake-executor-plugin-slurm, against a stand-in for
SLURM's tools (fake_slurm.py): every non-local job is submitted with sbatch, carries the account, partition,
memory, wall time, CPUs and GPUs its rule family asks for, runs, and is seen to finish by the status polls. The
training job asks for 2 GPUs and trains on 2 ranks (here CPU processes: the stand-in has no GPU). The world comes
from the smoke run (its build is not what is tested): the jobs submitted are the scoring and training ones.

    python -m pytest -q tests/workflow/test_slurm_profile.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from . import fake_slurm
from .conftest import ROOT, SMOKE, env

pytestmark = pytest.mark.slow  # a whole DAG run: minutes

RUN = "runs/micro-llama3/openhermes/full/poft-seed0/train_summary.json"  # PoFT needs every stage before it


def test_slurm_profile_submits_every_job_with_its_family_resources(smoke, tmp_path):
    work, state = tmp_path / "work", tmp_path / "slurm"
    shutil.copytree(smoke[0] / "world", work / "world", copy_function=shutil.copy2)
    gpu_training = tmp_path / "gpu-training.yaml"  # the paper config's kind of request, on the smoke grid
    gpu_training.write_text("training: {processes: 2}\nevaluation: {with_training: false}\n"
                            "resources: {train: {gpu: 2, threads: 2, slurm_partition: gpu-part, mem_mb: 6000, "
                            "runtime: 90}}\n")
    path = f"{fake_slurm.install(tmp_path / 'bin')}{os.pathsep}{env()['PATH']}"
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "workflows/profiles/slurm", "--configfile", str(SMOKE),
         str(gpu_training), "--config", f"work_dir={work}", f"results_dir={work / 'results'}",
         "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
         str(work / RUN)],  # (status checks every second: the fake jobs end in seconds; a cluster's default is 10)
        cwd=ROOT, env={**env(), "PATH": path, "FAKE_SLURM_DIR": str(state)}, capture_output=True, text=True, check=False,
        timeout=600)
    assert r.returncode == 0, r.stderr[-5000:]
    assert (work / RUN).is_file()
    # each job submitted once, under an id of its own (no job failed and was submitted again)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", r.stdout + r.stderr)
    assert len(submitted) == len(set(submitted)) == 3, submitted

    jobs = [json.loads(p.read_text()) for p in sorted((state / "jobs").glob("*.json"))]
    rules = sorted(j["options"]["--comment"].split("_wildcards_")[0].removeprefix("rule_") for j in jobs)
    # prepare_dataset and merge_scores are the Snakefile's localrules: they run on the submit host, not via sbatch
    assert rules == ["score_dataset", "score_dataset", "train_model"]
    assert all(j["state"] == "COMPLETED" for j in jobs), [(j["id"], j["state"]) for j in jobs]
    assert {j["options"]["-A"] for j in jobs} == {"your-account"}  # the profile's default-resources

    train = next(j for j in jobs if j["options"]["--comment"].startswith("rule_train_model"))
    opts = train["options"]
    assert opts["-p"] == "gpu-part" and opts["--mem"] == "6000" and opts["-t"] == "90"
    assert opts.get("--gpus") == "2" or opts.get("--gres") == "gpu:2", opts
    assert opts["--cpus-per-task"] == "2" and "--ntasks-per-gpu" not in opts  # one task: poft starts the ranks
    run = work / RUN.removesuffix("/train_summary.json")
    assert json.loads((run / "resolved_config.json").read_text())["processes"] == 2
    others = [j["options"] for j in jobs if j is not train]
    assert {o["-p"] for o in others} == {"your-partition"} and {o["--mem"] for o in others} == {"2000"}
    assert not any("--gpus" in o or "--gres" in o for o in others)
