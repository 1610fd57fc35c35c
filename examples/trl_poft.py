"""PoFT with TRL in three lines, on a tiny random model built here (CPU, no downloads, well under 30 s).

    python examples/trl_poft.py [--out DIR]

The setup stands in for what you already have: a `datasets.Dataset` of `messages` with an `id` column, a model and
its tokenizer, and a merged score file from `poft score` (once per aligned LLM) and `poft merge-scores`. Here the
scores are made up, so that the example needs no aligned models; the training is real.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import datasets
from transformers import LlamaConfig, LlamaForCausalLM

from poft.micro.tokenizers import train_tokenizer
from poft.trl import PoFTConfig, PoFTTrainer, attach_scores

# ChatML with `{% generation %}` markers around each assistant turn's content and its <|im_end|>: what TRL's
# assistant_only_loss masks by (TRL patches known templates such as Qwen's itself; this locally trained tokenizer's
# template it does not know). The labelled tokens are then poft's: assistant content plus the end-of-turn token.
CHATML_WITH_GENERATION = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = "the cat sat on a mat two plus three is five hello there count to ten reverse word".split()


def setup(work: Path):
    """A tokenizer, a tiny random Llama, 32 conversations and a stand-in merged score file for them."""
    rng = random.Random(0)
    conversations = []
    for i in range(32):
        question = " ".join(rng.choices(WORDS, k=rng.randint(3, 8)))
        answer = " ".join(rng.choices(WORDS, k=rng.randint(2, 10)))
        conversations.append({"id": f"ex{i}", "messages": [{"role": "user", "content": question},
                                                           {"role": "assistant", "content": answer}]})
    corpus = [m["content"] for c in conversations for m in c["messages"]] * 5
    tokenizer = train_tokenizer(corpus, "chatml", vocab_size=300)
    tokenizer.chat_template = CHATML_WITH_GENERATION
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    # A merged score file as `poft merge-scores` writes it: per sample, the aligned LLMs' mean log-likelihood.
    rows = [{"id": c["id"], "score": -1.0 - rng.random(), "scores": {}} for c in conversations]
    scores = work / "merged.json"
    scores.write_text(json.dumps({"meta": {"kind": "aligned", "models": []}, "rows": rows}))
    return datasets.Dataset.from_list(conversations), model, tokenizer, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    out = parser.parse_args().out or tempfile.mkdtemp(prefix="trl-poft-")
    dataset, model, tokenizer, scores = setup(Path(out))

    # The three lines: scores onto the dataset, TRL's config plus PoFT's options, TRL's trainer with PoFT's loss.
    dataset = attach_scores(dataset, scores)
    args = PoFTConfig(output_dir=out, assistant_only_loss=True, beta=1.0, gamma=0.0, padding_free=True, max_length=None,
                      per_device_train_batch_size=8, num_train_epochs=4, learning_rate=3e-3, logging_steps=4,
                      save_strategy="no", report_to=[], use_cpu=True, bf16=False)  # float32 on CPU
    trainer = PoFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()

    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(json.dumps({"first_logged_loss": losses[0], "last_logged_loss": losses[-1], "steps": trainer.state.global_step}))


if __name__ == "__main__":
    main()
