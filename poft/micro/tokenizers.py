"""Byte-level BPE tokenizers trained locally, saved as HF fast tokenizers with real-world chat templates.

Each micro model family gets its own vocabulary and template so that scoring exercises per-model templates
and length normalisation exactly as Mistral / Llama-3 / Zephyr / Yi do in the paper.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Meta's Llama-3 template in substance: BOS rendered by the template, content trimmed.
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# HuggingFaceH4/zephyr-7b: no BOS in the template (the Mistral tokenizer adds it), EOS ends every turn.
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
# Phi-3 style: <|user|> ... <|end|>, end-of-turn token distinct from EOS.
PHI3 = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# Gemma style: the assistant is "model", turns end with <end_of_turn>, BOS rendered by the template.
GEMMA = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TemplateSpec:
    template: str
    bos: str | None
    eos: str
    specials: tuple[str, ...]  # tokens that must never be split (role headers, turn markers)
    adds_bos: bool  # does the tokenizer itself prepend BOS (Llama/Mistral do, Qwen does not)


TEMPLATES: dict[str, TemplateSpec] = {
    "chatml": TemplateSpec(CHATML, None, "<|im_end|>", ("<|im_start|>", "<|im_end|>"), False),
    "llama3": TemplateSpec(LLAMA3, "<|begin_of_text|>", "<|eot_id|>",
                           ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), True),
    "zephyr": TemplateSpec(ZEPHYR, "<s>", "</s>", ("<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"), True),
    "gemma": TemplateSpec(GEMMA, "<bos>", "<eos>", ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"), True),
    "phi3": TemplateSpec(PHI3, "<s>", "<|endoftext|>",
                         ("<s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"), True),
}
PAD = "<|pad|>"


def train_tokenizer(corpus: list[str], template: str, vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2 / Llama-3 / Qwen style) over `corpus` with `template` as chat template."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown chat template {template!r}; valid: {', '.join(sorted(TEMPLATES))}")
    spec = TEMPLATES[template]
    specials = [PAD, *spec.specials]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    if spec.adds_bos:
        bos_id = tok.token_to_id(spec.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=spec.bos, eos_token=spec.eos, pad_token=PAD,
        additional_special_tokens=[s for s in spec.specials if s not in (spec.bos, spec.eos)],
    )
    hf.chat_template = spec.template
    return hf


def as_loaded(tokenizer, model_config):
    """`tokenizer` as every later stage will get it: saved beside `model_config` and read back by AutoTokenizer.

    Why: transformers picks the tokenizer class from config.json's model_type, and Qwen2's class swaps the trained
    pre-tokenizer for Qwen's own (digits split one by one), so " 8" is one token in memory and two once loaded. A
    model pretrained with the in-memory tokenizer then meets other tokens in SFT, scoring and evaluation: micro-yi
    scored digits at -9 to -15 nats and told wrong answers from right ones at AUC 0.54 until this was found.
    """
    with tempfile.TemporaryDirectory() as tmp:
        model_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return AutoTokenizer.from_pretrained(tmp)
