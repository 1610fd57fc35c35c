"""The `poft` verbs end to end on local files: prepare -> score x2 -> merge -> filter -> train, and bad input."""

import json
from pathlib import Path

import pytest
from conftest import TEMPLATES, make_tokenizer, tiny_llama
from test_scoring import make_conversations

from poft.cli import main


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    # ShareGPT-format source file, as a user would have it.
    rows = [{"id": c["id"], "conversations": [{"from": {"system": "system", "user": "human", "assistant": "gpt"}[m["role"]],
                                               "value": m["content"]} for m in c["messages"]]}
            for c in make_conversations(12)]
    (root / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, template in (("target", "llama3"), ("alignedA", "chatml"), ("alignedB", "zephyr")):
        tok = make_tokenizer(template)
        tiny_llama(len(tok), seed=len(name)).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root


def run(*argv):
    return main([str(a) for a in argv])


def test_pipeline(workspace):
    w = workspace
    assert run("prepare", "--source", w / "src.jsonl", "--format", "sharegpt", "--out", w / "data.jsonl") == 0
    report = json.loads((w / "data.jsonl.report.json").read_text())
    assert report["n_kept"] == 12 and report["n_dropped"] == 0
    for name in ("alignedA", "alignedB"):
        assert run("score", "--data", w / "data.jsonl", "--model", w / name, "--name", name, "--quiet",
                   "--out", w / f"{name}.json") == 0
    assert run("merge-scores", "--scores", w / "alignedA.json", w / "alignedB.json", "--out", w / "merged.json") == 0
    merged = json.loads((w / "merged.json").read_text())
    assert merged["meta"]["models"] == ["alignedA", "alignedB"]
    row = merged["rows"][0]
    assert row["score"] == pytest.approx((row["scores"]["alignedA"] + row["scores"]["alignedB"]) / 2)
    assert run("filter", "--data", w / "data.jsonl", "--method", "preference", "--keep", "0.5",
               "--scores", w / "merged.json", "--out", w / "kept.json") == 0
    kept = json.loads((w / "kept.json").read_text())["kept_ids"]
    assert len(kept) == 6
    (w / "train.yaml").write_text("num_train_epochs: 1\nper_device_train_batch_size: 3\nmax_length: 80\n")
    assert run("train", "--data", w / "data.jsonl", "--model", w / "target", "--scores", w / "merged.json",
               "--keep-ids", w / "kept.json", "--config", w / "train.yaml", "--set", "loss=poft",
               "--set", "learning_rate=1e-3", "--out", w / "run") == 0
    resolved = json.loads((w / "run" / "resolved_config.json").read_text())
    assert resolved["resolved_spec"]["loss"] == "poft" and resolved["resolved_spec"]["learning_rate"] == 1e-3
    assert json.loads((w / "run" / "data_report.json").read_text())["n_train"] == 6
    assert (w / "run" / "checkpoint-2" / "model.safetensors").exists()


def test_bad_inputs_give_one_clear_line(workspace, capsys):
    w = workspace
    (w / "bad.jsonl").write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "x"}]}\n')
    assert run("prepare", "--source", w / "bad.jsonl", "--format", "sharegpt", "--out", w / "x.jsonl") == 2
    err = capsys.readouterr().err
    assert "poft prepare: error:" in err and "bad.jsonl: line 1" in err and "'bot'" in err
    # Scores of other data are refused by train and filter.
    (w / "other.jsonl").write_text((w / "data.jsonl").read_text().replace("the", "THE", 1))
    assert run("train", "--data", w / "other.jsonl", "--model", w / "target", "--scores", w / "merged.json",
               "--out", w / "r2") == 2
    assert "scores were computed on other data than" in capsys.readouterr().err
    assert run("train", "--data", w / "data.jsonl", "--model", w / "target", "--set", "lr=1", "--out", w / "r3") == 2
    assert "unknown training option(s) 'lr'" in capsys.readouterr().err
    assert run("train", "--data", w / "data.jsonl", "--model", w / "nowhere", "--out", w / "r4") == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_base_model_without_chat_template_trains_with_a_named_one(tmp_path, capsys):
    """Mistral-7B-v0.1 ships no chat template: `poft train` refuses it, and trains with --chat-template zephyr,
    saving the template in every checkpoint (later stages load it from there) and recording it."""
    from transformers import AutoTokenizer

    from poft.chat import template_hash
    from poft.data import save_conversations
    from poft.scoring import load_model_and_tokenizer

    tok = make_tokenizer("zephyr")
    tok.chat_template = None  # a base model's tokenizer
    tiny_llama(len(tok), seed=5).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    save_conversations(tmp_path / "data.jsonl", make_conversations(6))
    args = ("train", "--data", tmp_path / "data.jsonl", "--model", tmp_path / "base", "--set", "num_train_epochs=1",
            "--set", "per_device_train_batch_size=3", "--set", "max_length=80")

    assert run(*args, "--out", tmp_path / "none") == 2
    assert "has no chat_template" in capsys.readouterr().err

    assert run(*args, "--chat-template", "zephyr", "--out", tmp_path / "run") == 0
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert AutoTokenizer.from_pretrained(checkpoint).chat_template == TEMPLATES["zephyr"].template
    _, loaded = load_model_and_tokenizer(str(checkpoint), "cpu", "float32")  # no flag: the checkpoint's own
    expected = {"source": "zephyr", "hash": template_hash(loaded)}
    assert json.loads((tmp_path / "run" / "resolved_config.json").read_text())["chat_template"] == expected
    assert json.loads((checkpoint / "poft_train_config.json").read_text())["chat_template"] == expected

    assert run(*args, "--chat-template", "zephir", "--out", tmp_path / "typo") == 2
    assert "unknown chat template 'zephir'; valid: chatml" in capsys.readouterr().err


def test_resource_errors_are_one_named_line(tmp_path, monkeypatch, capsys):
    """An unwritable output dir, a full disk and a model dir without weights: exit 2, one line naming the path."""
    import errno
    import tempfile

    from poft.data import save_conversations
    from poft.io import write_json

    data = tmp_path / "data.jsonl"
    save_conversations(data, make_conversations(2))
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if str(dir) == str(tmp_path / "ro"):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert run("prepare", "--source", data, "--out", tmp_path / "ro" / "out.jsonl") == 2
    assert capsys.readouterr().err == (f"poft prepare: error: {tmp_path}/ro/out.jsonl: cannot write, read-only file "
                                       f"system on {tmp_path}/ro (choose a writable output directory)\n")

    for name in ("a", "b"):
        write_json(tmp_path / f"{name}.json", {"meta": {"model": name, "dataset_fingerprint": "fp"},
                                               "rows": [{"id": "x", "score": -1.0}]})

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    assert run("merge-scores", "--scores", tmp_path / "a.json", tmp_path / "b.json", "--out", tmp_path / "m.json") == 2
    assert capsys.readouterr().err == (f"poft merge-scores: error: {tmp_path}/m.json: cannot write, no space left on "
                                       "device (free space on its device, or write the output elsewhere)\n")
    monkeypatch.undo()

    def save_fails(*args, **kwargs):  # a library's own write (a trainer's checkpoint save) on a full disk
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "model.safetensors"))

    monkeypatch.setattr("poft.data.noise.add_noise", save_fails)
    assert run("noise", "--data", data, "--rematch-fraction", "0", "--char-rate", "0", "--out", tmp_path / "n.jsonl") == 2
    assert capsys.readouterr().err == f"poft noise: error: {tmp_path}/run/model.safetensors: No space left on device\n"

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert run("score", "--data", data, "--model", tmp_path / "model", "--out", tmp_path / "s.json") == 2
    assert capsys.readouterr().err == (
        f"poft score: error: model '{tmp_path}/model': no weights in the directory (expected one of: *.safetensors, "
        "pytorch_model*.bin, model.safetensors.index.json, pytorch_model.bin.index.json); was its download or save "
        "interrupted?\n")



def test_batch_runs_commands_in_one_process_as_if_alone_and_stops_at_the_first_failure(tmp_path, capsys):
    """`poft batch` (a group job of the DAG: its runs' training, then their evaluation): a command gives the same
    weights after another one as alone, and a failing command stops the batch with its status."""
    import torch
    from safetensors.torch import load_file

    from poft.data import save_conversations

    save_conversations(tmp_path / "data.jsonl", make_conversations(12))
    tok = make_tokenizer("llama3")
    tiny_llama(len(tok), seed=1).save_pretrained(tmp_path / "target")
    tok.save_pretrained(tmp_path / "target")
    common = (f"train --data {tmp_path / 'data.jsonl'} --model {tmp_path / 'target'} --set num_train_epochs=1 "
              "--set per_device_train_batch_size=4 --set max_length=80 --set learning_rate=1e-3")
    first, second = f"{common} --set seed=1 --out {tmp_path / 'first'}", f"{common} --set seed=2 --out {tmp_path / 'second'}"
    assert run("batch", first, second) == 0
    assert run(*common.split(), "--set", "seed=2", "--out", tmp_path / "alone") == 0
    final = [load_file(tmp_path / d / "checkpoint-3" / "model.safetensors") for d in ("second", "alone")]
    assert final[0].keys() == final[1].keys() and all(torch.equal(final[0][k], final[1][k]) for k in final[0])

    with pytest.raises(SystemExit) as stop:
        run("batch", f"{common} --set lr=1 --out {tmp_path / 'bad'}", f"{common} --out {tmp_path / 'never'}")
    assert stop.value.code == 2
    assert "unknown training option(s) 'lr'" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    assert run("batch", "batch 'train'") == 2
    assert "poft batch: error: command 1: batch inside batch" in capsys.readouterr().err
