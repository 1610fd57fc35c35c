"""One rank of tests/test_trl.py::test_ranks_and_accumulation_train_as_one_batch (run alone, or under torchrun):
PoFTTrainer for one epoch of 16 conversations, the final weights saved by rank 0.

    python tests/trl_ddp_worker.py BATCH ACCUMULATE OUT_DIR
"""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_trl import make_conversations, scored_dataset, tiny_llama, tokenizer, trainer_for  # noqa: E402


def main() -> None:
    batch, accumulate, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    tok = tokenizer()
    model = tiny_llama(len(tok), seed=6)
    trainer = trainer_for(model, tok, scored_dataset(make_conversations(16, seed=4)), out,
                          per_device_train_batch_size=batch, gradient_accumulation_steps=accumulate, num_train_epochs=1,
                          optim="sgd", learning_rate=0.1, max_grad_norm=0,
                          ddp_backend="gloo" if "LOCAL_RANK" in os.environ else None)
    trainer.train()
    if trainer.args.process_index == 0:
        torch.save({"world_size": trainer.args.world_size, "steps": trainer.state.global_step,
                    "weights": model.state_dict()}, Path(out) / "final.pt")


if __name__ == "__main__":
    main()
