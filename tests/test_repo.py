"""The repository's promises: CI runs the README's test command; every shipped recipe is a valid config."""

import re
from pathlib import Path

import pytest
import yaml

from poft.training import TrainSpec

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(c for c in readme_commands() if "pytest" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_readme_main_command_runs_the_default_dag():
    main = readme_commands()[0]
    assert main.endswith("&& snakemake --cores all")
    assert (ROOT / "Snakefile").is_file() and (ROOT / "workflows" / "configs" / "micro.yaml").is_file()


@pytest.mark.parametrize("path", sorted((ROOT / "workflows" / "configs" / "recipes").rglob("*.yaml")), ids=lambda p: p.name)
def test_recipes_are_valid_training_specs(path):
    options = yaml.safe_load(path.read_text())
    spec = TrainSpec.from_dict(options)
    assert spec.learning_rate > 0
    if spec.deepspeed:
        assert (ROOT / spec.deepspeed).is_file()
