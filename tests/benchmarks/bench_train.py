"""Training throughput and peak memory: TRL's SFTTrainer against poft's SFT and PoFT, in one run, on the same
random Llama-style model, data, batch size and training arguments.

    python tests/benchmarks/bench_train.py --json results/benchmarks/train-cpu.json            # 2 CPU cores
    python tests/benchmarks/bench_train.py --preset 0.5b --json OUT.json --repeats 2           # one GPU, bf16

Configurations (each one epoch, `--repeats` times, each in its own process; see bench_common):

    trl_default              SFTTrainer, padded batches (its default), loss_type "nll" (its default)
    trl_padding_free         SFTTrainer, padding_free=True: each batch flattened into one row, position_ids
                             restarting per sample (TRL documents it for FlashAttention; transformers' sdpa
                             masking also reads restarting position_ids, so it is tried everywhere). TRL refuses
                             padding_free with max_length set and no packing, so it runs with max_length=None:
                             the data is already within max_length, so nothing changes.
    trl_padding_free_max_length   the same with max_length set: expected to fail (recorded, with the error)
    poft_{sft,poft}_padded        poft's trainer, padding_free="false": one right-padded row per sample
    poft_{sft,poft}_padding_free  padding_free="auto": rows as wide as the batch's longest sample (sdpa) or the
                             whole batch in one row (FlashAttention-2), position_ids restarting per sample

TRL's loss_type "chunked_nll" is a deprecated alias of "nll" in trl 1.16 (SFTConfig maps it before the trainer
sees it); the script checks that at run time and records it instead of timing the same thing twice. Packing
(packing=True) is left out: it concatenates samples into max_length rows, so the batches hold other samples than
per_device_train_batch_size picks and the step count changes; it is a different training setup, not a faster
way to run this one. Liger kernels are not installed here.

What each side computes. Both get the same pre-tokenized samples: input_ids plus labels that are IGNORE_INDEX on
the prompt and the token ids on the response (TRL, given an `input_ids`/`labels` dataset, uses the labels as
they are, so it trains on the completion only, exactly like poft; a "messages" dataset would make it train on
every token unless assistant_only_loss had a template with generation markers). The loss is the mean token
NLL of the response tokens in both SFT runs, so their train losses must agree (printed: a check that both did
the same work). TRL's fused LM head projects the hidden states in tiles and never builds [B, L, V] logits; on a
GPU with Triton it projects the labelled positions only, elsewhere (CPU) every position of the batch, padding
and prompt included; it also computes per-token entropy and top-1 accuracy for its logs. poft projects the
labelled positions only, in chunks of chunk_tokens rows recomputed in the backward pass (torch checkpoint);
PoFT adds a per-sample mean and a log-sigmoid.

Held equal on both sides: model weights (same seed), data and its order (same seed and data_seed), batch size,
max_length, optimizer (adamw_torch), learning rate and schedule, dtype (float32 on CPU, bf16 on GPU),
gradient checkpointing off (TRL's own default turns it on, and bf16 on; both are set to poft's values so
that the comparison is of the trainers, not of a memory/speed trade-off), no evaluation, no checkpoint saving,
no logging. Tokenization and trainer construction are outside the timed region; each process first trains a
one-step warm-up on its two shortest samples (allocator, kernel selection), then times trainer.train() on a fresh model per repeat.

Tokens/s counts real (non-pad) tokens of the epoch, prompt and response, divided by the median seconds.
Peak memory: torch.cuda.max_memory_allocated on GPU; on CPU the process's peak RSS (model, data and all).
Not a test: figures vary by machine and nothing asserts on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
    PRESETS, add_common_arguments, attention_for, finish, header, make_examples, make_model, make_tokenizer,
    peak_kind, peak_mib, reset_peak, run_all, summarise, timed,
)

SCRIPT = Path(__file__).resolve()
SEED = 42
# name -> (trainer, settings)
CONFIGS = {
    "trl_default": ("trl", {}),
    "trl_padding_free": ("trl", {"padding_free": True, "max_length": None}),
    "trl_padding_free_max_length": ("trl", {"padding_free": True}),
    "poft_sft_padded": ("poft", {"loss": "sft", "padding_free": "false"}),
    "poft_sft_padding_free": ("poft", {"loss": "sft", "padding_free": "auto"}),
    "poft_poft_padded": ("poft", {"loss": "poft", "padding_free": "false"}),
    "poft_poft_padding_free": ("poft", {"loss": "poft", "padding_free": "auto"}),
}
# Train losses of runs that did the same work agree to float rounding; a setting whose loss does not is not valid.
LOSS_RTOL = 1e-3


# ---------------------------------------------------------------------------------------------------------
# The two trainers, built from one set of shared settings
# ---------------------------------------------------------------------------------------------------------


def poft_spec(preset, settings: dict):
    from poft.training import TrainSpec

    return TrainSpec(loss=settings["loss"], padding_free=settings["padding_free"], learning_rate=2e-5,
                     lr_scheduler_type="cosine", warmup_ratio=0.1, num_train_epochs=1, seed=SEED,
                     per_device_train_batch_size=preset.batch_size, max_length=preset.max_length,
                     bf16=str(preset.dtype == "bfloat16").lower(), chunk_tokens=preset.chunk_tokens,
                     optim="adamw_torch", gradient_checkpointing=False)


def poft_trainer(model, tok, examples, preset, settings: dict, out_dir: str):
    """What poft.training.train builds, minus its checkpoint callbacks, with saving and logging off."""
    from transformers.trainer_utils import IntervalStrategy, SaveStrategy

    from poft.batches import batch_layout
    from poft.scoring import pad_token_id
    from poft.training import ChatCollator, PoFTTrainer, training_arguments

    spec = poft_spec(preset, settings)
    args = replace(training_arguments(spec, out_dir), save_strategy=SaveStrategy.NO,
                   logging_strategy=IntervalStrategy.NO)
    layout = batch_layout(spec.padding_free, model)
    trainer = PoFTTrainer(model=model, args=args, train_dataset=examples,
                          data_collator=ChatCollator(pad_token_id(tok), layout), processing_class=tok, spec=spec)
    return trainer, layout


def trl_config(preset, settings: dict, out_dir: str):
    from trl import SFTConfig

    spec = poft_spec(preset, {"loss": "sft", "padding_free": "false"})  # the shared settings, poft's values
    kw = dict(output_dir=out_dir, per_device_train_batch_size=spec.per_device_train_batch_size, num_train_epochs=1,
              learning_rate=spec.learning_rate, lr_scheduler_type=spec.lr_scheduler_type,
              warmup_steps=spec.warmup_ratio, weight_decay=spec.weight_decay, max_grad_norm=spec.max_grad_norm,
              optim=spec.optim, seed=SEED, data_seed=SEED, bf16=spec.use_bf16(), activation_checkpointing=False,
              max_length=preset.max_length, save_strategy="no", logging_strategy="no", eval_strategy="no",
              report_to=[], disable_tqdm=True, dataloader_pin_memory=preset.dtype == "bfloat16")
    return SFTConfig(**{**kw, **settings})


def trl_trainer(model, tok, examples, preset, settings: dict, out_dir: str):
    from datasets import Dataset
    from trl import SFTTrainer

    data = Dataset.from_dict({"input_ids": [e["input_ids"] for e in examples],
                              "labels": [e["labels"] for e in examples]})
    trainer = SFTTrainer(model=model, args=trl_config(preset, settings, out_dir), train_dataset=data,
                         processing_class=tok)
    return trainer, "one_row" if trainer.padding_free else "padded"


def trl_loss_type_aliases(preset) -> dict:
    """loss_type values TRL accepts besides its default, and what it turns them into (no run needed)."""
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for value in ("chunked_nll",):
            try:
                resolved = trl_config(preset, {"loss_type": value}, tmp).loss_type
                out[value] = {"valid": True, "resolves_to": resolved,
                              "note": "alias, not timed separately" if resolved == "nll" else "not timed"}
            except Exception as e:  # noqa: BLE001 - any refusal is the finding
                out[value] = {"valid": False, "error": f"{type(e).__name__}: {e}"}
    return out


# ---------------------------------------------------------------------------------------------------------
# One configuration, in its own process
# ---------------------------------------------------------------------------------------------------------


def measure(config: dict) -> dict:
    """One configuration's figures (what its worker process reports); config["tmp"]: a scratch directory."""
    import torch

    preset, device = PRESETS[config["preset"]], config["device"]
    kind, settings = CONFIGS[config["name"]]
    attn = attention_for(device)
    tok = make_tokenizer(preset.model["vocab_size"])
    examples = make_examples(preset, config["samples"], seed=0)
    build = poft_trainer if kind == "poft" else trl_trainer
    tokens = sum(len(e["input_ids"]) for e in examples)
    setup_mib = peak_mib("cpu")

    # Warm-up outside the timed region, on the two shortest samples: the first step pays for allocations and kernel
    # choices (on CPU there is little of either, and a 2-core machine has no time to spare).
    shortest = sorted(examples, key=lambda e: len(e["input_ids"]))[:2]
    warm, _ = build(make_model(preset, device, attn, SEED), tok, shortest, preset, settings, config["tmp"] + "/warm")
    warm.train()
    del warm
    seconds, losses, peaks, layout = [], [], [], None
    for r in range(config["repeats"]):
        model = make_model(preset, device, attn, SEED)  # the same initial weights every repeat
        trainer, layout = build(model, tok, examples, preset, settings, f"{config['tmp']}/run{r}")
        reset_peak(device)
        dt, result = timed(trainer.train, device)
        seconds.append(dt)
        losses.append(result.training_loss)
        peaks.append(peak_mib(device))
        del trainer, model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    out = {"trainer": kind, "settings": settings, "batch_layout": layout, "tokens": tokens,
           "labelled_tokens": sum(sum(y != -100 for y in e["labels"]) for e in examples), "samples": len(examples),
           "train_loss": losses, **summarise(seconds, tokens), "peak_memory_mib": round(max(peaks), 1),
           "peak_memory_kind": peak_kind(device)}
    if not device.startswith("cuda"):
        out["rss_after_setup_mib"] = round(setup_mib, 1)  # before any training: the floor of the peak RSS
    return out


def worker(config: dict) -> None:
    Path(config["result"]).write_text(json.dumps(measure(config)))


# ---------------------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------------------


def compare(results: dict) -> dict:
    """Validity of each TRL setting, the fastest valid one, and the two ratios."""
    reference = results.get("trl_default", {}).get("train_loss")
    for name, r in results.items():
        if "error" in r:
            r["valid"] = False
        elif reference and name.startswith(("trl_", "poft_sft_")):
            # Same samples, same order, same initial weights and optimizer: the mean train loss must agree.
            diff = abs(r["train_loss"][0] - reference[0]) / abs(reference[0])
            r["loss_rel_diff_vs_trl_default"] = float(f"{diff:.3g}")
            r["valid"] = diff <= LOSS_RTOL
        else:
            r["valid"] = True
    trl = {n: r for n, r in results.items() if n.startswith("trl_") and r["valid"]}
    sft = {n: r for n, r in results.items() if n.startswith("poft_sft_") and r["valid"]}
    out = {}
    if trl and sft:
        best_trl = max(trl, key=lambda n: trl[n]["tokens_per_s"])
        best_sft = max(sft, key=lambda n: sft[n]["tokens_per_s"])
        out["trl_best_valid"] = best_trl
        out["poft_sft_best"] = best_sft
        out["poft_sft_over_trl"] = round(sft[best_sft]["tokens_per_s"] / trl[best_trl]["tokens_per_s"], 3)
        if "trl_default" in trl:
            out["poft_sft_over_trl_default"] = round(sft[best_sft]["tokens_per_s"] / trl["trl_default"]["tokens_per_s"], 3)
    out["poft_poft_over_sft_time"] = {
        layout: round(results[f"poft_poft_{layout}"]["median_seconds"] / results[f"poft_sft_{layout}"]["median_seconds"], 3)
        for layout in ("padded", "padding_free")
        if "error" not in results.get(f"poft_poft_{layout}", {"error": 1})
        and "error" not in results.get(f"poft_sft_{layout}", {"error": 1})
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "configuration")
    p.add_argument("--samples", type=int, default=None, help="training samples (default: the preset's)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    a = p.parse_args()
    if a.worker:
        return worker(json.loads(a.worker))
    preset = PRESETS[a.preset]
    samples = a.samples or preset.train_samples
    report = header("bench_train", a.preset, preset, a.device, a.repeats)
    report["settings"] = {"samples": samples, "batch_size": preset.batch_size, "max_length": preset.max_length,
                          "epochs": 1, "seed": SEED, "optimizer": "adamw_torch", "learning_rate": 2e-5,
                          "gradient_checkpointing": False, "dtype": preset.dtype}
    report["trl_loss_type_aliases"] = trl_loss_type_aliases(preset)
    print(f"bench_train: preset {a.preset} ({preset.dtype}, attention {report['attention']}), {samples} samples, "
          f"batch {preset.batch_size}, {a.repeats} repeats, device {a.device}")
    config = {"preset": a.preset, "device": a.device, "repeats": a.repeats, "samples": samples}
    results = run_all(SCRIPT, a.configs.split(","), config, a.timeout, a.json, report, "configurations",
                      extra=lambda r: f"loss {r['train_loss'][0]:.5f}  ")
    for name, r in results.items():
        if not r["valid"] and "error" not in r:
            print(f"  {name}: NOT VALID, train loss differs from trl_default by {r['loss_rel_diff_vs_trl_default']}")
    print("trl loss_type aliases:", json.dumps(report["trl_loss_type_aliases"]))
    finish(a.json, report, "configurations", results, compare(results))

if __name__ == "__main__":
    main()
