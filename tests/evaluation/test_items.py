"""The per-item file beside a metrics JSON: written compact and checked, read back only when it agrees with its
record, and every malformed file refused with an error that names the file and the field."""

import json
import math

import pytest

from poft.evaluation.items import ItemsFileError, check_mean, items_file_name, make_items, read_items, write_items
from poft.io import write_json

IDS, SCORES, GROUPS = ["t/a-0", "t/a-1", "t/b-0", "t/b-1"], [100.0, 0.0, 100.0, 100.0], ["a", "a", "b", "b"]


def _write(tmp_path, items=None, **record):
    """A metrics record (value = 75, the mean of SCORES) and its items file; returns both paths."""
    items = make_items("t", "acc", IDS, SCORES, GROUPS) if items is None else items
    metrics = tmp_path / "t.json"
    write_json(metrics, {"schema": "poft.metrics/1", "task": "t", "metric": "acc", "value": 75.0,
                         "items_file": items_file_name("t"), "n_items": 4, **record})
    path = tmp_path / items_file_name("t")
    path.write_text(json.dumps(items))
    return metrics, path


def test_round_trip_is_compact_and_keeps_order(tmp_path):
    path = write_items(tmp_path, make_items("t", "acc", IDS, SCORES, GROUPS))
    assert path == tmp_path / "t.items.json" and len(path.read_text().splitlines()) == 1
    metrics, _ = _write(tmp_path)
    got = read_items(metrics)
    assert got == {"task": "t", "metric": "acc", "ids": IDS, "scores": SCORES, "groups": GROUPS, "path": str(path)}
    _write(tmp_path, make_items("t", "acc", IDS, SCORES))
    assert read_items(metrics)["groups"] is None


def _bad(field, value):
    items = make_items("t", "acc", IDS, SCORES, GROUPS)
    if value is KeyError:
        del items[field]
    else:
        items[field] = value
    return items


@pytest.mark.parametrize("items, message", [
    (_bad("schema", "poft.items/0"), "field 'schema': expected 'poft.items/1', got 'poft.items/0'"),
    (_bad("ids", KeyError), "missing field 'ids'"),
    (_bad("ids", ["t/a-0", "t/a-1", "t/a-0", "t/b-1"]), "field 'ids': duplicate id 't/a-0' (items 0 and 2)"),
    (_bad("ids", ["t/a-0", 1, "t/b-0", "t/b-1"]), "field 'ids': item 1: expected a non-empty string, got 1"),
    (_bad("ids", []), "field 'ids': expected a non-empty list, got []"),
    (_bad("scores", SCORES[:3]), "field 'scores': expected a list of 4 (one per id), got 3"),
    (_bad("scores", [100.0, math.nan, 100.0, 100.0]), "field 'scores': item 1 ('t/a-1'): expected a finite number, got nan"),
    (_bad("scores", [100.0, "0", 100.0, 100.0]), "field 'scores': item 1 ('t/a-1'): expected a finite number, got '0'"),
    (_bad("groups", "a"), "field 'groups': expected a list of 4 (one per id), got str"),
    (_bad("groups", ["a", "a", "b", None]), "field 'groups': item 3 ('t/b-1'): expected a string, got None"),
    (_bad("task", "u"), "field 'task': 'u', but its metrics record {metrics} says 't'"),
    (_bad("scores", [100.0, 100.0, 100.0, 100.0]), "field 'scores': their mean is 100.0, but its metrics record "
                                                   "{metrics} says value=75.0"),
])
def test_bad_items_files_name_the_file_and_the_field(tmp_path, items, message):
    metrics, path = _write(tmp_path, items)
    with pytest.raises(ItemsFileError) as e:
        read_items(metrics)
    assert str(e.value) == f"{path}: " + message.format(metrics=metrics)


def test_a_record_must_name_an_items_file_that_agrees_with_it(tmp_path):
    metrics, path = _write(tmp_path, n_items=3)
    with pytest.raises(ItemsFileError) as e:
        read_items(metrics)
    assert str(e.value) == f"{path}: field 'ids': 4 items, but its metrics record {metrics} says n_items=3"
    _write(tmp_path, items_file=None)
    with pytest.raises(ItemsFileError) as e:
        read_items(metrics)
    assert str(e.value) == f"{metrics}: field 'items_file': expected the name of the items file beside it, got None"
    _write(tmp_path)
    path.unlink()
    with pytest.raises(ItemsFileError) as e:
        read_items(metrics)
    assert str(e.value) == f"{path}: cannot read (No such file or directory)"
    path.write_text("{")
    with pytest.raises(ItemsFileError, match=f"^{path}: not JSON "):
        read_items(metrics)


def test_a_corrupted_items_file_is_named_and_refused(tmp_path):
    """write_items records the sha256 of the content; a file changed after it was written fails it by name, even
    when what changed still has the right shape (here: a score flipped and the value still agrees)."""
    metrics, _ = _write(tmp_path)
    path = write_items(tmp_path, make_items("t", "acc", IDS, SCORES, GROUPS))
    assert json.loads(path.read_text())["checksum"].startswith("sha256:")
    assert read_items(metrics)["scores"] == SCORES
    path.write_text(path.read_text().replace("[100.0, 0.0, 100.0, 100.0]", "[0.0, 100.0, 100.0, 100.0]"))
    with pytest.raises(ItemsFileError) as e:
        read_items(metrics)
    assert str(e.value) == (f"{path}: checksum mismatch, the content changed after it was written; re-run the "
                            "evaluation that wrote it")
    path.write_text(path.read_text()[:-20])  # truncated
    with pytest.raises(ItemsFileError, match=f"^{path}: not JSON "):
        read_items(metrics)


def test_items_are_checked_when_made_and_against_the_value():
    with pytest.raises(ItemsFileError) as e:
        make_items("t", "acc", ["x", "x"], [0.0, 100.0])
    assert str(e.value) == "items of task 't': field 'ids': duplicate id 'x' (items 0 and 1)"
    items = make_items("t", "acc", IDS, SCORES)
    check_mean(items, 75.0 + 1e-9, "task 't'")  # float noise passes
    with pytest.raises(ValueError) as e:
        check_mean(items, 74.9, "task 't'")
    assert str(e.value) == "task 't': the mean of the 4 item scores is 75.0, but the metric value is 74.9"
