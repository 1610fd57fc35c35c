"""The `poft` verbs end to end on local files: prepare -> score x2 -> merge -> filter -> train, and bad input."""

import json

import pytest
from conftest import make_tokenizer, tiny_llama
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
    assert "poft prepare: error:" in err and "bad.jsonl: row 0" in err and "'bot'" in err
    # Scores of other data are refused by train and filter.
    (w / "other.jsonl").write_text((w / "data.jsonl").read_text().replace("the", "THE", 1))
    assert run("train", "--data", w / "other.jsonl", "--model", w / "target", "--scores", w / "merged.json",
               "--out", w / "r2") == 2
    assert "scores were computed on other data than" in capsys.readouterr().err
    assert run("train", "--data", w / "data.jsonl", "--model", w / "target", "--set", "lr=1", "--out", w / "r3") == 2
    assert "unknown training option(s) 'lr'" in capsys.readouterr().err
    assert run("train", "--data", w / "data.jsonl", "--model", w / "nowhere", "--out", w / "r4") == 2
    assert "no such directory" in capsys.readouterr().err
