"""Multiple-choice log-likelihoods: lm-eval's HFLM against poft's `hf` backend (SharedPrefixHFLM, each context
computed once), on the same model and the same requests, each backend and item shape in its own process.

    python tests/benchmarks/bench_mc.py --json results/benchmarks/mc-cpu.json    # 2 CPU cores: arc, hellaswag, mmlu
    OMP_NUM_THREADS=1 python tests/benchmarks/bench_mc.py --preset micro --shapes micro --json OUT.json  # as the DAG
    python tests/benchmarks/bench_mc.py --model SOURCE --items 12  # a real model: HF dir, hf:<id> or a GGUF source
    python tests/benchmarks/bench_mc.py --preset 0.5b --json OUT.json                       # one GPU, bf16

Item shapes (random token ids: the compute does not depend on them; lengths drawn lognormal around a median, the
same draw for both backends):

    micro      554 items, context ~26 tokens, 4 choices of ~15: the micro suite's multiple choice (chat template
               included), what every micro checkpoint pays
    arc        ARC-like: context ~60 tokens, 4 short choices of ~8
    hellaswag  HellaSwag-like: context ~100 tokens, 4 endings of ~25
    mmlu       MMLU-like (5-shot): context ~500 tokens, 4 single-token choices, which lm-eval already shares

Each shape's item count makes a repeat take seconds on 2 CPU cores: the micro shape on the `micro` preset (the
micro world's model size), the others on the `cpu` preset (bench_common: 19.5M parameters, a 32k vocabulary).
Tokens/s counts the requests' tokens (context + continuation, as lm-eval's way computes them) per second of the
whole pass. Both backends must give the same sums (max abs difference printed and stored). Not a test: figures
vary by machine and nothing asserts on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
    PRESETS, add_common_arguments, attention_for, finish, header, make_model, make_tokenizer, peak_mib, run_all,
    timed_repeats,
)

SCRIPT = Path(__file__).resolve()
BACKENDS = ("hf-lm-eval", "hf")
# shape -> (items, median context tokens, choices, median choice tokens, spread of the choices within an item:
# micro's differ by a number or a word, "4 plus 6 is 10. The answer is 10.")
SHAPES = {"micro": (554, 26, 4, 15, 0.05), "arc": (48, 60, 4, 8, 0.3), "hellaswag": (32, 100, 4, 25, 0.3),
          "mmlu": (16, 500, 4, 1, 0.0)}


def make_requests(shape: str, vocab: int, items: int, seed: int = 0) -> list:
    """lm-eval's (strings, context ids, continuation ids) requests: `items` contexts, each with its choices."""
    _, context, choices, choice, spread = SHAPES[shape]
    rng = np.random.default_rng(seed)

    def length(median: float, sigma: float) -> int:
        return 1 if median == 1 else max(2, round(rng.lognormal(np.log(median), sigma)))

    out = []
    for _ in range(items):
        ctx, base = rng.integers(2, vocab, length(context, 0.3)).tolist(), length(choice, 0.3)
        out += [(("", ""), ctx, rng.integers(2, vocab, length(base, spread)).tolist()) for _ in range(choices)]
    return out


def make_lm(backend: str, model, tokenizer, batch_size: int):
    """The lm-eval model class poft's backend `backend` names, around an already loaded model."""
    from lm_eval.api.registry import get_model

    import poft.evaluation.shared_prefix  # noqa: F401  (registers "poft-hf")
    from poft.evaluation.benchmarks import BACKENDS

    return get_model(BACKENDS[backend][0])(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                                           max_length=4096)


def measure(config: dict) -> dict:
    """One backend on one item shape (what its worker process reports)."""
    device, (backend, shape) = config["device"], config["name"].split(":")
    if config.get("model_path"):
        from bench_score import load_real_model
        from transformers import AutoTokenizer

        from poft.scoring import model_path

        path = model_path(config["model_path"])  # a GGUF source: the HF directory it is dequantized into, once
        model, _ = load_real_model(path, device, getattr(torch, config["dtype"]), 4096, 0)
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        preset = PRESETS[config["preset"]]
        model = make_model(preset, device, attention_for(device)).eval()
        tokenizer = make_tokenizer(preset.model["vocab_size"])
    vocab = model.get_input_embeddings().weight.shape[0]
    requests = make_requests(shape, vocab, config.get("items") or SHAPES[shape][0])
    tokens = sum(len(c) + len(k) for _, c, k in requests)
    setup_mib = peak_mib("cpu")
    lm = make_lm(backend, model, tokenizer, config["batch_size"])
    run = lambda r=requests: [ll for ll, _ in lm._loglikelihood_tokens(r, disable_tqdm=True)]  # noqa: E731
    run(requests[:8])  # warm-up: first-call costs outside the timing
    figures, sums = timed_repeats(run, device, config["repeats"], tokens, setup_mib)
    return {"backend": backend, "shape": shape, "batch_layout": backend, "requests": len(requests), "tokens": tokens,
            **figures, "shares_contexts": bool(getattr(lm, "_shares_contexts", lambda: False)()), "sums": sums}


def worker(config: dict) -> None:
    Path(config["result"]).write_text(json.dumps(measure(config)))


def compare(results: dict) -> dict:
    """Per shape: the shared-context backend's speed over lm-eval's, and the largest difference in the sums."""
    out = {}
    for shape in sorted({n.split(":")[1] for n in results}):
        a, b = results.get(f"hf-lm-eval:{shape}", {}), results.get(f"hf:{shape}", {})
        if "sums" in a and "sums" in b:
            out[shape] = {"hf_over_hf_lm_eval": round(a["median_seconds"] / b["median_seconds"], 3),
                          "max_abs_sum_diff": max(abs(x - y) for x, y in zip(a["sums"], b["sums"]))}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "backend and shape")
    p.add_argument("--shapes", default="arc,hellaswag,mmlu", help="comma-separated subset of: " + ", ".join(SHAPES))
    p.add_argument("--items", type=int, default=None, help="items per shape (default: each shape's)")
    p.add_argument("--batch-size", type=int, default=64, help="requests per batch (lm-eval's batch_size)")
    p.add_argument("--model", default=None,
                   help="a real model instead of the preset: an HF directory, hf:<repo id> or a GGUF source "
                        "(a .gguf file, gguf:<path>, pypi:<wheel>/<file>.gguf)")
    p.add_argument("--dtype", default=None, help="with --model: float32 | bfloat16 (default: bf16 on GPU)")
    a = p.parse_args()
    if a.worker:
        return worker(json.loads(a.worker))
    preset = PRESETS[a.preset]
    report = header("bench_mc", a.preset, preset, a.device, a.repeats)
    config = {"preset": a.preset, "device": a.device, "repeats": a.repeats, "items": a.items,
              "batch_size": a.batch_size}
    if a.model:
        dtype = a.dtype or ("bfloat16" if a.device.startswith("cuda") else "float32")
        config.update(model_path=a.model, dtype=dtype)
        report.update(model=a.model, preset=None, preset_settings=None, dtype=dtype)
    report["settings"] = {"batch_size": a.batch_size, "items": a.items, "shapes": {s: SHAPES[s] for s in
                                                                                 a.shapes.split(",")}}
    print(f"bench_mc: {a.model or 'preset ' + a.preset}, {a.repeats} repeats, device {a.device}, "
          f"attention {report['attention']}")
    names = [f"{b}:{s}" for s in a.shapes.split(",") for b in BACKENDS]
    results = run_all(SCRIPT, names, config, a.timeout, a.json, report, "backends")
    finish(a.json, report, "backends", results, compare(results))


if __name__ == "__main__":
    main()
