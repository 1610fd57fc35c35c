"""A run directory and what the DAG needs from it: its checkpoint per epoch, a resume that can be trusted, and
the report records of its evaluations. Imports nothing heavy: evaluation jobs resolve checkpoints with it.

    run_checkpoints("work/micro/runs/<run>")        -> {1: Path(.../checkpoint-19), 2: ..., 3: ...}
    prepare_resume(out, record, "poft_train_config.json")   # before `poft train --safe-resume` resumes
    checkpoint_problem(".../checkpoint-19")                 # None, or why its weights cannot be trusted
    records_from_index(read_json(".../evaluation.json"))    # -> poft.report records, one per metrics file
    read_items(record["metrics_file"])                      # its per-item scores (poft.evaluation.items)
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from .io import CorruptFileError, file_sha256, read_json

log = logging.getLogger(__name__)

TRAIN_MARKER = "poft_train_config.json"  # poft.training.EpochCheckpoints writes it last in each checkpoint
TRAINER_STATE = "trainer_state.json"  # transformers writes it last in a checkpoint (poft dpo's, through TRL)
WEIGHTS_SHA256 = "weights_sha256"  # in TRAIN_MARKER: {file name: sha256} of the checkpoint's *.safetensors
DPO_WEIGHTS = "poft_weights_sha256.json"  # the same for a `poft dpo` checkpoint (TRL writes the rest)


class CorruptCheckpointError(CorruptFileError):
    """A checkpoint whose weights are not the ones its save recorded (a bad disk, a partial copy)."""


def weights_checksums(ckpt: str | Path) -> dict[str, str]:
    """{file name: sha256} of a checkpoint's weight files, recorded in its marker when it is saved."""
    return {f.name: file_sha256(f) for f in sorted(Path(ckpt).glob("*.safetensors"))}


def checkpoint_problem(ckpt: str | Path) -> str | None:
    """Why a complete `poft train` or `poft dpo` checkpoint cannot be trusted (its record unreadable, a weight file
    missing or not matching the sha256 recorded when it was written), or None. Checkpoints from before checksums
    (nothing recorded): None."""
    ckpt = Path(ckpt)
    record = ckpt / TRAIN_MARKER if (ckpt / TRAIN_MARKER).is_file() else ckpt / DPO_WEIGHTS
    if not record.is_file():
        return None
    try:
        recorded = read_json(record)
        recorded = recorded.get(WEIGHTS_SHA256, {}) if record.name == TRAIN_MARKER else recorded
        recorded = {str(name): str(digest) for name, digest in recorded.items()}
    except (OSError, ValueError, AttributeError) as e:
        return f"{record}: unreadable ({e})"
    for name, digest in sorted(recorded.items()):
        path = ckpt / name
        if not path.is_file():
            return f"{path}: missing (its checksum was recorded when the checkpoint was saved)"
        if file_sha256(path) != digest:
            return f"{path}: checksum mismatch, the weights changed after the checkpoint was saved"
    return None


def epoch_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """{epoch: checkpoint dir} for every completed epoch of a `poft train` run (the epoch is in its marker)."""
    found = {}
    for ckpt in Path(run_dir).glob("checkpoint-*"):
        if (ckpt / TRAIN_MARKER).is_file():
            found[read_json(ckpt / TRAIN_MARKER)["epoch"]] = ckpt
    return dict(sorted(found.items()))


def run_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """{epoch: checkpoint dir} of a run's complete checkpoints: a `poft train` run's, else a `poft dpo` run's."""
    found = epoch_checkpoints(run_dir)
    if not found:
        ckpts = Path(run_dir).glob("checkpoint-*")
        found = {round(read_json(c / TRAINER_STATE)["epoch"]): c for c in ckpts if (c / TRAINER_STATE).is_file()}
    return dict(sorted(found.items()))


def checkpoint_of(run_dir: str | Path, epoch: int | str) -> Path:
    """The checkpoint of `epoch` (an integer, or "last") in a run dir; errors list the epochs there are."""
    found = run_checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"{run_dir}: no epoch checkpoints (is it a `poft train` or `poft dpo` run dir?)")
    key = max(found) if epoch == "last" else int(epoch)
    if key not in found:
        raise KeyError(f"{run_dir}: no checkpoint for epoch {epoch}; epochs: {', '.join(map(str, found))}")
    return found[key]


def fingerprint(path: str | Path | None, big: int = 64 * 2**20) -> str | None:
    """sha256 over a file or a directory's files (relative name, size, and the content of files under `big`
    bytes, else their mtime); a path that does not exist (a hub id) or None is returned as it is."""
    if path is None or not Path(path).exists():
        return None if path is None else str(path)
    root = Path(path)
    files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name if f == root else f.relative_to(root)}:{size}:".encode())
        h.update(f.read_bytes() if size < big else str(f.stat().st_mtime_ns).encode())
    return h.hexdigest()


def prepare_resume(out: str | Path, record: dict, complete_marker: str,
                   record_file: str = "resolved_config.json") -> list[Path]:
    """Make `out` safe to resume from; returns the checkpoints it deleted.

    A checkpoint without `complete_marker` (the file its save writes last) was cut off by a kill: deleted.
    A checkpoint whose weights fail the checksums recorded when it was saved is corrupt: deleted too (and,
    when it is the newest, every other one: only the newest holds the optimizer states to resume with).
    If `record` (options, inputs and their fingerprints) differs from the one saved in `out/record_file`, the
    run was made with other options or other input contents, and resuming would silently finish THAT run:
    every checkpoint and completion file is deleted, and training starts over.
    """
    out = Path(out)
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda c: _step(c))
    saved = out / record_file
    stale = saved.is_file() and read_json(saved) != record
    doomed = ckpts if stale else [c for c in ckpts if not (c / complete_marker).is_file()]
    if doomed:
        log.warning("%s: removing %d %s checkpoint(s): %s", out, len(doomed), "stale" if stale else "incomplete",
                    ", ".join(c.name for c in doomed))
    if not stale:
        complete = [c for c in ckpts if c not in doomed]
        corrupt = {c: why for c in complete if (why := checkpoint_problem(c))}
        for ckpt, why in corrupt.items():
            log.warning("%s: removing corrupt checkpoint: %s", out, why)
        # Optimizer states live in the newest checkpoint only: with it corrupt, no other resumes exactly.
        if complete and complete[-1] in corrupt:
            corrupt.update({c: "" for c in complete})
            log.warning("%s: the newest checkpoint was corrupt; training starts over", out)
        doomed += [c for c in complete if c in corrupt]
    for ckpt in doomed:
        shutil.rmtree(ckpt)
    if stale:
        for name in ("train_summary.json", "dpo_config.json", "dpo_metrics.json"):
            (out / name).unlink(missing_ok=True)
    return doomed


def _step(ckpt: Path) -> int:
    tail = ckpt.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def records_from_index(index: dict, origin: str = "evaluation index") -> list[dict]:
    """poft.report records ({base, dataset, method, variant, seed, epoch, metrics_file}) from a
    `poft evaluate checkpoint --record ...` index: one per metrics file of each evaluated checkpoint. Each metrics
    file names its per-item file, which lies beside it: `poft.evaluation.items.read_items(metrics_file)`."""
    out = []
    for entry in index.get("evaluations", []):
        if "record" not in entry:
            raise ValueError(f"{origin}: an evaluation of {entry.get('model')!r} has no 'record' (the run "
                             "identity): evaluate with --record KEY=VALUE")
        out += [{**entry["record"], "metrics_file": m} for m in entry["metrics"]]
    return out
