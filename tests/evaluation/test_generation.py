"""Batched, left-padded generation gives what one-at-a-time generation gives, and stops at end of turn."""

import pytest
import torch
from conftest import make_tokenizer, tiny_llama

from poft.chat import end_of_turn_token, prompt_ids
from poft.evaluation.generation import GenerationSpec, generate

PROMPTS = [
    [{"role": "user", "content": "What is 2 + 3?"}],
    [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Reverse the word cat."}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there."}, {"role": "user", "content": "Count to five."}],
]


@pytest.mark.parametrize("name", ["llama3", "chatml", "gemma"])
def test_batched_equals_single(name):
    tok = make_tokenizer(name)
    model = tiny_llama(len(tok), seed=5)
    spec = GenerationSpec(max_new_tokens=8, batch_size=3)
    batched = generate(model, tok, PROMPTS, spec)
    single = [generate(model, tok, [p], GenerationSpec(max_new_tokens=8, batch_size=1))[0] for p in PROMPTS]
    assert batched == single


def test_stops_at_end_of_turn_token():
    tok = make_tokenizer("chatml")
    model = tiny_llama(len(tok), seed=1)
    eot = tok.convert_tokens_to_ids(end_of_turn_token(tok))
    target = tok("5.", add_special_tokens=False)["input_ids"] + [eot] + tok(" junk", add_special_tokens=False)["input_ids"]
    n_prompt = len(prompt_ids(tok, PROMPTS[0]))
    # Force the model to emit `target` by biasing the output layer position by position.
    forced = iter(target + [eot] * 10)

    def force(module, args, output):
        output[:, -1, :] = -1e9
        output[:, -1, next(forced)] = 0.0
        return output

    handle = model.lm_head.register_forward_hook(force)
    try:
        out = generate(model, tok, [PROMPTS[0]], GenerationSpec(max_new_tokens=10))
    finally:
        handle.remove()
    assert out == ["5."] and n_prompt > 0


def _sampling(**kw) -> GenerationSpec:
    return GenerationSpec(max_new_tokens=8, do_sample=True, temperature=1.0, **kw)


def test_sampling_is_reproducible_whatever_the_batch_size():
    """Each (prompt, sample) row draws from its own seeded generator: 3 samples of 3 prompts in one batch of 9, in
    batches of 2 (rows of different prompts mixed) and one by one are the same 9 replies."""
    tok = make_tokenizer("chatml")
    model = tiny_llama(len(tok), seed=5)
    together = generate(model, tok, PROMPTS, _sampling(samples_per_prompt=3, batch_size=9))
    assert len(together) == 9
    assert generate(model, tok, PROMPTS, _sampling(samples_per_prompt=3, batch_size=2)) == together
    assert generate(model, tok, PROMPTS, _sampling(samples_per_prompt=3, batch_size=1)) == together
    # A random tiny model spreads its probability: the samples of one prompt differ, and so does another seed.
    assert len(set(together[:3])) > 1
    assert generate(model, tok, PROMPTS, _sampling(samples_per_prompt=3, batch_size=9, seed=1)) != together
    # A prompt's samples do not depend on the other prompts asked with it (prompt 0 keeps its index).
    assert generate(model, tok, PROMPTS[:1], _sampling(samples_per_prompt=3)) == together[:3]


def test_greedy_ignores_the_seed_and_samples_need_do_sample():
    tok = make_tokenizer("chatml")
    model = tiny_llama(len(tok), seed=5)
    greedy = generate(model, tok, PROMPTS, GenerationSpec(max_new_tokens=8))
    assert generate(model, tok, PROMPTS, GenerationSpec(max_new_tokens=8, seed=7)) == greedy and len(greedy) == 3
    with pytest.raises(ValueError, match="'samples_per_prompt': more than 1 needs do_sample: true"):
        GenerationSpec(samples_per_prompt=2)
    with pytest.raises(ValueError, match="'samples_per_prompt': expected >= 1, got 0"):
        GenerationSpec(samples_per_prompt=0, do_sample=True)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_row_sampler_draws_from_the_tempered_softmax(temperature):
    """4,000 rows x 5 steps through the sampler, logits fixed: the picks' frequencies fit softmax(logits / T)
    (chi-square, p > 0.001), every step's mask keeps exactly one token, and a token of probability 0 never comes."""
    from scipy.stats import chisquare

    from poft.evaluation.generation import RowSampler

    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, float("-inf")])
    rows, steps, width = 4000, 5, 3
    sampler = RowSampler([torch.Generator().manual_seed(r) for r in range(rows)], temperature, steps, width)
    picks = []
    for step in range(steps):
        masked = sampler(torch.zeros(rows, width + step, dtype=torch.long), logits.expand(rows, -1).clone())
        assert torch.isfinite(masked).sum(-1).eq(1).all()
        picks.append(masked.argmax(-1))
    counts = torch.bincount(torch.cat(picks), minlength=5)
    assert counts[4] == 0
    expected = torch.softmax(logits[:4].double() / temperature, -1) * rows * steps
    assert chisquare(counts[:4].double().numpy(), expected.numpy()).pvalue > 1e-3
    # the steps draw different uniforms: a row's picks are not one draw repeated
    assert (torch.stack(picks) != picks[0]).any(0).float().mean() > 0.3
