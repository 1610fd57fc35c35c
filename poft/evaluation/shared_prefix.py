"""lm-eval's HF model with each multiple-choice context computed once, whatever the number of choices.

lm-eval's `HFLM` scores a multiple-choice item's k choices as k full sequences, context included; it shares work
only when every continuation is a single token. `SharedPrefixHFLM` ("poft-hf", poft's `hf` backend) runs each
distinct context once, keeps its key/value cache, and runs only the continuations against copies of it. Same
requests, same answers (log-likelihood sums and is-greedy flags, within float rounding; tests compare it with
`HFLM` on three chat templates), less compute: on the micro suite the continuations are ~45% of the tokens
lm-eval's way; on ARC- or HellaSwag-like items, with long contexts and short endings, far less.

A batch holds at most `batch_size` requests, as HFLM's does. The context pass is left-padded and asks the model
for the last position's logits only (`logits_to_keep`), so the LM head never runs over context positions. What
this path does not cover goes to `HFLM` unchanged: seq2seq models, `batch_size: auto`, a model split over
several devices (`parallelize=True`), an attention
implementation other than sdpa and eager, caches other than plain per-layer key/value ones (sliding windows,
recurrent state), models without `logits_to_keep`, and requests longer than the model's context (lm-eval
truncates those from the left, which changes the context).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

Request = tuple[tuple[str, str], list[int], list[int]]


def plan_batches(context_lengths: list[int], continuation_lengths: list[list[int]], batch_size: int
                 ) -> list[list[int]]:
    """Group indices in batches of whole groups holding at most `batch_size` requests (a larger group alone).
    Longest continuation first, then longest context: the continuation pass, which pads every row of a batch to
    its longest continuation, is most of the work."""
    order = sorted(range(len(context_lengths)),
                   key=lambda g: (-max(continuation_lengths[g]), -context_lengths[g]))
    batches: list[list[int]] = []
    size = 0
    for g in order:
        count = len(continuation_lengths[g])
        if not batches or size + count > batch_size:
            batches.append([])
            size = 0
        batches[-1].append(g)
        size += count
    return batches


@register_model("poft-hf")
class SharedPrefixHFLM(HFLM):
    def _shares_contexts(self) -> bool:
        """Whether this model takes the shared-context path; what does not is in the module's docstring (a model
        split over devices, because one layer's cache copies would index tensors on another device)."""
        model = self.model
        config = model.config
        return (self.backend == "causal" and isinstance(self.batch_size, int)
                and len(set(getattr(model, "hf_device_map", {}).values())) <= 1
                and config._attn_implementation in ("sdpa", "eager")
                and not getattr(config, "sliding_window", None)
                and set(getattr(config, "layer_types", None) or ["full_attention"]) == {"full_attention"}
                and "logits_to_keep" in inspect.signature(model.forward).parameters)

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        if not self._shares_contexts():
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        groups: dict[tuple[int, ...], list[int]] = {}
        too_long = []  # lm-eval truncates these from the left, which changes their context: its own path
        for i, (_, ctx, cont) in enumerate(requests):
            if len(ctx) + len(cont) > self.max_length + 1:
                too_long.append(i)
            else:
                groups.setdefault(tuple(ctx), []).append(i)
        if too_long:
            scored = super()._loglikelihood_tokens([requests[i] for i in too_long], disable_tqdm, override_bs)
            for i, answer in zip(too_long, scored):
                answers[i] = answer
        contexts, members = list(groups), list(groups.values())
        for batch in plan_batches([len(c) for c in contexts], [[len(requests[i][2]) for i in m] for m in members],
                                  int(override_bs or self.batch_size)):
            scored = self._score_batch([contexts[g] for g in batch],
                                       [[requests[i][2] for i in members[g]] for g in batch])
            for i, answer in zip((i for g in batch for i in members[g]), scored):
                answers[i] = answer
                if requests[i][0] is not None:  # loglikelihood_rolling's windows carry no cache key
                    self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
        return answers

    @torch.no_grad()
    def _score_batch(self, contexts: list[tuple[int, ...]], continuations: list[list[list[int]]]
                     ) -> list[tuple[float, bool]]:
        """(log-likelihood sum, is greedy) of each context's continuations, in order: the contexts run once,
        left-padded; each continuation but its last token runs against a copy of its context's cache."""
        device, pad = self.device, 0  # pad ids are masked out and never scored
        width = max(map(len, contexts))
        ids = torch.full((len(contexts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, ctx in enumerate(contexts):
            ids[row, width - len(ctx):] = torch.tensor(ctx)
            mask[row, width - len(ctx):] = 1
        ids, mask = ids.to(device), mask.to(device)
        with self._autocast():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                             use_cache=True, logits_to_keep=1)
        first = F.log_softmax(out.logits[:, -1], dim=-1, dtype=self.softmax_dtype)  # predicts each cont's token 0

        conts = [cont for group in continuations for cont in group]
        owner = torch.tensor([g for g, group in enumerate(continuations) for _ in group], device=device)
        width_cont = max(map(len, conts))
        target = torch.full((len(conts), width_cont), pad, dtype=torch.long)
        scored = torch.zeros((len(conts), width_cont), dtype=torch.bool)
        for row, cont in enumerate(conts):
            target[row, : len(cont)] = torch.tensor(cont)
            scored[row, : len(cont)] = True
        target, scored = target.to(device), scored.to(device)
        logprobs = first[owner][:, None]  # [rows, 1, vocab]
        if width_cont > 1:  # the last token is scored, never fed
            cache = getattr(out, "cache", None) or out.past_key_values
            cache.batch_select_indices(owner)
            feed, feed_mask = target[:, :-1], scored[:, :-1].long()
            with self._autocast():
                logits = self.model(input_ids=feed, attention_mask=torch.cat([mask[owner], feed_mask], dim=1),
                                    position_ids=mask.sum(-1)[owner][:, None] + torch.arange(width_cont - 1,
                                                                                            device=device),
                                    use_cache=True, **{self._cache_argument(): cache}).logits
            logprobs = torch.cat([logprobs, F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)], dim=1)
        token = logprobs.gather(-1, target[..., None])[..., 0].masked_fill(~scored, 0.0)
        greedy = ((logprobs.argmax(-1) == target) | ~scored).all(-1)
        return list(zip(token.sum(-1).tolist(), greedy.tolist()))

    def _cache_argument(self) -> str:
        """transformers 5 calls the cache `cache`; 4.x `past_key_values` (5 still takes it, with a warning)."""
        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                              enabled=self.mixed_precision_dtype is not None)
