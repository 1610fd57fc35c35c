"""Tests for poft.dpo: a real (tiny) DPO run on CPU with a locally built tokenizer and Llama model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from poft.dpo import DPOConfigSpec, read_pairs, run_dpo, validate_pairs
from poft.io import read_json, write_jsonl
from poft.runs import CorruptCheckpointError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SYSTEM = {"role": "system", "content": "You add numbers."}


def make_pairs(n: int = 32) -> list[dict]:
    pairs = []
    for i in range(n):
        a, b = i % 7 + 1, (3 * i) % 5 + 1
        prompt = [SYSTEM, {"role": "user", "content": f"{a}+{b}="}]
        if i % 4 == 0:  # some pairs carry an earlier turn
            prompt = [SYSTEM, {"role": "user", "content": "1+1="}, {"role": "assistant", "content": "2"}, *prompt[1:]]
        pairs.append({
            "id": f"p{i}",
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": str(a + b)}],
            "rejected": [{"role": "assistant", "content": str(a + b + 1 + i % 3)}],
        })
    return pairs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    corpus = [f"{a}+{b}={a + b}" for a in range(20) for b in range(20)]
    corpus += ["system", "user", "assistant", "You add numbers.", "\n"] * 5
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, intermediate_size=128, max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    path = tmp_path_factory.mktemp("start")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


# A highish constant lr for a few epochs: enough for a random 2-layer model to move its preferences measurably.
TRAIN_CFG = DPOConfigSpec(
    learning_rate=5e-4, num_train_epochs=6, per_device_train_batch_size=8, warmup_ratio=0.0,
    lr_scheduler_type="constant", logging_steps=1, gradient_checkpointing=False,
)
STEPS_PER_EPOCH = 4  # 32 pairs / 8 per step


@pytest.fixture(scope="module")
def trained(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo") / "run"
    metrics = run_dpo(model_dir, make_pairs(), str(out), TRAIN_CFG)
    return out, metrics


def completion_logps(model_dir: str, pairs: list[dict]):
    """Summed log-prob of chosen and rejected replies, tokenized the way TRL does (chat template, prompt prefix)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def logp(prompt, reply):
        p = tok(tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False),
                add_special_tokens=False)["input_ids"]
        full = tok(tok.apply_chat_template(prompt + reply, tokenize=False), add_special_tokens=False)["input_ids"]
        assert full[: len(p)] == p
        ids = torch.tensor([full])
        with torch.no_grad():
            logprobs = model(ids).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        return logprobs[len(p) - 1:].gather(-1, targets[len(p) - 1:, None]).sum().item()

    return [(logp(x["prompt"], x["chosen"]), logp(x["prompt"], x["rejected"])) for x in pairs]


def test_dpo_improves_implicit_reward_margin(model_dir, trained):
    out, metrics = trained
    pairs = make_pairs()
    before = completion_logps(model_dir, pairs)
    after = completion_logps(str(out), pairs)
    # implicit DPO reward margin relative to the start checkpoint (the reference)
    margins = [(ac - bc) - (ar - br) for (bc, br), (ac, ar) in zip(before, after)]
    assert sum(margins) / len(margins) > 0.5
    assert sum(m > 0 for m in margins) / len(margins) >= 0.7
    # TRL's own logged (per-batch, pre-update) rewards agree: the last epoch beats the first
    first, last = metrics["steps"][:STEPS_PER_EPOCH], metrics["steps"][-STEPS_PER_EPOCH:]
    mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    assert mean(last, "rewards/margins") > mean(first, "rewards/margins") + 0.02
    assert mean(last, "rewards/accuracies") > mean(first, "rewards/accuracies")
    assert set(metrics["final"]) == {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"}
    assert metrics["n_pairs"] == metrics["n_pairs_trained"] == 32


def test_outputs_checkpoints_and_metrics(model_dir, trained):
    out, metrics = trained
    assert metrics["global_step"] == 6 * STEPS_PER_EPOCH
    ckpts = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert ckpts == [STEPS_PER_EPOCH * e for e in range(1, 7)]  # one checkpoint per epoch
    assert all((out / f"checkpoint-{s}" / "model.safetensors").exists() for s in ckpts)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).exists(), name
    on_disk = read_json(out / "dpo_metrics.json")
    assert on_disk == json.loads(json.dumps(metrics))
    assert len(on_disk["steps"]) == 6 * STEPS_PER_EPOCH and all("loss" in s for s in on_disk["steps"])
    assert on_disk["runtime_s"] > 0 and on_disk["resumed_from"] is None
    assert not list(out.glob(".*.tmp"))  # atomic writes left no temp files


def test_config_round_trips(model_dir, trained):
    out, _ = trained
    saved = read_json(out / "dpo_config.json")
    assert saved["start_checkpoint"] == model_dir
    assert DPOConfigSpec.from_dict(saved["spec"]) == TRAIN_CFG


def test_resume_from_last_checkpoint(model_dir, tmp_path):
    cfg = DPOConfigSpec(learning_rate=1e-4, num_train_epochs=2, per_device_train_batch_size=16,
                        logging_steps=1, gradient_checkpointing=False)
    pairs = make_pairs()
    out = tmp_path / "run"
    run_dpo(model_dir, pairs, str(out), cfg)
    # simulate a crash during epoch 2: only the epoch-1 checkpoint survives
    shutil.rmtree(out / "checkpoint-4")
    (out / "dpo_metrics.json").unlink()
    metrics = run_dpo(model_dir, pairs, str(out), cfg)
    assert metrics["resumed_from"].endswith("checkpoint-2")
    assert metrics["global_step"] == 4 and (out / "checkpoint-4").exists()
    assert [s["step"] for s in metrics["steps"]] == [1, 2, 3, 4]
    # a different spec must not silently continue this run's optimizer state
    with pytest.raises(ValueError, match="different DPO run"):
        run_dpo(model_dir, pairs, str(out), DPOConfigSpec(beta=0.5))
    # weights changed after their checksums were recorded are never resumed from
    weights = out / "checkpoint-4" / "model.safetensors"
    assert json.loads((out / "checkpoint-4" / "poft_weights_sha256.json").read_text()) == {
        "model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(CorruptCheckpointError, match=f"^{weights}: checksum mismatch"):
        run_dpo(model_dir, pairs, str(out), cfg)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.pop("rejected"), "pairs: row 3 (id=p3): missing field 'rejected'"),
    (lambda p: p.pop("prompt"), "pairs: row 3 (id=p3): missing field 'prompt'"),
    (lambda p: p["chosen"][0].update(content="  "), "pairs: row 3 (id=p3): field 'chosen': empty content"),
    (lambda p: p.update(rejected=[]),
     "pairs: row 3 (id=p3): field 'rejected': must be a non-empty list of {role, content} messages"),
    (lambda p: p.update(rejected=[dict(p["chosen"][0])]), "pairs: row 3 (id=p3): chosen and rejected are identical"),
])
def test_validation_messages(mutate, message, tmp_path):
    pairs = make_pairs(5)
    mutate(pairs[3])
    with pytest.raises(ValueError) as e:
        validate_pairs(pairs)
    assert str(e.value) == message
    with pytest.raises(ValueError) as e:  # run_dpo validates before touching the model or out_dir
        run_dpo(str(tmp_path / "no-model"), pairs, str(tmp_path / "out"), DPOConfigSpec())
    assert str(e.value) == message and not (tmp_path / "out").exists()


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError) as e:
        DPOConfigSpec.from_dict({"beta": 0.2, "max_prompt_length": 512})
    msg = str(e.value)
    assert msg.startswith("unknown DPO option(s) 'max_prompt_length'; valid: beta, loss_type, learning_rate")
    assert "save_each_epoch" in msg
    assert DPOConfigSpec.from_dict({"beta": 0.2}).beta == 0.2
    assert all(f.metadata["help"] for f in DPOConfigSpec.__dataclass_fields__.values())


def test_read_pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, make_pairs(3))
    assert read_pairs(path) == make_pairs(3)
    path.write_text(path.read_text() + "\n{not json\n")
    with pytest.raises(ValueError, match=rf"^{path}: line 5 column 2: invalid JSON \(Expecting property name"):
        read_pairs(path)
