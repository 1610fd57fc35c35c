"""poft.runs: epoch checkpoints of a run dir, a trustworthy resume, report records from evaluation indexes."""

import json

import pytest

from poft.runs import (checkpoint_of, checkpoint_problem, fingerprint, prepare_resume, records_from_index,
                       run_checkpoints, weights_checksums)


def ckpt(run, step, epoch=None, state_epoch=None, complete=True):
    d = run / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"w" * step)
    if epoch is not None and complete:
        marker = {"epoch": epoch, "weights_sha256": weights_checksums(d)}
        (d / "poft_train_config.json").write_text(json.dumps(marker))
    if state_epoch is not None and complete:
        (d / "trainer_state.json").write_text(json.dumps({"epoch": state_epoch}))
    return d


def test_train_run_epochs_come_from_the_marker_and_skip_incomplete_checkpoints(tmp_path):
    run = tmp_path / "run"
    a, b = ckpt(run, 10, 1, 1.0), ckpt(run, 20, 2, 2.0)
    ckpt(run, 30, 3, 3.0, complete=False)  # killed while saving
    assert run_checkpoints(run) == {1: a, 2: b}
    assert checkpoint_of(run, "last") == b and checkpoint_of(run, "1") == a
    with pytest.raises(KeyError, match="no checkpoint for epoch 3; epochs: 1, 2"):
        checkpoint_of(run, 3)
    with pytest.raises(FileNotFoundError, match="no epoch checkpoints"):
        checkpoint_of(tmp_path / "empty", "last")


def test_dpo_run_epochs_come_from_the_trainer_state(tmp_path):
    run = tmp_path / "dpo"
    a, b = ckpt(run, 25, state_epoch=1.0), ckpt(run, 50, state_epoch=2.0)
    assert run_checkpoints(run) == {1: a, 2: b}


def test_prepare_resume_drops_incomplete_checkpoints_only(tmp_path):
    run = tmp_path / "run"
    keep = ckpt(run, 10, 1)
    cut = ckpt(run, 20, 2, complete=False)
    record = {"spec": {"lr": 1}, "inputs": {"data": "abc"}}
    (run / "resolved_config.json").write_text(json.dumps(record))
    assert prepare_resume(run, record, "poft_train_config.json") == [cut]
    assert keep.is_dir() and not cut.exists()


def test_corrupt_checkpoints_are_named_and_never_resumed_from(tmp_path, caplog):
    """Weights that fail the sha256 their marker recorded: an older checkpoint is removed alone; a corrupt newest
    one (the only one with optimizer states) removes them all, so the run starts over instead of resuming."""
    run = tmp_path / "run"
    a, b, c = ckpt(run, 10, 1), ckpt(run, 20, 2), ckpt(run, 30, 3)
    assert checkpoint_problem(a) is None
    (a / "model.safetensors").write_bytes(b"x" * 10)  # same size, other bytes: a bad disk
    assert checkpoint_problem(a) == f"{a}/model.safetensors: checksum mismatch, the weights changed after the " \
                                    "checkpoint was saved"
    record = {"inputs": {}}
    (run / "resolved_config.json").write_text(json.dumps(record))
    assert prepare_resume(run, record, "poft_train_config.json") == [a]
    assert f"removing corrupt checkpoint: {a}/model.safetensors: checksum mismatch" in caplog.text
    (c / "model.safetensors").write_bytes(b"w" * 29)  # truncated
    assert prepare_resume(run, record, "poft_train_config.json") == [b, c]
    assert not list(run.glob("checkpoint-*")) and "training starts over" in caplog.text
    d = ckpt(run, 40, 4)
    (d / "model.safetensors").unlink()
    assert checkpoint_problem(d) == f"{d}/model.safetensors: missing (its checksum was recorded when the checkpoint " \
                                    "was saved)"


def test_prepare_resume_restarts_a_run_made_from_other_inputs(tmp_path):
    run = tmp_path / "run"
    ckpt(run, 10, 1), ckpt(run, 20, 2)
    (run / "train_summary.json").write_text("{}")
    (run / "resolved_config.json").write_text(json.dumps({"inputs": {"scores": "old"}}))
    assert len(prepare_resume(run, {"inputs": {"scores": "new"}}, "poft_train_config.json")) == 2
    assert not list(run.glob("checkpoint-*")) and not (run / "train_summary.json").exists()


def test_fingerprint_follows_content_not_path(tmp_path):
    f = tmp_path / "scores.json"
    f.write_text('{"rows": [1]}')
    first = fingerprint(f)
    f.write_text('{"rows": [2]}')
    assert fingerprint(f) != first
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"a")
    before = fingerprint(model)
    (model / "model.safetensors").write_bytes(b"b")
    assert fingerprint(model) != before
    assert fingerprint("hf:org/model") == "hf:org/model" and fingerprint(None) is None


def test_records_from_an_evaluation_index():
    index = {"evaluations": [
        {"model": "c1", "epoch": 1, "metrics": ["m/a.json", "m/b.json"],
         "record": {"base": "b", "dataset": "d", "method": "poft", "variant": "full", "seed": 0, "epoch": 1}},
        {"model": "c2", "epoch": 2, "metrics": ["n/a.json"],
         "record": {"base": "b", "dataset": "d", "method": "poft", "variant": "full", "seed": 0, "epoch": 2}}]}
    recs = records_from_index(index)
    assert [(r["epoch"], r["metrics_file"]) for r in recs] == [(1, "m/a.json"), (1, "m/b.json"), (2, "n/a.json")]
    with pytest.raises(ValueError, match="idx.json: an evaluation of 'x' has no 'record'"):
        records_from_index({"evaluations": [{"model": "x", "metrics": []}]}, "idx.json")
