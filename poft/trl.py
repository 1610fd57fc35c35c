"""PoFT for TRL users: `trl.SFTTrainer` with the loss swapped for PoFT's (Fan et al. 2025, Eq. 5).

    dataset = attach_scores(dataset, "merged.json")              # a float column of mean aligned scores
    args = PoFTConfig(output_dir="out", assistant_only_loss=True)  # any SFTConfig option, plus beta, gamma
    PoFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer).train()

Everything else is TRL's: tokenization, assistant / completion masks, `padding_free`, logging, Hub pushes.
What changes, and why:

* the loss. TRL 1.16 computes its loss from a fused LM head (`add_fused_lm_head`: per-token log-probs, never
  logits), summed over tokens. PoFT needs a mean per sample, so compute_loss runs poft's own forward
  (`poft.training.objective_inputs`: log p of the labelled tokens, lm head in chunks) and `poft.losses`.
* the aligned score column. TRL keeps only `input_ids`, `labels`, `seq_lengths` (`_set_signature_columns_if_needed`)
  and its collator drops every other key: the column is kept, and a wrapping collator adds `aligned_scores` [B].
* gradient accumulation. PoFT's loss is a mean over samples: each micro-batch's mean is scaled to its share of the
  optimizer step's samples (all accumulation steps and ranks), as poft's own trainer does, so 2 x 4 = batch 8.
* padding-free rows. With `padding_free=True` TRL puts the whole micro-batch in one row, samples starting where
  `position_ids == 0`; a sample's first token is never a target there (the previous sample's last token would
  predict it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import trl
from packaging.version import Version
from trl import SFTConfig, SFTTrainer

from .batches import never_targets
from .chat import IGNORE_INDEX
from .losses import poft_objective
from .scoring import read_scores
from .training import TARGET_TOKENS, StepShare, TrainSpec, objective_inputs

log = logging.getLogger(__name__)

# Written against TRL 1.16's SFTTrainer (its fused-LM-head loss, its collator and metrics), the floor pyproject.toml
# sets; an environment installed otherwise gets this error rather than a subclass of a trainer it does not fit.
MIN_TRL = "1.16"
if Version(trl.__version__) < Version(MIN_TRL):
    raise ImportError(f"poft.trl needs trl>={MIN_TRL}, found {trl.__version__}: pip install -U 'trl>={MIN_TRL}'")


@dataclass
class PoFTConfig(SFTConfig):
    """`trl.SFTConfig` plus PoFT's options (defaults: the paper's beta=1, gamma=0, response tokens)."""

    beta: float = field(default=1.0, metadata={"help": "PoFT: scale of the margin r_theta - mean_j r_j (paper: 1)"})
    gamma: float = field(default=0.0, metadata={"help": "PoFT: offset added to the margin (paper: 0)"})
    aligned_score_column: str = field(
        default="aligned_score",
        metadata={"help": "dataset column holding each sample's mean aligned score (attach_scores writes it)"})
    target_tokens: str = field(
        default="response",
        metadata={"help": "tokens r_theta averages over: response (the labelled tokens, the paper's equation) | "
                          "full_sequence (every non-pad token but each sample's first: the released code's quirk)"})

    def __post_init__(self):
        # PoFT's own options first: their errors should not hide behind TRL's (e.g. bf16 on a CPU-only machine).
        if self.target_tokens not in TARGET_TOKENS:
            raise ValueError(f"PoFTConfig.target_tokens {self.target_tokens!r}; valid: {', '.join(TARGET_TOKENS)}")
        for name in ("beta", "gamma"):
            if not isinstance(getattr(self, name), (int, float)) or not math.isfinite(getattr(self, name)):
                raise ValueError(f"PoFTConfig.{name} must be a finite number, got {getattr(self, name)!r}")
        # Options whose only effect is on TRL's own loss, which PoFT replaces: refused rather than silently ignored.
        if self.loss_type not in ("nll", "chunked_nll"):
            raise ValueError(f"PoFTConfig.loss_type {self.loss_type!r}: PoFT replaces TRL's loss; leave it 'nll'")
        if self.label_smoothing_factor:
            raise ValueError("PoFTConfig.label_smoothing_factor: PoFT replaces TRL's loss; leave it 0")
        super().__post_init__()


# ---------------------------------------------------------------------------------------------------------
# Scores onto a dataset
# ---------------------------------------------------------------------------------------------------------


def attach_scores(dataset, scores_path: str | Path, column: str = "aligned_score", drop_unscored: bool = False,
                  id_column: str = "id"):
    """`dataset` (a `datasets.Dataset` with an `id_column`) with `column` added: each row's mean aligned score `score`
    from a poft merged score file (`poft merge-scores`; read with `poft.scoring.read_scores`).

    An id with no row in the file, or a null score (an aligned model could not score the sample), is an error naming
    the id and the file. drop_unscored=True drops null-score rows instead (ids missing from the file stay an error:
    they mean the file scores other data); the count is in the returned dataset's `info.description`, and logged.
    """
    if id_column not in dataset.column_names:
        raise KeyError(f"attach_scores: the dataset has no {id_column!r} column (columns: "
                       f"{', '.join(dataset.column_names)}); the scores in {scores_path} are matched by id")
    if column in dataset.column_names:
        raise ValueError(f"attach_scores: the dataset already has a {column!r} column")
    by_id = {r["id"]: r["score"] for r in read_scores(scores_path)["rows"]}
    scores, unscored = [], []
    for i in dataset[id_column]:
        if i not in by_id:
            raise KeyError(f"attach_scores: sample id {i!r} has no row in {scores_path}; score this dataset "
                           "(poft score, poft merge-scores) or pass the matching file")
        if by_id[i] is None:
            if not drop_unscored:
                raise ValueError(f"attach_scores: sample id {i!r} has a null score in {scores_path} (an aligned "
                                 "model could not score it); pass drop_unscored=True to drop such samples")
            unscored.append(i)
        scores.append(by_id[i])
    dataset = dataset.add_column(column, scores)
    if unscored:
        dropped = set(unscored)
        dataset = dataset.filter(lambda row: row[id_column] not in dropped)
        log.warning("attach_scores: dropped %d samples with a null score in %s (first: %s)",
                    len(unscored), scores_path, ", ".join(map(repr, unscored[:5])))
    dataset.info.description = f"attach_scores: {len(unscored)} unscored samples dropped from {scores_path}"
    return dataset


# ---------------------------------------------------------------------------------------------------------
# Collator and batches
# ---------------------------------------------------------------------------------------------------------


@dataclass
class AlignedScoreCollator:
    """TRL's collator (any layout), plus the examples' aligned scores as `aligned_scores` [B] float32."""

    collator: Callable[[list[dict]], dict]
    column: str = "aligned_score"

    def __call__(self, examples: list[dict[str, Any]]) -> dict:
        if self.column not in examples[0]:
            raise KeyError(f"PoFT: a training example has no {self.column!r} column (keys: "
                           f"{', '.join(examples[0])}); add it with poft.trl.attach_scores")
        scores = [e[self.column] for e in examples]
        batch = self.collator([{k: v for k, v in e.items() if k != self.column} for e in examples])
        batch["aligned_scores"] = torch.tensor(scores, dtype=torch.float32)
        return batch


def sample_index(batch: dict) -> torch.Tensor:
    """[R, W]: which sample of the batch each token belongs to, -1 on padding (poft.batches' layout).

    Padded (an attention mask): one sample per row. Padding-free (TRL: one row, no mask): a sample starts wherever
    `position_ids` is 0; tokens past the batch's samples (padding to a multiple) are -1.
    """
    n = batch["aligned_scores"].shape[0]
    if "attention_mask" in batch:
        rows = torch.arange(batch["input_ids"].shape[0], device=batch["input_ids"].device)[:, None]
        return rows.expand_as(batch["input_ids"]).masked_fill(batch["attention_mask"] == 0, -1)
    if "position_ids" not in batch:
        raise ValueError("PoFT: a batch with neither attention_mask nor position_ids; cannot tell samples apart")
    starts = (batch["position_ids"] == 0).long()
    index = starts.flatten().cumsum(0).view_as(starts) - 1  # samples continue across rows, in order
    return index.masked_fill(index >= n, -1)


def poft_batch(inputs: dict) -> dict:
    """TRL's batch in poft.batches' layout: `sample_index` added, and each sample's first token never a target (in a
    padding-free row the previous sample's last token would predict it; TRL's collator masks it, other may not)."""
    index = sample_index(inputs)
    labels = inputs["labels"].masked_fill(never_targets(index), IGNORE_INDEX)
    batch = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    return {**batch, "labels": labels, "sample_index": index, "aligned_scores": inputs["aligned_scores"]}


# ---------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------


def _check_scores(dataset, column: str, name: str) -> None:
    """Every sample has a finite aligned score: a NaN would train silently on a NaN loss."""
    if dataset is None or not hasattr(dataset, "column_names") or dataset.column_names is None:
        return  # an IterableDataset: the collator checks the column batch by batch
    if column not in dataset.column_names:
        raise KeyError(f"PoFT: the {name} dataset has no {column!r} column (columns: {', '.join(dataset.column_names)}); "
                       "add it with poft.trl.attach_scores, or set PoFTConfig.aligned_score_column")
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        for k, s in enumerate(dataset[column]):
            if s is None or not math.isfinite(s):
                raise ValueError(f"PoFT: {name} dataset row {k}: column {column!r} is {s!r}; every sample needs a "
                                 "finite aligned score (attach_scores(..., drop_unscored=True) drops unscored ones)")


class PoFTTrainer(StepShare, SFTTrainer):
    """`trl.SFTTrainer` whose loss is PoFT's: -mean_b log sigmoid(beta * (r_theta - aligned score) + gamma). Its
    mean is over samples, scaled to each micro-batch's share of the optimizer step's (poft.training.StepShare)."""

    samples_key = "aligned_scores"  # one per sample, from AlignedScoreCollator

    def __init__(self, model=None, args: PoFTConfig | None = None, **kwargs):
        if not isinstance(args, PoFTConfig):
            raise TypeError(f"PoFTTrainer needs args=PoFTConfig(...), got {type(args).__name__}")
        if args.packing:
            raise ValueError("PoFTConfig.packing: packing merges (and may split) samples, PoFT needs one aligned score "
                             "per sample; use padding_free=True for padding-free batches instead")
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("PoFTTrainer: compute_loss_func would be ignored, PoFT's loss replaces it")
        column = args.aligned_score_column
        _check_scores(kwargs.get("train_dataset"), column, "train")
        eval_sets = kwargs.get("eval_dataset")
        for name, ds in (eval_sets.items() if isinstance(eval_sets, dict) else [("eval", eval_sets)]):
            _check_scores(ds, column, name)
        super().__init__(model=model, args=args, **kwargs)
        # TRL builds its collator in __init__ (and refuses a custom one with padding_free): wrap whichever it uses.
        self.data_collator = AlignedScoreCollator(self.data_collator, column)

    def _set_signature_columns_if_needed(self):
        # Trainer drops dataset columns outside this list (remove_unused_columns); the scores must reach the collator.
        super()._set_signature_columns_if_needed()
        if self.args.aligned_score_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.args.aligned_score_column]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        batch = poft_batch(inputs)
        spec = TrainSpec(loss="poft", beta=self.args.beta, gamma=self.args.gamma, target_tokens=self.args.target_tokens,
                         # FSDP: the lm head cannot be called outside the wrapped forward; take the full logits.
                         chunked_lm_head=not self.is_fsdp_enabled)
        values = objective_inputs(model, self.accelerator.unwrap_model(model), batch, spec)
        n = batch["aligned_scores"].shape[0]
        if values.n_samples != n:
            raise ValueError(f"PoFT: the batch holds {values.n_samples} samples but {n} aligned scores")
        # A sample without target tokens has no r_theta: its NaN would reach the weights through the mean.
        empty = int((torch.bincount(values.policy_index, minlength=n) == 0).sum())
        if empty:
            raise ValueError(f"PoFT: {empty} of the batch's {n} samples have no target token (all cut by truncation, "
                             "or no assistant turn): r_theta is undefined for them")
        loss, metrics = poft_objective(values, spec.beta, spec.gamma)
        if mode == "train":
            loss = loss * self.step_share("samples", n)
        for k, v in metrics.items():  # TRL's log() averages these over the steps since the last log line
            self._metrics[mode][k].append(self.accelerator.gather_for_metrics(v.detach()[None]).mean().item())
        if mode == "train":
            tokens = (batch["sample_index"] >= 0).sum()
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(tokens[None]).sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, None) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # PoFT's evaluation is its loss; TRL's would recompute full logits for compute_metrics, which PoFT has no use
        # for (and the [B, L, V] tensor is what the chunked head avoids).
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
