"""Render conversations with a model's OWN chat template and label its assistant turns.

Every model in a PoFT run — the target and each aligned LLM — sees a conversation through its own template
and tokenizer, so no token ids are hard-coded here. Labels cover every assistant turn's content plus the
end-of-turn marker that follows it (``<|im_end|>``, ``<|eot_id|>``, ``</s>``…): the model must learn to stop.
Template text (role headers, system and user turns) is never labelled.

The labelled character spans are found without ``{% generation %}`` markers, which most templates lack:
  1. render the whole conversation once (``text``);
  2. for assistant turn i, the render of messages[:i] with the generation prompt must be a prefix of
     ``text``, and the turn's content must start right where it ends (up to whitespace the template adds or
     trims); anything else is a ChatTemplateError naming the turn — the content is never searched for, since
     a later turn can repeat it (a user quoting the reply) and labelling that would corrupt every score;
  3. the end-of-turn marker is the text after the content up to and including the first special token.
Tokens whose character span overlaps a labelled span are labelled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

IGNORE_INDEX = -100


class ChatTemplateError(ValueError):
    """A template that cannot be used for training: no template, or no end-of-turn marker."""


@dataclass
class TokenizedChat:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX outside assistant turns
    truncated: bool  # cut to max_length
    n_label_tokens: int  # labelled tokens kept after truncation


@dataclass
class TokenizationReport:
    """Counts that travel with any tokenized dataset, so that no cut or dropped sample goes unseen."""

    n_samples: int = 0
    n_truncated: int = 0  # longer than max_length, cut on the right
    n_no_labels: int = 0  # nothing left to learn or score after the cut
    truncated_ids: list[str] = field(default_factory=list)

    def add(self, sample_id: str, tok: TokenizedChat) -> None:
        self.n_samples += 1
        if tok.truncated:
            self.n_truncated += 1
            if len(self.truncated_ids) < 50:
                self.truncated_ids.append(sample_id)
        if tok.n_label_tokens == 0:
            self.n_no_labels += 1

    def to_dict(self) -> dict:
        return {
            "n_samples": self.n_samples,
            "n_truncated": self.n_truncated,
            "n_no_labels": self.n_no_labels,
            "truncated_ids_first_50": self.truncated_ids,
        }


def template_hash(tokenizer) -> str:
    """Identifies the template in score metadata: a changed template means stale scores."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else repr(tokenizer.chat_template)
    return hashlib.sha256((template or "").encode()).hexdigest()[:16]


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    if not tokenizer.chat_template:
        raise ChatTemplateError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat_template (base models ship none); name one with "
            "--chat-template NAME_OR_FILE, or `chat_template:` on the model in the DAG config (see poft.templates)"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


@lru_cache(maxsize=64)
def _special_strings(tokenizer) -> tuple[str, ...]:
    """All special / added token strings, longest first (so '<|im_end|>' wins over a shorter overlap)."""
    strings = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    return tuple(sorted((s for s in strings if s), key=len, reverse=True))


@lru_cache(maxsize=64)
def _adds_bos(tokenizer) -> bool:
    """Does the tokenizer put BOS in front by itself (as Llama/Mistral tokenizers do)?"""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == tokenizer.bos_token_id


def _with_bos(tokenizer, ids: list[int], offsets: list | None = None) -> None:
    """BOS exactly once: templates that render bos_token already carry it; otherwise add it where the
    tokenizer would have (never both, which silently shifts every Llama-style model off-distribution)."""
    if _adds_bos(tokenizer) and not (ids and ids[0] == tokenizer.bos_token_id):
        ids.insert(0, tokenizer.bos_token_id)
        if offsets is not None:
            offsets.insert(0, (0, 0))


def _end_of_turn(tokenizer, text: str, start: int, stop: int) -> int:
    """Index just past the first special token in text[start:stop] — the assistant's end-of-turn marker."""
    window = text[start:stop]
    best = None
    for s in _special_strings(tokenizer):
        pos = window.find(s)
        if pos >= 0 and (best is None or pos < best[0]):
            best = (pos, len(s))
    if best is None:
        raise ChatTemplateError(
            f"chat template of {tokenizer.name_or_path!r} puts no special token after an assistant turn "
            f"(found {window!r}); the model could never learn to stop. Add the EOS/end-of-turn token to the template."
        )
    return start + best[0] + best[1]


def _reply_start(text: str, prompt: str, content: str, turn: int, name: str) -> tuple[int, int]:
    """[start, end) of assistant turn `turn`'s content in `text`, which must begin right where the rendered
    prompt (history + generation prompt) ends, up to whitespace that the template adds or trims.

    Never a search: a reply found anywhere later (say, inside the next user turn, which can repeat its words)
    would label the user's text and leave the reply unlabelled, silently corrupting every score.
    """
    if text.startswith(prompt):
        cut = len(prompt)
    elif text.startswith(prompt.rstrip()):  # the generation prompt ends in whitespace the turn does not repeat
        cut = len(prompt.rstrip())
    else:
        raise ChatTemplateError(
            f"assistant turn {turn}: the rendering of {name!r}'s chat template up to this turn (with its generation "
            "prompt) is not a prefix of the whole conversation's rendering, so the reply cannot be located"
        )
    if content and text.startswith(content, cut):
        return cut, cut + len(content)
    start = cut + len(text[cut:]) - len(text[cut:].lstrip())  # templates that pad or `trim` content (Llama-3)
    stripped = content.strip()
    if stripped and text.startswith(stripped, start):
        return start, start + len(stripped)
    raise ChatTemplateError(
        f"assistant turn {turn}: its content does not start where {name!r}'s rendered prompt ends "
        f"(found {text[cut:cut + 40]!r}, expected {content[:40]!r}); a template must render the assistant's "
        "header as its generation prompt (add_generation_prompt), as generation needs it too"
    )


def assistant_char_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character spans to label (content + end-of-turn)."""
    text = render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(tokenizer, messages[:i], add_generation_prompt=True)
        start, end = _reply_start(text, prompt, message["content"], i, tokenizer.name_or_path)
        turn = render(tokenizer, messages[: i + 1])
        stop = len(turn) if text.startswith(turn) and len(turn) > end else len(text)
        spans.append((start, _end_of_turn(tokenizer, text, end, stop)))
    return text, spans


def end_of_turn_token(tokenizer) -> str:
    """The special token this template puts after an assistant turn (generation stops there)."""
    probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]
    text, spans = assistant_char_spans(tokenizer, probe)
    start, end = spans[0]
    return next(s for s in _special_strings(tokenizer) if text[start:end].endswith(s))


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the conversation so far plus the generation prompt, BOS exactly once."""
    ids = list(tokenizer(render(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"])
    _with_bos(tokenizer, ids)
    return ids


def tokenize_chat(tokenizer, messages: list[dict], max_length: int | None = None) -> TokenizedChat:
    """input_ids and labels for one conversation; labels only on assistant content + end-of-turn tokens."""
    text, spans = assistant_char_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    _with_bos(tokenizer, ids, offsets)
    labels = [IGNORE_INDEX] * len(ids)
    span_i = 0
    for t, (a, b) in enumerate(offsets):
        while span_i < len(spans) and spans[span_i][1] <= a:
            span_i += 1
        if span_i < len(spans) and b > a and a < spans[span_i][1] and b > spans[span_i][0]:
            labels[t] = ids[t]
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    # Position 0 is never predicted (no context), so a label there cannot count.
    n_label = sum(1 for t, lab in enumerate(labels) if lab != IGNORE_INDEX and t > 0)
    return TokenizedChat(ids, labels, truncated, n_label)


def response_only(tokenizer, chat: TokenizedChat) -> TokenizedChat:
    """The labelled tokens of `chat` (from `tokenize_chat`: every assistant turn's content and end-of-turn
    token, as far as max_length kept them), to score without instruction or template: the denominator of IFD.

    IFD (Li et al., 2024) compares the loss of the SAME response tokens with and without the instruction, so the
    ids are taken from the conversation's own tokenization rather than re-tokenizing the reply text (which
    drops the end-of-turn token and can merge the first token differently). They are conditioned on one
    document-start token only: BOS, or EOS for tokenizers without BOS (GPT-2 and Qwen use it as the boundary).
    """
    tokens = [lab for t, lab in enumerate(chat.labels) if lab != IGNORE_INDEX and t > 0]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise ChatTemplateError(f"tokenizer {tokenizer.name_or_path!r} has neither BOS nor EOS to condition the "
                                "response-alone score of IFD on")
    return TokenizedChat([start, *tokens], [IGNORE_INDEX, *tokens], chat.truncated, len(tokens))
