"""Scoring equals a naive full-softmax computation; shards resume; merging checks its inputs."""

import json
import random

import pytest
import torch
from conftest import make_tokenizer, tiny_llama

from poft.batches import pad_batch
from poft.chat import IGNORE_INDEX, tokenize_chat
from poft.io import write_json
from poft.scoring import (
    ScoreFileError, ScoreSpec, length_sorted_batches, mean_logprobs, merge_scores, read_scores, score_dataset,
    token_logprobs,
)

WORDS = "the cat sat on a mat two plus three is five hello there count to ten reverse word".split()


def make_conversations(n, seed=0):
    rng = random.Random(seed)
    convs = []
    for i in range(n):
        msgs = [{"role": "system", "content": "You are a helpful assistant."}] if i % 3 == 0 else []
        for _ in range(1 + i % 2):
            msgs.append({"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(2, 12)))})
            msgs.append({"role": "assistant", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 20)))})
        convs.append({"id": f"c{i}", "messages": msgs})
    return convs


def naive_score(model, chat):
    """Full-vocabulary log-softmax over one unpadded sequence, float64."""
    ids = torch.tensor([chat.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    total, n = 0.0, 0
    for t in range(1, len(chat.input_ids)):
        if chat.labels[t] != IGNORE_INDEX:
            total += logp[t - 1, chat.labels[t]].item()
            n += 1
    return total / n, n


@pytest.mark.parametrize("name", ["chatml", "llama3", "zephyr"])
def test_scores_match_naive_full_softmax_for_any_batching(name):
    tok = make_tokenizer(name)
    model = tiny_llama(len(tok))
    convs = make_conversations(13)
    chats = [tokenize_chat(tok, c["messages"]) for c in convs]
    expected = [naive_score(model, c) for c in chats]
    for batch_size, chunk in [(1, 1024), (4, 7), (16, 3)]:
        got = mean_logprobs(model, chats, tok.pad_token_id, max_batch_size=batch_size, chunk_tokens=chunk)
        for (s, n), (es, en) in zip(got, expected):
            assert n == en
            assert s == pytest.approx(es, abs=1e-5)
    # Shuffled input order gives each sample the same score.
    perm = list(range(len(chats)))
    random.Random(1).shuffle(perm)
    got = mean_logprobs(model, [chats[i] for i in perm], tok.pad_token_id, max_batch_size=5)
    for j, i in enumerate(perm):
        assert got[j][0] == pytest.approx(expected[i][0], abs=1e-5)


def test_token_logprobs_gradient_matches_full_softmax():
    tok = make_tokenizer("chatml")
    model = tiny_llama(len(tok))
    chat = tokenize_chat(tok, make_conversations(1)[0]["messages"])
    ids, labels = torch.tensor([chat.input_ids]), torch.tensor([chat.labels])
    logps, _ = token_logprobs(model, pad_batch([chat], 0), chunk_tokens=4)
    logps.sum().backward()
    grad_chunked = model.lm_head.weight.grad.clone()
    model.zero_grad()
    logits = model(input_ids=ids).logits[0, :-1]
    keep = labels[0, 1:] != IGNORE_INDEX
    torch.log_softmax(logits, -1)[keep].gather(-1, labels[0, 1:][keep][:, None]).sum().backward()
    torch.testing.assert_close(grad_chunked, model.lm_head.weight.grad, atol=1e-5, rtol=1e-4)


def test_length_sorted_batches_respect_token_budget():
    lengths = [5, 50, 10, 40, 7, 30]
    batches = length_sorted_batches(lengths, max_batch_size=3, max_batch_tokens=90)
    assert batches == [[1], [3, 5], [2, 4, 0]]
    assert sorted(i for b in batches for i in b) == list(range(6))


def patch_shards(monkeypatch, crash_at: int | None = None) -> list:
    """Route `score_dataset`'s shards through a recorder; the `crash_at`-th shard raises, as a kill would.
    Returns the list of scored shards' ids, filled as they are scored."""
    import poft.scoring as scoring

    real, calls = scoring._score_shard, []

    def shard(model, tokenizer, part, *a):
        calls.append([c["id"] for c in part])
        if len(calls) == crash_at:
            raise RuntimeError("killed")
        return real(model, tokenizer, part, *a)

    monkeypatch.setattr(scoring, "_score_shard", shard)
    return calls


def test_score_dataset_writes_meta_and_resumes_from_shards(tmp_path, monkeypatch):
    tok = make_tokenizer("zephyr")
    model = tiny_llama(len(tok))
    convs = make_conversations(10)
    spec = ScoreSpec(max_length=40, shard_size=4)
    out = tmp_path / "scores.json"
    meta = score_dataset(model, tok, convs, out, spec=spec, model_name="m1", dataset_fingerprint="fp", progress=False)
    saved = json.loads(out.read_text())
    assert [r["id"] for r in saved["rows"]] == [c["id"] for c in convs]
    assert meta["n_samples"] == 10 and meta["max_length"] == 40 and meta["dataset_fingerprint"] == "fp"
    n_trunc = sum(len(tokenize_chat(tok, c["messages"]).input_ids) > 40 for c in convs)
    assert meta["tokenization"]["n_truncated"] == n_trunc > 0
    assert not (tmp_path / "scores.json.shards").exists()

    # Crash after the second shard: rerun must reuse shards 0 and 1 and score only shard 2.
    out2 = tmp_path / "again.json"
    patch_shards(monkeypatch, crash_at=3)
    with pytest.raises(RuntimeError):
        score_dataset(model, tok, convs, out2, spec=spec, model_name="m1", dataset_fingerprint="fp", progress=False)
    assert not out2.exists() and len(list((tmp_path / "again.json.shards").glob("*.json"))) == 2
    monkeypatch.undo()
    calls = patch_shards(monkeypatch)
    score_dataset(model, tok, convs, out2, spec=spec, model_name="m1", dataset_fingerprint="fp", progress=False)
    assert len(calls) == 1
    again = json.loads(out2.read_text())
    assert again["rows"] == saved["rows"]
    assert again["meta"]["tokenization"] == saved["meta"]["tokenization"]


def test_stale_shards_are_rescored_when_data_or_weights_change(tmp_path, monkeypatch):
    """A shard left by a crashed run is reused only for the same conversations (content, not ids) under the
    same weights: regenerated data with the same ids, or a model rebuilt under the same name, is rescored."""
    import poft.scoring as scoring

    tok = make_tokenizer("chatml")
    convs = make_conversations(6)
    spec = ScoreSpec(max_length=60, shard_size=3)

    def run(model, data, out):
        return score_dataset(model, tok, data, out, spec=spec, model_name="m", dataset_fingerprint="fp",
                             progress=False)

    patch_shards(monkeypatch, crash_at=2)
    with pytest.raises(RuntimeError):
        run(tiny_llama(len(tok), seed=0), convs, tmp_path / "s.json")  # leaves shard 0 of the old data behind
    monkeypatch.undo()
    regenerated = [{**c, "messages": [*c["messages"][:-1], {"role": "assistant", "content": "five"}]} for c in convs]
    model = tiny_llama(len(tok), seed=0)
    run(model, regenerated, tmp_path / "s.json")
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    fresh = tmp_path / "fresh.json"
    run(model, regenerated, fresh)
    assert rows == json.loads(fresh.read_text())["rows"]  # not the old data's scores under the same ids

    patch_shards(monkeypatch, crash_at=2)
    with pytest.raises(RuntimeError):
        run(tiny_llama(len(tok), seed=0), convs, tmp_path / "w.json")
    monkeypatch.undo()
    rebuilt = tiny_llama(len(tok), seed=1)  # same name "m", other weights
    meta = run(rebuilt, convs, tmp_path / "w.json")
    run(rebuilt, convs, tmp_path / "w_fresh.json")
    assert json.loads((tmp_path / "w.json").read_text())["rows"] == json.loads((tmp_path / "w_fresh.json").read_text())["rows"]
    assert meta["weights"] == scoring.state_fingerprint(rebuilt) != scoring.state_fingerprint(tiny_llama(len(tok)))


def test_corrupt_or_truncated_shards_are_named_and_rescored(tmp_path, monkeypatch, caplog):
    """A shard carries the sha256 of its content: one changed or cut off after it was written is named in a
    warning and rescored, never used; the result equals a fresh run."""
    tok = make_tokenizer("zephyr")
    model, convs, spec = tiny_llama(len(tok)), make_conversations(9), ScoreSpec(max_length=60, shard_size=3)

    def run(out):
        return score_dataset(model, tok, convs, out, spec=spec, model_name="m", dataset_fingerprint="fp",
                             progress=False)

    patch_shards(monkeypatch, crash_at=3)
    with pytest.raises(RuntimeError):
        run(tmp_path / "s.json")
    first, second = sorted((tmp_path / "s.json.shards").glob("*.json"))
    saved = json.loads(first.read_text())
    assert saved["checksum"].startswith("sha256:")
    saved["rows"][0]["score"] = 0.0  # a plausible value: only the checksum can tell
    first.write_text(json.dumps(saved))
    second.write_text(second.read_text()[:-15])
    monkeypatch.undo()
    calls = patch_shards(monkeypatch)
    run(tmp_path / "s.json")
    assert len(calls) == 3
    assert f"{first}: checksum mismatch, the content changed after it was written; rescoring" in caplog.text
    assert f"{second}: unreadable or truncated" in caplog.text
    run(tmp_path / "fresh.json")
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == json.loads((tmp_path / "fresh.json").read_text())["rows"]


def test_weights_fingerprint_reads_the_files_and_trusts_hub_blob_names(tmp_path):
    from poft.scoring import weights_fingerprint

    model_dir = tmp_path / "m"
    model = tiny_llama(64)
    model.save_pretrained(model_dir)
    (model_dir / "optimizer.pt").write_bytes(b"not part of the model")
    first = weights_fingerprint(str(model_dir))
    (model_dir / "optimizer.pt").write_bytes(b"changed")
    assert weights_fingerprint(str(model_dir)) == first  # optimizer states do not change scores
    tiny_llama(64, seed=1).save_pretrained(model_dir)  # rebuilt in place, same name
    assert weights_fingerprint(str(model_dir)) != first
    # The hub cache links each file to blobs/<sha256 of its bytes>: the name is taken, the file is not read.
    blobs, snap = tmp_path / "hub" / "blobs", tmp_path / "hub" / "snapshots" / "abc"
    blobs.mkdir(parents=True), snap.mkdir(parents=True)
    digest = "ab" * 32
    (blobs / digest).write_bytes(b"x")
    (snap / "model.safetensors").symlink_to(blobs / digest)
    import hashlib

    expected = hashlib.sha256(f"model.safetensors:{digest}\n".encode()).hexdigest()[:32]
    assert weights_fingerprint(str(snap)) == expected
    with pytest.raises(FileNotFoundError, match="no weight, config or tokenizer files to fingerprint"):
        weights_fingerprint(str(tmp_path / "hub" / "blobs"))


def _score_file(path, fingerprint, rows, model="m"):
    write_json(path, {"meta": {"kind": "aligned", "model": model, "dataset_fingerprint": fingerprint},
                      "rows": [{"id": i, "score": s} for i, s in rows]})


def test_merge_means_models_and_keeps_columns(tmp_path):
    _score_file(tmp_path / "a.json", "fp", [("x", -1.0), ("y", -2.0)], "A")
    _score_file(tmp_path / "b.json", "fp", [("y", -4.0), ("x", -3.0)], "B")
    _score_file(tmp_path / "c.json", "fp", [("x", -2.0), ("y", None)], "C")
    merged = merge_scores([tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"])
    assert merged["rows"] == [
        {"id": "x", "score": -2.0, "scores": {"A": -1.0, "B": -3.0, "C": -2.0}},
        {"id": "y", "score": None, "scores": {"A": -2.0, "B": -4.0, "C": None}},
    ]
    assert merged["meta"]["models"] == ["A", "B", "C"] and merged["meta"]["n_unscored"] == 1


def test_merge_rejects_mismatched_fingerprint(tmp_path):
    _score_file(tmp_path / "a.json", "fp1", [("x", -1.0)], "A")
    _score_file(tmp_path / "b.json", "fp2", [("x", -1.0)], "B")
    with pytest.raises(ScoreFileError, match=r"b\.json: dataset fingerprint fp2 differs from .*a\.json \(fp1\)"):
        merge_scores([tmp_path / "a.json", tmp_path / "b.json"])


def test_merge_rejects_missing_id(tmp_path):
    _score_file(tmp_path / "a.json", "fp", [("x", -1.0), ("y", -1.0)], "A")
    _score_file(tmp_path / "b.json", "fp", [("x", -1.0)], "B")
    with pytest.raises(ScoreFileError, match=r"b\.json: missing id 'y' \(compared with .*a\.json; 1 missing, 0 unexpected\)"):
        merge_scores([tmp_path / "a.json", tmp_path / "b.json"])


def test_merge_rejects_duplicate_names_and_bad_files(tmp_path):
    _score_file(tmp_path / "a.json", "fp", [("x", -1.0)], "A")
    with pytest.raises(ScoreFileError, match="duplicate aligned model names"):
        merge_scores([tmp_path / "a.json", tmp_path / "a.json"])
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(ScoreFileError, match=r"bad\.json: not a poft score file"):
        merge_scores([tmp_path / "bad.json"])
    write_json(tmp_path / "nofield.json", {"meta": {}, "rows": [{"id": "x"}]})
    with pytest.raises(ScoreFileError, match=r"nofield\.json: row 0 \(id=x\): missing field 'score'$"):
        merge_scores([tmp_path / "nofield.json"])
    rows = [{"id": "a", "score": -1.0}, {"id": "a", "score": -2.0}, {"id": "", "score": 1}, {"id": "c", "score": "x"},
            {"id": "d", "score": None, "scores": {"m": True}}, [1]]
    write_json(tmp_path / "rows.json", {"meta": {}, "rows": rows})
    with pytest.raises(ScoreFileError) as e:
        read_scores(tmp_path / "rows.json")
    path = tmp_path / "rows.json"
    assert str(e.value) == (
        f"{path}: 5 problems in 6 rows:\n"
        f"  {path}: row 1 (id=a): field 'id': duplicate id (first seen at row 0)\n"
        f"  {path}: row 2: field 'id': expected a non-empty string, got ''\n"
        f"  {path}: row 3 (id=c): field 'score': expected a finite number or null, got 'x'\n"
        f"  {path}: row 4 (id=d): field 'scores': expected an object of model name -> finite number or null\n"
        f"  {path}: row 5: expected a JSON object, got list\n"
        "by reason: bad_id=1, bad_score=2, duplicate_id=1, not_an_object=1")


class Bigram(torch.nn.Module):
    """A causal LM whose next-token logits depend on the current token only: logits = W[:, current]. Its
    probabilities can be worked out by hand, so the scores built on them can be too."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.head.weight.data.copy_(weight)
        self.config = type("Config", (), {})()

    def forward(self, input_ids, attention_mask=None, output_hidden_states=True, logits_to_keep=1, use_cache=False):
        hidden = torch.nn.functional.one_hot(input_ids, self.head.in_features).float()
        return type("Out", (), {"hidden_states": (hidden,)})()

    def get_output_embeddings(self):
        return self.head


def test_ifd_of_a_hand_made_sample(tmp_path):
    """Vocabulary [UNK] <s> </s> <u> <a> q y (V = 7); template "<u>{user}</s><a>{assistant}</s>", generation
    prompt "<a>"; no BOS is added, so the conversation user "q" / assistant "y" is the ids
    <u> q </s> <a> y </s>, with y and its end-of-turn </s> labelled.
    Bigram logits: 0 everywhere except logit(y | <a>) = ln 3 and logit(</s> | y) = ln 4, so
        p(y | <a>) = 3 / (3 + 6) = 1/3,  p(y | <s>) = 1/7,  p(</s> | y) = 4 / (4 + 6) = 0.4.
    With the instruction:  mean log p = (ln 1/3 + ln 0.4) / 2 = (-1.098612 - 0.916291) / 2 = -1.007452.
    Alone (<s> y </s>, the same two tokens): (ln 1/7 + ln 0.4) / 2 = (-1.945910 - 0.916291) / 2 = -1.431100.
    IFD = 1.007452 / 1.431100 = 0.703970. (Scoring y alone without its </s>, as before, gave
    1.007452 / 1.945910 = 0.517729: two different token sets.)"""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[UNK]", "<s>", "</s>", "<u>", "<a>", "q", "y"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="[UNK]",
                                  additional_special_tokens=["<u>", "<a>"])
    tok.chat_template = ("{% for m in messages %}{{ '<u>' if m['role'] == 'user' else '<a>' }}{{ m['content'] }}</s>"
                         "{% endfor %}{% if add_generation_prompt %}<a>{% endif %}")
    weight = torch.zeros(7, 7)  # [next, current]
    weight[vocab["y"], vocab["<a>"]] = torch.log(torch.tensor(3.0))
    weight[vocab["</s>"], vocab["y"]] = torch.log(torch.tensor(4.0))
    conv = [{"id": "s", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "y"}]}]
    out = tmp_path / "ifd.json"
    score_dataset(Bigram(weight), tok, conv, out, spec=ScoreSpec(kind="ifd", padding_free="false"), model_name="bigram",
                  dataset_fingerprint="x", progress=False)
    row = json.loads(out.read_text())["rows"][0]
    assert row["nll_cond"] == pytest.approx(1.007452, abs=1e-6)
    assert row["nll_alone"] == pytest.approx(1.431100, abs=1e-6)
    assert row["score"] == pytest.approx(0.703970, abs=1e-6) and row["n_tokens"] == 2
