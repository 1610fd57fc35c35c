# Config validation (schema with defaults, then cross-references through poft.grid and the file system through
# poft.preflight), the grid as data, and every function the rules call for their inputs and params. Rules read
# `params`; their shell commands never read `config`.

import json
import os
import shlex
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from poft.grid import MICRO_MODELS, ConfigError, check_config, expand as expand_grid, resource  # not Snakemake's expand
from poft.grid import fetched, local_source
from poft.preflight import check_sources, evaluation_plan
from poft.launch import launch_command, threads_per_process
from poft.report.clock import mark_dag_start
from poft.templates import template_file


SCHEMA = Path(workflow.basedir) / "workflows" / "schemas" / "config.schema.yaml"


def _check_schema(cfg):
    """The config's first schema error as one line that leads with the key (poft.grid.check_config)."""
    try:
        check_config(cfg, yaml.safe_load(SCHEMA.read_text()))
    except ConfigError as e:
        raise WorkflowError(f"Error in config: {e} (schema: {os.path.relpath(SCHEMA)})") from None


_check_schema(config)
validate(config, schema="../schemas/config.schema.yaml", set_default=True)  # fills the defaults
try:
    GRID = expand_grid(config)
except ConfigError as e:
    raise WorkflowError(f"Error in config: {e}") from None

W = config["work_dir"]  # git-ignored: world, data, scores, runs (checkpoints), metrics, logs, benchmarks
RESULTS = config["results_dir"]
WORLD = f"{W}/world"
RUNS = GRID.runs
EVALUATIONS = {e.key: e for e in GRID.evaluations}
MODELS = {**config["models"], **config["aligned"], **config["evaluation"]["reference_models"]}
FETCHED = sorted(name for name, spec in MODELS.items() if fetched(spec["source"]))  # GGUF files: models.smk

wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",
    aligned="[A-Za-z0-9][A-Za-z0-9_.-]*",
    base="[A-Za-z0-9][A-Za-z0-9_.-]*",
    data="[A-Za-z0-9][A-Za-z0-9_.-]*",
    filter="[A-Za-z0-9][A-Za-z0-9_-]*",
    scope="[A-Za-z0-9][A-Za-z0-9_.-]*",
    pairs="[A-Za-z0-9][A-Za-z0-9_-]*",
    seed="[0-9]+",


# Checks that need the file system (poft.preflight): local sources exist, suites are known, the win rate has one
# reference -- all before any job starts.
try:
    check_sources(config)
    PLAN = evaluation_plan(config, Path(workflow.basedir) / "evals" / "suites", W)
except ConfigError as e:
    raise WorkflowError(f"Error in config: {e}") from None
SUITES, WINRATE_SUITE, REPORT_SUITE = PLAN.suites, PLAN.winrate_suite, PLAN.report_suite
REFERENCE, REFERENCE_OUTPUTS = config["evaluation"]["reference"], PLAN.reference_outputs
HUB_REPO, HUB_PATH = PLAN.hub_repo, PLAN.hub_path


# ------------------------------------------------------------------------------------------------------------
# Models and data: what a rule passes to poft, and which file says it is ready
# ------------------------------------------------------------------------------------------------------------


def model_path(name):
    """The --model argument for a model of this config: a micro world dir, the HF dir a GGUF file was converted
    into (models.smk), a local dir, or hf:<id>."""
    src = MODELS[name]["source"]
    if src.startswith("micro:"):
        return f"{WORLD}/models/{src[len('micro:'):]}"
    return fetched_model(name) if fetched(src) else src


def fetched_model(name):
    return f"{W}/models/fetched/{name}"


def fetch_input(wc):
    """fetch_model's input: the local GGUF file (a new one is converted again), none for a file in a wheel."""
    path = local_source(MODELS[wc.name]["source"])
    return [path] if path else []


def model_ready(name):
    """Input files that say the model exists: its micro build stage's record, its converted dir (GGUF), a local
    dir, or none (hub); and its chat template's file, if it names one, so that editing the template reruns what
    the model rendered."""
    src, template = MODELS[name]["source"], MODELS[name].get("chat_template")
    if src.startswith("micro:"):
        ready = [f"{WORLD}/stages/{src[len('micro:'):]}.json"]
    elif fetched(src):
        ready = [fetched_model(name)]
    else:
        ready = [] if src.startswith("hf:") else [src]
    path = template_file(template) if template else None
    return ready + ([str(path)] if path else [])


def chat_template_flag(name):
    """`--chat-template X` for a model whose config entry names a template, else nothing (its tokenizer's own).
    Jobs that load a trained checkpoint need none: the checkpoint's tokenizer carries the template."""
    return optional_value("--chat-template", MODELS[name].get("chat_template"))


def source_path(src):
    return f"{WORLD}/data/{src[len('micro:'):]}" if src.startswith("micro:") else src


def source_ready(src):
    if src.startswith("micro:"):
        return [f"{WORLD}/stages/data.json"]
    return [] if src.startswith("hf:") else [src]


def data_file(key):
    """The normalized JSONL of a data key (a dataset, or a derived "<dataset>.distill-<aligned>")."""
    spec = GRID.data[key]
    if spec["kind"] == "prepare":
        return f"{W}/data/prepared/{key}.jsonl"
    if spec["kind"] == "noise":
        return f"{W}/data/noised/{key}.jsonl"
    return f"{W}/data/distilled/{spec['from']}.{spec['model']}.jsonl"


def merged_scores(data):
    return f"{W}/scores/{data}/merged.json"


def eval_data_dir():
    if config["evaluation"]["data"]:
        return config["evaluation"]["data"]
    return f"{WORLD}/data" if "micro" in config else None


def eval_data_ready():
    return [f"{WORLD}/stages/data.json"] if "micro" in config and not config["evaluation"]["data"] else []


def run_done(run):
    """The file that says a run (all its epochs) is complete."""
    return f"{W}/runs/{run.path}/{'dpo_metrics.json' if run.is_dpo else 'train_summary.json'}"


def evaluation_index(key):
    return f"{W}/metrics/{key}/evaluation.json"


# ------------------------------------------------------------------------------------------------------------
# Options -> command-line flags; resources per rule family
# ------------------------------------------------------------------------------------------------------------


def set_flags(options, flag="--set"):
    """{'a': 1, 'b': None} -> "--set a=1 --set b=null", shell-quoted; values as YAML scalars."""
    parts = []
    for key, value in options.items():
        text = json.dumps(value) if not isinstance(value, str) else value
        parts.append(f"{flag} {shlex.quote(f'{key}={text}')}")
    return " ".join(parts)


def optional_value(flag, value):
    return "" if value is None else f"{flag} {shlex.quote(str(value))}"


def optional_values(flag, values):
    return "" if not values else " ".join([flag, *map(shlex.quote, map(str, values))])


def prepare_flags(wc):
    spec = config["datasets"][wc.dataset]
    flags = [f"--format {spec['format']}", optional_value("--split", spec["split"]), optional_value("--limit", spec.get("limit"))]
    return " ".join(flags + (["--lenient"] if spec["lenient"] else []))


def scoring_flags():
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in config["scoring"].items()
                    if v is not None and k not in ("launcher", "processes"))


def score_command(kind, model_wildcard):
    """The command of a scoring job: `poft score --kind KIND` of its data under the model its wildcard names, on
    the scoring section's launcher and processes (each rank scores every N-th shard)."""

    def command(wildcards, input, output):
        name = getattr(wildcards, model_wildcard)
        args = (f"score --kind {kind} --data {input.data} --model {shlex.quote(model_path(name))} "
                f"{chat_template_flag(name)} --name {name} {scoring_flags()} --quiet --out {output}")
        return launched("scoring", args)

    return command


def res(family, key):
    """A resource of a rule family (config `resources.<family>`), else the default's."""
    return resource(config, family, key)


def rank_threads(section):
    """Each rank's OMP_NUM_THREADS in a job of a launched section (training | dpo | scoring): the job's threads,
    shared."""
    return lambda wildcards, threads: threads_per_process(threads, config[section]["processes"])


def launched(section, verb_args):
    """`verb_args` run through the section's launcher on its processes (poft.launch)."""
    return launch_command(config[section]["launcher"], config[section]["processes"], verb_args)


def resources_of(family):
    out = {k: res(family, k) for k in ("mem_mb", "runtime", "gpu")}
    for k in ("slurm_partition", "slurm_extra"):
        if res(family, k) is not None:
            out[k] = res(family, k)
    return out


# ------------------------------------------------------------------------------------------------------------
# score.smk, train.smk, dpo.smk
# ------------------------------------------------------------------------------------------------------------


def filter_scores(wc):
    method = config["filters"][wc.filter]["method"]
    if method == "preference":
        return [merged_scores(wc.data)]
    return [f"{W}/scores/{wc.data}/ifd/{wc.scope}.json"] if method == "ifd" else []


def filter_file(run):
    """Kept ids of a filtered run; IFD is computed under the run's base, the other filters once per data."""
    method = config["filters"][run.filter]["method"]
    return f"{W}/filters/{run.data}/{run.filter}/{run.base if method == 'ifd' else 'all'}.json"


def train_scores(run):
    """Every run on data with aligned scores gets them, SFT included: both drop the same unscored samples, so
    SFT and PoFT with the same seed see identical batches (a paired comparison). SFT on distilled data is
    compared with nothing it must be paired with, so it is not scored."""
    if run.variant == "shuffled":
        return f"{W}/scores/{run.data}/shuffled/seed{run.seed}.json"
    if not config["aligned"] or (run.variant.startswith("distill:") and run.method != "poft"):
        return None
    return merged_scores(run.data)


def train_inputs(wc):
    return run_inputs(RUNS[wc.run])


def run_inputs(run):
    inputs = {"data": data_file(run.data), "model": model_ready(run.base)}
    if train_scores(run):
        inputs["scores"] = train_scores(run)
    if run.filter:
        inputs["keep"] = filter_file(run)
    if config["training"]["recipe"]:
        inputs["recipe"] = config["training"]["recipe"]
    return inputs


def train_args(run):
    """`train ...` for one run: the train job's command after its launcher, or one line of a group's `poft batch`."""
    inputs = run_inputs(run)
    options = {**config["training"]["options"], **config["methods"][run.method], "loss": run.method,
               "num_train_epochs": run.epochs, "seed": run.seed}
    flags = [f"--data {inputs['data']}", f"--model {shlex.quote(model_path(run.base))}", chat_template_flag(run.base),
             optional_value("--scores", inputs.get("scores")), optional_value("--keep-ids", inputs.get("keep")),
             optional_value("--config", inputs.get("recipe")), set_flags(options), "--safe-resume",
             f"--out {W}/runs/{run.path}"]
    return "train " + " ".join(f for f in flags if f)


def train_command(wc):
    return launched("training", train_args(RUNS[wc.run]))


def dpo_inputs(wc):
    run = RUNS[wc.run]
    return {"start": f"{W}/runs/{run.start}/train_summary.json", "pairs": f"{W}/data/pairs/{run.pairs}.jsonl"}


def dpo_command(wc):
    run = RUNS[wc.run]
    options = set_flags({**config["dpo"]["options"], "num_train_epochs": run.epochs, "seed": run.seed})
    args = (f"dpo --model {W}/runs/{run.start} --epoch last --pairs {W}/data/pairs/{run.pairs}.jsonl {options} "
            f"--safe-resume --out {W}/runs/{run.path}")
    return launched("dpo", args)


# ------------------------------------------------------------------------------------------------------------
# evaluate.smk
# ------------------------------------------------------------------------------------------------------------


def evaluate_inputs(wc):
    ev = EVALUATIONS[wc.key]
    if ev.runs:  # runs trained by other jobs are done; those this job trains bring their own inputs
        model = [run_done(r) for r in ev.runs if r not in ev.trains]
        model += [f for r in ev.trains for v in run_inputs(r).values() for f in ([v] if isinstance(v, str) else v)]
    else:
        model = model_ready(ev.model)
    inputs = {"data": eval_data_ready(), "model": model}
    if WINRATE_SUITE:
        inputs["reference"] = REFERENCE_OUTPUTS
    return inputs


def evaluate_targets(ev):
    """--model (run dirs and --epoch, or a model), --out-dir and --record: one of each per run."""
    if ev.runs:
        models = [f"{W}/runs/{r.path}" for r in ev.runs]
        out_dirs = [f"{W}/metrics/{r.path}/epoch{{epoch}}" for r in ev.runs]
        flags = [f"--model {' '.join(models)}", f"--epoch {' '.join(map(str, ev.epochs))}"]
    else:
        out_dirs = [f"{W}/metrics/{ev.key}"]
        flags = [f"--model {shlex.quote(model_path(ev.model))}", chat_template_flag(ev.model)]
    flags.append("--out-dir " + " ".join(shlex.quote(d) for d in out_dirs))
    flags.append("--record " + " ".join(shlex.quote(json.dumps(r)) for r in ev.records))
    return " ".join(f for f in flags if f)


def evaluate_command(wc):
    """`poft evaluate checkpoint`; with evaluation.with_training, `poft batch` of the group's `train` commands and
    then that evaluation, in one process."""
    ev = EVALUATIONS[wc.key]
    evaluate = f"evaluate checkpoint {evaluate_targets(ev)} {evaluate_options()} --index {evaluation_index(ev.key)}"
    if not ev.trains:
        return f"poft {evaluate}"
    return "poft batch " + " ".join(shlex.quote(c) for c in [*map(train_args, ev.trains), evaluate])


def evaluate_options():
    ev = config["evaluation"]
    flags = [f"--suite {' '.join(SUITES)}", f"--backend {ev['backend']}", f"--dtype {ev['dtype']}"]
    flags += [f"--data {eval_data_dir()}"] if eval_data_dir() else []
    flags += [f"--{k.replace('_', '-')} {ev[k]}" for k in ("batch_size", "limit") if ev[k] is not None]
    flags += [set_flags(ev["judge_options"], "--judge-set")] if ev["judge_options"] else []
    flags += [f"--reference {REFERENCE_OUTPUTS}"] if WINRATE_SUITE else []
    return " ".join(flags)


# ------------------------------------------------------------------------------------------------------------
# report.smk
# ------------------------------------------------------------------------------------------------------------

REPORT_FILES = ["tables.md", "claims.md", "index.md", "report.html", "results.csv", "runs.csv", "differences.csv",
                "summary.json", "records.jsonl", *(f"data/{f}" for f in ("results.parquet", "items.parquet",
                                                                         "scores.parquet", "trace.parquet", "inputs.json"))]
# Datasets whose aligned-score spread the report reads (claims C4, C5; the score plots).
REPORT_SCORES = sorted({r.dataset for r in RUNS.values() if r.variant == "full"} & set(GRID.merged_scores))
# Kept ids of every filtered variant: Table 4 shows how many samples each actually kept.
REPORT_KEPT = {f"{r.base}/{r.dataset}/{r.variant}": filter_file(r) for r in RUNS.values() if r.filter}
# Runs whose recorded traces (trace.json in each epoch checkpoint) the report shows: every `poft train` run (DPO
# records none). Their checkpoints' names are known only once trained, so the report's input is the file that says
# a run is trained: its train job's summary, or the index of the evaluation job that trains it (with_training).
REPORT_TRACES = [r for r in RUNS.values() if not r.is_dpo]
_TRAINED_BY = {r.path: evaluation_index(e.key) for e in GRID.evaluations for r in e.trains}


def trained_file(run):
    return _TRAINED_BY.get(run.path) or run_done(run)


# The report re-runs when its code changes (and only it: nothing upstream depends on that code).
REPORT_CODE = sorted(os.path.relpath(p) for p in (Path(workflow.basedir) / "poft" / "report").glob("*.py"))


def report_options():
    rc = config["report"]
    flags = [f"--suite {REPORT_SUITE}", f"--min-effect {rc['min_effect']}", f"--level {rc['level']}"]
    for key in ("chat_tasks", "noise_datasets"):
        if rc[key]:
            flags.append(f"--{key.replace('_', '-')} {' '.join(rc[key])}")
    if config["grid"].get("main"):  # C1-C5 read exactly these datasets
        flags.append(f"--main-datasets {' '.join(config['grid']['main']['datasets'])}")
    if rc["focus_task"]:
        flags.append(f"--focus-task {rc['focus_task']}")
    if rc["paper"]:
        flags.append("--paper")
    if rc["paper_names"]:
        flags.append(f"--paper-names {shlex.quote(json.dumps(rc['paper_names']))}")
    if REPORT_SCORES:
        flags.append("--scores " + " ".join(f"{d}={merged_scores(d)}" for d in REPORT_SCORES))
    if REPORT_KEPT:
        flags.append("--kept " + " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(REPORT_KEPT.items())))
    if REPORT_TRACES:
        flags.append("--traces " + " ".join(f"{W}/runs/{r.path}" for r in REPORT_TRACES))
        flags.append("--trace-records " + " ".join(shlex.quote(json.dumps(r.record(None))) for r in REPORT_TRACES))
    return " ".join(flags)
