"""Each Open LLM Leaderboard v1 wrapper loads in lm-eval's TaskManager and pins its own few-shot count and metric.

Config load only: lm-eval's task factory builds real task configs, but the task class is swapped for a stub
that keeps its config instead of downloading a dataset.
"""

from pathlib import Path

import lm_eval.tasks
import lm_eval.tasks._factory as factory
import pytest
from lm_eval.api.task import Task
from lm_eval.tasks import TaskManager

from poft.evaluation.benchmarks import check_suite, pinned
from poft.evaluation.suites import load_suite

# The paper's settings (Open LLM Leaderboard v1): task -> (few-shot, metric,filter)
PAPER = {
    "lb1_arc_challenge": (25, "acc_norm,none"), "lb1_hellaswag": (10, "acc_norm,none"), "lb1_mmlu": (5, "acc,none"),
    "lb1_truthfulqa_mc2": (0, "acc,none"), "lb1_winogrande": (5, "acc,none"), "lb1_gsm8k": (5, "exact_match,strict-match"),
}
LM_EVAL_DIRS = ("arc", "hellaswag", "mmlu/default", "truthfulqa", "winogrande", "gsm8k")


class ConfigOnlyTask(Task):
    def __init__(self, config):  # noqa: D107 - no download, no docs: keep the resolved config
        self._config = config

    @property
    def task_name(self):
        return self._config["task"]

    has_training_docs = has_validation_docs = has_test_docs = lambda self: False
    doc_to_text = doc_to_target = construct_requests = process_results = lambda self, *a, **k: None
    aggregation = higher_is_better = lambda self: None


@pytest.fixture(scope="module")
def tm():
    suite = load_suite("leaderboard_v1")
    # Only the six task families, not all of lm-eval's (whose indexing alone takes ~9 s).
    base = Path(lm_eval.tasks.__file__).parent
    return TaskManager(include_path=[base / d for d in LM_EVAL_DIRS] + suite.task_dirs, include_defaults=False)


def test_suite_covers_exactly_the_paper_tasks():
    assert set(load_suite("leaderboard_v1").tasks) == set(PAPER)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_wrapper_pins_fewshot_and_metric(tm, name, monkeypatch):
    shots, metric = PAPER[name]
    assert pinned(tm, name)["num_fewshot"] == shots and pinned(tm, name)["metrics"] == [metric]
    monkeypatch.setattr(factory, "ConfigurableTask", ConfigOnlyTask)
    loaded = tm.load([name])
    leaves = loaded["tasks"].values()
    assert {t._config["num_fewshot"] for t in leaves} == {shots}  # every leaf, as lm-eval builds it
    agg = loaded["groups"][name].aggregate_metric_list
    assert [f"{a.metric},{a.filter_list[0]}" for a in agg] == [metric]
    if name == "lb1_mmlu":
        assert len(leaves) == 57  # the subjects keep their names (see the note in lb1_mmlu.yaml)


def test_suite_metrics_agree_with_the_wrappers(tm):
    suite = load_suite("leaderboard_v1")
    check_suite(suite, tm, list(suite.tasks))
    suite.tasks["lb1_hellaswag"].metric = "acc"
    with pytest.raises(ValueError, match="reads 'acc,none' from task 'lb1_hellaswag', whose YAML pins acc_norm,none"):
        check_suite(suite, tm, ["lb1_hellaswag"])
