"""Suites load with their pinned settings; Overall is the plain mean of the suite's Overall tasks."""

import pytest

from poft.evaluation.suites import load_suite, overall


def test_shipped_suites_load():
    micro, lb = load_suite("micro"), load_suite("leaderboard_v1")
    assert len(micro.tasks) == 6 and micro.settings.apply_chat_template and micro.winrate.judge == "verifier"
    assert [t.label for t in lb.tasks.values()] == ["ARC", "TruthfulQA", "Winogrande", "GSM8k", "HellaSwag", "MMLU"]
    assert lb.tasks["lb1_gsm8k"].key == "exact_match,strict-match"
    assert not lb.settings.apply_chat_template and not lb.settings.fewshot_as_multiturn
    assert load_suite("alpaca_eval2").winrate.lc


def test_overall_is_the_mean_of_the_overall_tasks():
    suite = load_suite("leaderboard_v1")
    values = dict(zip(suite.tasks, [60.0, 40.0, 75.0, 30.0, 80.0, 61.0]))
    assert overall(values, suite) == pytest.approx(346.0 / 6)
    suite.tasks["lb1_gsm8k"].overall = False  # a task left out of Overall no longer counts
    del values["lb1_gsm8k"]
    assert overall(values, suite) == pytest.approx(316.0 / 5)


def test_overall_names_missing_tasks():
    with pytest.raises(ValueError, match="suite 'micro': cannot compute Overall, missing task.s.: micro_gen_words, micro_mc_facts"):
        overall({t: 50.0 for t in load_suite("micro").tasks if t not in ("micro_gen_words", "micro_mc_facts")},
                load_suite("micro"))


def test_unknown_names_list_the_valid_ones(tmp_path):
    with pytest.raises(KeyError, match="unknown suite 'lb2'; valid: alpaca_eval2, leaderboard_v1, micro"):
        load_suite("lb2")
    with pytest.raises(KeyError, match="unknown task 'gsm8k' in suite 'micro'; valid: micro_gen_arith, "):
        load_suite("micro").task("gsm8k")
    bad = tmp_path / "s.yaml"
    bad.write_text("name: s\nsettings: {num_fewshot: 5}\ntasks: {}\n")
    with pytest.raises(ValueError, match="s.yaml: unknown setting.s. .num_fewshot.; valid: apply_chat_template"):
        load_suite(bad)


def test_the_micro_win_rate_samples_and_its_reference_does_not():
    spec = load_suite("micro").winrate
    assert spec.generation == {"max_new_tokens": 24, "batch_size": 64, "do_sample": True, "temperature": 1.0,
                               "samples_per_prompt": 2}
    assert spec.reference_generation() == {"max_new_tokens": 24, "batch_size": 64}


def test_winrate_spec_fills_in_the_data_dir():
    spec = load_suite("micro").winrate
    assert spec.with_data("/w/data").judge_options == {"world": "/w/data/world.json"}
    with pytest.raises(ValueError, match="reads '{data}/bench/gen.jsonl': pass the data dir"):
        spec.with_data(None)
