"""workflows/configs/real-smoke.yaml end to end: SmolLM2-135M-Instruct, from the GGUF file in its PyPI wheel, as an
aligned LLM beside two micro ones and as the target of SFT and PoFT runs, evaluated and reported.

    python -m pytest -q tests/workflow/test_real_smoke.py
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .conftest import ROOT, job_counts, run_dag

pytestmark = pytest.mark.slow  # a whole DAG run with a 135M-parameter model: minutes

CONFIG = ROOT / "workflows" / "configs" / "real-smoke.yaml"
FLAWS_A_READER_SEES = ("boilerplate", "truncated")  # a canned refusal, a reply cut off mid-sentence


@pytest.fixture(scope="module")
def real_smoke(tmp_path_factory):
    return run_dag(tmp_path_factory.mktemp("real-smoke") / "work", CONFIG, timeout=900)


def test_real_smoke_runs_end_to_end(real_smoke):
    """Its time is printed, not asserted: machines of this kind differ up to 2x."""
    work, seconds, log = real_smoke
    print(f"real-smoke DAG: {seconds:.0f} s")
    counts = job_counts(log)
    # one conversion serves the target and the aligned LLM of the same name; three aligned scorers; one group job
    # trains the SFT and PoFT runs and evaluates their four checkpoints
    assert counts["fetch_model"] == 1 and counts["score_dataset"] == 3 and counts["evaluate_checkpoint"] == 1
    marker = json.loads((work / "models" / "fetched" / "smollm2" / "poft_gguf.json").read_text())
    assert marker["architecture"] == "LlamaForCausalLM" and 134_000_000 < marker["n_parameters"] < 135_000_000


def test_the_real_model_scores_visible_flaws_below_clean_replies(real_smoke):
    """SmolLM2 reads the micro sets' English: a canned refusal or a cut-off reply is less likely, per token, than a
    clean one (its facts are about invented countries, so wrong answers it cannot tell)."""
    work = real_smoke[0]
    merged = json.loads((work / "scores" / "openhermes" / "merged.json").read_text())
    assert set(merged["meta"]["models"]) == {"smollm2", "micro-zephyr", "micro-yi"}
    assert merged["meta"]["n_unscored"] == 0
    score = {r["id"]: r["scores"]["smollm2"] for r in merged["rows"]}
    rows = [json.loads(line) for line in (work / "world" / "data" / "sft" / "openhermes.jsonl").open()]
    flaw = pd.Series({r["id"]: r["flaw"] for r in rows})
    means = pd.Series(score).groupby(flaw).mean()
    assert set(FLAWS_A_READER_SEES) <= set(means.index), means
    assert (means[list(FLAWS_A_READER_SEES)] < means["clean"]).all(), means


def test_both_runs_of_the_real_model_learn_and_are_reported(real_smoke):
    work = real_smoke[0]
    for method in ("sft", "poft"):
        summary = json.loads((work / "runs" / "smollm2" / "openhermes" / "full" / f"{method}-seed0" /
                              "train_summary.json").read_text())
        ce = [h["ce"] for h in summary["log_history"] if "ce" in h]
        assert len(ce) == 6, ce  # 24 samples / 8 per step x 2 epochs, a line per step
        assert sum(ce[-3:]) < sum(ce[:3]), (method, ce)  # the second epoch fits the data better than the first
    results = pd.read_csv(work / "results" / "results.csv")
    ran = results.groupby("method")["epoch"].agg(lambda e: sorted(set(e)))
    assert ran.to_dict() == {"poft": [2], "sft": [2]}  # evaluate: last
    assert {"Overall", "winrate_micro"} <= set(results["task"])
    assert "C1" in (work / "results" / "claims.md").read_text()
