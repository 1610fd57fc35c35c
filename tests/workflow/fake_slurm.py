"""A one-machine stand-in for SLURM's command-line tools, enough for snakemake-executor-plugin-slurm.

Linked under the names sbatch, srun, sacct, squeue, scancel, sinfo, scontrol, sacctmgr and sshare into a directory
put first on PATH. `sbatch` records its arguments and runs the job script in the background with the SLURM_*
variables a real allocation sets; `sacct` / `squeue` report the jobs' states; `srun` runs its command in place.
State lives in $FAKE_SLURM_DIR: jobs/<id>.json, written atomically (the plugin polls while jobs run).
Why: no cluster is reachable here, yet the SLURM profile and the per-rule resources it submits must be tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_DIR", "/tmp/fake-slurm"))
ACCOUNT, PARTITION = "your-account", "your-partition"  # what workflows/profiles/slurm/config.yaml names
# sbatch / srun options that take their value as the next argument (the plugin also writes some as --opt=value)
SEPARATE_VALUE = {"--job-name", "--output", "--comment", "-A", "--account", "-p", "--partition", "-t", "--time",
                  "--mem", "--mem-per-cpu", "-D", "--chdir", "--clusters", "-C", "--constraint", "--qos", "-n",
                  "--ntasks", "-N", "--nodes", "-c", "--cpus-per-task", "--gres", "--gpus", "-G"}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """(options, the command after them): `--a=b`, `--a b` and bare flags until the first non-option."""
    opts, i = {}, 0
    while i < len(args) and args[i].startswith("-"):
        key, eq, value = args[i].partition("=")
        if not eq and key in SEPARATE_VALUE and i + 1 < len(args):
            value, i = args[i + 1], i + 1
        opts[key] = value
        i += 1
    return opts, args[i:]


def _claim_id(jobs: Path) -> str:
    """The next free job id, claimed atomically: the plugin submits several jobs at once, and two sbatch calls
    that both counted the same files would share an id (one job's state would then stand for the other's)."""
    n = 1000 + len(list(jobs.glob("*.id")))
    while True:
        try:
            os.close(os.open(jobs / f"{n}.id", os.O_CREAT | os.O_EXCL))
            return str(n)
        except FileExistsError:
            n += 1


def sbatch(args: list[str]) -> int:
    opts, rest = _options(args)
    script = opts.pop("--wrap", None)
    if script is None:
        script = sys.stdin.read() if rest == ["/dev/stdin"] else Path(rest[0]).read_text()
    jobs = STATE / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    job_id = _claim_id(jobs)
    _write(jobs / f"{job_id}.json", {"id": job_id, "name": opts.get("--job-name"), "state": "PENDING",
                                     "options": opts, "script": script})
    subprocess.Popen([sys.executable, __file__, "_run", job_id], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(job_id)
    return 0


def _run(job_id: str) -> int:
    path = STATE / "jobs" / f"{job_id}.json"
    job = json.loads(path.read_text())
    opts = job["options"]
    cpus = opts.get("--cpus-per-task", opts.get("-c", "1"))
    env = {**os.environ, "SLURM_JOB_ID": job_id, "SLURM_JOBID": job_id, "SLURM_CPUS_PER_TASK": cpus,
           "SLURM_CPUS_ON_NODE": cpus, "SLURM_JOB_NAME": job["name"] or "", "SLURM_NTASKS": "1"}
    out = opts.get("--output", f"slurm-{job_id}.out").replace("%j", job_id)
    _write(path, {**job, "state": "RUNNING"})
    with open(out, "a") as log:
        code = subprocess.call(["sh", "-c", job["script"]], cwd=opts.get("-D") or opts.get("--chdir"), env=env,
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    _write(path, {**job, "state": "COMPLETED" if code == 0 else "FAILED", "exit_code": code})
    return 0


def _states(args: list[str]) -> int:
    """sacct --name RUN ... / squeue --name RUN ...: one `id|STATE` line per job of that run."""
    name = args[args.index("--name") + 1] if "--name" in args else None
    for f in sorted((STATE / "jobs").glob("*.json")):
        job = json.loads(f.read_text())
        if name is None or job["name"] == name:
            print(f"{job['id']}|{job['state']}")
    return 0


def srun(args: list[str]) -> int:
    _, command = _options(args)
    return subprocess.call(command)


def scontrol(args: list[str]) -> int:
    if args[:2] == ["show", "config"]:
        print("MinJobAge               = 300 sec")
        return 0
    print(f"PartitionName={PARTITION}\n   MaxTime=UNLIMITED MaxNodes=UNLIMITED TotalCPUs=2 TotalNodes=1")
    return 0


COMMANDS = {
    "sbatch": sbatch, "_run": lambda a: _run(a[0]), "sacct": _states, "squeue": _states, "srun": srun,
    "scancel": lambda a: 0, "scontrol": scontrol,
    "sinfo": lambda a: print(f"PARTITION\n{PARTITION}*") or 0,
    "sacctmgr": lambda a: print(ACCOUNT) or 0, "sshare": lambda a: print(ACCOUNT) or 0,
}


def install(bin_dir: Path) -> Path:
    """Make `bin_dir` hold one executable per SLURM command, each running this file under that name."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        if name.startswith("_"):
            continue
        exe = bin_dir / name
        exe.write_text(f"#!/bin/sh\nexec {sys.executable} {__file__} {name} \"$@\"\n")
        exe.chmod(0o755)
    return bin_dir


if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
