"""The micro world: an offline, CPU-sized replica of the paper's experiment in which PoFT can act for real.

A generated world (facts, arithmetic, words) with exactly checkable tasks; tokenizers trained here; base models
pretrained from scratch on prose about the world; aligned models trained on clean instruction data; SFT sets
of uneven quality; held-out benchmarks. `poft micro build --out DIR` makes all of it.
"""
