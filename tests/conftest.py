"""Shared test fixtures: small tokenizers with real-world chat templates, and tiny random models.

Nothing here touches the network: tokenizers are trained on the spot with `tokenizers` (byte-level BPE, as
GPT-2/Llama-3/Qwen use) and models are randomly initialised from a config.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from poft.micro.tokenizers import TEMPLATES, train_tokenizer

CORPUS = [
    "You are a helpful assistant.", "What is 2 + 3?", "2 + 3 = 5.", "Reverse the word cat.", "tac",
    "The capital of Zorbia is Quell.", "How many letters are in banana? There are 6.", "Thanks! Anything else?",
    "system user assistant", "Count to five: one two three four five.", "Hello there, how are you today?",
] * 20


def make_tokenizer(name: str) -> PreTrainedTokenizerFast:
    tok = train_tokenizer(CORPUS, name, vocab_size=400)
    tok.name_or_path = f"test-{name}"
    return tok


def tiny_llama(vocab_size: int, seed: int = 0, hidden: int = 32, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(params=sorted(TEMPLATES))
def any_tokenizer(request) -> PreTrainedTokenizerFast:
    return make_tokenizer(request.param)


@pytest.fixture
def chatml_tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer("chatml")


@pytest.fixture
def conversation() -> list[dict]:
    """A system turn and two assistant turns, with a reply that collides with a role name."""
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
        {"role": "user", "content": "Name the role you play, in one word."},
        {"role": "assistant", "content": "assistant"},
    ]
