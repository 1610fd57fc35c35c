"""What bench_train.py and bench_score.py share: model presets, a long-tailed chat mix, machine and version
records, and one subprocess per measured configuration.

Why a subprocess per configuration: on CPU the only cheap peak-memory figure is the process's peak RSS
(ru_maxrss), which never goes down, so two configurations measured in one process would share one peak.
A fresh process also starts each configuration with the same allocator and thread-pool state.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from poft.chat import IGNORE_INDEX  # noqa: E402

PAD_ID, EOS_ID = 0, 1  # the word-level benchmark tokenizer's specials; random token ids start after them


@dataclass
class Preset:
    model: dict  # LlamaConfig fields
    dtype: str  # weights and compute: float32 on CPU; bfloat16 on GPU (bf16 matmuls are slow and lossy on CPU)
    train_samples: int
    batch_size: int
    score_samples: int
    max_length: int = 2048
    # Total chat length ~ lognormal(median, sigma) clipped to [16, max_length]: UltraChat-like, most chats a few
    # hundred to a thousand tokens, a long tail to max_length (with 800 and 0.8: mean ~950, ~12% cut at 2048).
    median_length: float = 800.0
    sigma: float = 0.8
    response_share: float = 0.6  # mean share of a chat's tokens that are the (labelled) response
    chunk_tokens: int = 1024  # poft's lm-head chunk (TrainSpec / ScoreSpec default)
    max_batch_size: int = 16  # scoring batches (ScoreSpec defaults)
    max_batch_tokens: int = 16384


PRESETS = {
    # 19.5M parameters, most in the 32k embedding and lm head (as in small real models, the vocabulary
    # projection is most of the compute). 8 chats (9,151 tokens, one batch whose longest chat is 2,048 tokens):
    # on 2 CPU cores TRL's padded epoch of 64 chats took 408 s, so all configurations x 3 repeats of 64 would take
    # over an hour; --samples 64 gives a fuller mix where there is time.
    "cpu": Preset(model=dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                             num_key_value_heads=4, vocab_size=32000),
                  dtype="float32", train_samples=8, batch_size=8, score_samples=8),
    # ~0.57B Llama-style with a Llama-3-sized vocabulary; bf16 on one GPU.
    "0.5b": Preset(model=dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
                              num_key_value_heads=16, vocab_size=128256),
                   dtype="bfloat16", train_samples=512, batch_size=8, score_samples=512),
    # The micro world's models (poft.micro.models: ~0.7M parameters, a 512-token vocabulary): what each of the
    # micro DAG's evaluations runs (bench_mc's micro shape).
    "micro": Preset(model=dict(hidden_size=128, intermediate_size=320, num_hidden_layers=4, num_attention_heads=4,
                               num_key_value_heads=2, vocab_size=512),
                    dtype="float32", train_samples=300, batch_size=16, score_samples=300, max_length=160,
                    median_length=50.0),
    # A few seconds end to end: for the smoke test of the scripts, not for figures.
    "tiny": Preset(model=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=4, vocab_size=512),
                   dtype="float32", train_samples=12, batch_size=4, score_samples=12, max_length=128,
                   median_length=40.0, max_batch_size=4, max_batch_tokens=512, chunk_tokens=64),
}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def attention_for(device: str) -> str:
    """FlashAttention-2 where installed on a GPU (its varlen kernel is what padding-free batches are for),
    else PyTorch's sdpa."""
    if device.startswith("cuda"):
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


# ---------------------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------------------


def chat_lengths(preset: Preset, n: int, seed: int) -> list[tuple[int, int]]:
    """(prompt tokens, response tokens) of n chats: totals lognormal clipped to [16, max_length], the response
    a Beta(6, 4)-distributed share (mean 0.6) of each."""
    rng = np.random.default_rng(seed)
    totals = np.clip(rng.lognormal(np.log(preset.median_length), preset.sigma, n), 16, preset.max_length).astype(int)
    a = 10 * preset.response_share
    shares = rng.beta(a, 10 - a, n)
    out = []
    for total, share in zip(totals, shares):
        response = int(np.clip(round(total * share), 1, total - 1))
        out.append((int(total) - response, response))
    return out


def make_examples(preset: Preset, n: int, seed: int = 0, n_aligned: int = 3) -> list[dict]:
    """n single-turn chats as token ids: random prompt tokens (labels IGNORE_INDEX), then a random response ending
    in EOS (labelled), and n_aligned aligned-model scores each (what poft's build_examples produces from a chat
    and a merged score file). Random ids: the benchmark measures compute, and compute does not depend on them."""
    rng = np.random.default_rng(seed + 1)
    vocab = preset.model["vocab_size"]
    examples = []
    for i, (p, r) in enumerate(chat_lengths(preset, n, seed)):
        prompt = rng.integers(2, vocab, p).tolist()
        response = rng.integers(2, vocab, r - 1).tolist() + [EOS_ID]
        examples.append({"id": f"s{i}", "input_ids": prompt + response, "labels": [IGNORE_INDEX] * p + response,
                         "aligned": rng.uniform(-3.0, -1.0, n_aligned).round(4).tolist()})
    return examples


def make_tokenizer(vocab_size: int):
    """A word-level fast tokenizer over the preset's vocabulary (ids 0 pad, 1 eos, then t2, t3, ...): the data is
    pre-tokenized, so the trainers only read its pad and eos tokens from it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD_ID, "<eos>": EOS_ID, **{f"t{i}": i for i in range(2, vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def make_model(preset: Preset, device: str, attn: str, seed: int = 0):
    """A random-initialised Llama-style model: the same weights for every configuration of a run (same seed)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    config = LlamaConfig(**preset.model, max_position_embeddings=preset.max_length, tie_word_embeddings=False,
                         pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=None)
    with torch.device(device):  # initialise in place: a 0.5B model initialised on CPU first takes a while
        return AutoModelForCausalLM.from_config(config, attn_implementation=attn, dtype=getattr(torch, preset.dtype))


# ---------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> float:
    """GPU: memory allocated by torch at its peak since reset_peak. CPU: the process's peak RSS (all of it: Python,
    model, data, and the configuration's working memory), which only grows."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_kind(device: str) -> str:
    return "cuda_max_memory_allocated" if device.startswith("cuda") else "process_peak_rss"


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    started = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - started, result


def timed_repeats(fn, device: str, repeats: int, tokens: int, setup_mib: float) -> tuple[dict, object]:
    """fn run `repeats` times: summarise's figures, the peak memory over the repeats (on CPU also the RSS before
    them, `setup_mib`), and fn's last result."""
    seconds, peaks, result = [], [], None
    for _ in range(repeats):
        reset_peak(device)
        dt, result = timed(fn, device)
        seconds.append(dt)
        peaks.append(peak_mib(device))
    figures = {**summarise(seconds, tokens), "peak_memory_mib": round(max(peaks), 1),
               "peak_memory_kind": peak_kind(device)}
    if not device.startswith("cuda"):
        figures["rss_after_setup_mib"] = round(setup_mib, 1)
    return figures, result


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def versions() -> dict:
    import accelerate
    import transformers
    import trl

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    out = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "trl": trl.__version__, "accelerate": accelerate.__version__, "poft_commit": git("rev-parse", "HEAD"),
           "poft_worktree_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    try:
        import flash_attn

        out["flash_attn"] = flash_attn.__version__
    except ImportError:
        pass
    return out


def add_common_arguments(p, what: str) -> None:
    """What both benchmarks take: --json, --preset, --repeats, --device, --timeout (per `what` is measured), and
    the hidden --worker of the process that measures one configuration."""
    p.add_argument("--json", required=False, help="write the results here")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=default_device())
    p.add_argument("--timeout", type=float, default=1800, help=f"seconds per {what}")
    p.add_argument("--worker", help=argparse.SUPPRESS)


def header(script: str, preset_name: str, preset: Preset, device: str, repeats: int) -> dict:
    return {"benchmark": script, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "versions": versions(), "preset": preset_name, "preset_settings": asdict(preset),
            "device": device, "attention": attention_for(device), "repeats": repeats}


def summarise(seconds: list[float], tokens: int) -> dict:
    """Median over repeats: the figure least moved by one slow repeat on a shared machine."""
    median = statistics.median(seconds)
    return {"seconds": [round(s, 4) for s in seconds], "median_seconds": round(median, 4),
            "tokens_per_s": round(tokens / median, 1)}


def run_isolated(script: Path, config: dict, timeout: float) -> dict:
    """Run `script --worker CONFIG` in a fresh Python process; its result dict, or {"error": ...} when it failed
    (an invalid setting is a finding to report, not a reason to stop the benchmark)."""
    with tempfile.TemporaryDirectory(prefix="poft-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(script), "--worker", json.dumps({**config, "result": str(out), "tmp": tmp})]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f}s"}
        if proc.returncode != 0 or not out.exists():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            # The exception's own line (the last one) says what was wrong; keep a little context for the log.
            return {"error": lines[-1] if lines else f"exit status {proc.returncode}", "stderr_tail": lines[-15:]}
        return json.loads(out.read_text())


def run_all(script: Path, names: list[str], config: dict, timeout: float, json_path: str | None, report: dict,
            key: str, extra=lambda r: "") -> dict:
    """Each named configuration in its own process (run_isolated), one line printed per result, the JSON rewritten
    after each (a run cut short still leaves what it measured, marked "complete": false). {name: result}."""
    results = {}
    for name in names:
        r = run_isolated(script, {**config, "name": name}, timeout)
        results[name] = r
        if json_path:
            write_result(json_path, {**report, key: results, "complete": False})
        if "error" in r:
            print(f"  {name:30s} FAILED: {r['error']}", flush=True)
        else:
            print(f"  {name:30s} {r['tokens_per_s']:>10,.0f} tokens/s  median {r['median_seconds']:7.2f}s  "
                  f"peak {r['peak_memory_mib']:>8,.0f} MiB  layout {r['batch_layout']:20s} {extra(r)}{r['seconds']}",
                  flush=True)
    return results


def finish(json_path: str | None, report: dict, key: str, results: dict, ratios: dict) -> None:
    """The complete report: results, ratios, printed and written."""
    report.update({key: results, "ratios": ratios, "complete": True})
    print("ratios:", json.dumps(ratios))
    if json_path:
        write_result(json_path, report)
        print(f"wrote {json_path}")


def write_result(path: str | Path, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")
