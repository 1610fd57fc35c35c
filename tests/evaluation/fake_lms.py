"""lm-eval LMs with known behaviour, for checking that the micro tasks and their metrics are wired right.

`GoldLM` answers every micro prompt correctly: it solves the prompt with the micro world's independent checker
(poft.micro.world.solve), never by reading the benchmark's answer field. `RandomLM` knows nothing.
The chat template is a pass-through (the prompt is the user turn's text), so contexts stay parseable.
"""

from __future__ import annotations

import random

from lm_eval.api.model import LM

from poft.micro.world import World, canonical_response, check, solve


class _PlainChatLM(LM):
    def apply_chat_template(self, chat_history, add_generation_prompt=True) -> str:
        return chat_history[-1]["content"]

    @property
    def tokenizer_name(self) -> str:
        return type(self).__name__

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


class GoldLM(_PlainChatLM):
    def __init__(self, world: World):
        super().__init__()
        self.world = world

    def generate_until(self, requests):
        return [canonical_response(solve(r.args[0].strip(), self.world)) for r in requests]

    def loglikelihood(self, requests):
        # The right reply gets all the mass; lm-eval's acc takes the argmax over the choices.
        return [(0.0 if check(ctx.strip(), cont.strip(), self.world) else -20.0, True) for ctx, cont in
                (r.args for r in requests)]


class RandomLM(_PlainChatLM):
    def __init__(self, seed: int = 0):
        super().__init__()
        self.rng = random.Random(seed)

    def generate_until(self, requests):
        return [canonical_response(str(self.rng.randrange(100))) for _ in requests]

    def loglikelihood(self, requests):
        return [(-self.rng.random() * 10, False) for _ in requests]
