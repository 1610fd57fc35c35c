"""lm-eval benchmarks on a checkpoint, through lm-eval's Python API: one metrics JSON per (checkpoint, task).

    poft evaluate lm-eval --suite micro --model CKPT --data WORK/data --out-dir METRICS        # every task
    poft evaluate lm-eval --suite leaderboard_v1 --task lb1_gsm8k --model CKPT --backend vllm --out-dir METRICS

Tasks come from the suite's task dirs through lm-eval's TaskManager. Few-shot counts and metrics are pinned in
the task YAMLs (never passed as one global `num_fewshot`); the run settings are pinned in the suite. A task
whose YAML reads local files (`dataset_kwargs.data_files`, relative) gets them resolved against --data and is
handed to lm-eval as a config dict, lm-eval's inline-task route: the micro world lives in a work dir chosen
at run time, so its path cannot be written into the YAML.

Beside each <task>.json goes <task>.items.json (poft.evaluation.items): every scored item of the task's leaf
tasks, from lm-eval's logged samples, with the score whose mean is the record's value.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from ..scoring import model_path
from .items import check_mean, items_file_name, make_items, write_items
from .records import metrics_record, package_version, percent, write_record
from .suites import LmEvalSettings, Suite, SuiteTask

# backend -> (lm-eval model name, its model_args for a checkpoint dir / hub id). "hf" is lm-eval's HF model with
# each multiple-choice context computed once (poft.evaluation.shared_prefix: the same answers, less compute);
# "hf-lm-eval" is lm-eval's own, unchanged. vLLM needs a GPU and `pip install vllm`.
BACKENDS: dict[str, tuple[str, Callable[[str, str], dict]]] = {
    "hf": ("poft-hf", lambda path, dtype: {"pretrained": path, "dtype": dtype}),
    "hf-lm-eval": ("hf", lambda path, dtype: {"pretrained": path, "dtype": dtype}),
    "vllm": ("vllm", lambda path, dtype: {"pretrained": path, "dtype": dtype, "gpu_memory_utilization": 0.9}),
}


def task_manager(suite: Suite):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(d) for d in suite.task_dirs] or None, include_defaults=suite.lm_eval_defaults)


def task_spec(tm, name: str, data_dir: str | Path | None) -> str | dict:
    """What to hand lm-eval for task `name`: its name, or its config dict with local data files resolved."""
    from lm_eval.tasks._index import Kind
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = tm.task_index.get(name)
    if entry is None:
        raise KeyError(f"task {name!r} is not in lm-eval's task index (searched {tm.include_path or 'lm-eval defaults'})")
    if entry.kind is not Kind.TASK or not (entry.cfg.get("dataset_kwargs") or {}).get("data_files"):
        return name
    cfg = load_yaml(entry.yaml_path, resolve_func=True)  # the loader lm-eval itself uses: include + !function
    files = cfg["dataset_kwargs"]["data_files"]
    if data_dir is None:
        raise ValueError(f"task {name!r} reads local data files ({files}); pass the data dir (--data)")
    files = files if isinstance(files, dict) else {"test": files}
    resolved = {}
    for split, rel in files.items():
        path = Path(data_dir) / rel
        if not path.is_file():
            raise FileNotFoundError(f"task {name!r}: data file not found: {path}")
        resolved[split] = str(path)
    cfg["dataset_kwargs"] = {**cfg["dataset_kwargs"], "data_files": resolved}
    return cfg


def pinned(tm, name: str) -> dict:
    """The few-shot count and metric(s) task `name` pins, read from lm-eval's task index (no dataset access).

    A wrapper group (one member plus `aggregate_metric_list`) pins them for the task it wraps; a plain task
    pins them in its own YAML.
    """
    entry = tm.task_index.get(name)
    if entry is None:
        raise KeyError(f"task {name!r} is not in lm-eval's task index (searched {tm.include_path or 'lm-eval defaults'})")
    cfg = entry.cfg or {}  # tags have no config of their own
    if isinstance(cfg.get("task"), list):  # a group
        (member,) = cfg["task"]
        wrapped = member.get("group") or member.get("task")
        if wrapped not in tm.task_index:
            raise KeyError(f"{entry.yaml_path}: wraps {wrapped!r}, which is not in lm-eval's task index")
        metrics = [(m["metric"], m.get("filter_list") or "none") for m in cfg.get("aggregate_metric_list", [])]
        return {"wraps": wrapped, "num_fewshot": member.get("num_fewshot"),
                "metrics": [f"{m},{f if isinstance(f, str) else f[0]}" for m, f in metrics]}
    filters = [f["name"] for f in cfg.get("filter_list") or []] or ["none"]
    return {"wraps": None, "num_fewshot": cfg.get("num_fewshot"),
            "metrics": [f"{m['metric']},{f}" for m in cfg.get("metric_list") or [] for f in filters]}


def check_suite(suite: Suite, tm, tasks: list[str]) -> None:
    """Every task's YAML pins a few-shot count, and computes the metric the suite reads from it."""
    for name in tasks:
        pins, key = pinned(tm, name), suite.task(name).key
        if pins["num_fewshot"] is None:
            raise ValueError(f"task {name!r} pins no few-shot count (num_fewshot) in its YAML")
        if key not in pins["metrics"]:
            raise ValueError(f"suite {suite.name!r} reads {key!r} from task {name!r}, whose YAML pins "
                             f"{', '.join(pins['metrics']) or 'no metric'}")


@contextmanager
def tokenizer_with_template(checkpoint: str, chat_template: str | None):
    """A directory holding the checkpoint's tokenizer with `chat_template` applied, for lm-eval's `tokenizer`
    argument (both backends take a path); None when there is no template to apply."""
    if chat_template is None:
        yield None
        return
    from transformers import AutoTokenizer

    from ..templates import apply_chat_template

    tokenizer = apply_chat_template(AutoTokenizer.from_pretrained(model_path(checkpoint)), chat_template)
    with tempfile.TemporaryDirectory(prefix="poft-tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        yield tmp


def make_lm(checkpoint: str, backend: str = "hf", batch_size: int | str = 16, device: str | None = None,
            dtype: str = "auto", tokenizer: str | None = None):
    """An lm-eval LM for a checkpoint dir (or hf:<id>) on the chosen backend; dtype "auto" = the checkpoint's.
    tokenizer: a tokenizer dir to use instead of the checkpoint's (see tokenizer_with_template)."""
    from lm_eval.api.registry import get_model

    from . import shared_prefix  # noqa: F401  (registers "poft-hf" with lm-eval)

    if backend not in BACKENDS:
        raise KeyError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    name, make_args = BACKENDS[backend]
    args = make_args(model_path(checkpoint), dtype)
    if tokenizer is not None:
        args["tokenizer"] = tokenizer
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")  # lm-eval's HF default is cuda
    return get_model(name).create_from_arg_obj(args, {"batch_size": batch_size, "device": device})


def prepare(suite: Suite, tasks: list[str], data_dir: str | Path | None) -> tuple[object, list[str | dict]]:
    """lm-eval's TaskManager and the task specs to hand it; every check that needs no model runs here."""
    for t in tasks:
        suite.task(t)  # unknown names fail here, with the suite's list
    tm = task_manager(suite)
    check_suite(suite, tm, tasks)
    return tm, [task_spec(tm, t, data_dir) for t in tasks]


def pay_lm_eval_setup_once() -> None:
    """lm-eval pays two costs in every `simple_evaluate` that cannot change within a process: its environment
    report (torch's collect_env runs `pip list` and more in subprocesses: ~0.5 s on a laptop) and a Jinja compile
    of each doc's prompt template, for every doc (~0.4 s for the micro suite). A job that evaluates many
    checkpoints pays them once: the report is kept, compiled templates are cached. Results do not change."""
    import lm_eval.evaluator
    import lm_eval.loggers.utils
    import lm_eval.utils

    if getattr(lm_eval.evaluator.add_env_info, "once", False):
        return
    report: dict = {}

    def add_env_info(storage: dict) -> None:
        if not report:
            lm_eval.loggers.utils.add_env_info(report)
        storage.update(report)

    compile_template = functools.lru_cache(maxsize=None)(lm_eval.utils.env.from_string)

    def apply_template(template: str, doc: dict) -> str:
        return compile_template(template).render(**doc)

    add_env_info.once = True
    lm_eval.evaluator.add_env_info = add_env_info
    lm_eval.utils.apply_template = apply_template


def run_tasks(lm, tm, specs: list[str | dict], settings: LmEvalSettings) -> dict:
    """lm-eval's results dict for the prepared task specs (tasks or groups), evaluated with `lm`."""
    import lm_eval

    pay_lm_eval_setup_once()

    return lm_eval.simple_evaluate(
        model=lm, tasks=specs, task_manager=tm,
        num_fewshot=None,  # each task keeps the count its YAML pins
        limit=settings.limit, bootstrap_iters=settings.bootstrap_iters, log_samples=True,  # per-item scores
        apply_chat_template=settings.apply_chat_template, fewshot_as_multiturn=settings.fewshot_as_multiturn,
        system_instruction=settings.system_instruction, random_seed=settings.random_seed,
        numpy_random_seed=settings.numpy_seed, torch_random_seed=settings.torch_seed,
        fewshot_random_seed=settings.fewshot_seed,
    )


def _leaves(results: dict, name: str) -> list[str]:
    """The leaf tasks under `name` (itself when it is a task), from lm-eval's group -> children map."""
    children = results.get("group_subtasks", {}).get(name)
    if not children:
        return [name]
    return [leaf for child in children for leaf in _leaves(results, child)]


def _aggregation(results: dict, leaf: str, metric: str) -> str:
    """The name of the aggregation `leaf` applies to `metric`: its YAML's, else lm-eval's default for the metric."""
    from lm_eval.api.registry import get_aggregation, get_metric_aggregation

    listed = [m for m in results["configs"].get(leaf, {}).get("metric_list") or [] if m.get("metric") == metric]
    agg = listed[0].get("aggregation") if listed else None
    agg = get_metric_aggregation(metric) if agg is None else agg
    if callable(agg):
        return "mean" if agg is get_aggregation("mean") else getattr(agg, "__name__", repr(agg))
    return str(agg)


def _doc_field(doc: dict, field: str, leaf: str, doc_id: int, option: str) -> str:
    if field not in doc:
        raise KeyError(f"task {leaf!r}: doc {doc_id} has no field {field!r} (the suite's {option}); "
                       f"its fields: {', '.join(doc)}")
    return str(doc[field])


def task_items(results: dict, task: SuiteTask) -> dict:
    """Per-item scores of one suite task (a task, or a group: its leaf tasks in lm-eval's order) from lm-eval's
    logged samples, in percent, as a poft.items/1 object.

    Ids are "<leaf>/<doc[task.item_id]>", or "<leaf>/<doc_id>" (the doc's index in the leaf's eval split, which
    a fixed data file keeps across checkpoints); items are in doc_id order, whatever order ranks logged them in.
    Only mean-aggregated metrics have item scores that average to the task's value: any other is an error.
    """
    ids, scores, groups = [], [], []
    for leaf in _leaves(results, task.name):
        agg = _aggregation(results, leaf, task.metric)
        if agg != "mean":
            raise ValueError(f"task {task.name!r}: {leaf!r} aggregates {task.metric!r} with {agg!r}, not a mean, so "
                             "its per-item scores would not average to the task's value")
        samples = [s for s in results.get("samples", {}).get(leaf, []) if s["filter"] == task.filter]
        if not samples:
            raise KeyError(f"task {task.name!r}: lm-eval logged no samples of {leaf!r} with filter {task.filter!r}")
        for s in sorted(samples, key=lambda s: s["doc_id"]):
            doc, doc_id = s["doc"], s["doc_id"]
            key = doc_id if task.item_id is None else _doc_field(doc, task.item_id, leaf, doc_id, "item_id")
            ids.append(f"{leaf}/{key}")
            score = percent(s.get(task.metric))  # lm-eval's per-doc value: 0/1 (acc, exact_match) or a fraction
            if score is None:
                raise ValueError(f"task {task.name!r}: {leaf!r} doc {doc_id} has no numeric {task.metric!r} "
                                 f"(got {s.get(task.metric)!r})")
            scores.append(score)
            if task.item_group is not None:
                groups.append(_doc_field(doc, task.item_group, leaf, doc_id, "item_group"))
    return make_items(task.name, task.metric, ids, scores, groups if task.item_group is not None else None)


def normalize(results: dict, task: SuiteTask, checkpoint: str, settings: dict) -> dict:
    """lm-eval's results for one suite task as a poft.metrics/1 record (values in percent)."""
    if task.name not in results["results"]:
        raise KeyError(f"lm-eval returned no results for task {task.name!r}")
    raw = {k: v for k, v in results["results"][task.name].items() if k not in ("alias", "name", "sample_len")}
    if task.key not in raw:
        reported = sorted(k for k in raw if "," in k and "_stderr" not in k)
        raise KeyError(f"task {task.name!r}: lm-eval reported no {task.key!r}; it reported {', '.join(reported)}")
    leaves = _leaves(results, task.name)
    shots = sorted({results["n-shot"][t] for t in leaves})
    n = sum(results["n-samples"][t]["effective"] for t in leaves)
    stderr = raw.get(f"{task.metric}_stderr,{task.filter}")
    higher = results.get("higher_is_better", {}).get(task.name, {}).get(task.metric, True)
    versions = {"lm_eval": package_version("lm_eval"), "task_version": results["versions"].get(task.name)}
    if leaves != [task.name]:
        versions["subtask_versions"] = {t: results["versions"].get(t) for t in leaves}
    return metrics_record(
        checkpoint, task.name, task.metric, percent(raw[task.key]), percent(stderr), n, raw,
        settings={**settings, "num_fewshot": shots[0] if len(shots) == 1 else shots},
        versions=versions, higher_is_better=higher, filter=task.filter,
    )


def evaluate_checkpoint(checkpoint: str, suite: Suite, out_dir: str | Path, tasks: list[str] | None = None,
                        data_dir: str | Path | None = None, settings: LmEvalSettings | None = None,
                        backend: str = "hf", device: str | None = None, dtype: str = "auto", lm=None,
                        chat_template: str | None = None) -> list[Path]:
    """Run `tasks` (default: all of the suite) on a checkpoint in one lm-eval call; write one JSON per task.

    `lm` replaces the checkpoint's model (tests pass lm-eval LMs with known answers); `checkpoint` is then
    only recorded. `chat_template` (a poft.templates name or Jinja file) replaces the checkpoint's own: lm-eval
    gets a copy of the tokenizer with it applied.
    """
    settings = settings or suite.settings
    tasks = tasks or list(suite.tasks)
    started = time.time()
    tm, specs = prepare(suite, tasks, data_dir)  # before the model loads: bad input fails in a second
    backend, chat_template = (backend, chat_template) if lm is None else (type(lm).__name__, None)
    with tokenizer_with_template(checkpoint, chat_template) as tokenizer:
        if lm is None:
            lm = make_lm(checkpoint, backend, settings.batch_size, device, dtype, tokenizer)
        results = run_tasks(lm, tm, specs, settings)
    record = {"backend": backend, "suite": suite.name, "chat_template": chat_template,
              **{k: v for k, v in dataclasses.asdict(settings).items() if not k.endswith("seed")},
              "seeds": settings.seeds(), "dtype": dtype, "seconds": round(time.time() - started, 2)}
    # Every task's record and items are checked before any file is written: a metrics JSON never lacks its items.
    done = []
    for t in tasks:
        metrics, items = normalize(results, suite.task(t), checkpoint, record), task_items(results, suite.task(t))
        # A task's mean, or a group's that weights its leaves by size (a mean of leaf means is not an item mean).
        check_mean(items, metrics["value"], f"task {t!r}" + (" (a group: does it weight_by_size?)"
                                                             if _leaves(results, t) != [t] else ""))
        done.append(({**metrics, "items_file": items_file_name(t), "n_items": len(items["ids"])}, items))
    for metrics, items in done:
        write_items(out_dir, items)  # first: the metrics JSON (what the DAG waits for) comes last
    return [write_record(out_dir, metrics) for metrics, _ in done]
