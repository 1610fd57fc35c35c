"""Running Snakemake on this repository's DAG from tests: the same command a user types, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "workflows" / "configs").glob("*.yaml"))
SMOKE = ROOT / "workflows" / "configs" / "smoke.yaml"


def env() -> dict:
    """The test interpreter's bin dir first on PATH, so that rules find its `poft` (and `hf`)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table (dry-run or run) as {rule: count}."""
    lines = output[output.index("Job stats:"):].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def run_dag(work: Path, config: Path, timeout: int = 600) -> tuple[Path, float, str]:
    """The whole DAG of `config` on 2 cores in the work dir `work` (results in work/results): (work, seconds, the
    log); a failed run fails the test with the log's tail."""
    started = time.time()
    r = snakemake("--cores", "2", "--configfile", str(config), "--config", f"work_dir={work}",
                  f"results_dir={work / 'results'}", timeout=timeout)
    seconds = time.time() - started
    assert r.returncode == 0, r.stderr[-5000:]
    return work, seconds, r.stderr


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The smoke DAG, run once per session: test_smoke.py checks it; the kill and SLURM tests start from its world."""
    return run_dag(tmp_path_factory.mktemp("smoke") / "work", SMOKE)
