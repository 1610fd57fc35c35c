"""The micro lm-eval tasks are wired right: a model that knows every answer scores 100 %, one that knows nothing
scores chance, and a real checkpoint runs end to end through lm-eval's HF backend into metrics JSONs, each with
its per-item file (same ids for every checkpoint, scores whose mean is the metric)."""

import dataclasses
import json

import pytest
from eval_fixtures import micro_data, micro_world, tiny_checkpoint  # noqa: F401 - fixtures
from fake_lms import GoldLM, RandomLM

from poft.evaluation.benchmarks import (evaluate_checkpoint, make_lm, task_items, task_manager, task_spec,
                                       tokenizer_with_template)
from poft.evaluation.items import read_items
from poft.evaluation.suites import SuiteTask, load_suite

MICRO = load_suite("micro")
GEN = [t for t in MICRO.tasks if t.startswith("micro_gen")]
MC = [t for t in MICRO.tasks if t.startswith("micro_mc")]


def _records(paths):
    return {r["task"]: r for r in (json.loads(p.read_text()) for p in paths)}


# The bench task types each micro task reads (evals/tasks/micro/utils.py FAMILIES).
FAMILY = {"arith": ("add", "sub", "larger"), "words": ("reverse", "count"), "facts": ("capital", "color", "lucky")}


def test_gold_model_scores_100_everywhere(micro_data, micro_world, tmp_path):
    records = _records(evaluate_checkpoint("gold", MICRO, tmp_path, data_dir=micro_data, lm=GoldLM(micro_world)))
    assert set(records) == set(MICRO.tasks)
    for r in records.values():
        assert r["value"] == 100.0 and r["n"] > 0, r["task"]
    gen = records["micro_gen_arith"]
    assert gen["schema"] == "poft.metrics/1" and gen["metric"] == "exact_match" and gen["filter"] == "extract"
    assert gen["settings"]["num_fewshot"] == 0 and gen["settings"]["apply_chat_template"] is True
    assert gen["settings"]["seeds"] == {"random": 0, "numpy": 1234, "torch": 1234, "fewshot": 1234}
    assert gen["versions"]["lm_eval"] and gen["versions"]["task_version"] == 1.0
    # Every bench row is scored exactly once, by one generate and one multiple-choice task.
    n_rows = sum(1 for _ in open(micro_data / "bench" / "gen.jsonl"))
    assert sum(records[t]["n"] for t in GEN) == sum(records[t]["n"] for t in MC) == n_rows


def test_random_model_scores_chance(micro_data, tmp_path):
    records = _records(evaluate_checkpoint("random", MICRO, tmp_path, data_dir=micro_data, lm=RandomLM(seed=0)))
    n_mc = sum(records[t]["n"] for t in MC)
    pooled_mc = sum(records[t]["value"] * records[t]["n"] for t in MC) / n_mc
    assert 18.0 < pooled_mc < 32.0  # 4 choices: 25 % (n ~ 200, so +-3 points is one standard error)
    assert all(records[t]["value"] < 10.0 for t in GEN)  # open answers: a guess is almost never right


def test_items_pair_across_checkpoints_and_average_to_the_metric(micro_data, micro_world, tmp_path):
    gold = evaluate_checkpoint("gold", MICRO, tmp_path / "gold", data_dir=micro_data, lm=GoldLM(micro_world))
    rand = evaluate_checkpoint("random", MICRO, tmp_path / "random", data_dir=micro_data, lm=RandomLM(seed=0))
    bench = {kind: [json.loads(line) for line in open(micro_data / "bench" / f"{kind}.jsonl")] for kind in ("gen", "mc")}
    for g, r in zip(gold, rand):
        record, items, other = json.loads(r.read_text()), read_items(r), read_items(g)
        task = record["task"]
        assert items["path"] == str(r.parent / f"{task}.items.json") and record["items_file"] == f"{task}.items.json"
        # The bench rows of the task's family, in file order: ids are "<task>/<row id>", groups the row's type.
        rows = [row for row in bench[task.split("_")[1]] if row["task"] in FAMILY[task.split("_")[2]]]
        assert items["ids"] == other["ids"] == [f"{task}/{row['id']}" for row in rows]
        assert items["groups"] == other["groups"] == [row["task"] for row in rows]
        assert record["n_items"] == record["n"] == len(rows)
        assert set(items["scores"]) <= {0.0, 100.0} and other["scores"] == [100.0] * len(rows)
        assert sum(items["scores"]) / len(rows) == pytest.approx(record["value"], abs=1e-9)
    mc = read_items(rand[3])
    assert 0.0 < sum(mc["scores"]) / len(mc["scores"]) < 100.0  # both kinds of item, so the mean check has teeth


def _results(samples, metric_list=None, subtasks=None):
    """The parts of lm-eval's results dict that task_items reads."""
    metric_list = metric_list or [{"metric": "acc", "aggregation": "mean"}]
    return {"samples": samples, "group_subtasks": subtasks or {},
            "configs": {leaf: {"metric_list": metric_list} for leaf in samples}}


def _sample(doc_id, acc, filter="none", **doc):
    return {"doc_id": doc_id, "filter": filter, "acc": acc, "doc": doc}


def test_task_items_by_hand():
    # A group of two leaves; lm-eval logged b's docs out of order and a second filter that the suite does not read.
    samples = {"a": [_sample(0, 1.0, kind="x"), _sample(1, 0.0, kind="y"), _sample(0, 0.0, "other", kind="x")],
               "b": [_sample(1, 1.0, kind="y"), _sample(0, 0.5, kind="x")]}
    items = task_items(_results(samples, subtasks={"g": ["a", "b"]}), SuiteTask("g", "acc", item_group="kind"))
    assert items == {"schema": "poft.items/1", "task": "g", "metric": "acc", "ids": ["a/0", "a/1", "b/0", "b/1"],
                     "scores": [100.0, 0.0, 50.0, 100.0], "groups": ["x", "y", "x", "y"]}
    assert task_items(_results({"a": samples["a"]}), SuiteTask("a", "acc"))["groups"] is None
    with pytest.raises(KeyError, match="task 'a': doc 0 has no field 'row' .the suite's item_id.; its fields: kind"):
        task_items(_results({"a": samples["a"]}), SuiteTask("a", "acc", item_id="row"))
    with pytest.raises(ValueError, match="task 'a': 'a' aggregates 'acc' with 'median', not a mean"):
        task_items(_results({"a": samples["a"]}, [{"metric": "acc", "aggregation": "median"}]), SuiteTask("a", "acc"))
    with pytest.raises(KeyError, match="task 'a': lm-eval logged no samples of 'a' with filter 'strict'"):
        task_items(_results({"a": samples["a"]}), SuiteTask("a", "acc", filter="strict"))


def test_default_ids_are_doc_indices_and_a_missing_group_field_is_named(micro_data, micro_world, tmp_path):
    suite = load_suite("micro")
    suite.tasks["micro_mc_words"] = SuiteTask("micro_mc_words", "acc")  # no item_id, no item_group
    (path,) = evaluate_checkpoint("gold", suite, tmp_path, ["micro_mc_words"], micro_data, lm=GoldLM(micro_world))
    items = read_items(path)
    assert items["ids"] == [f"micro_mc_words/{i}" for i in range(len(items["ids"]))] and items["groups"] is None
    suite.tasks["micro_mc_words"].item_group = "topic"
    with pytest.raises(KeyError, match="task 'micro_mc_words': doc 0 has no field 'topic' .the suite's item_group.; "
                                       "its fields: id, task, prompt, choices, gold"):
        evaluate_checkpoint("gold", suite, tmp_path / "bad", ["micro_mc_words"], micro_data, lm=GoldLM(micro_world))
    assert not (tmp_path / "bad").exists()  # nothing written: no metrics JSON without its items


def test_checkpoint_end_to_end_through_hf(micro_data, tiny_checkpoint, tmp_path):
    settings = dataclasses.replace(MICRO.settings, limit=3)
    records = _records(evaluate_checkpoint(str(tiny_checkpoint), MICRO, tmp_path, data_dir=micro_data,
                                           settings=settings))
    assert set(records) == set(MICRO.tasks)
    for r in records.values():
        assert r["n"] == 3 and 0.0 <= r["value"] <= 100.0 and r["settings"]["backend"] == "hf"
        assert r["settings"]["limit"] == 3 and r["checkpoint"] == str(tiny_checkpoint)
    assert records["micro_mc_facts"]["metrics"]["acc,none"] * 100 == records["micro_mc_facts"]["value"]
    assert read_items(tmp_path / "micro_mc_facts.json")["ids"] == [f"micro_mc_facts/{i}" for i in
                                                                   ("capital-0000", "capital-0001", "capital-0002")]


def test_a_named_chat_template_reaches_lm_eval(tiny_checkpoint):
    """lm-eval's HF backend renders with the checkpoint's tokenizer, its template replaced by the named one."""
    from poft.templates import CHAT_TEMPLATES

    ckpt = str(tiny_checkpoint)  # a ChatML tokenizer
    with tokenizer_with_template(ckpt, "zephyr") as tokenizer:
        assert make_lm(ckpt, "hf", 1, "cpu", "float32", tokenizer).tokenizer.chat_template == CHAT_TEMPLATES["zephyr"]
    assert make_lm(ckpt, "hf", 1, "cpu", "float32").tokenizer.chat_template == CHAT_TEMPLATES["chatml"]


def test_bad_input_errors(micro_data, tmp_path):
    tm = task_manager(MICRO)
    with pytest.raises(KeyError, match="unknown task 'gsm8k' in suite 'micro'; valid: micro_gen_arith, micro_gen_words"):
        evaluate_checkpoint("x", MICRO, tmp_path, tasks=["gsm8k"], data_dir=micro_data, lm=RandomLM())
    with pytest.raises(FileNotFoundError, match=f"task 'micro_mc_arith': data file not found: {tmp_path}/bench/mc.jsonl"):
        task_spec(tm, "micro_mc_arith", tmp_path)
    with pytest.raises(ValueError, match="task 'micro_gen_arith' reads local data files .* pass the data dir"):
        task_spec(tm, "micro_gen_arith", None)


def test_a_bench_row_no_task_would_score_is_an_error(micro_data, tmp_path):
    (tmp_path / "bench").mkdir()
    rows = (micro_data / "bench" / "gen.jsonl").read_text().splitlines()[:3]
    rows.append(json.dumps({"id": "riddle-0000", "task": "riddle", "prompt": "What has keys?", "answer": "piano"}))
    (tmp_path / "bench" / "gen.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="micro bench task type.s. riddle belong to no micro lm-eval task"):
        evaluate_checkpoint("x", MICRO, tmp_path / "m", tasks=["micro_gen_arith"], data_dir=tmp_path, lm=RandomLM())
