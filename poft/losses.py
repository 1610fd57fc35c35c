"""Training objectives as small pure tensor functions, and the registry that names them.

Shapes: B samples in a batch; N labelled tokens in it (flattened over the batch); M aligned LLMs.
All scores are mean per-token log-likelihoods (nats/token, <= 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


def sequence_mean(token_values: torch.Tensor, sample_index: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Mean of token_values [N] within each sample -> [B]. A sample with no tokens gets NaN (never silently 0)."""
    sums = token_values.new_zeros(n_samples).index_add(0, sample_index, token_values)
    counts = torch.bincount(sample_index, minlength=n_samples).to(token_values.dtype)
    return sums / counts


def _mean_aligned(aligned_scores: torch.Tensor) -> torch.Tensor:
    """[B] stays, [B, M] is averaged over the M aligned LLMs (one Bradley-Terry term, as in the paper)."""
    if aligned_scores.dim() == 2:
        return aligned_scores.mean(dim=-1)
    if aligned_scores.dim() == 1:
        return aligned_scores
    raise ValueError(f"aligned_scores must be [B] or [B, M], got shape {tuple(aligned_scores.shape)}")


def poft_loss(
    policy_scores: torch.Tensor, aligned_scores: torch.Tensor, beta: float = 1.0, gamma: float = 0.0
) -> torch.Tensor:
    """PoFT's Bradley-Terry loss (Fan et al. 2025, Eq. 5), batch mean:

        L = - mean_b log sigmoid( beta * (r_theta(x_b, y_b) - (1/M) sum_j r_j(x_b, y_b)) + gamma )

    policy_scores [B]: the target's mean response log-likelihood r_theta (carries the gradient).
    aligned_scores [B] or [B, M]: the aligned LLMs' fixed scores r_j. The paper has beta=1, gamma=0.
    logsigmoid keeps it finite at any margin. Gradient w.r.t. r_theta: -beta * sigmoid(-margin) / B (C11).
    """
    margin = beta * (policy_scores - _mean_aligned(aligned_scores)) + gamma
    return -F.logsigmoid(margin).mean()


def poft_weight(
    policy_scores: torch.Tensor, aligned_scores: torch.Tensor, beta: float = 1.0, gamma: float = 0.0
) -> torch.Tensor:
    """tau [B] = sigmoid(-(beta * (r_theta - mean_j r_j) + gamma)): the factor by which PoFT scales each sample's
    cross-entropy gradient (C11). With beta=1, gamma=0 it is sigmoid(mean_j r_j - r_theta)."""
    margin = beta * (policy_scores.detach() - _mean_aligned(aligned_scores)) + gamma
    return torch.sigmoid(-margin)


@dataclass
class ObjectiveInputs:
    """What every objective may use. Token tensors are flat over the batch."""

    response_logps: torch.Tensor  # [N] log p(token) of each labelled (assistant) token
    response_index: torch.Tensor  # [N] sample of each labelled token
    policy_logps: torch.Tensor  # [N'] tokens r_theta averages over: = response_* or every non-pad token
    policy_index: torch.Tensor  # [N']
    n_samples: int
    aligned_scores: torch.Tensor | None  # [B, M] or [B]; None when no scores are loaded (plain SFT)


def _diagnostics(inputs: ObjectiveInputs, beta: float, gamma: float) -> dict[str, torch.Tensor]:
    """Logged for every objective, so SFT and PoFT runs can be compared on the same axes."""
    policy = sequence_mean(inputs.policy_logps, inputs.policy_index, inputs.n_samples)
    out = {"ce": -inputs.response_logps.detach().mean(), "policy_score": policy.detach().mean()}
    if inputs.aligned_scores is not None:
        out["tau"] = poft_weight(policy, inputs.aligned_scores, beta, gamma).mean()
        out["aligned_score"] = _mean_aligned(inputs.aligned_scores).mean()
    return out


def sft_objective(inputs: ObjectiveInputs, beta: float = 1.0, gamma: float = 0.0):
    """Token-level cross-entropy over the assistant tokens of the batch (what SFTTrainer optimises)."""
    return -inputs.response_logps.mean(), _diagnostics(inputs, beta, gamma)


def poft_objective(inputs: ObjectiveInputs, beta: float = 1.0, gamma: float = 0.0):
    if inputs.aligned_scores is None:
        raise ValueError("the poft objective needs aligned scores: pass a merged score file")
    policy = sequence_mean(inputs.policy_logps, inputs.policy_index, inputs.n_samples)
    return poft_loss(policy, inputs.aligned_scores, beta, gamma), _diagnostics(inputs, beta, gamma)


def dft_objective(inputs: ObjectiveInputs, beta: float = 1.0, gamma: float = 0.0):
    """Dynamic Fine-Tuning (Wu et al. 2025, arXiv 2508.05629): each response token's cross-entropy scaled by the
    token's own probability, detached (sg),

        L = - (1/N) sum_t sg(p_theta(y_t | x, y_<t)) * log p_theta(y_t | x, y_<t)

    over the N response tokens (TRL's loss_type "dft" normalises the same way). A token-level weighting with no
    reference model, where PoFT weights whole samples by aligned models' scores: a baseline beside it."""
    logps = inputs.response_logps
    return -(logps.exp().detach() * logps).mean(), _diagnostics(inputs, beta, gamma)


Objective = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
LOSSES: dict[str, Objective] = {"sft": sft_objective, "poft": poft_objective, "dft": dft_objective}
# What each objective's value is a mean over: the trainer rescales a micro-batch's mean to a share of the whole
# optimizer step's (all accumulation steps, all ranks), so that batch 8 = 2 x 4 accumulated = 2 ranks x 4.
MEAN_OVER: dict[str, str] = {"sft": "tokens", "poft": "samples", "dft": "tokens"}


def get_objective(name: str) -> Objective:
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
