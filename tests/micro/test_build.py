"""The micro build's stages wire together: data -> base -> aligned -> manifest (tiny sizes, seconds)."""

import json

import pytest

import poft.micro.build as build

TINY = build.MicroSpec(prose=600, aligned=40, sft=40, pairs=10, bench_per_task=3, pretrain_steps=5, align_epochs=1)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """data -> micro-llama3 -> micro-zephyr -> manifest, at tiny sizes (the other models are left out)."""
    out = tmp_path_factory.mktemp("micro")
    mp = pytest.MonkeyPatch()
    mp.setattr(build, "ALIGNED", {"micro-zephyr": build.ALIGNED["micro-zephyr"]})
    records = {
        "data": build.run_stage(out, "data", seed=1, spec=TINY),
        "base": build.run_stage(out, "base", seed=1, name="micro-llama3", spec=TINY),
        "aligned": build.run_stage(out, "aligned", seed=1, name="micro-zephyr", spec=TINY),
        "manifest": build.run_stage(out, "manifest", seed=1, spec=TINY),
    }
    mp.undo()
    return out, records


def test_stages_write_models_records_and_manifest(tiny_world):
    tmp_path, records = tiny_world
    base, aligned, manifest = records["base"], records["aligned"], records["manifest"]
    assert (tmp_path / "models" / "micro-llama3" / "tokenizer.json").exists()
    assert base["arch"] == "llama" and base["template"] == "llama3" and 600_000 < base["parameters"] < 1_000_000
    assert aligned["sft"]["steps"] > 0 and aligned["template"] == "zephyr"
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert set(manifest["aligned_auc"]) == {"ultrachat", "sharegpt", "openhermes", "clean", "noisy"}
    assert manifest["aligned_auc"]["clean"] is None  # nothing flawed to tell apart in the control
    assert 0.0 <= manifest["aligned_auc"]["openhermes"] <= 1.0
    assert set(manifest["models"]) == {"micro-llama3", "micro-zephyr"}
    assert manifest["options"] == build.dataclasses.asdict(TINY) == base["options"]
    assert manifest["data"]["files"]["sft/openhermes.jsonl"]["n"] == TINY.sft


def test_manifest_auc_recomputed_through_the_scoring_cli(tiny_world):
    """The manifest's AUC equals the one from the DAG's own path: poft prepare -> poft score -> roc_auc."""
    from poft.cli import main
    from poft.data import read_conversations
    from poft.metrics import roc_auc
    from poft.scoring import read_scores

    out, records = tiny_world
    data = out / "check" / "openhermes.jsonl"
    assert main(["prepare", "--source", str(out / "data" / "sft" / "openhermes.jsonl"), "--format", "sharegpt",
                 "--out", str(data)]) == 0
    assert main(["score", "--data", str(data), "--model", str(out / "models" / "micro-zephyr"), "--quiet",
                 "--out", str(out / "check" / "zephyr.json")]) == 0
    by_id = {r["id"]: r["score"] for r in read_scores(out / "check" / "zephyr.json")["rows"]}
    convs = read_conversations(data)
    auc = roc_auc([by_id[c["id"]] for c in convs], [c["meta"]["flaw"] == "clean" for c in convs])
    reported = records["manifest"]["aligned_auc_per_model"]["openhermes"]["micro-zephyr"]
    assert auc == pytest.approx(reported, abs=1e-9)
    # The same scores through `poft audit`: the flaw labels of its lowest-scored fifth, counted.
    assert main(["audit", "--data", str(data), "--scores", str(out / "check" / "zephyr.json"), "--quiet",
                 "--out-dir", str(out / "check" / "audit")]) == 0
    bottom = json.loads((out / "check" / "audit" / "audit.json").read_text())["labels"]["bottom"]
    flawed = [c["id"] for c in convs if c["meta"]["flaw"] != "clean"]
    lowest = sorted(convs, key=lambda c: by_id[c["id"]])[: bottom["n"]]
    assert bottom["n"] == round(0.2 * len(convs)) and bottom["flawed"] == sum(c["id"] in flawed for c in lowest)


def test_learning_probe_and_majority_floor_recomputed(tiny_world):
    out, records = tiny_world
    assert set(records["manifest"]["learning_probe"]) == {"micro-llama3"}  # one probe per base built
    probe = records["manifest"]["learning_probe"]["micro-llama3"]
    assert probe["base"] == "micro-llama3" and probe["dataset"] == "ultrachat" and probe["epochs"] == 1
    rows = [json.loads(line) for line in (out / "data" / "bench" / "gen.jsonl").read_text().splitlines()]
    assert probe["n_bench"] == len(rows)
    # Per-task scores and the overall figure agree with each other (overall = row-weighted mean of tasks).
    for stage in ("before", "after"):
        per_task, n = probe[stage]["per_task"], {}
        for r in rows:
            n[r["task"]] = n.get(r["task"], 0) + 1
        weighted = sum(per_task[t] * n[t] for t in n) / len(rows)
        assert probe[stage]["exact_match"] == pytest.approx(weighted, abs=0.01)


def test_majority_baseline_by_hand():
    def conv(*turns):
        return {"meta": {"tasks": [t for t, _ in turns]},
                "messages": [m for _, r in turns for m in ({"role": "user", "content": "?"},
                                                           {"role": "assistant", "content": r})]}

    convs = [conv(("add", "The answer is 5."), ("add", "The answer is 5.")), conv(("add", "The answer is 7.")),
             conv(("color", "The answer is red.")), conv(("color", "I am not able to answer that."))]
    rows = [{"task": "add", "answer": "5"}, {"task": "add", "answer": "6"}, {"task": "color", "answer": "red"},
            {"task": "lucky", "answer": "3"}]  # lucky: never seen in training, so never guessed right
    assert build.majority_baseline(convs, rows) == 50.0


def test_auc_by_flaw_by_hand():
    scores = [0.9, 0.8, 0.1, 0.85, 0.2]
    flaws = ["clean", "clean", "wrong", "boilerplate", "boilerplate"]
    # wrong (0.1) is below both clean: 1.0; boilerplate 0.85 beats clean 0.8 once of 4 pairs: 3/4
    assert build.auc_by_flaw(scores, flaws) == {"boilerplate": 0.75, "wrong": 1.0}


@pytest.mark.parametrize("name", ["micro-mistral", "micro-llama3"])  # Qwen2- and Llama-style
def test_pretraining_tokenizer_is_the_one_later_stages_load(tmp_path, name):
    """Pretraining must see the tokens SFT, scoring and evaluation see: those of the tokenizer as loaded from the
    model dir (for Qwen2, transformers swaps in its own pre-tokenizer on load, which splits digits one by one)."""
    from poft.scoring import load_model_and_tokenizer

    build.run_stage(tmp_path, "data", seed=2, spec=TINY)
    model, pretrained_with, _ = build._pretrained(tmp_path, name, build.BASES[name], 2, TINY.pretrain())
    build._save(model, pretrained_with, tmp_path / "models" / name)
    _, loaded = load_model_and_tokenizer(str(tmp_path / "models" / name), "cpu", "float32")
    lines = (tmp_path / "data" / "prose.txt").read_text().splitlines()[:200] + ["4 plus 6 is 10. The answer is 10."]
    assert [pretrained_with(x).input_ids for x in lines] == [loaded(x).input_ids for x in lines]


def test_same_seed_same_weights(tmp_path):
    """Two builds of one base model from the same data and seed are bit-identical (same machine)."""
    build.run_stage(tmp_path, "data", seed=2, spec=TINY)
    build.run_stage(tmp_path, "base", seed=2, name="micro-mistral", spec=TINY)
    first = build.weights_sha256(tmp_path / "models" / "micro-mistral")
    build.run_stage(tmp_path, "base", seed=2, name="micro-mistral", spec=TINY)
    assert build.weights_sha256(tmp_path / "models" / "micro-mistral") == first
    build.run_stage(tmp_path, "base", seed=3, name="micro-mistral", spec=TINY)
    assert build.weights_sha256(tmp_path / "models" / "micro-mistral") != first


def test_unknown_stage_and_model():
    with pytest.raises(KeyError, match="unknown micro stage 'train'; valid: data, base, aligned, manifest"):
        build.run_stage("/tmp/x", "train")
    with pytest.raises(KeyError, match="unknown model 'gpt' for this stage; valid: micro-mistral, micro-llama3"):
        build.run_stage("/tmp/x", "base", name="gpt")


def test_rerun_of_aligned_stage_trains_afresh(tiny_world):
    """A re-run (after a crash or with new data) must not resume the fine-tune a former build left in work/:
    that checkpoint belongs to a model pretrained earlier. Same seed, fresh start: the same weights again."""
    out, records = tiny_world
    first = build.weights_sha256(out / "models" / "micro-zephyr")
    mp = pytest.MonkeyPatch()
    mp.setattr(build, "ALIGNED", {"micro-zephyr": build.ALIGNED["micro-zephyr"]})
    again = build.run_stage(out, "aligned", seed=1, name="micro-zephyr", spec=TINY)
    mp.undo()
    assert again["sft"]["steps"] == records["aligned"]["sft"]["steps"] > 0
    assert again["sft"]["train_loss"] == records["aligned"]["sft"]["train_loss"] > 0  # a resumed run reports 0.0
    assert build.weights_sha256(out / "models" / "micro-zephyr") == first
