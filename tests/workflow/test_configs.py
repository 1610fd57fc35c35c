"""Every config lints clean and plans offline; the paper's grid plans in seconds with the documented job counts;
a bad config fails before any job starts, naming the key."""

import time

import pytest
import yaml

from poft.grid import ConfigError, check_config, expand
from poft.preflight import check_sources, evaluation_plan

from .conftest import CONFIGS, ROOT, job_counts, snakemake

SCHEMA = ROOT / "workflows" / "schemas" / "config.schema.yaml"

# Jobs per rule of `snakemake -n` from scratch (README: "The DAG"). Micro trains 41 of its 45 runs inside the
# evaluation jobs of their groups (evaluation.with_training); the 4 that DPO starts from have train jobs.
PAPER_JOBS = {"prepare_dataset": 6, "noise_dataset": 1, "prepare_pairs": 1, "distill_dataset": 3, "score_dataset": 18,
              "merge_scores": 6, "score_ifd": 1, "filter_dataset": 4, "shuffle_scores": 1, "train_model": 30,
              "dpo_model": 2, "fetch_reference_outputs": 1, "evaluate_checkpoint": 142, "report": 1, "all": 1}
MICRO_JOBS = {"micro_data": 1, "micro_model": 5, "micro_manifest": 1, "prepare_dataset": 5, "prepare_pairs": 1,
              "distill_dataset": 3, "score_dataset": 15, "merge_scores": 5, "score_ifd": 1, "filter_dataset": 8,
              "shuffle_scores": 2, "train_model": 4, "dpo_model": 4, "reference_outputs": 1,
              "evaluate_checkpoint": 27, "report": 1, "all": 1}


def dry_run(config, *extra):
    # a work dir that cannot exist, so that the plan is always "from scratch"
    return snakemake("-n", "--configfile", str(config), "--config", "work_dir=/nonexistent/poft-plan", *extra)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_lint_is_clean(config):
    r = snakemake("--lint", "--configfile", str(config))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition" in r.stdout + r.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_dry_run_plans_offline(config):
    started = time.time()
    r = dry_run(config)
    seconds = time.time() - started
    assert r.returncode == 0, r.stderr[-3000:]
    counts = job_counts(r.stdout)
    # runs are trained by train jobs, or (evaluation.with_training) by the evaluation jobs of their groups
    trains = "evaluate_checkpoint" if yaml.safe_load(config.read_text())["evaluation"].get("with_training") else \
        "train_model"
    assert counts["report"] == 1 and counts[trains] > 0
    if config.stem == "paper":
        assert seconds <= 10, f"the paper's grid took {seconds:.1f}s to plan"
        assert counts == PAPER_JOBS
    if config.stem == "micro":
        assert counts == MICRO_JOBS


def test_default_config_is_micro():
    r = snakemake("-n", "--config", "work_dir=/nonexistent/poft-plan")
    assert r.returncode == 0, r.stderr[-3000:]
    assert job_counts(r.stdout) == MICRO_JOBS


def bad_config(tmp_path, edit):
    config = yaml.safe_load((ROOT / "workflows" / "configs" / "smoke.yaml").read_text())
    edit(config)
    config["work_dir"] = str(tmp_path / "work")
    config["results_dir"] = str(tmp_path / "results")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


BAD = [  # (edit, message): the checks of each layer -- the schema, the grid (poft.grid), the files (poft.preflight)
    (lambda c: c["grid"]["main"].update(methods=["sft", "dpo"]), "grid.main.methods: unknown method 'dpo'"),
    (lambda c: c["methods"].update(ppo={}), "methods: Additional properties are not allowed ('ppo' was unexpected)"),
    (lambda c: c["grid"]["main"].update(datasets=["ultrachat", "alpaca"]),
     "grid.main.datasets: unknown dataset 'alpaca'"),
    (lambda c: c["datasets"].update(mine={"source": "data/nowhere.jsonl"}),
     "datasets.mine.source: file or directory not found: data/nowhere.jsonl"),
    (lambda c: c.update(epochs="three"), "epochs: 'three' is not of type 'integer'"),
    (lambda c: c["training"]["options"].update(learning_rate="fast"), "training.options.learning_rate: 'fast' is not of type 'number'"),
    (lambda c: c["training"]["options"].update(lr=1e-3), "training.options: Additional properties are not allowed ('lr'"),
    (lambda c: c["evaluation"].update(suites=["mmlu"]), "evaluation.suites: unknown suite 'mmlu'"),
    (lambda c: c["models"]["micro-llama3"].update(chat_template="zephir"),
     "models.micro-llama3.chat_template: unknown chat template 'zephir'; valid: chatml,"),
]


@pytest.mark.parametrize("edit, message", BAD)
def test_bad_config_is_refused_naming_the_key(tmp_path, edit, message):
    """What common.smk runs before any job, in its order: the schema, the grid, the files."""
    config = yaml.safe_load(bad_config(tmp_path, edit).read_text())
    with pytest.raises(ConfigError) as e:
        filled = check_config(config, yaml.safe_load(SCHEMA.read_text()))
        expand(filled)
        check_sources(filled)
        evaluation_plan(filled, ROOT / "evals" / "suites", filled["work_dir"])
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize("edit, message", [BAD[1], BAD[0], BAD[3]], ids=["schema", "grid", "files"])
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, edit, message):
    r = snakemake("--cores", "1", "--configfile", str(bad_config(tmp_path, edit)))
    assert r.returncode != 0
    assert f"Error in config: {message}" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "work").exists() and not (tmp_path / "results").exists()


def test_chat_templates_reach_every_job_of_their_model(tmp_path):
    """A model's `chat_template` is passed to each job that loads that model (a file is also the job's input, so
    editing it reruns them); jobs that load a trained checkpoint get it from the checkpoint's tokenizer."""
    template = tmp_path / "mine.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}")

    def edit(c):
        c["models"]["micro-llama3"]["chat_template"] = str(template)
        c["aligned"]["micro-yi"]["chat_template"] = "chatml"

    r = snakemake("-n", "-p", "--configfile", str(bad_config(tmp_path, edit)))
    assert r.returncode == 0, r.stderr[-2000:]
    jobs, job = {}, None  # rule -> [{"input": ..., "Shell command": ...}] from the dry run's listing
    for line in r.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            job = {"input": "", "Shell command": ""}
            jobs.setdefault(line.split()[1].rstrip(":"), []).append(job)
        key, _, value = line.strip().partition(": ")
        if job is not None and key in job:
            job[key] = value
    assert jobs["train_model"] and any("--name micro-yi" in job["Shell command"] for job in jobs["score_dataset"])
    for job in jobs["train_model"]:
        assert f"--chat-template {template}" in job["Shell command"] and str(template) in job["input"]
    for job in jobs["score_dataset"]:
        assert ("--chat-template chatml" in job["Shell command"]) == ("--name micro-yi" in job["Shell command"])
    assert not any("--chat-template" in job["Shell command"] for rule in ("dpo_model", "reference_outputs")
                   for job in jobs[rule])
    # The reference's replies stay greedy and one per prompt whatever the suite samples for the checkpoints.
    assert jobs["reference_outputs"]
    assert all("--as-reference" in job["Shell command"] for job in jobs["reference_outputs"])
    # A group's job trains its runs from the base model (template given), then evaluates their checkpoints (none)
    for job in jobs["evaluate_checkpoint"]:
        *training, evaluation = job["Shell command"].split("'evaluate checkpoint")
        assert "--chat-template" not in evaluation
        assert all(f"--chat-template {template}" in part for part in training[:1] if "'train " in part)


def test_scoring_jobs_run_on_the_scoring_sections_ranks(tmp_path):
    """`scoring: {launcher, processes}` starts each scoring job's ranks (each scores every N-th shard); its two
    keys are not passed to `poft score` as options."""
    def edit(c):
        c["scoring"].update(launcher="accelerate", processes=2)

    r = snakemake("-n", "-p", "--configfile", str(bad_config(tmp_path, edit)))
    assert r.returncode == 0, r.stderr[-2000:]
    commands = [line.strip().removeprefix("Shell command: ") for line in r.stdout.splitlines()
                if " -m poft.cli score " in line]
    assert len(commands) == 4  # 2 aligned models x 2 datasets; smoke has no IFD filter
    for command in commands:
        assert command.startswith("OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 "
                                  "--main_process_port 0 -m poft.cli score --kind aligned "), command
        assert " --processes 2 > " in command and "--launcher" not in command, command
