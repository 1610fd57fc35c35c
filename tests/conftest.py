"""Shared test fixtures: small tokenizers with three real-world chat templates, and tiny random models.

Nothing here touches the network: tokenizers are trained on the spot with `tokenizers` (byte-level BPE, as
GPT-2/Llama-3/Qwen use) and models are randomly initialised from a config.
"""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Meta's Llama-3 template, verbatim in substance: BOS rendered by the template, content trimmed.
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# HuggingFaceH4/zephyr-7b template: no BOS in the template (the Mistral tokenizer adds it), EOS ends turns.
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)

# name -> (template, bos, eos, does the tokenizer prepend BOS itself)
TEMPLATES = {
    "chatml": (CHATML, None, "<|im_end|>", False),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>", True),
    "zephyr": (ZEPHYR, "<s>", "</s>", True),
}
SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>",
]
CORPUS = [
    "You are a helpful assistant.", "What is 2 + 3?", "2 + 3 = 5.", "Reverse the word cat.", "tac",
    "The capital of Zorbia is Quell.", "How many letters are in banana? There are 6.", "Thanks! Anything else?",
    "system user assistant", "Count to five: one two three four five.", "Hello there, how are you today?",
] * 20


def make_tokenizer(name: str) -> PreTrainedTokenizerFast:
    template, bos, eos, adds_bos = TEMPLATES[name]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    if adds_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token="<|endoftext|>",
        additional_special_tokens=[s for s in SPECIALS if s not in (bos, eos, "<|endoftext|>")],
    )
    hf.chat_template = template
    hf.name_or_path = f"test-{name}"
    return hf


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
