"""Micro base models: two architectures of the promised size, and pretraining that learns."""

import pytest
import torch

from poft.micro.models import ARCHS, PretrainSpec, build_model, n_parameters, pack_corpus, pretrain
from poft.micro.tokenizers import train_tokenizer

LINES = [f"{a} plus {b} is {a + b}." for a in range(10) for b in range(10)] * 3


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_sizes_and_determinism(arch):
    a, b = build_model(arch, 600, seed=3), build_model(arch, 600, seed=3)
    assert 600_000 <= n_parameters(a) <= 1_000_000  # ~0.8M: the size ~400 CPU steps can teach the world (models.py)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert type(a).__name__ == {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[arch]


def test_unknown_arch_lists_valid():
    with pytest.raises(KeyError, match="unknown micro architecture 'gpt2'; valid: llama, qwen2"):
        build_model("gpt2", 100, 0)


def test_pack_corpus_blocks_and_eos():
    tok = train_tokenizer(LINES, "chatml", 300)
    blocks = pack_corpus(tok, LINES[:10], 16)
    stream = sum((tok(line, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for line in LINES[:10]), [])
    assert blocks.shape == (len(stream) // 16, 16)
    assert blocks.flatten().tolist() == stream[: blocks.numel()]


def test_pretraining_lowers_loss():
    tok = train_tokenizer(LINES, "llama3", 300)
    model = build_model("llama", len(tok), seed=0, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    stats = pretrain(model, tok, LINES, PretrainSpec(steps=40, seq_len=32, batch_size=8, warmup_steps=5))
    assert stats["loss_last"] < stats["loss_first"] - 1.0
