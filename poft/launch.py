"""Running a poft verb on several processes (ranks, one per GPU), and what each rank needs of the others.

    poft train --processes 8 --data data.jsonl --model DIR --out run/      # poft starts the 8 ranks itself
    accelerate launch --multi_gpu --num_processes 8 --main_process_port 0 -m poft.cli train --processes 8 ...

Launchers (the DAG config's `training.launcher` / `dpo.launcher`, with `processes: N`) name what starts the ranks:
    poft        `poft VERB ... --processes N`: poft re-runs itself under accelerate (`relaunch`)
    accelerate  `accelerate launch ... -m poft.cli VERB ... --processes N`: the ranks are started on the command line
Both start the same ranks. `--multi_gpu` is passed on CPU-only machines too: it is what makes accelerate start N
processes (torchrun); with `--cpu` it would start one. Each rank then picks its device at run time: its GPU, or
the CPU with ranks talking through gloo (`start_ranks`). One machine per job: the port is a free one.

Pure Python at import (no torch): poft.grid plans the DAG with it.
"""

from __future__ import annotations

import os
import sys


def accelerate_flags(processes: int) -> list[str]:
    if processes == 1:  # accelerate's plain launcher: `--multi_gpu` needs two processes or more
        return ["--num_processes", "1"]
    return ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", "0"]


LAUNCHERS = {
    "poft": lambda processes: ["poft"],
    "accelerate": lambda processes: ["accelerate", "launch", *accelerate_flags(processes), "-m", "poft.cli"],
}


def get_launcher(name: str):
    """The launcher registered as `name`: processes -> the words before `VERB ...`."""
    if name not in LAUNCHERS:
        raise ValueError(f"unknown launcher {name!r}; valid: {', '.join(sorted(LAUNCHERS))}")
    return LAUNCHERS[name]


def launch_prefix(launcher: str, processes: int) -> list[str]:
    """The words before `VERB ...` that run it through `launcher` on `processes` ranks."""
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise ValueError(f"processes: expected an integer >= 1, got {processes!r}")
    return get_launcher(launcher)(processes)


def launch_command(launcher: str, processes: int, verb_args: str) -> str:
    """A shell command: `verb_args` (a verb and its flags, already shell-quoted) on `processes` ranks. One process
    through poft is plain `poft VERB ...`; more carry `--processes N`, which each rank checks (`check_ranks`)."""
    words = [*launch_prefix(launcher, processes), verb_args]
    return " ".join(words + (["--processes", str(processes)] if processes > 1 else []))


def threads_per_process(threads: int, processes: int) -> int:
    """A job's CPU threads shared among its ranks (each rank's OMP_NUM_THREADS), at least one."""
    return max(1, threads // processes)


# ---------------------------------------------------------------------------------------------------------
# `--processes N` on the command line
# ---------------------------------------------------------------------------------------------------------


def launched_ranks() -> int | None:
    """How many ranks the launcher that started this process started (torchrun's WORLD_SIZE); None: none did."""
    size = os.environ.get("WORLD_SIZE")
    return int(size) if size else None


def needs_relaunch(processes: int | None) -> bool:
    """`--processes N` (N > 1) asked of a process no launcher started: it must start the N ranks."""
    return processes is not None and processes > 1 and launched_ranks() is None


def check_ranks(processes: int | None) -> None:
    """A rank started by a launcher: its rank count must be the one `--processes` asked for (None: any)."""
    started = launched_ranks() or 1
    if processes is not None and started != processes:
        raise ValueError(f"--processes {processes}, but the launcher started {started} rank(s) (WORLD_SIZE); "
                         "drop --processes, or launch that many")


def relaunch(argv: list[str], processes: int):
    """Replace this process by accelerate starting `processes` ranks of `poft <argv>` (argv keeps --processes N:
    each rank checks it). exec, not a child: a scheduler's signal (SLURM, Snakemake) reaches the launcher, which
    stops its ranks."""
    command = [sys.executable, "-m", "accelerate.commands.launch", *accelerate_flags(processes), "-m", "poft.cli",
               *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


# ---------------------------------------------------------------------------------------------------------
# Inside a rank
# ---------------------------------------------------------------------------------------------------------


def start_ranks():
    """Join the launcher's process group, if started by one, and return this rank's torch device: its GPU, or the
    CPU (gloo) where there is none. Safe to call again; transformers' Trainer joins the same group."""
    import torch
    from accelerate import PartialState

    # cpu=True on a machine without CUDA: accelerate then sets up gloo; without it, it would run the ranks as
    # independent processes (no process group), each training alone.
    return PartialState(cpu=not torch.cuda.is_available()).device


def rank_and_world() -> tuple[int, int]:
    """(this rank, number of ranks) of the process group; (0, 1) outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """The rank that writes shared files (checkpoint extras, summaries, merged outputs)."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Every rank waits here for the others (a no-op in one process)."""
    import torch.distributed as dist

    if rank_and_world()[1] > 1:
        dist.barrier()


def gather_objects(obj) -> list:
    """Every rank's `obj` (picklable), in rank order, on every rank: a collective, every rank must call it."""
    import torch.distributed as dist

    world = rank_and_world()[1]
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out
