"""Filters keep exactly the top share by their score, never an unscored sample, in dataset order."""

import pytest

from poft.filters import FILTERS, SCORERS, filter_dataset, keep_top, resolve_scorer


def convs(n):
    return [{"id": f"s{i}", "messages": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "content": "x" * (i + 1)}]} for i in range(n)]


def scores(values):
    return {"meta": {"sources": ["m.json"]}, "rows": [{"id": f"s{i}", "score": v} for i, v in enumerate(values)]}


def test_keep_top_hand_example():
    kept, stats = keep_top(["a", "b", "c", "d", "e"], [-1.0, -0.2, None, -0.5, -0.2], 0.6)
    # target round(0.6 * 5) = 3: -0.2 (b), -0.2 (e, tie broken by position), -0.5 (d); c has no score
    assert kept == ["b", "d", "e"]
    assert stats == {"n_input": 5, "n_target": 3, "n_kept": 3, "n_invalid": 1, "threshold": -0.5}


def test_preference_filter_keeps_highest_mean_aligned_score():
    out = filter_dataset(convs(5), "preference", 0.4, scores([-3.0, -0.1, -2.0, -0.5, -1.0]))
    assert out["kept_ids"] == ["s1", "s3"]
    assert out["meta"]["method"] == "preference" and out["meta"]["n_kept"] == 2


def test_ifd_filter_excludes_ifd_at_least_one_then_keeps_highest():
    out = filter_dataset(convs(5), "ifd", 0.6, scores([0.5, 1.2, 0.9, 0.7, 1.0]))
    # 1.2 and 1.0 excluded (instruction does not help); of the rest keep 3: 0.9, 0.7, 0.5
    assert out["kept_ids"] == ["s0", "s2", "s3"] and out["meta"]["n_invalid"] == 2
    short = filter_dataset(convs(5), "ifd", 0.8, scores([0.5, 1.2, 0.9, 0.7, 1.0]))
    assert short["meta"]["n_target"] == 4 and short["meta"]["n_kept"] == 3  # shortfall is reported, not hidden


def test_pluggable_scorer_by_name_and_import_path():
    out = filter_dataset(convs(4), "scorer", 0.5, scorer="response_length")
    assert out["kept_ids"] == ["s2", "s3"] and out["meta"]["scorer"] == "response_length"
    assert resolve_scorer("poft.filters:response_length") is SCORERS["response_length"]
    with pytest.raises(KeyError, match="unknown scorer 'deita'; valid: response_length or 'module:function'"):
        resolve_scorer("deita")
    with pytest.raises(KeyError, match="scorer 'nosuch.module:f' cannot be imported"):
        resolve_scorer("nosuch.module:f")


def test_bad_inputs():
    with pytest.raises(KeyError, match="unknown filter 'instag'; valid: ifd, oracle, preference, scorer"):
        filter_dataset(convs(2), "instag", 0.5)
    with pytest.raises(ValueError, match=r"keep_fraction must be in \(0, 1\], got 0"):
        filter_dataset(convs(2), "scorer", 0)
    with pytest.raises(KeyError, match="1 sample\\(s\\) have no preference score, first: 's1'"):
        filter_dataset(convs(2), "preference", 0.5, scores([-1.0]))
    with pytest.raises(ValueError, match="the IFD filter needs a score file"):
        filter_dataset(convs(2), "ifd", 0.5)
    assert set(FILTERS) == {"preference", "ifd", "scorer", "oracle"}


def labelled(flaws):
    return [{**c, "meta": {"flaw": f}} for c, f in zip(convs(len(flaws)), flaws)]


def test_oracle_keeps_exactly_the_clean_samples():
    flaws = ["clean", "wrong", "clean", "boilerplate", "truncated", "clean", "wrong"]
    out = filter_dataset(labelled(flaws), "oracle", 1.0)
    assert out["kept_ids"] == ["s0", "s2", "s5"]
    assert out["meta"]["labels"] == {"boilerplate": {"n": 1, "kept": 0}, "clean": {"n": 3, "kept": 3},
                                     "truncated": {"n": 1, "kept": 0}, "wrong": {"n": 2, "kept": 0}}
    assert (out["meta"]["n_input"], out["meta"]["n_kept"], out["meta"]["n_invalid"]) == (7, 3, 4)


def test_oracle_drops_only_the_named_flaw():
    flaws = ["clean", "wrong", "clean", "boilerplate", "truncated", "clean", "wrong"]
    out = filter_dataset(labelled(flaws), "oracle", 1.0, drop=["wrong"])
    assert out["kept_ids"] == ["s0", "s2", "s3", "s4", "s5"] and out["meta"]["drop"] == ["wrong"]


def test_oracle_names_a_sample_without_a_label():
    data = labelled(["clean", "wrong"]) + [convs(3)[2]]
    with pytest.raises(ValueError, match=r"the oracle filter reads each sample's hidden label meta\['flaw'\]: "
                                         r"1 sample\(s\) have none, first: 's2'"):
        filter_dataset(data, "oracle", 1.0)


def test_oracle_subset_of_the_micro_world_is_its_clean_ids(tmp_path):
    """The DAG's control on a real micro set: `poft filter --method oracle` keeps the clean ids, all of them."""
    from poft.cli import main
    from poft.data import save_conversations
    from poft.io import read_json
    from poft.micro.datasets import make_sft_sets
    from poft.micro.world import World

    sets = make_sft_sets(World.generate(0, 8), 0, 60)
    save_conversations(tmp_path / "oh.jsonl", sets["openhermes"])  # as prepare_dataset writes it
    main(["filter", "--data", str(tmp_path / "oh.jsonl"), "--method", "oracle", "--keep", "1", "--out",
          str(tmp_path / "kept.json")])
    clean = [c["id"] for c in sets["openhermes"] if c["meta"]["flaw"] == "clean"]
    assert read_json(tmp_path / "kept.json")["kept_ids"] == clean and 0 < len(clean) < 60
