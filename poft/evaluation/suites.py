"""Evaluation suites: which lm-eval tasks a checkpoint runs, with which pinned settings, and what "Overall" means.

A suite is a YAML under evals/suites/ (or any path):

    name: leaderboard_v1
    task_dirs: [../tasks/leaderboard_v1]   # lm-eval include paths, relative to the suite file
    lm_eval_defaults: true                 # also index lm-eval's own tasks (the wrappers point at them)
    settings: {apply_chat_template: false, fewshot_as_multiturn: false, batch_size: 8}
    tasks:                                 # in the paper's column order
      lb1_arc_challenge: {metric: acc_norm, label: ARC}
      lb1_gsm8k: {metric: exact_match, filter: strict-match, label: GSM8k}
      micro_gen_arith: {metric: exact_match, filter: extract, item_id: id, item_group: task}  # per-item ids/groups
    winrate: {task: winrate_micro, prompts: bench/gen.jsonl, judge: verifier, ...}   # optional

Every task enters "Overall" unless it says `overall: false`; Overall is the plain mean of those tasks' primary
values (the paper: mean of the six Open LLM Leaderboard v1 scores).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import from_mapping

EVALS_DIR = Path(__file__).resolve().parents[2] / "evals"
SUITES_DIR = EVALS_DIR / "suites"


@dataclass
class LmEvalSettings:
    """What lm-eval is called with; recorded in every metrics JSON. Few-shot counts live in the task YAMLs."""

    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    system_instruction: str | None = None
    batch_size: int | str = 16  # an int, or "auto" (lm-eval probes the largest that fits)
    limit: int | None = None  # examples per task: smoke runs only, never for reported numbers
    bootstrap_iters: int = 100000  # lm-eval's default; only non-mean aggregations bootstrap
    random_seed: int = 0  # lm-eval's defaults, pinned here so that a change upstream cannot move numbers
    numpy_seed: int = 1234
    torch_seed: int = 1234
    fewshot_seed: int = 1234

    def seeds(self) -> dict:
        return {"random": self.random_seed, "numpy": self.numpy_seed, "torch": self.torch_seed,
                "fewshot": self.fewshot_seed}


@dataclass
class SuiteTask:
    name: str
    metric: str  # lm-eval metric name, e.g. acc_norm
    filter: str = "none"  # lm-eval filter name; results are keyed "<metric>,<filter>"
    overall: bool = True
    label: str = ""
    # Per-item file (poft.evaluation.items): ids are "<leaf task>/<doc[item_id]>", or "<leaf task>/<doc_id>" (the
    # row's index in the eval split) without one; groups are doc[item_group], or none without one.
    item_id: str | None = None
    item_group: str | None = None

    @property
    def key(self) -> str:
        return f"{self.metric},{self.filter}"


SAMPLING_OPTIONS = ("do_sample", "temperature", "seed", "samples_per_prompt")  # GenerationSpec's sampling fields


@dataclass
class WinrateSpec:
    task: str = "winrate"
    prompts: str = ""  # JSON/JSONL of {"id"?, "prompt" | "instruction"}; "{data}" stands for the --data dir
    judge: str = "verifier"
    judge_options: dict = field(default_factory=dict)  # "{data}" in a value stands for the --data dir too
    generation: dict = field(default_factory=dict)  # GenerationSpec fields of the evaluated models' replies
    lc: bool = False  # try alpaca_eval's length-controlled win rate (needs AlpacaEval's instruction data)
    item_group: str | None = None  # field of the reference (or prompt) rows that clusters the prompts

    def with_data(self, data_dir: str | None) -> "WinrateSpec":
        """A copy with "{data}" in the prompts path and judge options replaced by `data_dir`."""

        def fill(value):
            if not (isinstance(value, str) and "{data}" in value):
                return value
            if not data_dir:
                raise ValueError(f"win-rate spec {self.task!r} reads {value!r}: pass the data dir (--data)")
            return value.replace("{data}", str(data_dir))

        return dataclasses.replace(self, prompts=fill(self.prompts),
                                   judge_options={k: fill(v) for k, v in self.judge_options.items()})

    def reference_generation(self) -> dict:
        """The generation options of the reference's replies: the suite's lengths and batch size, but greedy and
        one reply per prompt by design. The reference is a fixed reply set (AlpacaEval's GPT-4 replies): sampling
        it would only add the reference's own noise to every checkpoint's win rate."""
        return {k: v for k, v in self.generation.items() if k not in SAMPLING_OPTIONS}


@dataclass
class Suite:
    name: str
    path: Path
    task_dirs: list[Path]
    lm_eval_defaults: bool
    settings: LmEvalSettings
    tasks: dict[str, SuiteTask]
    winrate: WinrateSpec | None = None
    description: str = ""

    def task(self, name: str) -> SuiteTask:
        if name not in self.tasks:
            raise KeyError(f"unknown task {name!r} in suite {self.name!r}; valid: {', '.join(self.tasks)}")
        return self.tasks[name]

    @property
    def overall_tasks(self) -> list[str]:
        return [t.name for t in self.tasks.values() if t.overall]


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def _typed(cls, options, what: str, path: Path):
    try:
        return from_mapping(cls, options, what)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def load_suite(name_or_path: str | Path) -> Suite:
    """A suite by name (evals/suites/<name>.yaml) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SUITES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise KeyError(f"unknown suite {str(name_or_path)!r}; valid: {', '.join(available_suites())}")
    elif not path.is_file():
        raise FileNotFoundError(f"suite file not found: {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {"name", "description", "task_dirs", "lm_eval_defaults", "settings", "tasks", "winrate"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown suite key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(known))}")
    tasks = {}
    for name, opts in (raw.get("tasks") or {}).items():
        tasks[name] = _typed(SuiteTask, {"name": name, **(opts or {})}, f"option of task {name!r}", path)
    return Suite(
        name=raw.get("name", path.stem),
        path=path,
        task_dirs=[(path.parent / d).resolve() for d in raw.get("task_dirs", [])],
        lm_eval_defaults=bool(raw.get("lm_eval_defaults", True)),
        settings=_typed(LmEvalSettings, raw.get("settings") or {}, "setting", path),
        tasks=tasks,
        winrate=_typed(WinrateSpec, raw["winrate"], "winrate option", path) if raw.get("winrate") else None,
        description=raw.get("description", ""),
    )


def overall(values_by_task: dict[str, float], suite: Suite) -> float:
    """Mean of the primary values (percent) of the suite's Overall tasks; every one of them must be present."""
    wanted = suite.overall_tasks
    if not wanted:
        raise ValueError(f"suite {suite.name!r} has no task that enters Overall")
    missing = [t for t in wanted if t not in values_by_task]
    if missing:
        raise ValueError(f"suite {suite.name!r}: cannot compute Overall, missing task(s): {', '.join(missing)}")
    return sum(float(values_by_task[t]) for t in wanted) / len(wanted)
