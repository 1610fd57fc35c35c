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

import dataclasses
import hashlib
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..chat import tokenize_chat
from ..config import from_mapping
from ..data import load_conversations, read_conversations
from ..evaluation.generation import GenerationSpec, generate
from ..io import read_json, write_json
from ..metrics import roc_auc
from ..scoring import load_model_and_tokenizer, mean_logprobs, pad_token_id
from ..training import TrainSpec, build_examples, train
from .datasets import DEFAULT_SIZES, SFT_FORMATS, write_world
from .models import PretrainSpec, build_model, n_parameters, pretrain
from .tokenizers import as_loaded, train_tokenizer
from .world import World, check, extract_answer


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
PRETRAIN = PretrainSpec(steps=400, seq_len=128, batch_size=16, learning_rate=6e-3, warmup_steps=20)
ALIGN = dict(loss="sft", learning_rate=2e-3, num_train_epochs=3, per_device_train_batch_size=16, max_length=160,
             warmup_ratio=0.05, lr_scheduler_type="cosine", logging_steps=20)
# The learning probe's one SFT epoch at batch 8: 150 optimizer steps on 1,200 conversations rather than 75. On one
# trial build micro-llama3 reached 27.3% at batch 8 vs 22.3% at batch 16 (micro-mistral: 12.0% vs 13.2%).
PROBE = {**ALIGN, "per_device_train_batch_size": 8}


@dataclass(frozen=True)
class MicroSpec:
    """What a build may vary (`poft micro STAGE --set sft=200 --set pretrain_steps=20`): sizes and step counts.

    The defaults are the micro world of `snakemake --cores all`; the smoke config shrinks them.
    """

    n_countries: int = DEFAULT_SIZES["n_countries"]
    prose: int = DEFAULT_SIZES["prose"]  # pretraining sentences
    aligned: int = DEFAULT_SIZES["aligned"]  # clean conversations the aligned models are tuned on
    sft: int = DEFAULT_SIZES["sft"]  # conversations per SFT set
    pairs: int = DEFAULT_SIZES["pairs"]
    bench_per_task: int = DEFAULT_SIZES["bench_per_task"]
    pretrain_steps: int = PRETRAIN.steps
    align_epochs: int = ALIGN["num_train_epochs"]

    @classmethod
    def from_dict(cls, options: dict | None) -> "MicroSpec":
        return from_mapping(cls, options or {}, "micro build option")

    def sizes(self) -> dict:
        return {k: getattr(self, k) for k in DEFAULT_SIZES}

    def pretrain(self) -> PretrainSpec:
        return dataclasses.replace(PRETRAIN, steps=self.pretrain_steps)


def _seed(seed: int, name: str) -> int:
    """A per-model seed derived from the world seed (stable across runs, different across models)."""
    return random.Random(f"{seed}:{name}").randrange(2**31)


def _tokenizer_corpus(data_dir: Path) -> list[str]:
    prose = (data_dir / "prose.txt").read_text(encoding="utf-8").splitlines()
    chats = [m["content"] for c in read_conversations(data_dir / "aligned.jsonl") for m in c["messages"]]
    return prose + chats


def stage_data(out: Path, seed: int, spec: MicroSpec = MicroSpec()) -> dict:
    return {"files": write_world(out / "data", seed, spec.sizes())}


def _pretrained(out: Path, name: str, recipe: ModelRecipe, seed: int, pretrain_spec: PretrainSpec):
    torch.manual_seed(_seed(seed, name))
    tokenizer = train_tokenizer(_tokenizer_corpus(out / "data"), recipe.template, recipe.vocab_size)
    model = build_model(recipe.arch, len(tokenizer), seed=_seed(seed, name))
    tokenizer = as_loaded(tokenizer, model.config)  # pretrain on the very tokens SFT, scoring and evaluation see
    prose = (out / "data" / "prose.txt").read_text(encoding="utf-8").splitlines()
    spec = PretrainSpec(**{**pretrain_spec.__dict__, "seed": _seed(seed, name)})
    stats = pretrain(model, tokenizer, prose, spec)
    return model, tokenizer, stats


def _fresh(work: Path) -> Path:
    """An empty work dir for a fine-tune. Why: the model was just pretrained anew, so a checkpoint left there by
    an earlier (or killed) build belongs to another model, and `train` would resume from it."""
    shutil.rmtree(work, ignore_errors=True)
    return work


def _save(model, tokenizer, path: Path) -> None:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def stage_base(out: Path, seed: int, name: str, spec: MicroSpec = MicroSpec()) -> dict:
    recipe = BASES[name]
    model, tokenizer, stats = _pretrained(out, name, recipe, seed, spec.pretrain())
    _save(model, tokenizer, out / "models" / name)
    return {"name": name, **recipe.__dict__, "parameters": n_parameters(model), "pretrain": stats}


def stage_aligned(out: Path, seed: int, name: str, spec: MicroSpec = MicroSpec()) -> dict:
    """Pretrain on prose, then SFT on the clean instruction set (no prompt of it is in any SFT set)."""
    recipe = ALIGNED[name]
    model, tokenizer, stats = _pretrained(out, name, recipe, seed, spec.pretrain())
    train_spec = TrainSpec.from_dict({**ALIGN, "num_train_epochs": spec.align_epochs, "seed": _seed(seed, name)})
    examples, report = build_examples(read_conversations(out / "data" / "aligned.jsonl"), tokenizer,
                                      train_spec.max_length)
    summary = train(model, tokenizer, examples, _fresh(out / "work" / name), train_spec)
    _save(model, tokenizer, out / "models" / name)
    return {"name": name, **recipe.__dict__, "parameters": n_parameters(model), "pretrain": stats,
            "sft": {"steps": summary["global_step"], "train_loss": summary["train_loss"], "data": report}}


def aligned_scores(out: Path, datasets: dict[str, list[dict]]) -> dict[str, dict[str, list[float]]]:
    """{dataset: {aligned model: mean response log-likelihood per conversation}}, own template and tokenizer.

    Each aligned model is loaded once and scores every dataset.
    """
    scores: dict[str, dict[str, list[float]]] = {name: {} for name in datasets}
    for model_name in ALIGNED:
        model, tokenizer = load_model_and_tokenizer(str(out / "models" / model_name), "cpu", "float32")
        for name, conversations in datasets.items():
            chats = [tokenize_chat(tokenizer, c["messages"], 256) for c in conversations]
            pad = pad_token_id(tokenizer)
            scores[name][model_name] = [s for s, _ in mean_logprobs(model, chats, pad, max_batch_size=64)]
    return scores


def auc_by_flaw(scores: list[float], flaws: list[str]) -> dict[str, float]:
    """ROC-AUC of `scores` at telling clean samples from those of each flaw type in turn."""
    out = {}
    for flaw in sorted(set(flaws) - {"clean"}):
        idx = [i for i, f in enumerate(flaws) if f in ("clean", flaw)]
        if any(flaws[i] == "clean" for i in idx):
            out[flaw] = roc_auc([scores[i] for i in idx], [flaws[i] == "clean" for i in idx])
    return out


def bench_exact_match(model, tokenizer, rows: list[dict], world: World) -> dict:
    """Greedy answers to the generate-until bench, judged by the independent checker: overall and per task (%)."""
    replies = generate(model, tokenizer, [[{"role": "user", "content": r["prompt"]}] for r in rows],
                       GenerationSpec(max_new_tokens=24, batch_size=64))
    per_task: dict[str, list[bool]] = {}
    for r, reply in zip(rows, replies):
        per_task.setdefault(r["task"], []).append(check(r["prompt"], reply, world))
    return {"exact_match": round(100 * sum(map(sum, per_task.values())) / len(rows), 2),
            "per_task": {t: round(100 * sum(v) / len(v), 2) for t, v in per_task.items()}}


def majority_baseline(train_convs: list[dict], rows: list[dict]) -> float:
    """Exact match (%) of always giving each task's most common training answer: the floor learning must beat."""
    counts: dict[str, dict[str, int]] = {}
    for c in train_convs:
        replies = [m["content"] for m in c["messages"] if m["role"] == "assistant"]
        for task, reply in zip(c["meta"]["tasks"], replies):  # the answers the data teaches, flaws included
            answer = extract_answer(reply)
            if answer is not None:
                counts.setdefault(task, {}).setdefault(answer, 0)
                counts[task][answer] += 1
    guess = {t: max(sorted(a), key=a.get) for t, a in counts.items()}
    return round(100 * sum(guess.get(r["task"]) == r["answer"] for r in rows) / len(rows), 2)


def learning_probe(out: Path, seed: int, base: str, dataset: str = "ultrachat", epochs: int = 1) -> dict:
    """Does SFT teach a base model anything that transfers? Held-out exact match before and after `epochs` of
    SFT on `dataset`, next to the majority-answer floor."""
    world = World.from_dict(read_json(out / "data" / "world.json"))
    rows = [json.loads(line) for line in (out / "data" / "bench" / "gen.jsonl").read_text().splitlines()]
    convs, _ = load_conversations(str(out / "data" / "sft" / f"{dataset}.jsonl"), SFT_FORMATS[dataset])
    model, tokenizer = load_model_and_tokenizer(str(out / "models" / base), "cpu", "float32")
    before = bench_exact_match(model, tokenizer, rows, world)
    spec = TrainSpec.from_dict({**PROBE, "num_train_epochs": epochs, "seed": _seed(seed, f"probe:{base}")})
    examples, _ = build_examples(convs, tokenizer, spec.max_length)
    train(model.train(), tokenizer, examples, _fresh(out / "work" / f"probe-{base}"), spec)
    after = bench_exact_match(model.eval(), tokenizer, rows, world)
    return {"base": base, "dataset": dataset, "epochs": epochs, "n_bench": len(rows), "before": before,
            "after": after, "majority_baseline": majority_baseline(convs, rows)}


def weights_sha256(model_dir: Path) -> str:
    """One hash over a model dir's weight files: equal hashes = bit-identical weights."""
    h = hashlib.sha256()
    for f in sorted(model_dir.glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()


def stage_manifest(out: Path, seed: int, spec: MicroSpec = MicroSpec()) -> dict:
    """Sizes, flaw rates, parameter counts, weight hashes, how well the aligned models tell clean from flawed
    samples (`aligned_auc`: ROC-AUC of the mean aligned score, clean = positive), and a learning probe per base."""
    stages = {p.stem: read_json(p) for p in sorted((out / "stages").glob("*.json"))}
    labelled = {}
    for name, fmt in SFT_FORMATS.items():
        convs, _ = load_conversations(str(out / "data" / "sft" / f"{name}.jsonl"), fmt)
        labelled[name] = (convs, [c["meta"]["flaw"] for c in convs])
    # The clean control has no flawed sample to tell apart: its AUC is None, and it is not scored.
    mixed = {name: convs for name, (convs, flaws) in labelled.items() if len(set(flaws)) > 1 and "clean" in flaws}
    scores = aligned_scores(out, mixed)
    aucs, by_flaw = {name: None for name in labelled}, {name: None for name in labelled}
    for name, per_model in scores.items():
        flaws = labelled[name][1]
        clean = [f == "clean" for f in flaws]
        mean = [sum(v) / len(v) for v in zip(*per_model.values())]
        aucs[name] = {"mean": roc_auc(mean, clean), **{m: roc_auc(v, clean) for m, v in per_model.items()}}
        by_flaw[name] = auc_by_flaw(mean, flaws)
    models = {k: v for k, v in stages.items() if k.startswith("micro-")}
    probes = {b: learning_probe(out, seed, b) for b in BASES if b in models}
    return {
        "seed": seed,
        "options": dataclasses.asdict(spec),
        "data": stages.get("data", {}).get("files"),
        "models": models,
        "weights_sha256": {k: weights_sha256(out / "models" / k) for k in models},
        "aligned_auc": {k: (v["mean"] if v else None) for k, v in aucs.items()},
        "aligned_auc_per_model": aucs,
        "aligned_auc_by_flaw": by_flaw,
        "learning_probe": probes,
        "build_seconds": {k: v.get("seconds") for k, v in stages.items()},
    }


def _named(table: dict, stage_fn):
    def run(out: Path, seed: int, name: str | None, spec: MicroSpec) -> dict:
        if name not in table:
            raise KeyError(f"unknown model {name!r} for this stage; valid: {', '.join(table)}")
        return stage_fn(out, seed, name, spec)

    return run


# stage -> (function(out, seed, name, spec) -> record, name of its record under stages/)
STAGES = {
    "data": (lambda out, seed, name, spec: stage_data(out, seed, spec), lambda name: "data"),
    "base": (_named(BASES, stage_base), lambda name: name),
    "aligned": (_named(ALIGNED, stage_aligned), lambda name: name),
}


def run_stage(out: str | Path, stage: str, seed: int = 0, name: str | None = None,
              spec: MicroSpec = MicroSpec()) -> dict:
    """Run one stage and record what it measured under stages/; the record is the stage's done-marker."""
    out = Path(out)
    if stage == "manifest":
        result = stage_manifest(out, seed, spec)
        write_json(out / "manifest.json", result)
        return result
    if stage not in STAGES:
        raise KeyError(f"unknown micro stage {stage!r}; valid: {', '.join([*STAGES, 'manifest'])}")
    fn, record = STAGES[stage]
    started = time.time()
    result = fn(out, seed, name, spec)
    result["options"] = dataclasses.asdict(spec)
    result["seconds"] = round(time.time() - started, 2)
    write_json(out / "stages" / f"{record(name)}.json", result)
    return result


def build(out: str | Path, seed: int = 0, spec: MicroSpec = MicroSpec()) -> dict:
    """Every stage in order; the manifest gets the wall time of the whole build."""
    started = time.time()
    run_stage(out, "data", seed, spec=spec)
    for name in BASES:
        run_stage(out, "base", seed, name, spec)
    for name in ALIGNED:
        run_stage(out, "aligned", seed, name, spec)
    manifest = run_stage(out, "manifest", seed, spec=spec)
    manifest["total_seconds"] = round(time.time() - started, 2)
    write_json(Path(out) / "manifest.json", manifest)
    return manifest
