"""poft.controls: shuffled scores (control K1), distilled data (Table 5), DPO pairs (Table 3)."""

import json

import pytest

from poft.controls import distill_dataset, distill_prompts, shuffle_scores, to_pair
from poft.data import DataError


def merged(n: int, unscored=()) -> dict:
    rows = [{"id": f"s{i}", "score": None if i in unscored else -float(i),
             "scores": {"a": None if i in unscored else -float(i), "b": -2.0 * i}} for i in range(n)]
    return {"meta": {"kind": "merged", "dataset_fingerprint": "fp", "models": ["a", "b"]}, "rows": rows}


def test_shuffle_permutes_scores_across_ids_and_keeps_everything_else():
    m = merged(50)
    s = shuffle_scores(m, seed=3)
    assert [r["id"] for r in s["rows"]] == [r["id"] for r in m["rows"]]
    assert sorted(r["score"] for r in s["rows"]) == sorted(r["score"] for r in m["rows"])
    assert any(a["score"] != b["score"] for a, b in zip(s["rows"], m["rows"]))
    for r in s["rows"]:  # a row's mean and per-model scores travel together
        assert r["scores"]["a"] == r["score"] and r["scores"]["b"] == 2 * r["score"]
    assert s["meta"]["dataset_fingerprint"] == "fp" and s["meta"]["shuffled"]["seed"] == 3
    assert m["rows"][1]["score"] == -1.0  # the input is not modified


def test_shuffle_is_seeded_and_leaves_unscored_rows_in_place():
    m = merged(30, unscored={4, 17})
    a, b, c = shuffle_scores(m, 0), shuffle_scores(m, 0), shuffle_scores(m, 1)
    assert a == b and a["rows"] != c["rows"]
    assert a["rows"][4]["score"] is None and a["rows"][17]["score"] is None
    assert sum(r["score"] is None for r in a["rows"]) == 2
    assert a["meta"]["shuffled"]["n_permuted"] == 28


def conv(cid, *turns, system=None):
    msgs = [{"role": "system", "content": system}] if system else []
    for user, assistant in turns:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"id": cid, "messages": msgs, "meta": {"flaw": "wrong"}}


def test_distill_replaces_the_last_reply_and_keeps_the_history():
    convs = [conv("a", ("1+1?", "3")), conv("b", ("hi", "hello"), ("2+2?", "5"), system="Be brief.")]
    prompts = distill_prompts(convs)
    assert prompts[0] == [{"role": "user", "content": "1+1?"}]
    assert prompts[1] == convs[1]["messages"][:4]  # system, first exchange, the last question
    out, report = distill_dataset(convs, [" 2 ", "4"], "aligned-x")
    assert [c["id"] for c in out] == ["a", "b"]
    assert out[0]["messages"][-1] == {"role": "assistant", "content": "2"}
    assert out[1]["messages"][:4] == convs[1]["messages"][:4] and out[1]["messages"][-1]["content"] == "4"
    assert out[1]["meta"] == {"distilled_by": "aligned-x", "original": {"flaw": "wrong"}}
    assert report["n_multi_turn_last_turn_regenerated"] == 1 and report["dropped_empty_reply"] == 0
    assert convs[0]["messages"][-1]["content"] == "3"  # the input is not modified


def test_distill_drops_and_counts_empty_replies():
    out, report = distill_dataset([conv("a", ("q", "r")), conv("b", ("q", "r"))], ["", "ok"], "g")
    assert [c["id"] for c in out] == ["b"]
    assert report["dropped_empty_reply"] == 1 and report["dropped_ids_first_50"] == ["a"]
    with pytest.raises(ValueError, match="2 replies for 1"):
        distill_dataset([conv("a", ("q", "r"))], ["x", "y"], "g")


def test_pairs_from_ultrafeedback_and_trl_layouts():
    uf = {"prompt": "2+2?", "prompt_id": "p1",
          "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
          "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}
    assert to_pair(uf, 0, "uf") == {"id": "p1", "prompt": [{"role": "user", "content": "2+2?"}],
                                    "chosen": [{"role": "assistant", "content": "4"}],
                                    "rejected": [{"role": "assistant", "content": "5"}]}
    trl = {"id": 7, "prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}]}
    assert to_pair(trl, 3, "x")["id"] == "7"
    plain = {"prompt": "q", "chosen": "a", "rejected": "b"}
    assert to_pair(plain, 5, "x") == {"id": "5", "prompt": [{"role": "user", "content": "q"}],
                                      "chosen": [{"role": "assistant", "content": "a"}],
                                      "rejected": [{"role": "assistant", "content": "b"}]}


def test_pairs_errors_name_the_row_and_field():
    with pytest.raises(ValueError, match=r"^f.jsonl: row 2: missing field 'rejected'$"):
        to_pair({"prompt": "q", "chosen": "a"}, 2, "f.jsonl")
    bad = {"prompt": "q", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
           "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]}
    with pytest.raises(ValueError, match="differ before their last message"):
        to_pair(bad, 0, "f")


def test_pairs_from_a_damaged_file_list_every_bad_entry_at_its_line(tmp_path):
    from poft.controls import pairs_from_source
    from poft.data.readers import read_source

    good = {"prompt": "q", "chosen": "a", "rejected": "b"}
    lines = [json.dumps(good), json.dumps({"id": "x", "prompt": "q", "chosen": []}), '{"prompt": "q", "cho',
             json.dumps({**good, "id": "y", "rejected": "a"}), json.dumps({**good, "id": [1]}), json.dumps(good)]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        pairs_from_source(read_source(str(path)))
    assert str(e.value) == (
        f"{path}: 4 problems in 6 entries:\n"
        f"  {path}: line 2 (id=x): missing field 'rejected'\n"
        f"  {path}: line 3 column 17: line cut off mid-value, the next line starts a new one (Unterminated string)\n"
        f"  {path}: line 4 (id=y): chosen and rejected are identical\n"
        f"  {path}: line 5: field 'id': expected a string or an integer, got list\n"
        "by reason: bad_id=1, cut_off_line=1, identical=1, missing_field=1")
    assert pairs_from_source(read_source(str(path)), limit=1) == [
        {"id": "0", "prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
         "rejected": [{"role": "assistant", "content": "b"}]}]
