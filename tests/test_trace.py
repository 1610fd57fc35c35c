"""poft trace: PoFT's weight tau per training sample and epoch checkpoint, and its shares per group of samples;
training records it in every checkpoint (trace.json) from the forward its loss uses.

    python -m pytest -q tests/test_trace.py
"""

import json
import math

import pytest
import torch
from test_scoring import make_conversations
from test_training import write_run_inputs

from poft.chat import tokenize_chat
from poft.cli import main
from poft.data import read_conversations, save_conversations
from poft.losses import poft_weight
from poft.runs import epoch_checkpoints
from poft.scoring import load_model_and_tokenizer, mean_logprobs, pad_token_id
from poft.trace import TRACE_FILE, groups_of, most_down_weighted, record_epoch, recorded_groups, \
    sample_policy_scores, trace_rows, weight_shares
from poft.training import TrainSpec, build_examples


def test_trace_rows_are_poft_weights_by_hand():
    """tau = sigmoid(-(beta (r_theta - mean_j r_j) + gamma)), the mean over the aligned LLMs."""
    examples = [{"id": "a", "aligned": [-2.0, 0.0]}, {"id": "b", "aligned": [-1.0, -1.0]}]
    rows = trace_rows(examples, [-1.0, -2.0], beta=1.0, gamma=0.0, groups={"a": "clean", "b": "wrong"})
    assert [r["aligned"] for r in rows] == [-1.0, -1.0] and [r["group"] for r in rows] == ["clean", "wrong"]
    assert rows[0]["tau"] == 0.5 and rows[1]["tau"] == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-12)
    # beta 2, gamma 0.5: margin 2 * (-2 - -1) + 0.5 = -1.5 -> sigmoid(1.5)
    assert trace_rows(examples[1:], [-2.0], 2.0, 0.5)[0]["tau"] == pytest.approx(1 / (1 + math.exp(-1.5)), abs=1e-12)
    assert trace_rows(examples[1:], [-2.0], 1.0, 0.0)[0]["group"] == "all"


def test_weight_shares_and_most_down_weighted_by_hand():
    rows = [{"id": "x", "group": "a", "tau": 0.5, "aligned": -1.0, "r_theta": -1.0},
            {"id": "z", "group": "b", "tau": 0.25, "aligned": -3.0, "r_theta": -1.0},
            {"id": "y", "group": "b", "tau": 0.25, "aligned": -2.0, "r_theta": -0.5}]
    shares = weight_shares(rows)
    assert shares["a"] == {"n": 1, "data_share": 1 / 3, "weight_share": 0.5, "mean_tau": 0.5, "mean_aligned": -1.0,
                           "mean_r_theta": -1.0}
    assert shares["b"] == {"n": 2, "data_share": 2 / 3, "weight_share": 0.5, "mean_tau": 0.25, "mean_aligned": -2.5,
                           "mean_r_theta": -0.75}
    assert [r["id"] for r in most_down_weighted(rows, 2)] == ["y", "z"]  # equal tau: by id


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A PoFT run of 2 epochs on 12 samples, a third of them labelled 'boilerplate' in their meta."""
    root = tmp_path_factory.mktemp("trace")
    convs = make_conversations(12, seed=5)
    for k, c in enumerate(convs):
        c["meta"] = {"flaw": "boilerplate" if k % 3 == 0 else "clean"}
    convs, scores = write_run_inputs(root, "zephyr", 3, convs)
    assert main(["train", "--data", str(root / "data.jsonl"), "--model", str(root / "model"), "--scores",
                 str(root / "merged.json"), "--set", "loss=poft", "--set", "num_train_epochs=2", "--set",
                 "per_device_train_batch_size=4", "--set", "max_length=96", "--set", "beta=2.0", "--set", "gamma=0.5",
                 "--out", str(root / "run")]) in (0, None)
    assert main(["trace", "--run", str(root / "run"), "--group-by", "flaw", "--top", "3", "--recompute", "--out",
                 str(root / "trace")]) in (0, None)
    assert main(["trace", "--run", str(root / "run"), "--group-by", "flaw", "--top", "3", "--out",
                 str(root / "trace-recorded")]) in (0, None)
    return root, convs, scores


def test_the_trace_is_poft_weight_of_the_checkpoints_own_scores(trained_run):
    """Each epoch's tau equals poft_weight of r_theta computed another way (the scoring path: mean response
    log-prob under the checkpoint, its own template) and the run's beta and gamma, within 1e-5."""
    root, convs, scores = trained_run
    aligned = {r["id"]: r["score"] for r in scores["rows"]}
    for epoch, ckpt in epoch_checkpoints(root / "run").items():
        trace = json.loads((root / "trace" / f"epoch{epoch}.json").read_text())
        assert trace["meta"]["beta"] == 2.0 and trace["meta"]["gamma"] == 0.5
        rows = {r["id"]: r for r in trace["rows"]}
        assert sorted(rows) == sorted(c["id"] for c in convs)  # every training sample, none left out
        model, tok = load_model_and_tokenizer(str(ckpt), "cpu", "float32")
        chats = [tokenize_chat(tok, c["messages"], 96) for c in convs]
        for c, (r_theta, _) in zip(convs, mean_logprobs(model, chats, pad_token_id(tok))):
            expected = torch.sigmoid(torch.tensor(-(2.0 * (r_theta - aligned[c["id"]]) + 0.5))).item()
            assert rows[c["id"]]["r_theta"] == pytest.approx(r_theta, abs=1e-5)
            assert rows[c["id"]]["tau"] == pytest.approx(expected, abs=1e-5)
            assert rows[c["id"]]["group"] == c["meta"]["flaw"]


def test_the_summary_gives_shares_per_group_and_the_most_down_weighted(trained_run):
    root, convs, _ = trained_run
    summary = json.loads((root / "trace" / "summary.json").read_text())
    assert summary["group_by"] == "flaw" and sorted(summary["epochs"]) == ["1", "2"]
    for epoch, found in summary["epochs"].items():
        rows = json.loads((root / "trace" / f"epoch{epoch}.json").read_text())["rows"]
        assert found["shares"] == json.loads(json.dumps(weight_shares(rows)))
        assert found["shares"]["boilerplate"]["data_share"] == pytest.approx(4 / 12)
        assert sum(s["weight_share"] for s in found["shares"].values()) == pytest.approx(1.0)
        assert [r["id"] for r in found["most_down_weighted"]] == [r["id"] for r in most_down_weighted(rows, 3)]


def test_a_sample_without_the_group_key_is_named(trained_run, tmp_path):
    root, convs, _ = trained_run
    bare = [dict(c, meta={}) if c["id"] == "c4" else c for c in convs]
    save_conversations(tmp_path / "data.jsonl", bare)
    with pytest.raises(ValueError) as e:
        groups_of(read_conversations(tmp_path / "data.jsonl"), "flaw", "data.jsonl")
    assert str(e.value) == "data.jsonl: 1 sample(s) have no meta field 'flaw', e.g. 'c4'"


def test_poft_trace_reads_what_training_recorded(trained_run):
    """Without --recompute, the rows are the checkpoints' trace.json, regrouped by --group-by."""
    root, convs, _ = trained_run
    assert json.loads((root / "trace-recorded" / "summary.json").read_text())["recorded"] is True
    for epoch, ckpt in epoch_checkpoints(root / "run").items():
        recorded = json.loads((ckpt / TRACE_FILE).read_text())["rows"]
        written = json.loads((root / "trace-recorded" / f"epoch{epoch}.json").read_text())
        assert written["rows"] == recorded and written["meta"]["r_theta"] == "recorded in training"


def test_recorded_groups_invent_no_label():
    """No example has the key: all in "all"; some have it: the others None."""
    assert recorded_groups([{"id": "a", "meta": {}}, {"id": "b"}], "flaw") == {"a": "all", "b": "all"}
    assert recorded_groups([{"id": "a", "meta": {"flaw": "typo"}}, {"id": "b", "meta": {}}], "flaw") == {
        "a": "typo", "b": None}


def test_an_epoch_record_keeps_each_samples_first_value_sorted_by_id():
    """(step, id, r_theta) from two ranks; 'a' seen again in the last step (accelerate's completed last batch)."""
    examples = {i: {"id": i, "aligned": [-1.0, -3.0]} for i in "abc"}
    seen = [(0, "b", -1.0), (1, "a", -3.0), (0, "a", -2.0), (1, "c", -2.0)]
    rows = record_epoch(seen, examples, 1.0, 0.0, {"a": "x", "b": "y", "c": None})
    assert [(r["id"], r["r_theta"], r["group"], r["aligned"]) for r in rows] == [
        ("a", -2.0, "x", -2.0), ("b", -1.0, "y", -2.0), ("c", -2.0, None, -2.0)]
    assert rows[0]["tau"] == 0.5 and rows[1]["tau"] == pytest.approx(1 / (1 + math.exp(1)), abs=1e-12)
    unscored = {i: {"id": i, "aligned": None} for i in "abc"}  # an SFT run without a score file
    assert [(r["aligned"], r["tau"]) for r in record_epoch(seen, unscored, 1, 0, {})] == [(None, None)] * 3


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """A PoFT run with learning rate 0 (weights never change) on 10 samples in batches of 4 (the last holds 2);
    a 'flaw' in every sample's meta."""
    root = tmp_path_factory.mktemp("frozen")
    convs = make_conversations(10, seed=8)
    for k, c in enumerate(convs):
        c["meta"] = {"flaw": "typo" if k % 2 else "clean"}
    convs, scores = write_run_inputs(root, "chatml", 4, convs)
    sets = {"loss": "poft", "learning_rate": 0, "num_train_epochs": 2, "per_device_train_batch_size": 4,
            "max_length": 96, "beta": 1.5, "gamma": 0.25}
    assert main(["train", "--data", str(root / "data.jsonl"), "--model", str(root / "model"), "--scores",
                 str(root / "merged.json"), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")], "--out",
                 str(root / "run")]) in (0, None)
    return root, convs, scores, TrainSpec.from_dict(sets)


def test_training_records_the_weight_its_loss_applied(frozen_run):
    """Per epoch checkpoint: every sample once, sorted by id, its group from meta['flaw']; tau = poft_weight of the
    recorded r_theta and aligned; r_theta = the checkpoint's (the weights the batch saw) within 1e-5."""
    root, convs, scores, spec = frozen_run
    flaws = {c["id"]: c["meta"]["flaw"] for c in convs}
    for epoch, ckpt in epoch_checkpoints(root / "run").items():
        trace = json.loads((ckpt / TRACE_FILE).read_text())
        assert trace["meta"] | {"beta": 1.5, "gamma": 0.25, "epoch": epoch, "group_key": "flaw"} == trace["meta"]
        rows = trace["rows"]
        assert [r["id"] for r in rows] == sorted(flaws)  # each sample exactly once
        assert all(r["group"] == flaws[r["id"]] for r in rows)
        tau = poft_weight(torch.tensor([r["r_theta"] for r in rows], dtype=torch.float64),
                          torch.tensor([r["aligned"] for r in rows], dtype=torch.float64), 1.5, 0.25)
        assert tau.tolist() == pytest.approx([r["tau"] for r in rows], abs=1e-6)
        model, tok = load_model_and_tokenizer(str(ckpt), "cpu", "float32")
        examples, _ = build_examples(read_conversations(root / "data.jsonl"), tok, 96, scores)
        by_id = dict(zip([e["id"] for e in examples], sample_policy_scores(model, examples, spec, pad_token_id(tok))))
        assert [r["r_theta"] for r in rows] == pytest.approx([by_id[r["id"]] for r in rows], abs=1e-5)
        assert [r["aligned"] for r in rows] == pytest.approx([sum(e["aligned"]) / 3 for e in
                                                              sorted(examples, key=lambda e: e["id"])], abs=1e-12)
