"""Fuzzed configs: every config of workflows/configs with any key (every key the schema names, present or added)
deleted, replaced by any value, or joined by an unknown one. Planning (`poft.grid.check_config`, the schema check
common.smk runs, then `expand`) accepts it or raises ConfigError naming the key, and the options the rules pass
on to `poft train` / `dpo` / `micro` / generation are accepted or refused with a ValueError (KeyError for an
unknown registry name) naming the option — never a traceback. The option dataclasses are fuzzed on their own too."""

from __future__ import annotations

import json

import pytest
import yaml
from fuzz import FUZZ, json_values, paths
from hypothesis import given
from hypothesis import strategies as st

from poft.config import from_mapping
from poft.dpo import DPOConfigSpec
from poft.evaluation.generation import GenerationSpec
from poft.grid import ConfigError, check_config, expand
from poft.micro.build import MicroSpec
from poft.training import TrainSpec

from .conftest import CONFIGS, ROOT

pytestmark = pytest.mark.fuzz
SCHEMA = yaml.safe_load((ROOT / "workflows" / "schemas" / "config.schema.yaml").read_text())
BASES = {p.stem: yaml.safe_load(p.read_text()) for p in CONFIGS}


def _schema_keys(node) -> set[str]:
    """Every property name the schema defines, at any depth."""
    keys = set()
    if isinstance(node, dict):
        keys |= set(node.get("properties") or {})
        for value in node.values():
            keys |= _schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            keys |= _schema_keys(value)
    return keys


SCHEMA_KEYS = sorted(_schema_keys(SCHEMA))


@st.composite
def bad_config(draw) -> dict:
    config = json.loads(json.dumps(BASES[draw(st.sampled_from(sorted(BASES)))]))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(config)))
        parent, key = config, None
        for step in where:
            parent, key = (parent, step) if key is None else (parent[key], step)
        target = parent[key] if key is not None else config
        op = draw(st.sampled_from(["replace", "delete", "add", "add"]))
        if op == "add" and isinstance(target, dict):  # a key the schema knows (maybe not here) or an unknown one
            target[draw(st.sampled_from(SCHEMA_KEYS) | st.text(max_size=8))] = draw(json_values)
        elif op == "delete" and key is not None and isinstance(parent, dict):
            del parent[key]
        elif key is not None:
            parent[key] = draw(json_values | st.sampled_from(SCHEMA_KEYS))
    return config


def as_cli_sees(options: dict) -> dict:
    """Options through the rules' `--set key=value` (common.smk set_flags) and the CLI's YAML parsing."""
    return {k: yaml.safe_load(v if isinstance(v, str) else json.dumps(v)) for k, v in options.items()}


@FUZZ
@given(config=bad_config())
def test_any_config_is_planned_or_refused_by_key(config):
    try:
        grid = expand(check_config(config, SCHEMA))
    except ConfigError as e:
        assert str(e).split(":")[0], e  # leads with the key at fault
        return
    filled = check_config(config, SCHEMA)
    for cls, options in ((TrainSpec, {**filled["training"]["options"], "loss": "sft"}),
                         (DPOConfigSpec, filled["dpo"]["options"]),
                         (GenerationSpec, filled["distill"]["generation"]),
                         (MicroSpec, (filled.get("micro") or {}).get("options", {}))):
        try:
            getattr(cls, "from_dict", lambda d: from_mapping(cls, d))(as_cli_sees(options))
        except (ValueError, KeyError) as e:  # KeyError: an unknown registry name (a loss), with the valid ones
            assert "valid" in str(e) or "option" in str(e) or "must be" in str(e), e
    assert grid.counts()["train"] >= 0


SPECS = (TrainSpec, DPOConfigSpec, GenerationSpec, MicroSpec)


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("cls", SPECS, ids=lambda c: c.__name__)
def test_option_specs_take_any_value_or_name_the_option(cls, data):
    names = [f.name for f in cls.__dataclass_fields__.values()]
    options = data.draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=6),
                                        json_values | st.sampled_from(["1e-5", "true", "nan", "inf", "-1", "null"]),
                                        max_size=4))
    try:
        getattr(cls, "from_dict", lambda d: from_mapping(cls, d))(options)
    except (ValueError, KeyError) as e:
        assert "valid" in str(e) or "option" in str(e) or "must be" in str(e), e
