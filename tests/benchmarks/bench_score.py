"""Scoring throughput and peak memory: poft's mean_logprobs against two full-logits scorers, on the same random
Llama-style model and long-tailed chat mix (bench_common), each scorer in its own process.

    python tests/benchmarks/bench_score.py --json results/benchmarks/score-cpu.json            # 2 CPU cores
    python tests/benchmarks/bench_score.py --preset 0.5b --json OUT.json --repeats 2           # one GPU, bf16
    python tests/benchmarks/bench_score.py --model PATH --json OUT.json     # a real model (HF dir or GGUF file)

Scorers (each returns every sample's mean log p over its response tokens):

    poft_padded                poft.scoring.mean_logprobs, layout "padded": length-sorted batches of at most
                               max_batch_size samples / max_batch_tokens padded tokens, right-padded to the
                               batch's longest sample; the lm head projects only response positions, in chunks
    poft_padding_free          the same batches in the layout poft.batches.batch_layout("auto") picks: rows as
                               wide as the longest sample on sdpa, one row per batch on FlashAttention-2
    pad_to_max                 the released PoFT code's way: every sample padded to max_length, batches of
                               max_batch_tokens // max_length samples in input order, the model's full
                               [B, max_length, V] logits in float32, log_softmax, gather
    full_forward_padding_free  poft_padding_free's batches and layout, but the model's full [N, V] logits in
                               float32, log_softmax, gather: what a padding-free scorer without a chunked lm
                               head does (one row per batch via position_ids on FlashAttention-2; on sdpa one
                               row would make attention quadratic in the batch's tokens, so it takes the rows
                               poft takes, and the two differ only in the lm head)

All scorers must agree on the scores (max abs difference printed and stored). Tokens/s counts real tokens
(prompt and response) per second of the whole scoring pass; each process first scores its two shortest samples as a warm-up.
Peak memory: torch.cuda.max_memory_allocated on GPU, the process's peak RSS on CPU. Not a test: figures vary
by machine and nothing asserts on them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
    PAD_ID, PRESETS, add_common_arguments, attention_for, finish, header, make_examples, make_model, peak_mib,
    run_all, timed_repeats,
)

from poft.batches import batch_layout, collate, model_inputs  # noqa: E402
from poft.chat import IGNORE_INDEX, TokenizedChat  # noqa: E402
from poft.scoring import length_sorted_batches, mean_logprobs  # noqa: E402

SCRIPT = Path(__file__).resolve()
SCORERS = ("poft_padded", "poft_padding_free", "pad_to_max", "full_forward_padding_free")


def _full_logits_means(logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, n: int) -> list[float]:
    """Per-sample mean log p(label) from full logits [R, W, V]: log_softmax over the vocabulary, then gather."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep]
    sample = index[:, 1:][keep]
    sums = torch.zeros(n, dtype=torch.float64, device=logits.device).index_add(0, sample, picked.double())
    counts = torch.bincount(sample, minlength=n)
    return (sums / counts).tolist()


@torch.no_grad()
def pad_to_max_scores(model, samples: list[TokenizedChat], max_length: int, batch_size: int) -> list[float]:
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        ids = torch.full((len(chunk), max_length), PAD_ID, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE_INDEX)
        index = torch.full_like(ids, -1)
        for i, s in enumerate(chunk):
            ids[i, : len(s.input_ids)] = torch.tensor(s.input_ids)
            labels[i, : len(s.labels)] = torch.tensor(s.labels)
            index[i, : len(s.input_ids)] = i
        ids, labels, index = ids.to(device), labels.to(device), index.to(device)
        logits = model(input_ids=ids, attention_mask=(index >= 0).long(), use_cache=False).logits
        out.extend(_full_logits_means(logits, labels, index, len(chunk)))
        del logits
    return out


@torch.no_grad()
def full_forward_scores(model, samples: list[TokenizedChat], layout: str, max_batch_size: int,
                        max_batch_tokens: int) -> list[float]:
    device = next(model.parameters()).device
    out = [math.nan] * len(samples)
    for batch in length_sorted_batches([len(s.input_ids) for s in samples], max_batch_size, max_batch_tokens):
        tensors = {k: v.to(device) for k, v in collate([samples[i] for i in batch], PAD_ID, layout).items()}
        logits = model(**model_inputs(tensors)).logits
        for i, score in zip(batch, _full_logits_means(logits, tensors["labels"], tensors["sample_index"], len(batch))):
            out[i] = score
        del logits
    return out


def make_scorer(name: str, model, preset, samples, pad_to: int | None = None):
    """A no-argument function scoring `samples` with scorer `name`, and the batch layout it uses. pad_to: the
    width pad_to_max pads every sample to (default: the preset's max_length)."""
    kw = dict(max_batch_size=preset.max_batch_size, max_batch_tokens=preset.max_batch_tokens)
    free = batch_layout("auto", model)
    if name == "poft_padded":
        return lambda s=samples: [m for m, _ in mean_logprobs(model, s, PAD_ID, chunk_tokens=preset.chunk_tokens,
                                                              layout="padded", **kw)], "padded"
    if name == "poft_padding_free":
        return lambda s=samples: [m for m, _ in mean_logprobs(model, s, PAD_ID, chunk_tokens=preset.chunk_tokens,
                                                              layout=free, **kw)], free
    if name == "pad_to_max":
        width = pad_to or preset.max_length
        size = max(1, preset.max_batch_tokens // width)
        return lambda s=samples: pad_to_max_scores(model, s, width, size), f"padded_to_{width}"
    if name == "full_forward_padding_free":
        return lambda s=samples: full_forward_scores(model, s, free, **kw), free
    raise KeyError(name)


def load_real_model(path: str, device: str, dtype: torch.dtype, max_length: int, n: int):
    """A real model (HF directory, or a GGUF file that transformers dequantizes) and n chats of the long-tailed
    length mix as random token ids of its vocabulary (compute does not depend on the ids)."""
    from transformers import AutoModelForCausalLM

    from bench_common import Preset

    kwargs = {"dtype": dtype, "attn_implementation": attention_for(device)}
    if path.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(str(Path(path).parent), gguf_file=Path(path).name, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model = model.to(device).eval()
    vocab = model.get_input_embeddings().weight.shape[0]
    preset = Preset(model={"vocab_size": vocab}, dtype=str(dtype).removeprefix("torch."), train_samples=0,
                    batch_size=0, score_samples=n, max_length=max_length)
    return model, preset


def measure(config: dict) -> dict:
    """One scorer's figures (what its worker process reports)."""
    device = config["device"]
    if config.get("model_path"):
        model, preset = load_real_model(config["model_path"], device, getattr(torch, config["dtype"]),
                                        config["max_length"], config["samples"])
    else:
        preset = PRESETS[config["preset"]]
        model = make_model(preset, device, attention_for(device)).eval()
    examples = make_examples(preset, config["samples"], seed=1)
    samples = [TokenizedChat(e["input_ids"], e["labels"], False, sum(y != IGNORE_INDEX for y in e["labels"]))
               for e in examples]
    tokens = sum(len(s.input_ids) for s in samples)
    setup_mib = peak_mib("cpu")
    score, layout = make_scorer(config["name"], model, preset, samples, config.get("pad_to"))
    score(sorted(samples, key=lambda s: len(s.input_ids))[:2])  # warm-up: first-call costs outside the timing
    figures, scores = timed_repeats(score, device, config["repeats"], tokens, setup_mib)
    return {"scorer": config["name"], "batch_layout": layout, "tokens": tokens, "samples": len(samples),
            "labelled_tokens": sum(s.n_label_tokens for s in samples), **figures, "scores": scores}


def worker(config: dict) -> None:
    Path(config["result"]).write_text(json.dumps(measure(config)))


def compare(results: dict) -> dict:
    ok = {n: r for n, r in results.items() if "error" not in r}
    out = {}
    if len(ok) > 1:
        ref = next(iter(ok.values()))["scores"]
        out["max_abs_score_diff"] = max(abs(a - b) for r in ok.values() for a, b in zip(r["scores"], ref))
        out["max_abs_score_diff_by_scorer"] = {n: max(abs(a - b) for a, b in zip(r["scores"], ref)) for n, r in ok.items()}
    if "poft_padded" in ok or "poft_padding_free" in ok:
        best = max((n for n in ("poft_padded", "poft_padding_free") if n in ok), key=lambda n: ok[n]["tokens_per_s"])
        out["poft_best"] = best
        for other, key in (("pad_to_max", "poft_over_pad_to_max"),
                           ("full_forward_padding_free", "poft_over_full_forward_padding_free")):
            if other in ok:
                out[key] = round(ok[best]["tokens_per_s"] / ok[other]["tokens_per_s"], 3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "scorer")
    p.add_argument("--samples", type=int, default=None, help="chats to score (default: the preset's)")
    p.add_argument("--scorers", default=",".join(SCORERS), help="comma-separated subset of: " + ", ".join(SCORERS))
    p.add_argument("--model", default=None, help="score a real model (HF directory or .gguf file) instead")
    p.add_argument("--dtype", default=None, help="with --model: float32 | bfloat16 (default: bf16 on GPU)")
    p.add_argument("--max-length", type=int, default=None, help="with --model: max_length (default: the preset's)")
    p.add_argument("--pad-to", type=int, default=None,
                   help="width pad_to_max pads every sample to (default: max_length). The released recipe's "
                        "max_length is 4096 (workflows/configs/recipes/poft-paper.yaml), for chats cut at 2048 here")
    a = p.parse_args()
    if a.worker:
        return worker(json.loads(a.worker))
    preset = PRESETS[a.preset]
    samples = a.samples or preset.score_samples
    report = header("bench_score", a.preset, preset, a.device, a.repeats)
    config = {"preset": a.preset, "device": a.device, "repeats": a.repeats, "samples": samples, "pad_to": a.pad_to}
    if a.model:
        dtype = a.dtype or ("bfloat16" if a.device.startswith("cuda") else "float32")
        config.update(model_path=a.model, dtype=dtype, max_length=a.max_length or preset.max_length)
        report.update(model=a.model, preset=None, preset_settings=None, dtype=dtype, max_length=config["max_length"])
    report["settings"] = {"samples": samples, "max_batch_size": preset.max_batch_size,
                          "max_batch_tokens": preset.max_batch_tokens, "chunk_tokens": preset.chunk_tokens,
                          "max_length": config.get("max_length", preset.max_length),
                          "pad_to": a.pad_to or config.get("max_length", preset.max_length)}
    print(f"bench_score: {a.model or 'preset ' + a.preset}, {samples} samples, {a.repeats} repeats, device {a.device}, "
          f"attention {report['attention']}")
    results = run_all(SCRIPT, a.scorers.split(","), config, a.timeout, a.json, report, "scorers")
    finish(a.json, report, "scorers", results, compare(results))

if __name__ == "__main__":
    main()
