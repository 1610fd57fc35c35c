"""Throughput and peak memory of scoring and of a PoFT training step on a random Llama-style model.

    python tests/benchmarks/bench_core.py                      # CPU-sized model, float32
    python tests/benchmarks/bench_core.py --preset 0.5b        # ~0.5B Llama-style, bf16 on GPU

Prints one line per measurement (tokens/s, peak memory) and, for scoring, the same batch through the
model's full [B, L, V] logits for comparison. Not a test: figures vary by machine; nothing asserts on them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))

from poft.chat import IGNORE_INDEX, TokenizedChat  # noqa: E402
from poft.losses import get_objective  # noqa: E402
from poft.batches import pad_batch  # noqa: E402
from poft.scoring import mean_logprobs  # noqa: E402
from poft.training import TrainSpec, objective_inputs  # noqa: E402

PRESETS = {
    "cpu": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=4, vocab_size=32000),
    "0.5b": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=16, vocab_size=128256),  # ~0.5B with a Llama-3-sized vocabulary
}


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_samples(n: int, seq: int, vocab: int, seed: int = 0) -> list[TokenizedChat]:
    """Sequences of seq/2..seq tokens whose second half is the 'response'."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(seq // 2, seq + 1, (1,), generator=g))
        ids = torch.randint(0, vocab, (length,), generator=g).tolist()
        labels = [IGNORE_INDEX] * (length // 2) + ids[length // 2 :]
        out.append(TokenizedChat(ids, labels, False, length - length // 2))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: bf16 on GPU, float32 on CPU)")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=3)
    a = p.parse_args()
    dtype = getattr(torch, a.dtype) if a.dtype else (torch.bfloat16 if a.device.startswith("cuda") else torch.float32)
    torch.manual_seed(0)
    config = LlamaConfig(**PRESETS[a.preset], max_position_embeddings=max(a.seq, 2048))
    model = LlamaForCausalLM(config).to(a.device, dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {a.preset} preset, {n_params / 1e6:.1f}M parameters, {dtype}, device {a.device}, "
          f"torch {torch.__version__}")
    samples = random_samples(a.samples, a.seq, config.vocab_size)
    n_tokens = sum(len(s.input_ids) for s in samples)

    mean_logprobs(model, samples[: a.batch], 0, max_batch_size=a.batch)  # warm-up
    reset_peak(a.device)
    sync(a.device)
    t = time.perf_counter()
    mean_logprobs(model, samples, 0, max_batch_size=a.batch, max_batch_tokens=a.batch * a.seq)
    sync(a.device)
    dt = time.perf_counter() - t
    print(f"score (chunked lm head): {n_tokens / dt:,.0f} tokens/s, {a.samples} samples of <= {a.seq} tokens, "
          f"peak memory {peak_memory_mb(a.device):,.0f} MiB")

    batch = {k: v.to(a.device) for k, v in pad_batch(samples[: a.batch], 0).items()}
    full_mib = batch["input_ids"].numel() * config.vocab_size * 4 / 2**20
    print(f"avoided: the naive path's [B, L, V] float32 logits for one batch would take {full_mib:,.0f} MiB "
          f"(twice that with the log-softmax copy)")
    if a.device.startswith("cuda"):  # CPU peak RSS only grows, so a per-phase comparison is only honest on GPU
        reset_peak(a.device)
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            torch.log_softmax(logits, -1)
        print(f"naive full-logits scoring of one batch: peak memory {peak_memory_mb(a.device):,.0f} MiB")
        del logits

    model.train()
    spec = TrainSpec(loss="poft")
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch["aligned_scores"] = torch.full((a.batch, 3), -2.0, device=a.device)
    objective = get_objective("poft")
    reset_peak(a.device)
    times = []
    for step in range(a.train_steps + 1):
        sync(a.device)
        t = time.perf_counter()
        loss, _ = objective(objective_inputs(model, model, batch, spec))
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        sync(a.device)
        if step:  # the first step pays for allocations and kernel selection
            times.append(time.perf_counter() - t)
    step_tokens = int(batch["attention_mask"].sum())
    print(f"train step (poft, AdamW, batch {a.batch}): {step_tokens * len(times) / sum(times):,.0f} tokens/s, "
          f"peak memory {peak_memory_mb(a.device):,.0f} MiB")



if __name__ == "__main__":
    main()
