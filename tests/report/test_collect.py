"""collect / with_overall: the long table, and errors that name the file (or record) and the field."""

import json

import pandas as pd
import pytest

from poft.report.collect import MetricsFileError, check_variant, collect, overall_gaps, read_records, with_overall

from .grids import TASKS, write_metrics


def test_collect_long_table_and_overall(grid):
    grid.runs(lambda b, d, m, v, s, e, t: 10.0 * e + (1 if t == "words" else 0), seeds=(0,), epochs=(1, 2))
    df = collect(grid.records)
    assert list(df.columns) == ["base", "dataset", "method", "variant", "seed", "epoch", "task", "metric", "value",
                                "stderr", "n"]
    assert len(df) == 2 * 2 * 2  # methods x epochs x tasks
    full = with_overall(df, TASKS)
    o = full[(full["task"] == "Overall") & (full["method"] == "sft")].set_index("epoch")["value"]
    assert o.to_dict() == {1: 10.5, 2: 20.5}  # mean of arith (10e) and words (10e + 1)


def test_overall_only_when_every_suite_task_is_present(grid):
    grid.runs(lambda *a: 50.0, methods=("sft",), seeds=(0,), epochs=(1,))
    grid.add("b1", "d1", "sft", "full", 0, 2, "arith", 60.0)  # epoch 2 lacks "words"
    df = collect(grid.records)
    full = with_overall(df, TASKS)
    assert sorted(full.loc[full["task"] == "Overall", "epoch"].tolist()) == [1]  # never a mean over a subset
    gaps = overall_gaps(df, TASKS)
    assert gaps[["epoch", "missing"]].values.tolist() == [[2, "words"]]
    with pytest.raises(ValueError, match="overall_tasks is empty"):
        with_overall(df, [])


def _record(path, **kw):
    return {"base": "b", "dataset": "d", "method": "sft", "variant": "full", "seed": 0, "epoch": 1,
            "metrics_file": str(path), **kw}


@pytest.mark.parametrize("content, message", [
    ({"schema": "poft.metrics/1", "task": "t", "metric": "acc", "n": 3}, "missing field 'value'"),
    ({"schema": "poft.metrics/1", "task": "t", "metric": "acc", "value": "high", "n": 3}, "field 'value'"),
    ({"schema": "poft.metrics/1", "task": "t", "metric": "acc", "value": 1.0, "n": -1}, "field 'n'"),
    ({"schema": "poft.metrics/1", "task": "t", "metric": "acc", "value": 1.0, "stderr": "x", "n": 1}, "field 'stderr'"),
    ({"schema": "other/2", "task": "t", "metric": "acc", "value": 1.0, "n": 1}, "field 'schema'"),
    ({"schema": "poft.metrics/1", "task": "", "metric": "acc", "value": 1.0, "n": 1}, "field 'task'"),
    ({"schema": "poft.metrics/1", "task": "Overall", "metric": "acc", "value": 1.0, "n": 1}, "reserved"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_metrics_file_names_file_and_field(tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(content))
    with pytest.raises(MetricsFileError, match=message) as e:
        collect([_record(f)])
    assert str(f) in str(e.value)


def test_unreadable_metrics_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(MetricsFileError, match="nope.json: cannot read metrics file"):
        collect([_record(missing)])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(MetricsFileError, match="broken.json: cannot read metrics file"):
        collect([_record(broken)])


@pytest.mark.parametrize("override, message", [
    ({"seed": "zero"}, "field 'seed': expected an integer"),
    ({"epoch": None}, "field 'epoch': expected an integer"),
    ({"method": "dpo"}, "field 'method'"),
    ({"variant": "filter:ifd"}, "field 'variant': unknown variant 'filter:ifd'; valid forms: full"),
    ({"method": "aligned", "epoch": 3}, "an aligned reference has no epoch"),
    ({"base": ""}, "field 'base'"),
])
def test_bad_record_names_record_and_field(tmp_path, override, message):
    f = write_metrics(tmp_path / "ok.json", "arith", 1.0)
    with pytest.raises(MetricsFileError, match=message) as e:
        collect([_record(f, **override)])
    assert "record 0" in str(e.value) and "ok.json" in str(e.value)


def test_missing_record_field(tmp_path):
    rec = _record(write_metrics(tmp_path / "ok.json", "arith", 1.0))
    del rec["variant"]
    with pytest.raises(MetricsFileError, match="record 0 .*missing field 'variant'"):
        collect([rec])


def test_duplicate_run_task_refused(tmp_path):
    a = write_metrics(tmp_path / "a.json", "arith", 1.0)
    b = write_metrics(tmp_path / "b.json", "arith", 2.0)
    with pytest.raises(MetricsFileError, match=r"b.json: duplicate \(run, task\).*task='arith' also in .*a.json"):
        collect([_record(a), _record(b)])


def test_aligned_rows_and_variants(tmp_path):
    f = write_metrics(tmp_path / "z.json", "arith", 40.0)
    df = collect([_record(f, method="aligned", seed=None, epoch=None, base="zephyr")])
    assert df["epoch"].isna().all() and df["seed"].isna().all() and df["value"].tolist() == [40.0]
    for ok in ("full", "dpo", "shuffled", "filter:preference:0.8", "filter:ifd:1", "distill:zephyr"):
        assert check_variant(ok) == ok
    for bad in ("filter:ifd:0", "filter:ifd:1.5", "distill:", "sft"):
        with pytest.raises(ValueError, match="valid forms"):
            check_variant(bad)
    assert isinstance(df, pd.DataFrame)


def test_read_records_json_list_or_lines(tmp_path, grid):
    grid.runs(lambda *a: 50.0, seeds=(0,), epochs=(1,))
    as_list, as_lines = tmp_path / "r.json", tmp_path / "r.jsonl"
    as_list.write_text(json.dumps(grid.records))
    as_lines.write_text("\n".join(json.dumps(r) for r in grid.records) + "\n")
    assert read_records(str(as_list)) == read_records(str(as_lines)) == grid.records
    as_lines.write_text(json.dumps(grid.records[0]) + "\n{oops\n")
    with pytest.raises(MetricsFileError, match="r.jsonl: line 2: not a JSON record"):
        read_records(str(as_lines))
