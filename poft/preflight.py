"""What a config asks of the file system, checked before any job starts: its local sources exist, its evaluation
suites are known, its win rate has one reference, and a suite defines Overall for the report.

The Snakefile (workflows/rules/common.smk) calls `check_sources` and `evaluation_plan` after the schema and the
grid (poft.grid); each failure is one ConfigError that leads with the config key at fault, as the grid's do.

    evaluation_plan(config, SUITES_DIR, work_dir)   # -> EvaluationPlan (suites, win-rate suite, reference, report suite)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from .grid import DATA_SECTIONS, MODEL_SECTIONS, ConfigError, config_section, local_source


def _exists(key: str, path: str) -> None:
    if not Path(path).exists():
        raise ConfigError(f"{key}: file or directory not found: {path}")


def check_sources(config: dict) -> None:
    """Every local source (a file or dir: not micro:, hf: or a file in a wheel) and the training recipe exist."""
    for key in MODEL_SECTIONS + DATA_SECTIONS:
        for name, spec in config_section(config, key).items():
            path = local_source(spec["source"]) if "source" in spec else None
            if path:
                _exists(f"{key}.{name}.source", path)
    if config["training"].get("recipe"):
        _exists("training.recipe", config["training"]["recipe"])


def read_suite(name: str, suites_dir: Path, key: str = "evaluation.suites") -> dict:
    """A suite's YAML: a name of evals/suites/, or a YAML path (`key`: the config key that names it)."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else Path(suites_dir) / f"{name}.yaml"
    if not path.is_file():
        valid = ", ".join(sorted(p.stem for p in Path(suites_dir).glob("*.yaml")))
        raise ConfigError(f"{key}: unknown suite {name!r}; valid: {valid}, or a YAML path")
    return yaml.safe_load(path.read_text()) or {}


@dataclass(frozen=True)
class EvaluationPlan:
    suites: dict[str, dict]  # every suite a checkpoint is evaluated on (the report's included), name -> its YAML
    winrate_suite: str | None  # the one suite with a win rate, if any
    reference_outputs: str  # the win rate's reference replies: given, or generated / fetched into the work dir
    hub_repo: str  # evaluation.reference.hub_file split: <owner>/<dataset repo> ...
    hub_path: str  # ... and the file's path inside it ("" without a hub_file)
    report_suite: str  # the suite whose tasks define Overall


def evaluation_plan(config: dict, suites_dir: Path, work_dir: str) -> EvaluationPlan:
    suites = {name: read_suite(name, suites_dir) for name in config["evaluation"]["suites"]}
    winrate = [name for name, s in suites.items() if s.get("winrate")]
    if len(winrate) > 1:
        raise ConfigError(f"evaluation.suites: {', '.join(winrate)} all have a win rate; one reference serves one suite")
    winrate_suite = winrate[0] if winrate else None
    reference = config["evaluation"]["reference"]
    given = sorted({"model", "outputs", "hub_file"} & set(reference))
    if len(given) > 1:
        raise ConfigError(f"evaluation.reference: give one of model, outputs, hub_file (got {', '.join(given)})")
    if winrate_suite and not given:
        raise ConfigError(f"evaluation.reference: suite {winrate_suite!r} has a win rate: name a reference model, "
                          "outputs or hub_file")
    if "model" in reference and not suites[winrate_suite]["winrate"].get("prompts"):
        raise ConfigError(f"evaluation.reference.model: suite {winrate_suite!r} names no prompts to generate "
                          "reference outputs for")
    if "outputs" in reference:
        _exists("evaluation.reference.outputs", reference["outputs"])
    hub = PurePosixPath(reference.get("hub_file", "")).parts  # <owner>/<dataset repo>/<path in it>
    if "hub_file" in reference and len(hub) < 3:
        raise ConfigError(f"evaluation.reference.hub_file: expected <owner>/<dataset repo>/<file>, "
                          f"got {reference['hub_file']!r}")
    report_suite = config["report"]["suite"] or next((n for n, s in suites.items() if s.get("tasks")), None)
    if report_suite is None:
        raise ConfigError("report.suite: no suite with lm-eval tasks defines Overall; name one")
    if report_suite not in suites:
        suites[report_suite] = read_suite(report_suite, suites_dir, "report.suite")
    return EvaluationPlan(suites=suites, winrate_suite=winrate_suite,
                          reference_outputs=reference.get("outputs") or f"{work_dir}/reference/outputs.json",
                          hub_repo=str(PurePosixPath(*hub[:2])) if hub else "",
                          hub_path=str(PurePosixPath(*hub[2:])) if hub else "", report_suite=report_suite)
