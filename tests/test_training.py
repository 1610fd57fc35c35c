"""Tiny-model training: learning happens, SFT and PoFT are paired, a crashed run resumes to the same weights."""

import json

import pytest
import torch
from conftest import make_tokenizer, tiny_llama
from test_scoring import make_conversations

from poft.chat import IGNORE_INDEX, tokenize_chat
from poft.losses import sequence_mean
from poft.training import ChatCollator, TrainSpec, build_examples, epoch_checkpoints, objective_inputs, train


def merged_scores(convs, unscored=()):
    """Three aligned models' scores: a clean signal, varying per sample, as merge_scores would write it."""
    rows = []
    for k, c in enumerate(convs):
        cols = {m: (None if c["id"] in unscored else -1.0 - 0.1 * ((k * (j + 1)) % 7)) for j, m in enumerate("ABC")}
        score = None if c["id"] in unscored else sum(cols.values()) / 3
        rows.append({"id": c["id"], "score": score, "scores": cols})
    return {"meta": {"models": ["A", "B", "C"], "sources": ["test"]}, "rows": rows}


def write_run_inputs(root, template: str, model_seed: int, convs: list[dict]):
    """What `poft train` reads, under root: a tiny model dir (model/), the conversations (data.jsonl) and their
    merged scores (merged.json, with the data's fingerprint). Returns (conversations as read back, scores)."""
    from poft.data import dataset_fingerprint, read_conversations, save_conversations

    tok = make_tokenizer(template)
    tiny_llama(len(tok), seed=model_seed).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    save_conversations(root / "data.jsonl", convs)
    convs = read_conversations(root / "data.jsonl")
    scores = merged_scores(convs)
    scores["meta"]["dataset_fingerprint"] = dataset_fingerprint(convs)
    (root / "merged.json").write_text(json.dumps(scores))
    return convs, scores


def spec(**kw):
    base = dict(learning_rate=3e-3, num_train_epochs=2, per_device_train_batch_size=4, max_length=96,
                warmup_ratio=0.0, lr_scheduler_type="constant", logging_steps=1, seed=7)
    return TrainSpec.from_dict({**base, **kw})


def mean_loss(model, tok, examples, s):
    batch = ChatCollator(tok.pad_token_id)(examples)
    batch.pop("sample_ids")
    with torch.no_grad():
        inputs = objective_inputs(model, model, batch, s)
    return -inputs.response_logps.mean().item()


@pytest.mark.parametrize("loss", ["sft", "poft", "dft"])
def test_training_lowers_loss_and_changes_parameters(tmp_path, loss):
    tok = make_tokenizer("chatml")
    convs = make_conversations(16)
    s = spec(loss=loss)
    examples, report = build_examples(convs, tok, s.max_length, merged_scores(convs))
    model = tiny_llama(len(tok), seed=1)
    before_params = [p.detach().clone() for p in model.parameters()]
    before = mean_loss(model, tok, examples, s)
    summary = train(model, tok, examples, tmp_path / loss, s)
    after = mean_loss(model.eval(), tok, examples, s)
    assert after < before - 0.5, (before, after)
    assert all(not torch.equal(a, b) for a, b in zip(before_params, model.parameters()))
    logged = [h for h in summary["log_history"] if "loss" in h]
    assert logged and all({"ce", "tau", "policy_score", "aligned_score"} <= set(h) for h in logged)
    assert 0 < logged[0]["tau"] < 1
    assert sorted(epoch_checkpoints(tmp_path / loss)) == [1, 2]
    assert report["n_train"] == 16 and report["dropped_no_aligned_score"] == 0


def batches_seen(tmp_path, convs, tok, **options) -> dict[str, list]:
    """Per loss, the batch ids of every epoch of an SFT and a PoFT run of the same seed."""
    scores, seen = merged_scores(convs), {}
    for loss in ("sft", "poft"):
        s = spec(loss=loss, num_train_epochs=2, **options)
        examples, _ = build_examples(convs, tok, s.max_length, scores)
        summary = train(tiny_llama(len(tok), seed=1), tok, examples, tmp_path / loss, s)
        assert summary["batch_layout"] == "packed"  # padding_free: auto, on a model that keeps samples apart
        seen[loss] = [json.loads((p / "batch_ids.json").read_text()) for p in epoch_checkpoints(tmp_path / loss).values()]
    return seen


def test_sft_and_poft_see_the_same_batches(tmp_path):
    tok = make_tokenizer("chatml")
    convs = make_conversations(12)
    seen = batches_seen(tmp_path, convs, tok)
    assert seen["sft"] == seen["poft"]
    epoch1, epoch2 = seen["sft"]
    assert sorted(i for b in epoch1 for i in b) == sorted(c["id"] for c in convs)
    assert epoch1 != epoch2  # reshuffled each epoch, identically for both methods


def test_length_grouped_batches_stay_paired(tmp_path):
    """group_by_length: batches of similar lengths, still the same for SFT and PoFT of one seed."""
    tok = make_tokenizer("chatml")
    convs = make_conversations(32)
    length = {c["id"]: len(tokenize_chat(tok, c["messages"], 96).input_ids) for c in convs}
    grouped = batches_seen(tmp_path / "grouped", convs, tok, group_by_length=True)
    plain = batches_seen(tmp_path / "plain", convs, tok)
    assert grouped["sft"] == grouped["poft"]

    def spread(epochs):  # mean over batches of (longest - shortest) sample in the batch
        batches = [b for epoch in epochs for b in epoch]
        return sum(max(length[i] for i in b) - min(length[i] for i in b) for b in batches) / len(batches)

    assert spread(grouped["sft"]) < 0.6 * spread(plain["sft"])
    assert sorted(i for b in grouped["sft"][0] for i in b) == sorted(length)


def test_resume_after_crash_gives_same_weights(tmp_path):
    tok = make_tokenizer("llama3")
    convs = make_conversations(12)
    s = spec(loss="poft", num_train_epochs=3)
    examples, _ = build_examples(convs, tok, s.max_length, merged_scores(convs))
    straight = tiny_llama(len(tok), seed=3)
    train(straight, tok, examples, tmp_path / "straight", s)

    crashed = tiny_llama(len(tok), seed=3)
    first = train(crashed, tok, examples, tmp_path / "crashed", s, stop_after_epochs=1)
    assert first["epochs_done"] == 1 and not (tmp_path / "crashed" / "train_summary.json").exists()
    resumed = tiny_llama(len(tok), seed=99)  # a fresh process: weights come from the checkpoint
    second = train(resumed, tok, examples, tmp_path / "crashed", s)
    assert second["resumed_from"].endswith("checkpoint-3")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # Only the newest checkpoint keeps optimizer states; each records its config and epoch.
    ckpts = epoch_checkpoints(tmp_path / "crashed")
    assert [(ckpts[e] / "optimizer.pt").exists() for e in (1, 2, 3)] == [False, False, True]
    assert json.loads((ckpts[2] / "poft_train_config.json").read_text())["spec"]["loss"] == "poft"


@pytest.mark.parametrize("loss", ["sft", "poft"])
def test_accumulated_micro_batches_train_as_one_batch(tmp_path, loss):
    """Batch 8 and 2 accumulated micro-batches of 4 end with the same weights: each micro-batch's mean is scaled to
    its share of the step's tokens (SFT: token-level cross-entropy over the step) or samples (PoFT), not averaged
    per micro-batch. 13 conversations of unequal lengths: micro-batches differ in tokens, the last step is short."""
    tok = make_tokenizer("llama3")
    convs = make_conversations(13, seed=4)
    final = {}
    for name, (batch, accumulate) in {"one": (8, 1), "accumulated": (4, 2)}.items():
        # Plain SGD without clipping: Adam's normalised steps would hide a loss scaled twice by the accumulation
        s = spec(loss=loss, num_train_epochs=1, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulate,
                 optim="sgd", learning_rate=0.5, max_grad_norm=0.0)
        examples, _ = build_examples(convs, tok, s.max_length, merged_scores(convs))
        model = tiny_llama(len(tok), seed=6)
        summary = train(model, tok, examples, tmp_path / name, s)
        assert summary["global_step"] == 2
        final[name] = model.state_dict()
    for k, v in final["one"].items():
        torch.testing.assert_close(final["accumulated"][k], v, rtol=0, atol=1e-5)


def test_a_finished_run_is_not_trained_again(tmp_path):
    """What a group job re-run after a kill meets: its complete runs return their summary, weights untouched."""
    tok = make_tokenizer("chatml")
    convs = make_conversations(8)
    s = spec(loss="sft", num_train_epochs=1)
    examples, _ = build_examples(convs, tok, s.max_length)
    first = train(tiny_llama(len(tok), seed=2), tok, examples, tmp_path, s)
    weights = epoch_checkpoints(tmp_path)[1] / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = train(tiny_llama(len(tok), seed=5), tok, examples, tmp_path, s)
    assert again == json.loads((tmp_path / "train_summary.json").read_text())
    assert again["train_loss"] == first["train_loss"] and weights.stat().st_mtime_ns == stamp
    # Two epochs asked of a one-epoch run: not finished, so it trains on.
    more = train(tiny_llama(len(tok), seed=5), tok, examples, tmp_path, spec(loss="sft", num_train_epochs=2))
    assert more["epochs_done"] == 2 and more["resumed_from"]


def test_train_refuses_a_checkpoint_cut_off_mid_save(tmp_path):
    """A kill between the trainer's save and poft's marker leaves a checkpoint without its marker: `train` must not
    resume from it (the CLI's --safe-resume deletes it first)."""
    tok = make_tokenizer("chatml")
    convs = make_conversations(6)
    s = spec(loss="sft", num_train_epochs=2)
    examples, _ = build_examples(convs, tok, s.max_length)
    train(tiny_llama(len(tok), seed=1), tok, examples, tmp_path / "run", s, stop_after_epochs=1)
    (tmp_path / "run" / "checkpoint-9").mkdir()  # a later save that never finished
    (tmp_path / "run" / "checkpoint-9" / "model.safetensors").write_bytes(b"half")
    with pytest.raises(RuntimeError, match=r"run: checkpoint-9 cut off before completion \(no poft_train_config.json\); "
                                           r"delete them, or run `poft train --safe-resume`, which does"):
        train(tiny_llama(len(tok), seed=1), tok, examples, tmp_path / "run", s)


def test_train_refuses_to_resume_from_corrupt_weights(tmp_path):
    """Each checkpoint's marker records the sha256 of its weights; weights changed since (a bad disk, a partial
    copy) are named and never resumed from."""
    from poft.runs import CorruptCheckpointError, weights_checksums

    tok = make_tokenizer("chatml")
    examples, _ = build_examples(make_conversations(6), tok, 96)
    s = spec(loss="sft", num_train_epochs=2)
    train(tiny_llama(len(tok), seed=1), tok, examples, tmp_path / "run", s, stop_after_epochs=1)
    (ckpt,) = epoch_checkpoints(tmp_path / "run").values()
    weights = ckpt / "model.safetensors"
    assert json.loads((ckpt / "poft_train_config.json").read_text())["weights_sha256"] == weights_checksums(ckpt)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError) as e:
        train(tiny_llama(len(tok), seed=1), tok, examples, tmp_path / "run", s)
    assert str(e.value) == (f"{weights}: checksum mismatch, the weights changed after the checkpoint was saved; "
                            f"delete {ckpt}, or run `poft train --safe-resume`, which does")


def test_unscored_samples_are_dropped_and_counted_for_every_loss():
    tok = make_tokenizer("zephyr")
    convs = make_conversations(6)
    examples, report = build_examples(convs, tok, 96, merged_scores(convs, unscored={"c2", "c4"}))
    assert [e["id"] for e in examples] == ["c0", "c1", "c3", "c5"]
    assert report["dropped_no_aligned_score"] == 2 and report["dropped_ids_first_50"] == ["c2", "c4"]
    with pytest.raises(KeyError, match="training sample id 'c0' has no row in the score file"):
        build_examples(convs, tok, 96, {"meta": {"models": ["A"], "sources": ["s.json"]}, "rows": []})


def test_full_sequence_switch_averages_every_non_pad_token():
    tok = make_tokenizer("chatml")
    convs = make_conversations(3)
    examples, _ = build_examples(convs, tok, 96, merged_scores(convs))
    batch = ChatCollator(tok.pad_token_id)(examples)
    batch.pop("sample_ids")
    model = tiny_llama(len(tok))
    with torch.no_grad():
        resp = objective_inputs(model, model, batch, spec(target_tokens="response"))
        full = objective_inputs(model, model, batch, spec(target_tokens="full_sequence"))
    n_real = int(batch["attention_mask"].sum()) - 3  # every non-pad token but each first one
    assert full.policy_logps.numel() == n_real
    assert resp.policy_logps.numel() == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    torch.testing.assert_close(full.response_logps, resp.response_logps)  # CE side is the same either way
    assert not torch.allclose(sequence_mean(full.policy_logps, full.policy_index, 3),
                              sequence_mean(resp.policy_logps, resp.policy_index, 3))


def test_spec_rejects_bad_options():
    with pytest.raises(ValueError, match=r"unknown training option\(s\) 'lr'; valid: loss, beta"):
        TrainSpec.from_dict({"lr": 1.0})
    # Values arrive as text from YAML (1e-3 is a string there) and --set; they are converted or refused.
    assert TrainSpec.from_dict({"learning_rate": "1e-3", "num_train_epochs": "3", "deepspeed": "null"}).learning_rate == 1e-3
    with pytest.raises(ValueError, match="option 'num_train_epochs': expected int, got 'many'"):
        TrainSpec.from_dict({"num_train_epochs": "many"})
    with pytest.raises(ValueError, match="option 'gradient_checkpointing': expected true or false, got 'maybe'"):
        TrainSpec.from_dict({"gradient_checkpointing": "maybe"})
    with pytest.raises(KeyError, match="unknown loss 'kto'; valid: dft, poft, sft"):
        TrainSpec.from_dict({"loss": "kto"})
    with pytest.raises(ValueError, match="target_tokens 'all'; valid: response, full_sequence"):
        TrainSpec.from_dict({"target_tokens": "all"})
    # Found by the config fuzz: values that overflow the type, and NaN, are named errors too.
    with pytest.raises(ValueError, match="^option 'seed': expected int, got inf$"):
        TrainSpec.from_dict({"seed": float("inf")})
    with pytest.raises(ValueError, match="^option 'learning_rate': expected float, got 1000000"):
        TrainSpec.from_dict({"learning_rate": 10**400})
    with pytest.raises(ValueError, match="^option 'beta': expected a number, got 'nan'$"):
        TrainSpec.from_dict({"beta": "nan"})
