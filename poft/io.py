"""Atomic file output, checksummed caches and small readers shared by every stage.

Every file poft writes goes through `atomic_path`: the content is written to a temporary file in the same
directory and renamed into place, so a crash leaves either the old file or the new one, never a half
written one that a re-run would trust; directories (a converted model) go through `atomic_dir` alike. A full
disk or an unwritable place is one named `ResourceError` that says which path, not an errno from deep inside a
library.

Cached artefacts (score shards, per-item files) carry `"checksum": sha256 of their canonical JSON payload`:
a file damaged after it was written (a bad disk, a partial copy, a hand edit) fails `verify_checksum` and is
recomputed or refused, never used.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator


class ResourceError(OSError):
    """The machine, not the input, stops a write: the message names the path and what to do; `errno` is kept."""

    def __str__(self) -> str:
        return str(self.strerror)


class DiskFullError(ResourceError):
    """No space (or quota) left on the device that holds the path."""


class NotWritableError(ResourceError):
    """The path's directory cannot be written: no permission, or a read-only file system."""


_NOT_WRITABLE = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                 errno.EROFS: "read-only file system"}
_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
RESOURCE_ERRNOS = frozenset(_FULL) | frozenset(_NOT_WRITABLE)  # the machine's doing, not the code's


def resource_error(e: OSError, path: str | os.PathLike) -> OSError:
    """The named error for an OSError met while writing `path` (or `e` itself when it is something else)."""
    if isinstance(e, ResourceError):
        return e
    if e.errno in _FULL:
        return DiskFullError(e.errno, f"{path}: cannot write, {_FULL[e.errno]} (free space on its device, or write "
                                      "the output elsewhere)")
    if e.errno in _NOT_WRITABLE:
        where = e.filename or Path(path).parent
        return NotWritableError(e.errno, f"{path}: cannot write, {_NOT_WRITABLE[e.errno]} on {where} (choose a "
                                         "writable output directory)")
    return e


@contextlib.contextmanager
def _named_resource_errors(path: str | os.PathLike) -> Iterator[None]:
    """Disk full or unwritable, met in the block: `DiskFullError` / `NotWritableError` naming `path`."""
    try:
        yield
    except OSError as e:
        error = resource_error(e, path)
        if error is e:
            raise
        raise error from e


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    Disk full and unwritable directories, met anywhere (mkdir, the temporary file, the block's writes, the
    rename), raise `DiskFullError` / `NotWritableError` naming `path`; the temporary file is removed.
    """
    path = Path(path)
    with _named_resource_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(tmp)
    try:
        with _named_resource_errors(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


# A directory is built in minutes; a temporary one this old was left by a writer that was killed.
STALE_SECONDS = 24 * 3600


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty directory next to `path`; rename it onto `path` only if the block succeeds, so that
    `path` is absent or complete, never half written.

    If a complete `path` appeared meanwhile (another process did the same work first), it is kept and ours is
    dropped: callers write content-addressed directories, so either serves. Temporary directories of writers that
    were killed (hidden `.<name>.*.tmp` siblings older than STALE_SECONDS) are removed; younger ones may be
    another process's work in progress. Resource errors are named as in `atomic_path`.
    """
    path = Path(path)
    with _named_resource_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_dirs(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with _named_resource_errors(path):
            yield tmp
            try:
                os.rename(tmp, path)  # replaces an empty directory; a non-empty one is another writer's
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_dirs(path: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove `atomic_dir`'s temporary directories for `path` that are older than `max_age` seconds."""
    now, removed = time.time(), []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if tmp.is_dir() and now - tmp.stat().st_mtime > max_age:
                shutil.rmtree(tmp)
                removed.append(tmp)
    return removed


def cache_dir(*parts: str) -> Path:
    """poft's per-machine cache: env POFT_CACHE, default ~/.cache/poft (models fetched or converted once)."""
    root = os.environ.get("POFT_CACHE") or Path.home() / ".cache" / "poft"
    return Path(root).expanduser().joinpath(*parts)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """indent=None: one line, for long lists (per-item files) that no one reads by eye."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one JSON object per line; returns the number of rows written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def canonical_json(obj: Any) -> str:
    """A stable serialisation for hashing: sorted keys, no whitespace, unicode kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    # surrogatepass: JSON may carry a lone surrogate ("\ud800"), which strict UTF-8 cannot encode; valid text
    # hashes exactly as before.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Checksummed caches
# ---------------------------------------------------------------------------------------------------------

CHECKSUM = "checksum"


class CorruptFileError(ValueError):
    """A cached file whose content is not what was written: unreadable, truncated, or not matching its checksum."""


def payload_checksum(obj: dict) -> str:
    """`sha256:<hex>` of the canonical JSON of `obj` without its own checksum field."""
    return "sha256:" + sha256_text(canonical_json({k: v for k, v in obj.items() if k != CHECKSUM}))


def with_checksum(obj: dict) -> dict:
    return {**obj, CHECKSUM: payload_checksum(obj)}


def verify_checksum(obj: Any, where: str | os.PathLike) -> dict:
    """`obj` if it is an object whose `checksum` matches its payload, else `CorruptFileError` naming `where`."""
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if CHECKSUM not in obj:
        raise CorruptFileError(f"{where}: no checksum (written by an older poft, or edited)")
    if obj[CHECKSUM] != payload_checksum(obj):
        raise CorruptFileError(f"{where}: checksum mismatch, the content changed after it was written")
    return obj


def read_checked_json(path: str | os.PathLike) -> dict:
    """A checksummed JSON object; a file that is unreadable, truncated (not JSON) or fails its checksum raises
    `CorruptFileError` naming it."""
    try:
        obj = read_json(path)
    except (OSError, ValueError, RecursionError) as e:
        raise CorruptFileError(f"{path}: unreadable or truncated ({e})") from None
    return verify_checksum(obj, path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 16 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes. A file in the Hugging Face cache is a link to blobs/<sha256 of its bytes> (for
    weights, which are stored through LFS): the name is the hash, and a 15 GB model need not be read."""
    target = Path(path).resolve()
    if target.parent.name == "blobs" and len(target.name) == 64 and all(c in "0123456789abcdef" for c in target.name):
        return target.name
    return file_sha256(target)
