"""Read raw rows from local files, `save_to_disk` directories, or the Hugging Face Hub.

Every reader returns plain Python dicts (no numpy, no Arrow objects) so the format converters can treat
all sources the same, together with an origin string that every later error message starts with.

A damaged file is read as far as it can be: a JSON Lines file line by line, so an unparsable line (cut off
mid-object by a bad merge, a truncated last line of an interrupted download, a stray non-object) is one
located `Problem` and every other line still a row; a JSON list cut off mid-way keeps the complete rows
before the break. `read_source` returns rows and problems together; the loader decides (strict: fail with
all of them, lenient: drop and count them). Positions are the file's own: line and column of the file,
never of the fragment the decoder saw.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from poft.data.errors import DataError, DataErrors, Problem, place

HUB_PREFIX = "hf:"
_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
# Reasons of entries that could not be parsed at all (reports list their lines).
UNPARSABLE = ("invalid_json", "invalid_utf8", "cut_off_line", "truncated_last_line", "truncated_file")


@dataclass
class SourceRows:
    """The rows of one source, each with its place, and the problems (already located) of what was not a row.

    `index[i]` is row i's position among the source's entries (rows and unreadable entries, in file order;
    blank lines are not entries) and `lines[i]` its 1-based line in a line-based file (else None). A problem's
    `row` is its entry position too, so `in_order` can interleave both as they appear in the file.
    """

    origin: str
    rows: list[dict] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    lines: list[int] | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def n_entries(self) -> int:
        return len(self.rows) + len(self.problems)

    def add_row(self, row: Any, line: int | None = None, escaped_surrogates: bool = False) -> None:
        """A parsed entry: a row if it is a JSON object, else a `not_an_object` problem in its place.

        escaped_surrogates: the JSON text held a `\\udXXX` escape, which may decode to a lone surrogate: not
        Unicode text, and a row no later stage could hash or write, so it is a problem here."""
        entry = self.n_entries
        if not isinstance(row, dict):
            self.add_problem(Problem("not_an_object", "", f"expected a JSON object, got {type(row).__name__}"), line)
            return
        where = _lone_surrogate(row) if escaped_surrogates else None
        if where is not None:
            self.add_problem(Problem("invalid_unicode", where, "a lone surrogate (\\ud800-\\udfff escape): not "
                                                               "valid Unicode text"), line)
            return
        self.rows.append(row)
        self.index.append(entry)
        if self.lines is not None:
            self.lines.append(line)

    def add_problem(self, problem: Problem, line: int | None = None) -> None:
        self.problems.append(problem.at(self.origin, row=self.n_entries, line=line)
                             if problem.origin is None else problem)

    def line_of(self, i: int) -> int | None:
        return self.lines[i] if self.lines is not None else None

    def in_order(self) -> Iterator[tuple[dict, int, int | None] | Problem]:
        """Rows (as `(row, entry index, line)`) and problems, interleaved in file order."""
        k = 0
        for i, row in enumerate(self.rows):
            while k < len(self.problems) and self.problems[k].row < self.index[i]:
                yield self.problems[k]
                k += 1
            yield row, self.index[i], self.line_of(i)
        yield from self.problems[k:]

    def strict(self) -> list[dict]:
        """The rows, or a `DataError` listing every entry that could not be read."""
        if self.problems:
            errors = DataErrors(self.origin)
            for p in self.problems:
                errors.add(p)
            errors.raise_if_any(self.n_entries, "entries")
        return self.rows


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) in a parsed JSON value that holds a lone surrogate, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "(row)"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and _lone_surrogate(key) is not None:
            return sub
        if (found := _lone_surrogate(item, sub)) is not None:
            return found
    return None


def _cut_off(text: str, e: json.JSONDecodeError) -> bool:
    """Whether the text ends before its JSON value does (the decoder ran out of text), as a cut line does."""
    rest = text[e.pos:].rstrip()
    return (not rest or e.msg.startswith("Unterminated string")
            or any(lit.startswith(rest) for lit in _LITERALS) or rest == "-")


def _what(e: json.JSONDecodeError) -> str:
    """The decoder's complaint without its position (the message gives the file's): "Unterminated string"."""
    return e.msg.removesuffix(" starting at")


def _decode_problem(text: str, e: ValueError | RecursionError, line: int, unterminated: bool) -> Problem:
    """A line that is not JSON: cut off mid-value (the last line of a truncated file, or a line cut by a bad
    merge) or otherwise invalid; the column is the decoder's, on this line of the file."""
    if isinstance(e, RecursionError):
        return Problem("invalid_json", "", "invalid JSON (nested too deeply to read)")
    if not isinstance(e, json.JSONDecodeError):  # e.g. an integer beyond Python's digit limit
        return Problem("invalid_json", "", f"invalid JSON ({e})")
    column = e.colno if e.lineno == 1 else None  # a line holds no newline, so the decoder's line is 1
    if _cut_off(text, e):
        if unterminated:
            problem = Problem("truncated_last_line", "", f"truncated last line: no newline at the end of the file and "
                                                         f"the JSON stops mid-value ({_what(e)})")
        else:
            problem = Problem("cut_off_line", "", f"line cut off mid-value, the next line starts a new one ({_what(e)})")
    else:
        problem = Problem("invalid_json", "", f"invalid JSON ({_what(e)})")
    return Problem(problem.reason, "", problem.detail, column=column)


def _read_jsonl(path: Path, origin: str) -> SourceRows:
    """One object per line; blank lines are skipped; a line that is not a JSON object is a problem at its
    1-based line (and column), and the lines around it are still read."""
    out = SourceRows(origin, lines=[])
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            terminated = raw.endswith(b"\n")
            raw = raw.rstrip(b"\n").removesuffix(b"\r")
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                column = len(raw[: e.start].decode("utf-8", "replace")) + 1
                out.add_problem(Problem("invalid_utf8", "", f"not valid UTF-8 ({e.reason})", column=column), lineno)
                continue
            if not text.strip(" \t\r"):  # blank in JSON's sense: other white space (NBSP, form feed) is reported
                continue
            try:
                row = json.loads(text)
            except (ValueError, RecursionError) as e:
                out.add_problem(_decode_problem(text, e, lineno, not terminated), lineno)
                continue
            out.add_row(row, lineno, bool(_SURROGATE_ESCAPE.search(text)))
    return out


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _salvage_list(text: str) -> list | None:
    """The complete elements of a top-level list (or of the list in a one-key `{"key": [...]}` wrapper) that
    breaks off before its closing `]` (or a wrapper cut off just after it); None when the text breaks anywhere
    else (then nothing is trusted)."""
    dec = json.JSONDecoder()
    pos = _WS.match(text).end()
    wrapped = text.startswith("{", pos)
    if wrapped:
        pos = _WS.match(text, pos + 1).end()
        if not text.startswith('"', pos):
            return None
        try:
            _, pos = dec.raw_decode(text, pos)
        except ValueError:
            return None
        pos = _WS.match(text, pos).end()
        if not text.startswith(":", pos):
            return None
        pos = _WS.match(text, pos + 1).end()
    if not text.startswith("[", pos):
        return None
    pos = _WS.match(text, pos + 1).end()
    items = []
    if text.startswith("]", pos):
        return items if wrapped and not text[pos + 1:].strip(" \t\n\r") else None
    while True:
        try:
            item, end = dec.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return items
        items.append(item)
        pos = _WS.match(text, end).end()
        if text.startswith("]", pos):  # the list is whole: only a wrapper cut right after it is salvaged
            return items if wrapped and not text[pos + 1:].strip(" \t\n\r") else None
        if not text.startswith(",", pos):
            return items
        pos = _WS.match(text, pos + 1).end()


def _read_json(path: Path, origin: str) -> SourceRows:
    """A list of objects, or an object wrapping exactly one list (`{"data": [...]}`), as many dumps are.

    A list cut off before its `]` (a truncated download) keeps the complete rows before the break, and the
    break is one problem at the file's line and column; JSON broken anywhere else is an error for the file.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        text = raw[: e.start].decode("utf-8-sig", "replace")
        line, col = _line_col(text, len(text))
        raise DataError(f"{origin}: {place(None, line, col)}: not valid UTF-8 ({e.reason})") from None
    out = SourceRows(origin)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        items = _salvage_list(text) if isinstance(e, json.JSONDecodeError) else None
        where = f"{place(None, e.lineno, e.colno)}: " if isinstance(e, json.JSONDecodeError) else ""
        reason = _what(e) if isinstance(e, json.JSONDecodeError) else (str(e) or "nested too deeply to read")
        if items is None:
            raise DataError(f"{origin}: {where}invalid JSON ({reason})") from None
        escaped = bool(_SURROGATE_ESCAPE.search(text))
        for item in items:
            out.add_row(item, escaped_surrogates=escaped)
        cut = _cut_off(text, e)
        detail = (f"{'file cut off' if cut else 'invalid JSON'} inside the list of rows ({_what(e)}); "
                  f"{len(items)} complete entries before it are read, nothing after it can be")
        out.problems.append(Problem("truncated_file" if cut else "invalid_json", "", detail, column=e.colno)
                            .at(origin, row=out.n_entries, line=e.lineno))
        return out
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))
    if not isinstance(data, list):
        raise DataError(
            f"{origin}: expected a list of objects or an object with a single list value, "
            f"got {type(data).__name__}" + (f" with keys: {', '.join(map(str, data))}" if isinstance(data, dict) else "")
        )
    escaped = bool(_SURROGATE_ESCAPE.search(text))
    for item in data:
        out.add_row(item, escaped_surrogates=escaped)
    return out


def _read_parquet(path: Path, origin: str) -> SourceRows:
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
    return _from_list(table.drop_columns(index_cols).to_pylist(), origin)


FILE_READERS: dict[str, Callable[[Path, str], SourceRows]] = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".parquet": _read_parquet,
}


def _from_list(rows: list, origin: str) -> SourceRows:
    out = SourceRows(origin)
    for row in rows:
        out.add_row(row)
    return out


def _dataset_rows(ds: Any) -> list[dict]:
    return [dict(row) for row in ds.to_list()]


def _read_saved(path: Path, source: str, split: str) -> SourceRows:
    """A saved DatasetDict must contain `split`; a saved single Dataset already is one split and is used as is."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise DataError(f"{source}: not a dataset directory written by save_to_disk ({e})") from None
    if not isinstance(ds, datasets.DatasetDict):
        return _from_list(_dataset_rows(ds), source)
    if split not in ds:
        raise DataError(f"{source}: no split '{split}' (available splits: {', '.join(sorted(ds))})")
    return _from_list(_dataset_rows(ds[split]), f"{source}[{split}]")


def _read_hub(source: str, split: str) -> SourceRows:
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
    return _from_list(_dataset_rows(ds), origin)


def supported_sources() -> str:
    return ", ".join(FILE_READERS) + ", a save_to_disk directory, hf:<repo_id>[:<config>]"


def read_source(source: str, split: str = "train") -> SourceRows:
    """Every row of `source` with its place, and the problems of what could not be read as a row.

    `split` selects a split of a saved DatasetDict or a hub dataset; single files are one split already. A
    source that cannot be read at all (missing, unsupported, not JSON) raises `DataError`.
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
    try:
        return reader(path, source)
    except OSError as e:  # unreadable (permissions, a directory named *.jsonl, an I/O error)
        raise DataError(f"{source}: cannot read ({e.strerror or e})") from None


def read_rows(source: str, split: str = "train") -> tuple[list[dict], str]:
    """Return `(rows, origin)`; `origin` names the source in every later error message. Any entry that is not
    a row (invalid JSON, a cut-off line, a non-object) fails, all of them listed in one `DataError`."""
    read = read_source(source, split)
    return read.strict(), read.origin


def read_jsonl(path: str | Path) -> SourceRows:
    """A JSON Lines file whatever its suffix (conversations and pairs we wrote, or anyone edited); call
    `.strict()` on the result to fail on any damaged line, all of them listed."""
    origin = str(path)
    if not Path(path).is_file():
        raise DataError(f"{origin}: no such file or directory")
    try:
        return _read_jsonl(Path(path), origin)
    except OSError as e:
        raise DataError(f"{origin}: cannot read ({e.strerror or e})") from None
