"""Batched greedy (or sampled) generation with a model's own chat template.

Prompts are left-padded so that every sequence's next token sits at the last position; generation stops at the
template's end-of-turn token or EOS. Settings are returned with the outputs so that they can be recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..chat import end_of_turn_token, prompt_ids
from ..scoring import pad_token_id


@dataclass
class GenerationSpec:
    max_new_tokens: int = 64
    batch_size: int = 32
    do_sample: bool = False  # greedy by default: evaluation must be reproducible
    temperature: float = 1.0
    seed: int = 0


@torch.no_grad()
def generate(model, tokenizer, conversations: list[list[dict]], spec: GenerationSpec | None = None) -> list[str]:
    """One response per conversation (each a list of messages ending with a user turn), in input order."""
    spec = spec or GenerationSpec()
    device = next(model.parameters()).device
    stops = sorted({tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer)), tokenizer.eos_token_id} - {None})
    pad = pad_token_id(tokenizer)
    encoded = [prompt_ids(tokenizer, msgs) for msgs in conversations]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    outputs: list[str] = [""] * len(encoded)
    torch.manual_seed(spec.seed)
    for start in range(0, len(order), spec.batch_size):
        batch = order[start : start + spec.batch_size]
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=spec.max_new_tokens,
            do_sample=spec.do_sample, temperature=spec.temperature if spec.do_sample else None,
            top_p=None, top_k=None, eos_token_id=stops, pad_token_id=pad,
        )
        for row, i in enumerate(batch):
            new = out[row, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in stops), len(new))
            outputs[i] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
    return outputs


def settings(spec: GenerationSpec) -> dict:
    return asdict(spec)
