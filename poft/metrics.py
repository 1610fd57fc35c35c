"""Small statistics shared by the micro world's manifest and the report."""

from __future__ import annotations


def roc_auc(scores: list[float], positive: list[bool]) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties count 1/2.

    Computed from ranks (Mann-Whitney U) in O(n log n). Here "positive" is a clean sample and the score is the
    mean aligned log-likelihood: 1.0 means the aligned models rank every clean sample above every flawed one.
    """
    if len(scores) != len(positive):
        raise ValueError(f"{len(scores)} scores but {len(positive)} labels")
    n_pos = sum(positive)
    n_neg = len(scores) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes, got {n_pos} positive and {n_neg} negative")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, p in zip(ranks, positive) if p)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
