"""Pairwise win rates go through alpaca_eval's own metrics: identical replies draw (50 %), a strictly better model
wins (> 50 %), and every judge speaks alpaca_eval's preference encoding (1 reference, 2 model, 1.5 draw). Each
prompt's verdict (100 win, 50 draw, 0 loss) lands in the per-item file, and their mean is the win rate."""

import dataclasses
import json

import pytest
from eval_fixtures import micro_data, micro_world, tiny_checkpoint  # noqa: F401 - fixtures

from poft.evaluation.items import read_items
from poft.evaluation.judges import JUDGES, AlpacaEvalJudge, HFJudge, Pair, make_judge
from poft.evaluation.winrate import (evaluate_winrate, generate_outputs, generation_sidecar, pair_outputs, read_prompts,
                                    verdict_scores, winrate_items, winrate_metrics)
from poft.io import write_json
from poft.micro.world import canonical_response, solve


def _outputs(path, prompts, replies, generator):
    write_json(path, [{"id": p["id"], "instruction": p["instruction"], "output": r, "generator": generator}
                      for p, r in zip(prompts, replies)])
    return str(path)


@pytest.fixture(scope="module")
def prompts(micro_data):
    return read_prompts(micro_data / "bench" / "gen.jsonl")[::4]  # every task type, ~70 prompts


@pytest.fixture
def verifier(micro_data):
    return make_judge("verifier", {"world": str(micro_data / "world.json")})


def test_identical_outputs_give_50(prompts, micro_world, verifier, tmp_path):
    replies = [canonical_response(solve(p["instruction"], micro_world)) if i % 3 else "I cannot help."
               for i, p in enumerate(prompts)]
    out = evaluate_winrate(_outputs(tmp_path / "a.json", prompts, replies, "a"),
                           _outputs(tmp_path / "b.json", prompts, replies, "b"), "verifier", verifier, tmp_path,
                           task="winrate_micro")
    record = json.loads(out.read_text())
    assert record["value"] == 50.0 and record["n_draws"] == record["n"] == len(prompts) and record["n_wins"] == 0
    assert record["task"] == "winrate_micro" and record["metric"] == "win_rate" and record["lc_win_rate"] is None
    assert record["judge"] == {"name": "verifier", "options": {"world": verifier.world}}
    assert (tmp_path / "winrate_micro.annotations.jsonl").exists()


def test_better_model_wins(prompts, micro_world, verifier, tmp_path):
    gold = [canonical_response(solve(p["instruction"], micro_world)) for p in prompts]
    wrong_every_other = [g if i % 2 else "The answer is nothing." for i, g in enumerate(gold)]
    out = evaluate_winrate(_outputs(tmp_path / "gold.json", prompts, gold, "gold"),
                           _outputs(tmp_path / "ref.json", prompts, wrong_every_other, "ref"), "verifier", verifier,
                           tmp_path)
    record = json.loads(out.read_text())
    n_better = sum(1 for i in range(len(prompts)) if not i % 2)
    # Wins count 1 and draws 1/2: (n_better + (n - n_better) / 2) / n
    assert record["value"] == pytest.approx(100 * (n_better + (len(prompts) - n_better) / 2) / len(prompts))
    assert record["value"] > 50.0 and record["n_wins"] == n_better and record["n_wins_reference"] == 0


def test_per_prompt_verdicts_with_the_verifier(prompts, micro_data, micro_world, verifier, tmp_path):
    """Prompt i: the model alone right (i % 3 == 0: win), the reference alone right (1: loss), both right (2: draw)."""
    gold = [canonical_response(solve(p["instruction"], micro_world)) for p in prompts]
    wrong = "The answer is nothing."
    model = [g if i % 3 != 1 else wrong for i, g in enumerate(gold)]
    ref = [g if i % 3 != 0 else wrong for i, g in enumerate(gold)]
    out = evaluate_winrate(_outputs(tmp_path / "m.json", prompts, model, "m"),
                           _outputs(tmp_path / "r.json", prompts[::-1], ref[::-1], "r"),  # pairs follow the reference
                           "verifier", verifier, tmp_path, task="winrate_micro", item_group="task",
                           prompts_path=str(micro_data / "bench" / "gen.jsonl"))
    record, items = json.loads(out.read_text()), read_items(out)
    expected = {p["id"]: [100.0, 0.0, 50.0][i % 3] for i, p in enumerate(prompts)}
    assert items["ids"] == [p["id"] for p in prompts[::-1]]
    assert items["scores"] == [expected[i] for i in items["ids"]]
    assert items["groups"] == [i.split("-")[0] for i in items["ids"]]  # the bench rows' task type: "add-0004" -> add
    assert record["items_file"] == "winrate_micro.items.json" and record["n_items"] == record["n"] == len(prompts)
    assert sum(items["scores"]) / len(prompts) == pytest.approx(record["value"], abs=1e-9) and record["n_wins"] > 0
    annotations = [json.loads(line) for line in open(tmp_path / "winrate_micro.annotations.jsonl")]
    assert [a["id"] for a in annotations] == items["ids"]


def test_alpaca_eval_layout_pairs_by_row_and_groups_by_dataset(tmp_path):
    """alpaca_eval's reference has no ids: items are its row numbers; its "dataset" field is the group."""

    @dataclasses.dataclass
    class Fixed:
        def preferences(self, pairs, reference_name, model_name):
            return [1.0, 2.0, 1.5, 1.75]

    reference = [{"dataset": d, "instruction": f"q{i}", "output": "r", "generator": "gpt4"}
                 for i, d in enumerate(["koala", "oasst", "koala", "vicuna"])]
    write_json(tmp_path / "ref.json", reference)
    # The outputs come in another order, with ids of their own: the reference's rows define the items.
    write_json(tmp_path / "out.json", [{"id": str(3 - i), "instruction": f"q{i}", "output": "o", "generator": "m"}
                                       for i in range(4)][::-1])
    out = evaluate_winrate(str(tmp_path / "out.json"), str(tmp_path / "ref.json"), "fixed", Fixed(), tmp_path,
                           item_group="dataset")
    items = read_items(out)
    assert items["ids"] == ["0", "1", "2", "3"] and items["groups"] == ["koala", "oasst", "koala", "vicuna"]
    assert items["scores"] == [0.0, 100.0, 50.0, 75.0] and json.loads(out.read_text())["value"] == 56.25


def test_a_bad_group_field_fails_before_the_judge_runs(prompts, micro_data, tmp_path):
    @dataclasses.dataclass
    class Unreachable:
        def preferences(self, *a):
            raise AssertionError("judged")

    path = _outputs(tmp_path / "a.json", prompts, ["x"] * len(prompts), "a")
    with pytest.raises(ValueError, match=f"win-rate item_group 'topic': neither {path} nor .*gen.jsonl has it for "
                                         f"{len(prompts)} prompt id.s. .e.g. 'add-0000'."):
        evaluate_winrate(path, path, "u", Unreachable(), tmp_path, item_group="topic",
                         prompts_path=str(micro_data / "bench" / "gen.jsonl"))
    with pytest.raises(ValueError, match="win-rate item_group 'task': .*a.json rows have no such field and no prompts"):
        evaluate_winrate(path, path, "u", Unreachable(), tmp_path, item_group="task")
    assert not list(tmp_path.glob("winrate*"))


def test_verdicts_by_hand_average_to_alpaca_evals_win_rate():
    import pandas as pd

    # alpaca_eval: 1 reference wins, 2 model wins, 1.5 (and legacy 0) draw, soft values in between; NaN unjudged.
    prefs = [1.0, 2.0, 1.5, 0.0, 1.25, float("nan"), 2.0]
    assert verdict_scores(prefs) == [0.0, 100.0, 50.0, 50.0, 25.0, None, 100.0]
    items = winrate_items("w", [f"p{i}" for i in range(7)], prefs, list("aabbccd"))
    assert items["ids"] == ["p0", "p1", "p2", "p3", "p4", "p6"] and items["groups"] == list("aabbcd")
    metrics, _ = winrate_metrics(pd.DataFrame({"preference": prefs}), lc=False)
    assert metrics["n_total"] == 6 and sum(items["scores"]) / 6 == pytest.approx(metrics["win_rate"]) == 325 / 6


def test_verifier_preferences_by_hand(micro_world, micro_data):
    judge = make_judge("verifier", {"world": str(micro_data / "world.json")})
    q = "What is 2 plus 3?"
    pairs = [Pair(q, "The answer is 5.", "The answer is 6."), Pair(q, "The answer is 6.", "The answer is 5."),
             Pair(q, "The answer is 5.", "The answer is 5."), Pair(q, "No.", "The answer is 7.")]
    assert judge.preferences(pairs, "ref", "model") == [1.0, 2.0, 1.5, 1.5]
    metrics, note = winrate_metrics(__import__("pandas").DataFrame({"preference": [1.0, 2.0, 1.5, 1.5]}), lc=False)
    assert metrics["win_rate"] == 50.0 and metrics["n_wins"] == 1 and metrics["n_draws"] == 2 and note == "not requested"


def test_hf_judge_is_symmetric_on_identical_outputs(tiny_checkpoint):
    judge = HFJudge(model=str(tiny_checkpoint), batch_size=4)
    pairs = [Pair("Reverse the word cat.", "tac", "tac"), Pair("What is 2 plus 3?", "5", "5"),
             Pair("What is 2 plus 3?", "The answer is 5.", "I do not know.")]
    prefs = judge.preferences(pairs, "ref", "model")
    assert prefs[:2] == [1.5, 1.5] and 1.0 <= prefs[2] <= 2.0 and judge.n_truncated == 0


def test_alpaca_eval_judge_runs_alpaca_evals_annotator(tmp_path):
    """alpaca_eval's own PairwiseAnnotator, with its offline `test_completions` decoder standing in for GPT-4."""
    from alpaca_eval import constants

    template = constants.EVALUATORS_CONFIG_DIR / "alpaca_eval_clf_gpt4_turbo" / "alpaca_eval_clf.txt"
    config = tmp_path / "always_m" / "configs.yaml"
    config.parent.mkdir()
    config.write_text(f"""always_m:
  prompt_template: "{template}"
  fn_completions: test_completions
  completions_kwargs: {{model_name: test, value: "m"}}
  fn_completion_parser: regex_parser
  completion_parser_kwargs: {{outputs_to_match: {{1: '^m$', 2: '^M$'}}}}
  batch_size: 1
""")
    judge = AlpacaEvalJudge(annotators_config=str(config))
    prefs = judge.preferences([Pair("q1", "a", "b"), Pair("q2", "c", "c"), Pair("q3", "d", "e")], "ref", "model")
    assert len(prefs) == 3 and prefs[1] == 1.5 and set(prefs) <= {1.0, 1.5, 2.0}


def test_unmatched_or_unknown_input_is_an_error(prompts, tmp_path):
    a = [{"id": p["id"], "instruction": p["instruction"], "output": "x"} for p in prompts]
    with pytest.raises(ValueError, match=r"1 reference row\(s\) without an output \(e.g. \['add-0000'\]\)"):
        pair_outputs(a[1:], a, "o.json", "r.json")
    with pytest.raises(KeyError, match="unknown judge 'gpt5'; valid: verifier, alpaca_eval, hf"):
        make_judge("gpt5", {})
    with pytest.raises(ValueError, match="unknown option of judge 'hf'.s. 'modle'; valid: model, template"):
        make_judge("hf", {"modle": "x"})
    with pytest.raises(FileNotFoundError, match=f"verifier judge: world file not found: {tmp_path}/w.json"):
        make_judge("verifier", {"world": str(tmp_path / "w.json")})
    assert list(JUDGES) == ["verifier", "alpaca_eval", "hf"]


def _annotations(n=60, seed=0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"preference": np.where(rng.uniform(size=n) < 0.7, 2.0, 1.0),
                         "output_1": ["a" * int(k) for k in rng.integers(5, 50, n)],
                         "output_2": ["b" * int(k) for k in rng.integers(5, 80, n)],
                         "generator_1": "ref", "generator_2": "model", "annotator": "judge"})


def test_length_controlled_win_rate_when_its_data_are_available(monkeypatch, tmp_path):
    """alpaca_eval's GLM needs AlpacaEval's per-instruction table from the hub: a synthetic one stands in."""
    import alpaca_eval.metrics.glm_winrate as glm
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    table = pd.DataFrame([{"model": m, "index": i, "instruction_difficulty": d, "preference": rng.uniform(),
                           "std_delta_len": rng.normal(), "not_gamed_baseline": False}
                          for m in ("gamed_short", "gamed_long") for i, d in enumerate(rng.normal(size=60))])
    table.to_csv(tmp_path / "df_gamed.csv", index=False)
    monkeypatch.setattr(glm, "hf_hub_download", lambda **kw: str(tmp_path / "df_gamed.csv"))
    metrics, note = winrate_metrics(_annotations(), lc=True)
    assert note is None and metrics["win_rate"] == 70.0 and 0.0 < metrics["length_controlled_winrate"] < 100.0

    def offline(**kw):
        raise OSError("no network")

    monkeypatch.setattr(glm, "hf_hub_download", offline)
    metrics, note = winrate_metrics(_annotations(), lc=True)
    assert "length_controlled_winrate" not in metrics and note.endswith("OSError: no network")


def test_generation_applies_and_records_a_named_chat_template(tiny_checkpoint, tmp_path):
    from types import SimpleNamespace

    from poft.chat import template_hash
    from poft.evaluation.generation import GenerationSpec
    from poft.templates import ZEPHYR

    out = tmp_path / "outputs.json"
    generate_outputs(str(tiny_checkpoint), [{"id": "0", "instruction": "hi"}], GenerationSpec(max_new_tokens=2), out,
                     chat_template="zephyr")
    recorded = json.loads(generation_sidecar(out).read_text())["settings"]["chat_template"]
    assert recorded == {"source": "zephyr", "hash": template_hash(SimpleNamespace(chat_template=ZEPHYR))}


def _sampled(path, rows):
    """An outputs file of (id, sample, output) rows on prompts q<id>."""
    write_json(path, [{"id": i, "sample": k, "instruction": f"q{i}", "output": o, "generator": "m"}
                      for i, k, o in rows])
    return str(path)


@dataclasses.dataclass
class ByOutput:
    """A judge reading the verdict off the model's reply: "win", "draw", "loss", or anything else unjudged."""

    def preferences(self, pairs, reference_name, model_name):
        return [{"win": 2.0, "draw": 1.5, "loss": 1.0}.get(p.output, float("nan")) for p in pairs]


def test_win_rate_over_samples_by_hand(tmp_path):
    """Prompt A's samples win and draw (item 75), B's lose twice (0), C's win twice (100): the win rate is the mean of
    the six pairs, (100 + 50 + 0 + 0 + 100 + 100) / 6 = 58.33, and the mean of the three items, (75 + 0 + 100) / 3."""
    reference = _outputs(tmp_path / "ref.json", [{"id": i, "instruction": f"q{i}"} for i in "ABC"], ["r"] * 3, "ref")
    rows = [("A", 1, "draw"), ("A", 0, "win"), ("B", 0, "loss"), ("B", 1, "loss"), ("C", 0, "win"), ("C", 1, "win")]
    out = evaluate_winrate(_sampled(tmp_path / "m.json", rows), reference, "by_output", ByOutput(), tmp_path)
    record, items = json.loads(out.read_text()), read_items(out)
    assert items["ids"] == ["A", "B", "C"] and items["scores"] == [75.0, 0.0, 100.0]
    assert record["value"] == pytest.approx(350 / 6) and record["n"] == 6 and record["n_items"] == 3
    assert record["n_wins"] == 3 and record["n_draws"] == 1 and record["n_wins_reference"] == 2
    assert record["settings"]["samples_per_prompt"] == 2
    annotations = [json.loads(line) for line in open(tmp_path / "winrate.annotations.jsonl")]
    assert [(a["id"], a["sample"], a["preference"]) for a in annotations][:2] == [("A", 0, 2.0), ("A", 1, 1.5)]


def test_a_prompt_with_an_unjudged_sample_is_left_out_whole(tmp_path):
    """B's second sample is unjudged: B's other sample is dropped too, so that A and C weigh the same and the win
    rate (100 + 50 + 0 + 0) / 4 = 37.5 is still the mean of the items (75 + 0) / 2."""
    reference = _outputs(tmp_path / "ref.json", [{"id": i, "instruction": f"q{i}"} for i in "ABC"], ["r"] * 3, "ref")
    rows = [("A", 0, "win"), ("A", 1, "draw"), ("B", 0, "win"), ("B", 1, "?"), ("C", 0, "loss"), ("C", 1, "loss")]
    out = evaluate_winrate(_sampled(tmp_path / "m.json", rows), reference, "by_output", ByOutput(), tmp_path)
    record, items = json.loads(out.read_text()), read_items(out)
    assert items["ids"] == ["A", "C"] and items["scores"] == [75.0, 0.0] and record["value"] == 37.5


def test_samples_must_be_as_many_per_prompt_and_the_reference_one_per_prompt(tmp_path):
    reference = [{"id": i, "instruction": f"q{i}", "output": "r"} for i in "AB"]
    uneven = [{"id": i, "sample": k, "instruction": f"q{i}", "output": "o"} for i, k in (("A", 0), ("A", 1), ("B", 0))]
    with pytest.raises(ValueError, match=r"o.json: prompts have different numbers of samples \('B': 1, others up to 2"):
        pair_outputs(uneven, reference, "o.json", "r.json")
    with pytest.raises(ValueError, match="o.json: duplicate id 'A' .sample 1."):
        pair_outputs(uneven + uneven[1:2], reference, "o.json", "r.json")
    with pytest.raises(ValueError, match="r.json: duplicate id 'A': a reference holds one reply per prompt"):
        pair_outputs(uneven[:1], reference[:1] * 2, "o.json", "r.json")
    # Files without sample indices (written before there were samples) are one reply per prompt.
    pairs, n = pair_outputs([{**r, "output": "o"} for r in reference], reference, "o.json", "r.json")
    assert n == 1 and [p.output for p in pairs] == ["o", "o"]


def test_generate_outputs_writes_a_row_per_sample_and_records_the_sampling(tiny_checkpoint, tmp_path):
    from poft.evaluation.generation import GenerationSpec

    spec = GenerationSpec(max_new_tokens=4, do_sample=True, temperature=1.0, seed=3, samples_per_prompt=3)
    prompts = [{"id": "a", "instruction": "hi"}, {"id": "b", "instruction": "Reverse the word cat."}]
    rows = generate_outputs(str(tiny_checkpoint), prompts, spec, tmp_path / "o.json")
    assert [(r["id"], r["sample"]) for r in rows] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    settings = json.loads(generation_sidecar(tmp_path / "o.json").read_text())["settings"]
    assert (settings["do_sample"], settings["temperature"], settings["seed"], settings["samples_per_prompt"]) == \
        (True, 1.0, 3, 3)
    assert generate_outputs(str(tiny_checkpoint), prompts, spec, tmp_path / "again.json") == rows
