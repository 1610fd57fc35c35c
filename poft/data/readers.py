"""Read raw rows from local files, `save_to_disk` directories, or the Hugging Face Hub.

Every reader returns plain Python dicts (no numpy, no Arrow objects) so the format converters can treat
all sources the same, together with an origin string that every later error message starts with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from poft.data.errors import DataError

HUB_PREFIX = "hf:"


def _require_objects(rows: list[Any], origin: str, unit: str) -> list[dict]:
    """Rows must be JSON objects; a stray list or string would otherwise fail far away in a converter."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{origin}: {unit} {i}: expected a JSON object, got {type(row).__name__}")
    return rows


def _read_jsonl(path: Path, origin: str) -> list[dict]:
    """One object per line; blank lines are skipped, and a bad line is reported by its 1-based number."""
    rows: list[dict] = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{origin}: line {lineno}: invalid JSON ({e})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{origin}: line {lineno}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
    except UnicodeDecodeError as e:
        raise DataError(f"{origin}: not valid UTF-8 ({e})") from None
    return rows


def _read_json(path: Path, origin: str) -> list[dict]:
    """A list of objects, or an object wrapping exactly one list (`{"data": [...]}`), as many dumps are."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{origin}: invalid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{origin}: not valid UTF-8 ({e})") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))
    if not isinstance(data, list):
        raise DataError(
            f"{origin}: expected a list of objects or an object with a single list value, "
            f"got {type(data).__name__}" + (f" with keys: {', '.join(map(str, data))}" if isinstance(data, dict) else "")
        )
    return _require_objects(data, origin, "row")


def _read_parquet(path: Path, origin: str) -> list[dict]:
    """Read through pyarrow's `to_pylist`, which yields nested messages as lists of dicts, never numpy arrays.

    A pandas index written as a column (`__index_level_0__`) is dropped: it is an artefact of how the
    file was written, not a field of the data.
    """
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError) for a bad file
        raise DataError(f"{origin}: cannot read parquet ({e})") from None
    index_cols = [c for c in table.column_names if c.startswith("__index_level_")]
    return table.drop_columns(index_cols).to_pylist()


FILE_READERS: dict[str, Callable[[Path, str], list[dict]]] = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".parquet": _read_parquet,
}


def _dataset_rows(ds: Any) -> list[dict]:
    return [dict(row) for row in ds.to_list()]


def _read_saved(path: Path, source: str, split: str) -> tuple[list[dict], str]:
    """A saved DatasetDict must contain `split`; a saved single Dataset already is one split and is used as is."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise DataError(f"{source}: not a dataset directory written by save_to_disk ({e})") from None
    if not isinstance(ds, datasets.DatasetDict):
        return _dataset_rows(ds), source
    if split not in ds:
        raise DataError(f"{source}: no split '{split}' (available splits: {', '.join(sorted(ds))})")
    return _dataset_rows(ds[split]), f"{source}[{split}]"


def _read_hub(source: str, split: str) -> tuple[list[dict], str]:
    """`hf:<repo_id>` or `hf:<repo_id>:<config>`, loaded with `datasets.load_dataset` (needs network)."""
    import datasets

    repo_id, _, config = source[len(HUB_PREFIX):].partition(":")
    if not repo_id:
        raise DataError(f"{source}: a hub source needs a repo id, e.g. hf:HuggingFaceH4/ultrachat_200k")
    origin = f"{source}[{split}]"
    try:
        ds = datasets.load_dataset(repo_id, name=config or None, split=split)
    except Exception as e:  # network, auth, missing split/config: all surface as one data error
        raise DataError(f"{origin}: cannot load from the Hugging Face Hub ({type(e).__name__}: {e})") from e
    return _dataset_rows(ds), origin


def supported_sources() -> str:
    return ", ".join(FILE_READERS) + ", a save_to_disk directory, hf:<repo_id>[:<config>]"


def read_rows(source: str, split: str = "train") -> tuple[list[dict], str]:
    """Return `(rows, origin)`; `origin` names the source in every later error message.

    `split` selects a split of a saved DatasetDict or a hub dataset; single files are one split already.
    """
    source = str(source)
    if source.startswith(HUB_PREFIX):
        return _read_hub(source, split)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file or directory")
    if path.is_dir():
        return _read_saved(path, source, split)
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{source}: unsupported file type '{path.suffix}' (supported: {supported_sources()})")
    return reader(path, source), source
