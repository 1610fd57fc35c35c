"""The benchmark scripts end to end at a tiny size, in-process (no subprocesses, nothing asserted on speed): poft's
SFT trains on the same work as TRL's SFTTrainer (equal train loss), every scorer gives the same scores, both
multiple-choice backends give the same sums, and the ratios the result files report are there."""

import bench_mc
import bench_score
import bench_train
import pytest

pytestmark = pytest.mark.slow  # 5-10 s: importing TRL, six tiny training runs


def config(name, tmp_path):
    return {"name": name, "preset": "tiny", "device": "cpu", "repeats": 1, "samples": 12, "tmp": str(tmp_path / name)}


def test_bench_train_runs_trl_and_poft_on_the_same_work(tmp_path):
    names = ["trl_default", "trl_padding_free", "poft_sft_padded", "poft_sft_padding_free", "poft_poft_padded",
             "poft_poft_padding_free"]
    results = {n: bench_train.measure(config(n, tmp_path)) for n in names}
    ratios = bench_train.compare(results)
    # Valid = the same mean train loss as TRL's padded default: same samples, order, weights and optimizer.
    assert all(results[n]["valid"] for n in names), {n: results[n].get("loss_rel_diff_vs_trl_default") for n in names}
    assert results["poft_sft_padding_free"]["batch_layout"] == "packed"
    assert ratios["poft_sft_over_trl"] > 0 and set(ratios["poft_poft_over_sft_time"]) == {"padded", "padding_free"}
    assert results["trl_default"]["tokens"] == results["poft_poft_padded"]["tokens"]


def test_bench_score_scorers_agree(tmp_path):
    results = {n: bench_score.measure(config(n, tmp_path)) for n in bench_score.SCORERS}
    ratios = bench_score.compare(results)
    assert ratios["max_abs_score_diff"] < 1e-4
    assert ratios["poft_over_pad_to_max"] > 0 and ratios["poft_over_full_forward_padding_free"] > 0


def test_bench_mc_backends_agree(tmp_path):
    names = [f"{b}:{s}" for s in ("micro", "hellaswag", "mmlu") for b in bench_mc.BACKENDS]
    results = {n: bench_mc.measure({**config(n, tmp_path), "items": 6, "batch_size": 8}) for n in names}
    ratios = bench_mc.compare(results)
    assert set(ratios) == {"micro", "hellaswag", "mmlu"}
    assert all(r["max_abs_sum_diff"] < 1e-4 and r["hf_over_hf_lm_eval"] > 0 for r in ratios.values())
    assert [results[n]["shares_contexts"] for n in names] == [False, True] * 3
    assert results["hf:mmlu"]["tokens"] == results["hf-lm-eval:mmlu"]["tokens"] == 6 * 4 * 1 + 4 * sum(
        len(c) for _, c, _ in bench_mc.make_requests("mmlu", 512, 6)[::4])
