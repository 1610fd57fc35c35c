"""The micro build's stages wire together: data -> base -> aligned -> manifest (tiny sizes, seconds)."""

import json

import pytest

import poft.micro.build as build
from poft.micro.models import PretrainSpec

TINY = PretrainSpec(steps=5, seq_len=32, batch_size=4, warmup_steps=1)


def test_stages_write_models_records_and_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "ALIGNED", {"micro-zephyr": build.ALIGNED["micro-zephyr"]})
    monkeypatch.setattr(build, "STAGES", {
        "data": (lambda out, seed, name: build.stage_data(out, seed, {"prose": 600, "aligned": 40, "sft": 40,
                                                                        "pairs": 10, "bench_per_task": 3}),
                 lambda name: "data"),
        "base": (lambda out, seed, name: build.stage_base(out, seed, name, TINY), lambda name: name),
        "aligned": (lambda out, seed, name: build.stage_aligned(out, seed, name, TINY, {"num_train_epochs": 1}),
                    lambda name: name),
    })
    build.run_stage(tmp_path, "data", seed=1)
    base = build.run_stage(tmp_path, "base", seed=1, name="micro-llama3")
    aligned = build.run_stage(tmp_path, "aligned", seed=1, name="micro-zephyr")
    manifest = build.run_stage(tmp_path, "manifest", seed=1)
    assert (tmp_path / "models" / "micro-llama3" / "tokenizer.json").exists()
    assert base["arch"] == "llama" and base["template"] == "llama3" and base["parameters"] > 1_000_000
    assert aligned["sft"]["steps"] > 0 and aligned["template"] == "zephyr"
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert set(manifest["aligned_auc"]) == {"ultrachat", "sharegpt", "openhermes", "clean", "noisy"}
    assert manifest["aligned_auc"]["clean"] is None  # nothing flawed to tell apart in the control
    assert 0.0 <= manifest["aligned_auc"]["openhermes"] <= 1.0
    assert set(manifest["models"]) == {"micro-llama3", "micro-zephyr"}


def test_unknown_stage_and_model():
    with pytest.raises(KeyError, match="unknown micro stage 'train'; valid: data, base, aligned, manifest"):
        build.run_stage("/tmp/x", "train")
    with pytest.raises(KeyError, match="unknown model 'gpt' for this stage; valid: micro-mistral, micro-llama3"):
        build.run_stage("/tmp/x", "base", name="gpt")
