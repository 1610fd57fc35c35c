"""DPO continuation from any checkpoint, through TRL's `DPOTrainer`.

Usage::

    from poft.dpo import DPOConfigSpec, read_pairs, run_dpo

    pairs = read_pairs("pairs.jsonl")  # one {"id", "prompt", "chosen", "rejected"} object per line
    spec = DPOConfigSpec.from_dict({"beta": 0.1, "learning_rate": 5e-7, "num_train_epochs": 1})
    metrics = run_dpo("runs/sft/final", pairs, "runs/dpo", spec)

Each pair is in TRL's conversational preference format: `prompt` is a list of `{"role", "content"}` messages
(system and earlier turns allowed), `chosen` and `rejected` are lists holding the assistant reply, e.g.
`[{"role": "assistant", "content": "5"}]`. The text is rendered with the chat template of the tokenizer saved in
`model_dir`.

`out_dir` receives a `checkpoint-<step>` folder per epoch, the final model and tokenizer, `dpo_config.json` (the
resolved spec and the start checkpoint) and `dpo_metrics.json`. Re-running with the same arguments resumes from the
last checkpoint in `out_dir`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from poft.config import from_mapping
from poft.data.errors import DataErrors, Problem
from poft.io import read_json, write_json
from poft.launch import barrier, is_main, rank_and_world

FIELDS = ("prompt", "chosen", "rejected")
_REWARD_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins")


@dataclass
class DPOConfigSpec:
    """The DPO knobs a run grid varies; everything else is fixed in `run_dpo`."""

    beta: float = field(default=0.1, metadata={"help": "KL strength: higher keeps the policy closer to the start."})
    loss_type: str = field(default="sigmoid", metadata={"help": "TRL DPO loss: sigmoid, ipo, hinge, robust, ..."})
    learning_rate: float = field(default=5e-7, metadata={"help": "Peak AdamW learning rate."})
    num_train_epochs: int = field(default=1, metadata={"help": "Passes over the preference pairs."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Pairs per device per step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    max_length: int = field(
        default=1024,
        metadata={"help": "Max tokens of prompt+completion; longer ones are cut at the end, and pairs whose "
                  "prompt alone reaches it are dropped by TRL (see n_pairs_trained in the metrics)."},
    )
    warmup_ratio: float = field(default=0.1, metadata={"help": "Fraction of steps with linear warmup, in [0, 1)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name."})
    seed: int = field(default=42, metadata={"help": "Seed for shuffling and initialisation."})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (needs Ampere+ GPU or CPU)."})
    precompute_ref_log_probs: bool = field(
        default=True,
        metadata={"help": "Compute reference log-probs once from the start checkpoint before training, so no "
                  "second model copy is kept in memory."},
    )
    gradient_checkpointing: bool = field(default=True, metadata={"help": "Trade compute for activation memory."})
    logging_steps: int = field(default=10, metadata={"help": "Optimizer steps between logged metrics."})
    save_each_epoch: bool = field(default=True, metadata={"help": "Save a resumable checkpoint after each epoch."})

    def __post_init__(self):
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DPOConfigSpec":
        return from_mapping(cls, d, "DPO option")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_problem(pair: Any) -> Problem | None:
    """The first thing wrong with one pair (field and detail), or None."""
    if not isinstance(pair, dict):
        return Problem("not_an_object", "", f"expected a JSON object, got {type(pair).__name__}")
    for name in FIELDS:
        if name not in pair:
            return Problem("missing_field", "", f"missing field '{name}'")
        msgs = pair[name]
        if not isinstance(msgs, list) or not msgs:
            return Problem("bad_field", name, "must be a non-empty list of {role, content} messages")
        for m in msgs:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                return Problem("bad_field", name, "has a message without a 'role'")
            if not isinstance(m.get("content"), str) or not m["content"].strip():
                return Problem("empty_content", name, "empty content")
    if pair["chosen"] == pair["rejected"]:
        return Problem("identical", "", "chosen and rejected are identical")
    return None


def validate_pairs(pairs: list[dict], origin: str = "pairs") -> None:
    """Raise one `DataError` (a ValueError) naming every bad pair: row index, id and field."""
    errors = DataErrors(origin)
    for i, pair in enumerate(pairs):
        if problem := pair_problem(pair):
            errors.add(problem.at(origin, row=i, conv_id=pair.get("id") if isinstance(pair, dict) else None))
    errors.raise_if_any(len(pairs), "pairs")


def read_pairs(path: str | Path) -> list[dict]:
    """Read preference pairs from JSONL (blank lines skipped); malformed lines name the file and line number."""
    from poft.data.readers import read_jsonl

    return read_jsonl(path).strict()


def _weights_checksums_callback():
    """A callback recording each checkpoint's weight checksums (poft.runs.DPO_WEIGHTS) once TRL has saved it."""
    from transformers import TrainerCallback

    from poft.runs import DPO_WEIGHTS, weights_checksums

    class WeightsChecksums(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                write_json(ckpt / DPO_WEIGHTS, weights_checksums(ckpt))

    return WeightsChecksums()


def _pairs_dataset(rows: list[dict], out: Path):
    """The pairs as a datasets.Dataset. Several ranks: saved under `out` by the first and loaded by all, because TRL
    caches the reference log-probs next to the dataset's files, where every rank reads them back; an in-memory
    dataset's files are in each process's own temporary directory."""
    from datasets import Dataset, load_from_disk

    dataset = Dataset.from_list(rows)
    if rank_and_world()[1] == 1:
        return dataset
    home = out / "pairs_dataset"
    if is_main():
        dataset.save_to_disk(str(home))
    barrier()
    return load_from_disk(str(home))


def run_dpo(model_dir: str, pairs: list[dict], out_dir: str, cfg: DPOConfigSpec,
            chat_template: str | None = None) -> dict:
    """Train `model_dir` with DPO on `pairs` into `out_dir`; returns the metrics also written to dpo_metrics.json.

    chat_template: a poft.templates name or Jinja file replacing the checkpoint's own (None: keep it; a `poft
    train` checkpoint carries the template it was trained with)."""
    validate_pairs(pairs)
    # Imported here so that reading/validating pairs does not pay for importing torch/transformers/trl.
    import torch
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import DPOConfig, DPOTrainer

    from poft.runs import CorruptCheckpointError, checkpoint_problem
    from poft.templates import apply_chat_template, template_record

    class _OfflineDPOTrainer(DPOTrainer):
        # TRL pings the Hub from Trainer.__init__; HF_HUB_DISABLE_TELEMETRY is read at import time, so an env var
        # set by the caller later would not stop it. Runs must never touch the network.
        def _send_telemetry(self):
            pass

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The checkpoint's chat template (or the one named) renders the conversations: TRL applies it to every pair.
    tokenizer = apply_chat_template(AutoTokenizer.from_pretrained(model_dir), chat_template)
    run_config = {"start_checkpoint": str(model_dir), "spec": cfg.to_dict()}
    if chat_template is not None:  # absent otherwise, so that runs made before the option still resume
        run_config["chat_template"] = template_record(tokenizer, chat_template)
    last_ckpt = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last_ckpt and (out / "dpo_config.json").exists():
        previous = read_json(out / "dpo_config.json")
        if previous != run_config:
            # Resuming optimizer/scheduler state under another spec or start model would silently mix two runs.
            raise ValueError(f"{out} holds checkpoints of a different DPO run: {previous} != {run_config}")
    if is_main():  # several ranks (poft.launch): one writes
        write_json(out / "dpo_config.json", run_config)

    # Only role/content go to Arrow: extra per-message keys would become null-filled struct fields.
    rows = [{k: [{"role": m["role"], "content": m["content"]} for m in p[k]] for k in FIELDS} for p in pairs]
    args = DPOConfig(
        output_dir=str(out),
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        # transformers 5 dropped `warmup_ratio`; a float < 1 in `warmup_steps` is read as a ratio of total steps.
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.lr_scheduler_type,
        seed=cfg.seed,
        # TRL defaults bf16 to True when unset, so pass it explicitly.
        bf16=cfg.bf16,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        # transformers 5 renamed gradient_checkpointing (TRL still defaults the old name to True, which warns).
        activation_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        save_strategy="epoch" if cfg.save_each_epoch else "no",
        report_to="none",
        push_to_hub=False,
        use_cpu=not torch.cuda.is_available(),  # ranks without CUDA join through gloo (poft.training, the same)
    )
    # The model is passed as a path: TRL loads it in float32 as the policy, and with precompute_ref_log_probs the
    # same (still untrained) weights produce the reference log-probs inside __init__, before any optimizer step.
    # On resume this is still the start checkpoint, so the reference stays the start model; the trained weights
    # are then loaded from the checkpoint by train(resume_from_checkpoint=...).
    trainer = _OfflineDPOTrainer(
        model=str(model_dir), args=args, train_dataset=_pairs_dataset(rows, out), processing_class=tokenizer
    )
    trainer.add_callback(_weights_checksums_callback())
    if last_ckpt and (why := checkpoint_problem(last_ckpt)):  # never resume from weights that are not the saved ones
        raise CorruptCheckpointError(f"{why}; delete {last_ckpt}, or run `poft dpo --safe-resume`, which does")
    t0 = time.time()
    trainer.train(resume_from_checkpoint=last_ckpt)
    runtime = time.time() - t0
    trainer.save_model(str(out))  # model + tokenizer (the trainer's processing_class)

    history = trainer.state.log_history
    steps = [{k: h[k] for k in ("step", "epoch", "loss", *_REWARD_KEYS) if k in h} for h in history if "loss" in h]
    last = next((h for h in reversed(history) if "rewards/margins" in h), {})
    summary = next((h for h in reversed(history) if "train_runtime" in h), {})
    metrics = {
        "start_checkpoint": str(model_dir),
        "n_pairs": len(pairs),
        "n_pairs_trained": len(trainer.train_dataset),  # TRL drops pairs whose prompt fills max_length
        "global_step": trainer.state.global_step,
        "resumed_from": last_ckpt,
        "train_loss": summary.get("train_loss"),
        "steps": steps,
        "final": {k: last[k] for k in _REWARD_KEYS if k in last},
        "runtime_s": runtime,
    }
    if is_main():
        write_json(out / "dpo_metrics.json", metrics)
    return metrics
