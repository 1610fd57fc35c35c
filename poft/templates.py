"""Chat templates by name, for models that ship none: base models such as Mistral-7B-v0.1 render no
conversation until one is set, as the alignment-handbook recipes (`chat_template:`) and open-instruct's template
registry do.

    resolve_chat_template("zephyr")                  -> the Jinja string
    resolve_chat_template("templates/mine.jinja")    -> that file's text
    apply_chat_template(tokenizer, "zephyr")         # sets tokenizer.chat_template; None keeps the model's own

A model entry of the DAG config names one (`chat_template: NAME_OR_FILE`) and every verb that renders
conversations takes `--chat-template NAME_OR_FILE`. Training saves the tokenizer with the template in each
checkpoint, so later stages that load a checkpoint get it without the flag. Nothing here vouches for a
template: `poft.chat` still refuses one that puts no special token after an assistant turn.
"""

from __future__ import annotations

from pathlib import Path

from .chat import template_hash

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
# The alignment-handbook's DEFAULT_CHAT_TEMPLATE (src/alignment/data.py), which its zephyr-7b-beta SFT recipes and
# the released PoFT recipe (Savannah120/alignment-handbook-PoFT, recipes/zephyr-7b-beta/sft/config_full_poft.yaml)
# set on Mistral-7B-v0.1. No BOS in the template (the Mistral tokenizer adds it), EOS ends every turn.
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
# Mistral-7B-Instruct's [INST] format: BOS rendered by the template, no system role, roles must alternate.
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
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

CHAT_TEMPLATES: dict[str, str] = {"chatml": CHATML, "gemma": GEMMA, "llama3": LLAMA3, "mistral": MISTRAL,
                                  "phi3": PHI3, "zephyr": ZEPHYR}
TEMPLATE_SUFFIXES = (".jinja", ".j2")


def template_file(value: str) -> Path | None:
    """The file `value` names (a Jinja file, existing or not), or None when it is a registry name."""
    if value in CHAT_TEMPLATES:
        return None
    path = Path(value)
    return path if path.suffix in TEMPLATE_SUFFIXES or path.is_file() else None


def resolve_chat_template(value: str) -> str:
    """The Jinja text of a registry name or of a template file; unknown names fail with the valid list."""
    if value in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[value]
    path = template_file(value)
    if path is None:
        raise KeyError(f"unknown chat template {value!r}; valid: {', '.join(sorted(CHAT_TEMPLATES))}, "
                       f"or the path of a Jinja file")
    if not path.is_file():
        raise FileNotFoundError(f"chat template file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"chat template file {path} is empty")
    return text


def apply_chat_template(tokenizer, value: str | None):
    """Set `tokenizer`'s chat template to `value` (a registry name or a file); None keeps the model's own."""
    if value is not None:
        tokenizer.chat_template = resolve_chat_template(value)
    return tokenizer


def template_record(tokenizer, value: str | None) -> dict:
    """What a run records about its template: where it came from (None: the model's own) and its hash."""
    return {"source": value, "hash": template_hash(tokenizer)}
