"""Seconds for one micro checkpoint on the full micro suite: the six lm-eval tasks over every bench row, then
generation on the win-rate prompts and the verifier win rate against a reference model's replies.

    python tests/benchmarks/bench_eval.py --work WORK/micro --model micro-zephyr --reference micro-llama3
    python tests/benchmarks/bench_eval.py            # builds a quick micro world + checkpoint in a temp dir first

Prints one line per task (score, n) and the seconds per stage. Not a test: figures vary by machine; nothing
asserts on them. The target is <= 60 s on 2 CPU cores for the whole suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from poft.evaluation.benchmarks import evaluate_checkpoint  # noqa: E402
from poft.evaluation.generation import GenerationSpec  # noqa: E402
from poft.evaluation.judges import make_judge  # noqa: E402
from poft.evaluation.suites import load_suite, overall  # noqa: E402
from poft.evaluation.winrate import evaluate_winrate, generate_outputs, read_prompts  # noqa: E402


def quick_world(out: Path) -> None:
    """Micro data plus a real-size (~0.7M parameter) aligned-style checkpoint, briefly pretrained and SFT'd."""
    import poft.micro.build as build
    from poft.micro.models import PretrainSpec

    quick = PretrainSpec(steps=80, seq_len=128, batch_size=16, learning_rate=3e-3, warmup_steps=10)
    build.run_stage(out, "data", seed=0)
    build.stage_aligned(out, 0, "micro-zephyr", quick, {"num_train_epochs": 1})
    build.stage_base(out, 0, "micro-llama3", quick)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=None, help="a built micro world (poft micro build --out WORK)")
    p.add_argument("--model", default="micro-zephyr", help="checkpoint under WORK/models/ (or a path)")
    p.add_argument("--reference", default="micro-llama3", help="reference model for the win rate")
    a = p.parse_args()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench_eval_"))
    if not a.work:
        started = time.time()
        quick_world(work)
        print(f"built a quick micro world in {time.time() - started:.1f}s: {work}")
    model = Path(a.model) if Path(a.model).is_dir() else work / "models" / a.model
    reference = Path(a.reference) if Path(a.reference).is_dir() else work / "models" / a.reference
    data, metrics = work / "data", work / "bench_metrics"
    suite = load_suite("micro")

    t0 = time.time()
    paths = evaluate_checkpoint(str(model), suite, metrics, data_dir=data)
    t1 = time.time()
    spec = suite.winrate.with_data(str(data))
    prompts = read_prompts(spec.prompts)
    gen = GenerationSpec(**spec.generation)
    generate_outputs(str(model), prompts, gen, metrics / "model.outputs.json")
    t2 = time.time()
    ref_out = metrics / "reference.outputs.json"
    if not ref_out.exists():  # the reference's replies are generated once per world, not per checkpoint
        generate_outputs(str(reference), prompts, GenerationSpec(**spec.reference_generation()), ref_out)
    t3 = time.time()
    win = evaluate_winrate(str(metrics / "model.outputs.json"), str(ref_out), spec.judge,
                           make_judge(spec.judge, spec.judge_options), metrics, spec.task, spec.lc)
    t4 = time.time()

    values = {}
    for path in paths + [win]:
        r = json.loads(path.read_text())
        values[r["task"]] = r["value"]
        print(f"{r['task']:18s} {r['metric']:12s} {r['value']:6.2f}  n={r['n']}")
    print(f"{'Overall':18s} {'mean of 6':12s} {overall(values, suite):6.2f}")
    print(f"threads={torch.get_num_threads()}  model={model.name}")
    print(f"lm-eval, 6 tasks (model load included): {t1 - t0:.1f}s")
    print(f"generate {len(prompts)} win-rate replies: {t2 - t1:.1f}s   (reference's, once per world: {t3 - t2:.1f}s)")
    print(f"verifier win rate: {t4 - t3:.1f}s")
    print(f"full micro suite for one checkpoint: {(t1 - t0) + (t2 - t1) + (t4 - t3):.1f}s")


if __name__ == "__main__":
    main()
