"""The micro lm-eval tasks are wired right: a model that knows every answer scores 100 %, one that knows nothing
scores chance, and a real checkpoint runs end to end through lm-eval's HF backend into metrics JSONs."""

import dataclasses
import json

import pytest
from eval_fixtures import micro_data, micro_world, tiny_checkpoint  # noqa: F401 - fixtures
from fake_lms import GoldLM, RandomLM

from poft.evaluation.benchmarks import evaluate_checkpoint, make_lm, task_manager, task_spec, tokenizer_with_template
from poft.evaluation.suites import load_suite

MICRO = load_suite("micro")
GEN = [t for t in MICRO.tasks if t.startswith("micro_gen")]
MC = [t for t in MICRO.tasks if t.startswith("micro_mc")]


def _records(paths):
    return {r["task"]: r for r in (json.loads(p.read_text()) for p in paths)}


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


def test_checkpoint_end_to_end_through_hf(micro_data, tiny_checkpoint, tmp_path):
    settings = dataclasses.replace(MICRO.settings, limit=3)
    records = _records(evaluate_checkpoint(str(tiny_checkpoint), MICRO, tmp_path, data_dir=micro_data,
                                           settings=settings))
    assert set(records) == set(MICRO.tasks)
    for r in records.values():
        assert r["n"] == 3 and 0.0 <= r["value"] <= 100.0 and r["settings"]["backend"] == "hf"
        assert r["settings"]["limit"] == 3 and r["checkpoint"] == str(tiny_checkpoint)
    assert records["micro_mc_facts"]["metrics"]["acc,none"] * 100 == records["micro_mc_facts"]["value"]


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
