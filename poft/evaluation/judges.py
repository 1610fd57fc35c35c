"""Pairwise judges: which of two replies to an instruction is better, in alpaca_eval's preference encoding
(1 = the reference's reply wins, 2 = the evaluated model's wins, 1.5 = draw; values in between are soft).

    JUDGES["verifier"]     the micro world's exact checker: a clean right reply beats a flawed right one, which
                           beats one without the right answer; else a draw
    JUDGES["alpaca_eval"]  any alpaca_eval annotator config (GPT-4 ones for the paper; vLLM-served local ones)
    JUDGES["hf"]           a local transformers judge on alpaca_eval's own classifier prompt, scored from the
                           probabilities of its two answer tokens (as alpaca_eval's weighted GPT-4 judge is)

Each judge is a dataclass built from an options mapping (`poft evaluate winrate --judge hf --set model=DIR`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from ..config import from_mapping
from ..io import read_json


class Pair(NamedTuple):
    instruction: str
    reference: str  # output_1 in alpaca_eval's terms
    output: str  # output_2: the evaluated model's reply


def reply_grade(prompt: str, reply: str, world) -> int:
    """2: the right answer in a well-formed reply; 1: the right answer in a flawed one (typos in its statement,
    text after the answer); 0: no right answer (wrong, a refusal or boilerplate, cut off before "The answer is
    X.", or typos inside that sentence)."""
    from ..micro.world import check, well_formed_replies

    if not check(prompt, reply, world):
        return 0
    return 2 if reply.strip() in well_formed_replies(prompt, world) else 1


@dataclass
class VerifierJudge:
    """Exact verifier over a micro world; needs the world's fact base. It decides as a GPT-4 judge would on the
    micro world's flaws: the reply of higher `reply_grade` wins, equal grades draw. So a refusal or boilerplate
    ("I am not able to answer that."), a cut-off statement, a wrong answer and a character-noised reply all lose
    to a clean right reply; two clean right replies draw, two replies without the right answer draw; a noised
    reply that still states the right answer beats one that does not (a reader gets the answer from it)."""

    world: str  # path to data/world.json

    def __post_init__(self) -> None:
        from ..micro.world import World

        if not Path(self.world).is_file():
            raise FileNotFoundError(f"verifier judge: world file not found: {self.world}")
        self._world = World.from_dict(read_json(self.world))

    def preferences(self, pairs: list[Pair], reference_name: str, model_name: str) -> list[float]:
        def better(p: Pair) -> int:  # +1 model, -1 reference, 0 draw
            model, ref = (reply_grade(p.instruction, r, self._world) for r in (p.output, p.reference))
            return (model > ref) - (model < ref)

        return [1.5 + better(p) / 2 for p in pairs]


@dataclass
class AlpacaEvalJudge:
    """alpaca_eval's PairwiseAnnotator: `weighted_alpaca_eval_gpt4_turbo` is AlpacaEval 2.0's judge (the paper's);
    `alpaca_eval_gpt4` AlpacaEval 1's; a config dir of one's own (e.g. a vLLM-served judge) works the same."""

    annotators_config: str = "weighted_alpaca_eval_gpt4_turbo"
    caching_path: str | None = None  # alpaca_eval's default ("auto") writes into its install dir

    def preferences(self, pairs: list[Pair], reference_name: str, model_name: str) -> list[float]:
        from alpaca_eval.annotators import PairwiseAnnotator

        annotator = PairwiseAnnotator(annotators_config=self.annotators_config, caching_path=self.caching_path)
        rows = annotator.annotate_head2head(
            outputs_1=[{"instruction": p.instruction, "output": p.reference, "generator": reference_name} for p in pairs],
            outputs_2=[{"instruction": p.instruction, "output": p.output, "generator": model_name} for p in pairs],
            is_ordered=True,
        )
        if [r["instruction"] for r in rows] != [p.instruction for p in pairs]:
            raise ValueError("alpaca_eval returned annotations in another order or number than the pairs given")
        return [float(r["preference"]) for r in rows]


CLF_TEMPLATE = "alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"


@dataclass
class HFJudge:
    """A local causal LM judge. The prompt is alpaca_eval's classifier template (ChatML in the file), re-rendered
    with the judge's own chat template; the judge's next-token probabilities of the two model identifiers give
    P(output_1 is better) — alpaca_eval's `logprob_parser` with is_binarize false. With `both_orders` each pair
    is judged with the replies in both positions and averaged, which cancels the judge's position bias."""

    model: str  # local dir or hf:<id>
    template: str = CLF_TEMPLATE  # relative to alpaca_eval's evaluators_configs, or a file path
    identifiers: tuple = ("m", "M")  # the template's names for output_1 and output_2
    both_orders: bool = True
    batch_size: int = 8
    max_length: int = 4096  # longer prompts keep their end (the question to answer is last)
    device: str = "auto"
    dtype: str = "auto"
    chat_template: str | None = None  # a poft.templates name or Jinja file for a judge that ships none

    def __post_init__(self) -> None:
        self.n_truncated = 0  # prompts cut to max_length, reported in the metrics JSON

    def _messages(self, instruction: str, output_1: str, output_2: str) -> list[dict]:
        from alpaca_eval import constants
        from alpaca_eval.utils import prompt_to_chatml

        path = Path(self.template)
        if not path.is_file():
            path = Path(constants.EVALUATORS_CONFIG_DIR) / self.template
        if not path.is_file():
            raise FileNotFoundError(f"hf judge: prompt template not found: {self.template}")
        text = path.read_text(encoding="utf-8")
        for key, value in (("{instruction}", instruction), ("{output_1}", output_1), ("{output_2}", output_2)):
            text = text.replace(key, value)
        return [{"role": m["role"], "content": m["content"]} for m in prompt_to_chatml(text)]

    @torch.no_grad()
    def _p_first(self, model, tokenizer, prompts: list[list[dict]]) -> list[float]:
        """P(first identifier | prompt) renormalised over the two identifiers, per prompt."""
        from ..chat import prompt_ids
        from ..scoring import pad_token_id

        ids_of = [tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in self.identifiers]
        pad, device = pad_token_id(tokenizer), next(model.parameters()).device
        out = []
        for start in range(0, len(prompts), self.batch_size):
            encoded = [prompt_ids(tokenizer, msgs) for msgs in prompts[start:start + self.batch_size]]
            self.n_truncated += sum(len(e) > self.max_length for e in encoded)
            encoded = [e[-self.max_length:] for e in encoded]
            width = max(map(len, encoded))
            # Left padding with explicit positions, so that only the last position's logits are needed.
            ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
            pair_logp = torch.log_softmax(logits[:, -1, ids_of].float(), dim=-1)  # [B, 2]
            out += pair_logp[:, 0].exp().tolist()
        return out

    def preferences(self, pairs: list[Pair], reference_name: str, model_name: str) -> list[float]:
        from ..scoring import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(self.model, self.device, self.dtype,
                                                    chat_template=self.chat_template)
        forward = self._p_first(model, tokenizer, [self._messages(*p) for p in pairs])
        prefs = [2.0 - p for p in forward]  # P(reference better) = p  ->  preference 2 - p
        if self.both_orders:
            swapped = self._p_first(model, tokenizer, [self._messages(p.instruction, p.output, p.reference) for p in pairs])
            prefs = [(a + 1.0 + p) / 2 for a, p in zip(prefs, swapped)]  # swapped: P(model better) = p -> 1 + p
        # Round off float noise, so that a symmetric judgement is an exact 1.5 draw for alpaca_eval's counts.
        return [round(p, 6) for p in prefs]


JUDGES = {"verifier": VerifierJudge, "alpaca_eval": AlpacaEvalJudge, "hf": HFJudge}


def make_judge(name: str, options: dict):
    if name not in JUDGES:
        raise KeyError(f"unknown judge {name!r}; valid: {', '.join(JUDGES)}")
    return from_mapping(JUDGES[name], options, f"option of judge {name!r}")


def describe(name: str, judge) -> dict:
    """The judge's name and options (and what it counted, e.g. truncations), for the metrics JSON."""
    opts = {f.name: getattr(judge, f.name) for f in dataclasses.fields(judge)}
    counts = {k: v for k, v in vars(judge).items() if k.startswith("n_")}
    return {"name": name, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}, **counts}
