"""SFT and PoFT training: one transformers Trainer subclass whose only change is the loss.

    poft train --data data.jsonl --model hf:mistralai/Mistral-7B-v0.1 --scores merged.json \
        --config train.yaml --out work/mistral-poft-seed42

Pairing: SFT and PoFT runs with the same seed get the same examples (both drop exactly the samples that lack
an aligned score), the same sampler, the same batches in the same order — `batch_ids.json` in each
checkpoint records them so that the claim can be checked, not just trusted: per optimizer step, its sample ids
in the order one process with the whole step's batch would see them. So 2 ranks x 4, 1 x 4 x 2 accumulated and
1 x 8 record the same file (when the data fills every rank's last batch; else accelerate completes the last one
with samples from the epoch's start, which are recorded as trained, since they are).

Several processes (poft.launch): every rank trains; only the first writes files.

Checkpoints: one HF checkpoint (model, tokenizer, resolved config) at the end of every epoch; optimizer
states are kept only in the newest one (the one a resume needs). A re-run resumes from the newest. Each also holds
the epoch's mechanism trace (trace.json, poft.trace.record_epoch): per sample its r_theta from the forward the loss
used, its mean aligned score and PoFT's weight tau, for SFT and DFT runs too (what PoFT would weigh).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from .batches import batch_layout, collate, full_sequence_labels, model_inputs
from .config import from_mapping
from .chat import IGNORE_INDEX, TokenizationReport, tokenize_chat
from .io import read_json, write_json
from .launch import gather_objects, is_main
from .losses import MEAN_OVER, ObjectiveInputs, get_objective, sequence_mean
from .runs import TRAIN_MARKER, WEIGHTS_SHA256, CorruptCheckpointError, checkpoint_problem, epoch_checkpoints, \
    weights_checksums
from .scoring import pad_token_id, target_logps, token_logprobs
from .trace import TRACE_FILE, record_epoch, recorded_groups

log = logging.getLogger(__name__)

TARGET_TOKENS = ("response", "full_sequence")


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class TrainSpec:
    """Everything that defines a training run. Defaults follow the paper (Eq. 5, beta=1, gamma=0)."""

    loss: str = _help("objective: sft | poft | dft (see poft.losses.LOSSES)", "sft")
    beta: float = _help("PoFT: scale of the margin r_theta - mean_j r_j (paper: 1)", 1.0)
    gamma: float = _help("PoFT: offset added to the margin (paper: 0)", 0.0)
    target_tokens: str = _help(
        "tokens r_theta averages over: response (paper's equation) | full_sequence (the released code's quirk: "
        "every non-pad token, template and user turns included)", "response")
    learning_rate: float = _help("peak learning rate (the released recipe: 1e-6 at batch 512)", 2e-5)
    lr_scheduler_type: str = _help("transformers scheduler name", "cosine")
    warmup_ratio: float = _help("share of steps spent warming up", 0.1)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    max_grad_norm: float = _help("gradient clipping norm", 1.0)
    num_train_epochs: int = _help("epochs; a checkpoint is saved after each", 1)
    per_device_train_batch_size: int = _help("samples per device per micro-batch", 8)
    gradient_accumulation_steps: int = _help("micro-batches per optimizer step", 1)
    max_length: int = _help("tokens per sample; longer samples are cut on the right and counted", 2048)
    seed: int = _help("seed for initialisation-free randomness: data order, dropout", 42)
    bf16: str = _help("auto (on when CUDA is available) | true | false", "auto")
    gradient_checkpointing: bool = _help("recompute activations in backward to save memory", False)
    chunk_tokens: int = _help("rows of the vocabulary projection computed at once (memory vs speed)", 1024)
    chunked_lm_head: bool = _help(
        "compute log-probs from hidden states in chunks (never a [B, L, V] tensor); false uses the model's full "
        "logits, needed under FSDP, where the lm head cannot be called outside the wrapped forward", True)
    logging_steps: int = _help("optimizer steps between log lines", 10)
    optim: str = _help("transformers optimizer name", "adamw_torch")
    deepspeed: str | None = _help("path to a DeepSpeed JSON config (GPU clusters)", None)
    attn_implementation: str | None = _help("eager | sdpa | flash_attention_2; None lets transformers choose", None)
    dataloader_num_workers: int = _help("data loader worker processes", 0)
    padding_free: str = _help(
        "auto | true | false: pack each micro-batch's samples into rows with position_ids restarting at each "
        "sample, no pad token computed (auto: where the model keeps packed samples apart; poft.batches)", "auto")
    group_by_length: bool = _help(
        "batches of similar lengths (transformers' length-grouped sampler, seeded: SFT and PoFT runs of one seed "
        "still get the same batches); less padding, less random batches", False)
    trace_group: str = _help(
        "meta key of the training samples recorded as their group in each checkpoint's trace.json (the micro "
        "world's hidden flaw label); never read by the loss", "flaw")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSpec":
        spec = from_mapping(cls, d, "training option")
        spec.validate()
        return spec

    def validate(self) -> None:
        get_objective(self.loss)  # fails with the list of valid losses
        if self.target_tokens not in TARGET_TOKENS:
            raise ValueError(f"target_tokens {self.target_tokens!r}; valid: {', '.join(TARGET_TOKENS)}")
        for name in ("bf16", "padding_free"):
            if str(getattr(self, name)).lower() not in ("auto", "true", "false"):
                raise ValueError(f"{name} {getattr(self, name)!r}; valid: auto, true, false")

    def use_bf16(self) -> bool:
        flag = str(self.bf16).lower()
        return torch.cuda.is_available() if flag == "auto" else flag == "true"


# ---------------------------------------------------------------------------------------------------------
# Examples and batches
# ---------------------------------------------------------------------------------------------------------


def build_examples(conversations: list[dict], tokenizer, max_length: int, scores: dict | None = None):
    """Tokenize for training. Returns (examples, report).

    scores: a merged score file (poft.scoring.merge_scores). When given, each example carries its M aligned
    scores, and samples without one are dropped — for every loss alike, so SFT and PoFT stay paired.
    """
    by_id = None
    if scores is not None:
        by_id = {r["id"]: r for r in scores["rows"]}
        models = scores["meta"]["models"]
    report = TokenizationReport()
    examples, no_score, no_labels = [], [], []
    for c in conversations:
        aligned = None
        if by_id is not None:
            if c["id"] not in by_id:
                raise KeyError(f"training sample id {c['id']!r} has no row in the score file "
                               f"({scores['meta'].get('sources')}); rescore this dataset")
            row = by_id[c["id"]]
            if row["score"] is None:
                no_score.append(c["id"])
                continue
            aligned = [row["scores"][m] for m in models]
        tok = tokenize_chat(tokenizer, c["messages"], max_length)
        report.add(c["id"], tok)
        if tok.n_label_tokens == 0:
            no_labels.append(c["id"])
            continue
        # meta rides along for the trace's groups (poft.trace.recorded_groups); the collator never reads it
        examples.append({"id": c["id"], "input_ids": tok.input_ids, "labels": tok.labels, "aligned": aligned,
                         "meta": c.get("meta") or {}})
    summary = {
        "n_input": len(conversations),
        "n_train": len(examples),
        "dropped_no_aligned_score": len(no_score),
        "dropped_no_label_tokens": len(no_labels),
        "dropped_ids_first_50": (no_score + no_labels)[:50],
        "tokenization": report.to_dict(),
    }
    return examples, summary


@dataclass
class ChatCollator:
    """A batch in `layout` (poft.batches.collate), with each sample's aligned scores [B, M] and ids."""

    pad_id: int
    layout: str = "padded"

    def __call__(self, examples: list[dict]) -> dict:
        batch = collate(examples, self.pad_id, self.layout)
        if examples[0]["aligned"] is not None:
            batch["aligned_scores"] = torch.tensor([e["aligned"] for e in examples], dtype=torch.float32)
        batch["sample_ids"] = [e["id"] for e in examples]
        return batch


# ---------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------


def objective_inputs(model, head_model, batch: dict, spec: TrainSpec) -> ObjectiveInputs:
    """One forward pass -> per-token log-probs of the response tokens and of the tokens r_theta averages."""
    labels = batch["labels"]
    scored = labels if spec.target_tokens == "response" else full_sequence_labels(batch)
    if spec.chunked_lm_head:
        logps, index = token_logprobs(model, {**batch, "labels": scored}, spec.chunk_tokens, head_model=head_model)
    else:
        logits = model(**model_inputs(batch)).logits[:, :-1].float()
        keep = scored[:, 1:] != IGNORE_INDEX
        index = batch["sample_index"][:, 1:][keep]
        logps = target_logps(logits[keep], scored[:, 1:][keep])
    aligned = batch.get("aligned_scores")
    n_samples = int(batch["sample_index"].max()) + 1
    if spec.target_tokens == "response":
        return ObjectiveInputs(logps, index, logps, index, n_samples, aligned)
    is_response = (labels[:, 1:] != IGNORE_INDEX)[scored[:, 1:] != IGNORE_INDEX]
    return ObjectiveInputs(logps[is_response], index[is_response], logps, index, n_samples, aligned)


class StepShare:
    """Mixin for a transformers Trainer whose loss is a mean over a micro-batch's tokens or samples: each
    micro-batch's mean is scaled to its share of the whole optimizer step's (every accumulation step and, under DDP,
    every rank), so batch 8 = 2 x 4 accumulated = 2 ranks x 4. Used by PoFTTrainer here and poft.trl's."""

    # compute_loss scales the loss itself (step_share): Trainer must not divide it by the accumulation steps again.
    loss_is_scaled_for_ga = True
    samples_key = "sample_ids"  # a batch entry with one element per sample
    _step_units: dict[str, int] | None = None

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The optimizer step's micro-batches, and what they hold in all: labelled tokens and samples, summed over
        the accumulation steps and (under DDP) the ranks."""
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        units = torch.tensor([sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches),
                              sum(len(b[self.samples_key]) for b in batches)], device=device)
        if self.args.world_size > 1:
            units = self.accelerator.gather(units[None]).sum(0)
        self._step_units = {"tokens": int(units[0]), "samples": int(units[1])}
        return batches, num_items

    def step_share(self, unit: str, here: int) -> float:
        """Factor turning a micro-batch's mean loss over `here` units ("tokens" | "samples") into its share of the
        step's mean: here over the step's, times the ranks (DDP averages gradients over them). Exactly 1 with one
        micro-batch on one rank."""
        if self._step_units is None:
            return 1.0
        return here * self.args.world_size / max(self._step_units[unit], 1)


class PoFTTrainer(StepShare, Trainer):
    """transformers.Trainer with the loss swapped for a registered objective (poft.losses.LOSSES); nothing else
    changes."""

    def __init__(self, *args, spec: TrainSpec, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.objective = get_objective(spec.loss)
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self.seen_steps: list[list[list[str]]] = []  # this rank's: per optimizer step, per micro-batch, the ids
        # This rank's training forwards since the last save: (step, ids, r_theta [B] detached, on its device; turned
        # into numbers only at the save, so no step waits for the device).
        self.seen_policy: list[tuple[int, list[str], torch.Tensor]] = []

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if batches:
            self.seen_steps.append([b["sample_ids"] for b in batches])
        return batches, num_items

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids = inputs.pop("sample_ids")  # recorded per step by get_batch_samples
        head = self.accelerator.unwrap_model(model)
        values = objective_inputs(model, head, inputs, self.spec)
        loss, metrics = self.objective(values, self.spec.beta, self.spec.gamma)
        if model.training:  # an evaluation forward is no share of an optimizer step, nor a weight applied
            r_theta = sequence_mean(values.policy_logps.detach(), values.policy_index, values.n_samples)
            self.seen_policy.append((self.state.global_step, ids, r_theta))
            unit = MEAN_OVER[self.spec.loss]
            loss = loss * self.step_share(unit, values.response_logps.numel() if unit == "tokens" else values.n_samples)
        for k, v in metrics.items():
            self._metrics[k].append(float(v))
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Averages of our diagnostics over the steps since the last log line: ce, policy_score, tau, ...
        if "loss" in logs:
            for k, values in self._metrics.items():
                logs[k] = sum(values) / len(values)
            self._metrics.clear()
        super().log(logs, start_time)


class EpochCheckpoints(TrainerCallback):
    """After each save: record config and batch ids in the checkpoint; drop optimizer states of older ones."""

    def __init__(self, trainer: PoFTTrainer, record: dict):
        self.trainer, self.record = trainer, record

    def on_save(self, args, state, control, **kwargs):
        # A collective (every rank calls on_save): each hands in its steps and its forwards' r_theta. Having
        # returned, every rank has also saved its own share of the checkpoint (its RNG state), so the marker below
        # is still written last.
        seen = [(step, i, r) for step, ids, values in self.trainer.seen_policy for i, r in zip(ids, values.tolist())]
        gathered = gather_objects((self.trainer.seen_steps, seen))
        self.trainer.seen_steps, self.trainer.seen_policy = [], []
        if not state.is_world_process_zero:
            return
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        write_json(ckpt / "batch_ids.json", step_batches([steps for steps, _ in gathered]))
        write_json(ckpt / TRACE_FILE, self.trace(round(state.epoch or 0), [s for _, rows in gathered for s in rows]))
        # The marker is written last (a checkpoint without it was cut off) and records the weights' checksums, so
        # that a resume can prove them intact.
        write_json(ckpt / TRAIN_MARKER, {**self.record, "epoch": round(state.epoch or 0),
                                         WEIGHTS_SHA256: weights_checksums(ckpt)})
        for old in sorted(Path(args.output_dir).glob("checkpoint-*"), key=_step):
            if old != ckpt:
                for name in ("optimizer.pt", "scheduler.pt"):
                    (old / name).unlink(missing_ok=True)
                for ds in old.glob("global_step*"):  # DeepSpeed's partitioned optimizer states
                    shutil.rmtree(ds, ignore_errors=True)

    def trace(self, epoch: int, seen: list[tuple[int, str, float]]) -> dict:
        """The epoch's trace.json: r_theta is the model's when the batch was seen (train mode; the micro models have
        no dropout), so tau is the weight the loss actually applied (PoFT), or would have (SFT, DFT)."""
        spec, examples = self.trainer.spec, self.trainer.train_dataset
        rows = record_epoch(seen, {e["id"]: e for e in examples}, spec.beta, spec.gamma,
                            recorded_groups(examples, spec.trace_group))
        return {"meta": {"epoch": epoch, "loss": spec.loss, "beta": spec.beta, "gamma": spec.gamma,
                         "group_key": spec.trace_group, "r_theta": "recorded in training"}, "rows": rows}


def step_batches(per_rank: list[list[list[list[str]]]]) -> list[list[str]]:
    """Every rank's steps (per rank, per optimizer step, per micro-batch: sample ids) -> per step, its sample ids in
    the order of one process with the whole step's batch. accelerate deals the sampler's batches to the ranks in
    turn (batch k to rank k % ranks), so that order is micro-batch by micro-batch, rank by rank within each."""
    return [[i for micro in zip_longest(*step, fillvalue=[]) for ids in micro for i in ids] for step in zip(*per_rank)]


def _step(path: Path) -> int:
    return int(path.name.split("-")[-1])


def training_arguments(spec: TrainSpec, out_dir: str | Path) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out_dir),
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.lr_scheduler_type,
        warmup_steps=spec.warmup_ratio,  # transformers 5: a float in [0, 1) is a share of the steps
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        num_train_epochs=spec.num_train_epochs,
        per_device_train_batch_size=spec.per_device_train_batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        seed=spec.seed,
        data_seed=spec.seed,
        bf16=spec.use_bf16(),
        activation_checkpointing=spec.gradient_checkpointing,
        logging_steps=spec.logging_steps,
        optim=spec.optim,
        deepspeed=spec.deepspeed,
        save_strategy="epoch",
        save_total_limit=None,  # every epoch's checkpoint is evaluated (the paper's Avg. and Std. columns)
        report_to=[],
        remove_unused_columns=False,  # the collator's aligned scores and ids must reach compute_loss
        dataloader_num_workers=spec.dataloader_num_workers,
        train_sampling_strategy="group_by_length" if spec.group_by_length else "random",
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without CUDA, ranks (poft.launch) must join through gloo: accelerate's CPU mode sets that up. Alone, the
        # same as before.
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )


def train(
    model, tokenizer, examples: list[dict], out_dir: str | Path, spec: TrainSpec, record: dict | None = None,
    stop_after_epochs: int | None = None,
) -> dict:
    """Train (or resume) and return the run summary written to <out_dir>/train_summary.json.

    record: what to store next to every checkpoint (resolved config, data and score provenance).
    stop_after_epochs: end the run after that many epochs as if it had crashed (used to test resuming).
    """
    out_dir = Path(out_dir)
    if spec.loss == "poft" and examples and examples[0]["aligned"] is None:
        raise ValueError("loss 'poft' needs aligned scores for every example: pass a merged score file")
    done = out_dir / "train_summary.json"
    if done.is_file() and list(epoch_checkpoints(out_dir)) == list(range(1, spec.num_train_epochs + 1)):
        # A group job re-run after a kill (poft batch) meets its finished runs again: nothing to train. (A run of
        # other options or inputs lost its summary to `--safe-resume` before this point.)
        log.info("%s: complete, every epoch's checkpoint is there; nothing to train", out_dir)
        return read_json(done)
    args = training_arguments(spec, out_dir)
    layout = batch_layout(spec.padding_free, model)
    trainer = PoFTTrainer(
        model=model, args=args, train_dataset=examples, data_collator=ChatCollator(pad_token_id(tokenizer), layout),
        processing_class=tokenizer, spec=spec,
    )
    record = {"spec": dataclasses.asdict(spec), "batch_layout": layout, **(record or {})}
    trainer.add_callback(EpochCheckpoints(trainer, record))
    if stop_after_epochs is not None:
        trainer.add_callback(_StopAfter(stop_after_epochs))
    cut = sorted(c.name for c in out_dir.glob("checkpoint-*") if not (c / TRAIN_MARKER).is_file())
    if cut:  # the marker is written last: without it the save was killed, and resuming would load half a state
        raise RuntimeError(f"{out_dir}: {', '.join(cut)} cut off before completion (no {TRAIN_MARKER}); "
                           "delete them, or run `poft train --safe-resume`, which does")
    resume = get_last_checkpoint(str(out_dir)) if out_dir.exists() else None
    if resume and (why := checkpoint_problem(resume)):  # never resume from weights that are not the saved ones
        raise CorruptCheckpointError(f"{why}; delete {resume}, or run `poft train --safe-resume`, which does")
    if resume:
        log.info("resuming from %s", resume)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    summary = {
        "resumed_from": resume,
        "batch_layout": layout,
        "global_step": trainer.state.global_step,
        "epochs_done": round(trainer.state.epoch or 0),
        "train_loss": result.training_loss,
        "seconds": round(time.time() - started, 3),
        "log_history": trainer.state.log_history,
        "epoch_checkpoints": {e: str(p) for e, p in epoch_checkpoints(out_dir).items()},
    }
    if summary["epochs_done"] >= spec.num_train_epochs and is_main():
        write_json(out_dir / "train_summary.json", summary)
    return summary


class _StopAfter(TrainerCallback):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, args, state, control, **kwargs):
        if round(state.epoch) >= self.epochs:
            control.should_training_stop = True
