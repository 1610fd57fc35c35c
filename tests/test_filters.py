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
    with pytest.raises(KeyError, match="unknown filter 'instag'; valid: ifd, preference, scorer"):
        filter_dataset(convs(2), "instag", 0.5)
    with pytest.raises(ValueError, match=r"keep_fraction must be in \(0, 1\], got 0"):
        filter_dataset(convs(2), "scorer", 0)
    with pytest.raises(KeyError, match="1 sample\\(s\\) have no preference score, first: 's1'"):
        filter_dataset(convs(2), "preference", 0.5, scores([-1.0]))
    with pytest.raises(ValueError, match="the IFD filter needs a score file"):
        filter_dataset(convs(2), "ifd", 0.5)
    assert set(FILTERS) == {"preference", "ifd", "scorer"}
