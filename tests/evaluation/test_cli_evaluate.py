"""`poft evaluate ...` end to end on a tiny checkpoint: lm-eval suite -> generate -> win rate -> Overall, and
bad input as one error line."""

import json

import pytest
from eval_fixtures import micro_data, tiny_checkpoint  # noqa: F401 - fixtures

from poft.cli import main
from poft.evaluation.items import read_items
from poft.io import read_json, write_json
from poft.runs import records_from_index


def run(*argv):
    return main([str(a) for a in argv])


def test_micro_suite_end_to_end(micro_data, tiny_checkpoint, tmp_path):
    metrics = tmp_path / "metrics"
    assert run("evaluate", "lm-eval", "--suite", "micro", "--model", tiny_checkpoint, "--data", micro_data,
               "--limit", 2, "--out-dir", metrics) == 0
    for name, role in (("model", []), ("reference", ["--as-reference"])):
        assert run("evaluate", "generate", "--suite", "micro", "--model", tiny_checkpoint, "--data", micro_data,
                   "--name", name, *role, "--set", "max_new_tokens=4", "--out", tmp_path / f"{name}.json") == 0
    assert run("evaluate", "winrate", "--suite", "micro", "--data", micro_data, "--outputs", tmp_path / "model.json",
               "--reference", tmp_path / "reference.json", "--out-dir", metrics) == 0
    assert run("evaluate", "overall", "--suite", "micro", "--metrics-dir", metrics, "--out", tmp_path / "overall.json") == 0

    tasks = ("micro_gen_arith", "micro_gen_words", "micro_gen_facts", "micro_mc_arith", "micro_mc_words",
             "micro_mc_facts", "winrate_micro")
    names = sorted(p.name for p in metrics.glob("*.json"))
    assert names == sorted([f"{t}.json" for t in tasks] + [f"{t}.items.json" for t in tasks])
    assert all(read_items(metrics / f"{t}.json")["groups"] for t in tasks)  # the suite groups by task type
    win = json.loads((metrics / "winrate_micro.json").read_text())
    assert win["value"] == 50.0  # a random tiny model never answers right: every pair a draw
    # The suite samples 2 replies per prompt at temperature 1; the reference stays greedy, one reply per prompt.
    assert win["generation"]["max_new_tokens"] == 4 and win["generation"]["do_sample"] is True
    assert {k: win["settings"][k] for k in ("do_sample", "temperature", "seed", "samples_per_prompt")} == \
        {"do_sample": True, "temperature": 1.0, "seed": 0, "samples_per_prompt": 2}
    assert win["n"] == 2 * win["n_items"] and win["reference"]["generation"]["do_sample"] is False
    assert win["reference"]["generation"]["samples_per_prompt"] == 1
    assert win["reference"]["generator"] == "reference" and win["checkpoint"] == str(tiny_checkpoint)
    values = {t: json.loads((metrics / f"{t}.json").read_text())["value"] for t in tasks if t.startswith("micro_")}
    overall = json.loads((tmp_path / "overall.json").read_text())
    assert overall["overall"] == pytest.approx(sum(values.values()) / 6)


def test_the_evaluation_index_leads_the_report_to_every_items_file(micro_data, tiny_checkpoint, tmp_path):
    rows = [json.loads(line) for line in open(micro_data / "bench" / "gen.jsonl")][:3]
    write_json(tmp_path / "reference.json", [{"id": r["id"], "instruction": r["prompt"], "output": "The answer is 1.",
                                              "generator": "ref"} for r in rows])
    write_json(tmp_path / "prompts.json", rows)
    record = {"base": "b", "dataset": "d", "method": "poft", "variant": "full", "seed": 0}
    assert run("evaluate", "checkpoint", "--suite", "micro", "--model", tiny_checkpoint, "--data", micro_data,
               "--limit", 2, "--reference", tmp_path / "reference.json", "--prompts", tmp_path / "prompts.json",
               "--generation", "max_new_tokens=2", "--record", json.dumps(record), "--out-dir", tmp_path / "m") == 0
    records = records_from_index(read_json(tmp_path / "m" / "evaluation.json"))
    assert len(records) == 7
    for rec in records:
        items, metrics = read_items(rec["metrics_file"]), read_json(rec["metrics_file"])
        # 3 prompts judged, 2 sampled replies each (the suite's); --limit 2 docs per lm-eval task
        n_items, n = (3, 6) if metrics["task"] == "winrate_micro" else (2, 2)
        assert items["task"] == metrics["task"] and len(items["ids"]) == metrics["n_items"] == n_items
        assert metrics["n"] == n
    win = read_items(tmp_path / "m" / "winrate_micro.json")
    assert win["ids"] == [r["id"] for r in rows] and win["groups"] == [r["task"] for r in rows]


@pytest.mark.parametrize("argv, message", [
    (["lm-eval", "--suite", "lb3", "--model", "m", "--out-dir", "o"], "unknown suite 'lb3'; valid: alpaca_eval2, "),
    (["lm-eval", "--suite", "micro", "--task", "arc", "--model", "m", "--out-dir", "o"],
     "unknown task 'arc' in suite 'micro'; valid: micro_gen_arith, "),
    (["winrate", "--outputs", "o.json", "--reference", "r.json", "--judge", "gpt", "--out-dir", "o"],
     "unknown judge 'gpt'; valid: verifier, alpaca_eval, hf"),
    (["generate", "--suite", "micro", "--model", "m", "--out", "o.json"],
     "reads '{data}/bench/gen.jsonl': pass the data dir (--data)"),
    (["overall", "--suite", "micro", "--metrics-dir", "nowhere", "--out", "o.json"],
     "cannot compute Overall, missing task(s): micro_gen_arith, "),
])
def test_bad_input_is_one_error_line(argv, message, capsys):
    assert run("evaluate", *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("poft evaluate: error: ") and message in err[0]


def test_missing_data_file_names_the_path(tiny_checkpoint, tmp_path, capsys):
    assert run("evaluate", "lm-eval", "--suite", "micro", "--task", "micro_mc_words", "--model", tiny_checkpoint,
               "--data", tmp_path, "--out-dir", tmp_path / "m") == 2
    assert f"task 'micro_mc_words': data file not found: {tmp_path}/bench/mc.jsonl" in capsys.readouterr().err
