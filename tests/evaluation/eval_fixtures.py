"""Fixtures shared by the evaluation tests: a micro world's data (small, but with the full bench) and a tiny
chat checkpoint. Test modules import them: `from eval_fixtures import micro_data, tiny_checkpoint`."""

from __future__ import annotations

import pytest
from conftest import make_tokenizer, tiny_llama

from poft.io import read_json
from poft.micro.datasets import write_world
from poft.micro.world import World

SMALL = {"prose": 50, "aligned": 10, "sft": 10, "pairs": 5}  # only the bench matters here


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("micro") / "data"
    write_world(out, seed=0, sizes=SMALL)
    return out


@pytest.fixture(scope="session")
def micro_world(micro_data) -> World:
    return World.from_dict(read_json(micro_data / "world.json"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random ~30k-parameter Llama with a ChatML tokenizer, saved as an HF checkpoint dir."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    tokenizer = make_tokenizer("chatml")
    tiny_llama(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
