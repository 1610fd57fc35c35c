"""Evaluation: generation with each model's chat template, lm-eval benchmarks, pairwise win rates."""
