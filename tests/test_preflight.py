"""poft.preflight: the checks a config needs the file system for, and the evaluation plan the DAG reads."""

from pathlib import Path

import pytest
import yaml

from poft.grid import ConfigError, check_config
from poft.preflight import check_sources, evaluation_plan

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "evals" / "suites"


def smoke(**evaluation) -> dict:
    config = yaml.safe_load((ROOT / "workflows" / "configs" / "smoke.yaml").read_text())
    config["evaluation"].update(evaluation)
    return check_config(config, yaml.safe_load((ROOT / "workflows" / "schemas" / "config.schema.yaml").read_text()))


def test_the_smoke_plan():
    plan = evaluation_plan(smoke(), SUITES, "W")
    assert list(plan.suites) == ["micro"] and plan.winrate_suite == "micro" and plan.report_suite == "micro"
    assert plan.reference_outputs == "W/reference/outputs.json" and (plan.hub_repo, plan.hub_path) == ("", "")


def test_given_outputs_and_a_hub_file_are_read_as_given(tmp_path):
    outputs = tmp_path / "ref.json"
    outputs.write_text("[]")
    assert evaluation_plan(smoke(reference={"outputs": str(outputs)}), SUITES, "W").reference_outputs == str(outputs)
    config = smoke(suites=["alpaca_eval2"], reference={"hub_file": "tatsu-lab/alpaca_eval/a/b.json"})
    config["report"]["suite"] = "leaderboard_v1"  # alpaca_eval2 is a win rate only: no Overall
    plan = evaluation_plan(config, SUITES, "W")
    assert (plan.hub_repo, plan.hub_path) == ("tatsu-lab/alpaca_eval", "a/b.json")


def test_a_report_suite_that_is_not_evaluated_is_added():
    config = smoke()
    config["report"]["suite"] = "leaderboard_v1"
    assert list(evaluation_plan(config, SUITES, "W").suites) == ["micro", "leaderboard_v1"]


@pytest.mark.parametrize("evaluation, message", [
    ({"suites": ["micro", "alpaca_eval2"]}, "evaluation.suites: micro, alpaca_eval2 all have a win rate; one "
                                            "reference serves one suite"),
    ({"reference": {"model": "micro-zephyr", "outputs": "x.json"}},
     "evaluation.reference: give one of model, outputs, hub_file (got model, outputs)"),
    ({"reference": {}}, "evaluation.reference: suite 'micro' has a win rate: name a reference model, outputs or "
                        "hub_file"),
    ({"reference": {"outputs": "nowhere/ref.json"}},
     "evaluation.reference.outputs: file or directory not found: nowhere/ref.json"),
    ({"suites": ["alpaca_eval2"], "reference": {"hub_file": "tatsu-lab/ref.json"}},
     "evaluation.reference.hub_file: expected <owner>/<dataset repo>/<file>, got 'tatsu-lab/ref.json'"),
    ({"suites": ["nope"]}, "evaluation.suites: unknown suite 'nope'; valid: alpaca_eval2, leaderboard_v1, micro, "
                           "or a YAML path"),
])
def test_a_bad_evaluation_section_names_its_key(evaluation, message):
    with pytest.raises(ConfigError) as e:
        evaluation_plan(smoke(**evaluation), SUITES, "W")
    assert str(e.value) == message


def test_no_suite_defines_overall_unless_named():
    config = smoke(suites=["alpaca_eval2"], reference={"hub_file": "tatsu-lab/alpaca_eval/a.json"})
    with pytest.raises(ConfigError, match=r"^report.suite: no suite with lm-eval tasks defines Overall; name one$"):
        evaluation_plan(config, SUITES, "W")
    config["report"]["suite"] = "missing"
    with pytest.raises(ConfigError, match=r"^report.suite: unknown suite 'missing'"):
        evaluation_plan(config, SUITES, "W")


def test_every_local_source_and_the_recipe_must_exist(tmp_path):
    config = smoke()
    check_sources(config)  # micro: sources only
    config["evaluation"]["reference_models"] = {"mine": {"source": str(tmp_path / "gone")}}
    with pytest.raises(ConfigError, match=rf"^evaluation.reference_models.mine.source: file or directory not found: "
                                          rf"{tmp_path}/gone$"):
        check_sources(config)
    config["evaluation"]["reference_models"] = {}
    config["training"]["recipe"] = str(tmp_path / "recipe.yaml")
    with pytest.raises(ConfigError, match=r"^training.recipe: file or directory not found: "):
        check_sources(config)
