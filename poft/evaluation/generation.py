"""Batched greedy (or sampled) generation with a model's own chat template.

Prompts are left-padded so that every sequence's next token sits at the last position; generation stops at the
template's end-of-turn token or EOS. Settings are returned with the outputs so that they can be recorded.

Sampling is reproducible: every (prompt, sample) row draws its uniforms from its own torch.Generator, seeded by
(seed, prompt index, sample index), so that the same seed and prompts give the same replies whatever the batch
size or the rows a batch shares. (The logits themselves may differ by float noise between batch shapes, as
greedy decoding's do; on CPU in float32 the tests find no difference.)
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch
from transformers import LogitsProcessor

from ..chat import end_of_turn_token, prompt_ids
from ..scoring import pad_token_id


@dataclass
class GenerationSpec:
    max_new_tokens: int = 64
    batch_size: int = 32
    do_sample: bool = False  # greedy by default: evaluation must be reproducible
    temperature: float = 1.0
    seed: int = 0
    samples_per_prompt: int = 1  # replies per prompt (chat benchmarks: sample as deployed models are used)

    def __post_init__(self) -> None:
        if self.samples_per_prompt < 1:
            raise ValueError(f"generation option 'samples_per_prompt': expected >= 1, got {self.samples_per_prompt}")
        if self.samples_per_prompt > 1 and not self.do_sample:
            raise ValueError("generation option 'samples_per_prompt': more than 1 needs do_sample: true "
                             "(greedy replies to one prompt are all the same)")


def row_seed(seed: int, prompt: int, sample: int) -> int:
    """The seed of one (prompt, sample) row's random stream: a hash, so that nearby seeds give unrelated streams."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{prompt}:{sample}".encode()).digest()[:8], "little")


class RowSampler(LogitsProcessor):
    """Samples each row's next token from softmax(scores / temperature) by inverting its CDF at the row's own
    uniform for this step, and masks every other token, so that the greedy step after it emits the sample.

    The uniforms (one per row and new token) are drawn up front, each row from its own seeded generator: HF's own
    sampling draws from the global RNG for the whole batch at once, so a row's reply would depend on its batch
    mates. One vectorised draw per step: a torch.multinomial per row and step cost ~30% of the micro suite's
    sampled generation."""

    def __init__(self, generators: list[torch.Generator], temperature: float, steps: int, prompt_width: int,
                 device: torch.device | str = "cpu"):
        draws = [torch.rand(steps, generator=g, dtype=torch.float64) for g in generators]  # CPU generators
        self.uniforms = torch.stack(draws).to(device)  # moved once, not at every step
        self.temperature, self.prompt_width = temperature, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_width  # the same for every row: prompts are left-padded
        cdf = torch.softmax(scores.double() / self.temperature, dim=-1).cumsum(-1)  # [B, V]
        u = self.uniforms[:, step : step + 1] * cdf[:, -1:]  # [B, 1], scaled: cdf[-1] may be 1 - eps
        picks = torch.searchsorted(cdf, u, right=True).clamp_(max=scores.shape[-1] - 1)  # first token with cdf > u
        return torch.full_like(scores, float("-inf")).scatter(-1, picks, 0.0)


@torch.no_grad()
def generate(model, tokenizer, conversations: list[list[dict]], spec: GenerationSpec | None = None) -> list[str]:
    """spec.samples_per_prompt responses per conversation (each a list of messages ending with a user turn),
    prompt-major: reply k of conversation i is at i * samples_per_prompt + k (one per conversation by default)."""
    spec = spec or GenerationSpec()
    device = next(model.parameters()).device
    stops = sorted({tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer)), tokenizer.eos_token_id} - {None})
    pad = pad_token_id(tokenizer)
    encoded = [prompt_ids(tokenizer, msgs) for msgs in conversations]
    rows = [(i, k) for i in range(len(encoded)) for k in range(spec.samples_per_prompt)]
    order = sorted(range(len(rows)), key=lambda r: -len(encoded[rows[r][0]]))  # similar lengths share a batch
    outputs: list[str] = [""] * len(rows)
    for start in range(0, len(order), spec.batch_size):
        batch = order[start : start + spec.batch_size]
        prompts = [encoded[rows[r][0]] for r in batch]
        width = max(map(len, prompts))
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p)
            mask[row, width - len(p) :] = 1
        sampler = [RowSampler([torch.Generator().manual_seed(row_seed(spec.seed, *rows[r])) for r in batch],
                              spec.temperature, spec.max_new_tokens, width, device)] if spec.do_sample else []
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=spec.max_new_tokens,
            do_sample=False, logits_processor=sampler, temperature=None, top_p=None, top_k=None,
            eos_token_id=stops, pad_token_id=pad,
        )
        for row, r in enumerate(batch):
            new = out[row, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in stops), len(new))
            outputs[r] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
    return outputs


def settings(spec: GenerationSpec) -> dict:
    return asdict(spec)
