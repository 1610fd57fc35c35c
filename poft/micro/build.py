"""Build the micro world: data, tokenizers, pretrained base models, aligned models, manifest.

    poft micro build --out work/micro --seed 0          # everything, in order (a few minutes on 2 CPU cores)
    poft micro data --out work/micro                    # or one stage at a time, as the DAG's rules do
    poft micro base --out work/micro --name micro-llama3
    poft micro aligned --out work/micro --name micro-zephyr
    poft micro manifest --out work/micro

Layout under --out: data/ (see poft.micro.datasets.write_world), models/<name>/ (HF model + tokenizer with chat
template), stages/<stage>.json (what each stage measured), manifest.json.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..chat import tokenize_chat
from ..data import load_conversations, read_conversations
from ..io import read_json, write_json
from ..metrics import roc_auc
from ..scoring import mean_logprobs, pad_token_id
from ..training import TrainSpec, build_examples, train
from .datasets import SFT_FORMATS, write_world
from .models import PretrainSpec, build_model, n_parameters, pretrain
from .tokenizers import train_tokenizer


@dataclass(frozen=True)
class ModelRecipe:
    arch: str
    template: str
    vocab_size: int
    stands_for: str


# Targets and aligned models differ in architecture, vocabulary and template, as in the paper.
BASES = {
    "micro-mistral": ModelRecipe("qwen2", "chatml", 640, "Mistral-7B-v0.1"),
    "micro-llama3": ModelRecipe("llama", "llama3", 512, "Llama-3-8B"),
}
ALIGNED = {
    "micro-zephyr": ModelRecipe("llama", "zephyr", 448, "zephyr-7b-sft-full"),
    "micro-llama3-instruct": ModelRecipe("llama", "gemma", 576, "Llama-3-8B-Instruct"),
    "micro-yi": ModelRecipe("qwen2", "phi3", 704, "Yi-6B-Chat"),
}
PRETRAIN = PretrainSpec(steps=300, seq_len=128, batch_size=16, learning_rate=3e-3, warmup_steps=20)
ALIGN = dict(loss="sft", learning_rate=2e-3, num_train_epochs=3, per_device_train_batch_size=16, max_length=160,
             warmup_ratio=0.05, lr_scheduler_type="cosine", logging_steps=20)


def _seed(seed: int, name: str) -> int:
    """A per-model seed derived from the world seed (stable across runs, different across models)."""
    return random.Random(f"{seed}:{name}").randrange(2**31)


def _tokenizer_corpus(data_dir: Path) -> list[str]:
    prose = (data_dir / "prose.txt").read_text(encoding="utf-8").splitlines()
    chats = [m["content"] for c in read_conversations(data_dir / "aligned.jsonl") for m in c["messages"]]
    return prose + chats


def stage_data(out: Path, seed: int, sizes: dict | None = None) -> dict:
    return {"files": write_world(out / "data", seed, sizes)}


def _pretrained(out: Path, name: str, recipe: ModelRecipe, seed: int, pretrain_spec: PretrainSpec):
    torch.manual_seed(_seed(seed, name))
    tokenizer = train_tokenizer(_tokenizer_corpus(out / "data"), recipe.template, recipe.vocab_size)
    model = build_model(recipe.arch, len(tokenizer), seed=_seed(seed, name))
    prose = (out / "data" / "prose.txt").read_text(encoding="utf-8").splitlines()
    spec = PretrainSpec(**{**pretrain_spec.__dict__, "seed": _seed(seed, name)})
    stats = pretrain(model, tokenizer, prose, spec)
    return model, tokenizer, stats


def _save(model, tokenizer, path: Path) -> None:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def stage_base(out: Path, seed: int, name: str, pretrain_spec: PretrainSpec = PRETRAIN) -> dict:
    recipe = BASES[name]
    model, tokenizer, stats = _pretrained(out, name, recipe, seed, pretrain_spec)
    _save(model, tokenizer, out / "models" / name)
    return {"name": name, **recipe.__dict__, "parameters": n_parameters(model), "pretrain": stats}


def stage_aligned(out: Path, seed: int, name: str, pretrain_spec: PretrainSpec = PRETRAIN,
                  align: dict | None = None) -> dict:
    """Pretrain on prose, then SFT on the clean instruction set (disjoint from the SFT sets' items)."""
    recipe = ALIGNED[name]
    model, tokenizer, stats = _pretrained(out, name, recipe, seed, pretrain_spec)
    spec = TrainSpec.from_dict({**ALIGN, **(align or {}), "seed": _seed(seed, name)})
    examples, report = build_examples(read_conversations(out / "data" / "aligned.jsonl"), tokenizer, spec.max_length)
    summary = train(model, tokenizer, examples, out / "work" / name, spec)
    _save(model, tokenizer, out / "models" / name)
    return {"name": name, **recipe.__dict__, "parameters": n_parameters(model), "pretrain": stats,
            "sft": {"steps": summary["global_step"], "train_loss": summary["train_loss"], "data": report}}


def aligned_scores(out: Path, datasets: dict[str, list[dict]]) -> dict[str, dict[str, list[float]]]:
    """{dataset: {aligned model: mean response log-likelihood per conversation}}, own template and tokenizer.

    Each aligned model is loaded once and scores every dataset.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scores: dict[str, dict[str, list[float]]] = {name: {} for name in datasets}
    for model_name in ALIGNED:
        path = out / "models" / model_name
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        for name, conversations in datasets.items():
            chats = [tokenize_chat(tokenizer, c["messages"], 256) for c in conversations]
            pad = pad_token_id(tokenizer)
            scores[name][model_name] = [s for s, _ in mean_logprobs(model, chats, pad, max_batch_size=64)]
    return scores


def stage_manifest(out: Path, seed: int) -> dict:
    """Sizes, flaw rates, parameter counts, and how well the aligned models tell clean from flawed samples."""
    stages = {p.stem: read_json(p) for p in sorted((out / "stages").glob("*.json"))}
    labelled = {}
    for name, fmt in SFT_FORMATS.items():
        convs, _ = load_conversations(str(out / "data" / "sft" / f"{name}.jsonl"), fmt)
        labelled[name] = (convs, [c["meta"]["flaw"] == "clean" for c in convs])
    # The clean control has no flawed sample to tell apart: its AUC is None, and it is not scored.
    mixed = {name: convs for name, (convs, clean) in labelled.items() if any(clean) and not all(clean)}
    scores = aligned_scores(out, mixed)
    aucs = {name: None for name in labelled}
    for name, per_model in scores.items():
        clean = labelled[name][1]
        mean = [sum(v) / len(v) for v in zip(*per_model.values())]
        aucs[name] = {"mean": roc_auc(mean, clean), **{m: roc_auc(v, clean) for m, v in per_model.items()}}
    return {
        "seed": seed,
        "data": stages.get("data", {}).get("files"),
        "models": {k: v for k, v in stages.items() if k.startswith("micro-")},
        "aligned_auc": {k: (v["mean"] if v else None) for k, v in aucs.items()},
        "aligned_auc_per_model": aucs,
        "build_seconds": {k: v.get("seconds") for k, v in stages.items()},
    }


def _named(table: dict, stage_fn):
    def run(out: Path, seed: int, name: str | None) -> dict:
        if name not in table:
            raise KeyError(f"unknown model {name!r} for this stage; valid: {', '.join(table)}")
        return stage_fn(out, seed, name)

    return run


# stage -> (function(out, seed, name) -> record, name of its record under stages/)
STAGES = {
    "data": (lambda out, seed, name: stage_data(out, seed), lambda name: "data"),
    "base": (_named(BASES, stage_base), lambda name: name),
    "aligned": (_named(ALIGNED, stage_aligned), lambda name: name),
}


def run_stage(out: str | Path, stage: str, seed: int = 0, name: str | None = None) -> dict:
    """Run one stage and record what it measured under stages/; the record is the stage's done-marker."""
    out = Path(out)
    if stage == "manifest":
        result = stage_manifest(out, seed)
        write_json(out / "manifest.json", result)
        return result
    if stage not in STAGES:
        raise KeyError(f"unknown micro stage {stage!r}; valid: {', '.join([*STAGES, 'manifest'])}")
    fn, record = STAGES[stage]
    started = time.time()
    result = fn(out, seed, name)
    result["seconds"] = round(time.time() - started, 2)
    write_json(out / "stages" / f"{record(name)}.json", result)
    return result


def build(out: str | Path, seed: int = 0) -> dict:
    started = time.time()
    run_stage(out, "data", seed)
    for name in BASES:
        run_stage(out, "base", seed, name)
    for name in ALIGNED:
        run_stage(out, "aligned", seed, name)
    manifest = run_stage(out, "manifest", seed)
    manifest["total_seconds"] = round(time.time() - started, 2)
    write_json(Path(out) / "manifest.json", manifest)
    return manifest
