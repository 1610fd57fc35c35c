"""Several ranks (poft.launch): the launchers' commands, checked as text; then launched for real, 2 CPU processes
talking through gloo: `poft train` on 2 ranks x 4 ends with the weights and batch_ids.json of 1 process x 8 and of
1 x 4 x 2 accumulated, a 2-rank run cut after its first epoch resumes to the weights of an uncut one, and
`poft score` on 2 ranks writes the rows 1 process writes.

    python -m pytest -q tests/test_multiprocess.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_scoring import make_conversations
from test_training import write_run_inputs

from poft.cli import main
from poft.launch import accelerate_flags, check_ranks, launch_command, launch_prefix, needs_relaunch, \
    threads_per_process
from poft.runs import epoch_checkpoints
from poft.trace import TRACE_FILE
from poft.training import step_batches

ROOT = Path(__file__).resolve().parents[1]
# Each rank one thread: two ranks share this machine's cores. PYTHONPATH: the ranks import this tree's poft.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


# ---------------------------------------------------------------------------------------------------------
# Commands and checks (nothing launched)
# ---------------------------------------------------------------------------------------------------------


def test_launchers_turn_a_verb_into_its_command():
    assert launch_command("poft", 1, "train --out r") == "poft train --out r"  # one process: the command as ever
    assert launch_command("poft", 8, "train --out r") == "poft train --out r --processes 8"
    assert launch_command("accelerate", 8, "train --out r") == (
        "accelerate launch --multi_gpu --num_processes 8 --main_process_port 0 -m poft.cli train --out r --processes 8")
    assert launch_command("accelerate", 1, "dpo --out r") == "accelerate launch --num_processes 1 -m poft.cli dpo --out r"


def test_unknown_launchers_and_process_counts_are_named():
    with pytest.raises(ValueError) as e:
        launch_prefix("torchrun", 2)
    assert str(e.value) == "unknown launcher 'torchrun'; valid: accelerate, poft"
    with pytest.raises(ValueError) as e:
        launch_prefix("poft", 0)
    assert str(e.value) == "processes: expected an integer >= 1, got 0"


def test_processes_flag_relaunches_alone_and_is_checked_under_a_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert needs_relaunch(2) and not needs_relaunch(1) and not needs_relaunch(None)
    check_ranks(1)
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun (under accelerate) sets in each rank
    assert not needs_relaunch(2)
    check_ranks(2)
    check_ranks(None)  # no --processes: whatever the launcher started
    with pytest.raises(ValueError) as e:
        check_ranks(4)
    assert str(e.value) == ("--processes 4, but the launcher started 2 rank(s) (WORLD_SIZE); drop --processes, or "
                            "launch that many")
    assert (threads_per_process(8, 3), threads_per_process(1, 2)) == (2, 1)


def test_batch_refuses_a_command_that_would_start_processes(monkeypatch, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["batch", "train --data d --model m --out o --processes 2"]) == 2
    assert capsys.readouterr().err == ("poft batch: error: command 1: --processes starts processes of its own; batch "
                                       "runs its commands in this one\n")


def test_step_batches_are_the_order_of_one_process_with_the_whole_batch():
    """Accumulation 2, 2 ranks x 2: the sampler's batches [a b] [c d] [e f] [g h] go to ranks 0, 1, 0, 1, so rank 0's
    micro-batches are [a b], [e f] and rank 1's [c d], [g h]; one process at batch 8 sees a..h. A short last step
    (accumulation cut by the epoch's end) keeps its order too."""
    rank0 = [[["a", "b"], ["e", "f"]], [["i"]]]
    rank1 = [[["c", "d"], ["g", "h"]], [["j"]]]
    assert step_batches([rank0, rank1]) == [list("abcdefgh"), ["i", "j"]]
    assert step_batches([rank0]) == [list("abef"), ["i"]]


# ---------------------------------------------------------------------------------------------------------
# Launched: 2 ranks on the CPU (slow: each launch starts 3 Python processes that import torch; 9-20 s a test on the
# shared 2-core machine)
# ---------------------------------------------------------------------------------------------------------

# Plain SGD without clipping (as tests/test_training.py's accumulation test): Adam's normalised steps would hide a
# loss share counted wrong across the ranks. 16 samples fill every rank's last batch: no sample is repeated.
TRAIN = {"num_train_epochs": 2, "per_device_train_batch_size": 4, "max_length": 96, "warmup_ratio": 0.0,
         "lr_scheduler_type": "constant", "logging_steps": 1, "seed": 7, "optim": "sgd", "learning_rate": 0.5,
         "max_grad_norm": 0.0}
# One optimizer step of 8 samples, three ways: name -> (options, processes)
LAYOUTS = {"one": ({"per_device_train_batch_size": 8}, 1), "accumulated": ({"gradient_accumulation_steps": 2}, 1),
           "ranks": ({}, 2)}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranks")
    write_run_inputs(root, "llama3", 6, make_conversations(16, seed=4))
    return root


def poft(*argv) -> subprocess.CompletedProcess:
    """`poft ARGV` in a process of its own: with --processes it starts the ranks."""
    return subprocess.run([sys.executable, "-m", "poft.cli", *map(str, argv)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=600)


def train_argv(workspace: Path, loss: str, out: Path, **options) -> list[str]:
    sets = [a for k, v in {**TRAIN, **options, "loss": loss}.items() for a in ("--set", f"{k}={v}")]
    return ["train", "--data", workspace / "data.jsonl", "--model", workspace / "model", "--scores",
            workspace / "merged.json", *sets, "--safe-resume", "--out", out]


@pytest.fixture(scope="module")
def trained(workspace):
    """(loss, layout) -> its run dir, trained once for the module: one process in this one, ranks in their own."""
    done = {}

    def run(loss: str, layout: str) -> Path:
        if (loss, layout) not in done:
            options, processes = LAYOUTS[layout]
            out = workspace / f"{loss}-{layout}"
            argv = [str(a) for a in train_argv(workspace, loss, out, **options)]
            if processes == 1:
                assert main(argv) == 0
            else:
                r = poft(*argv, "--processes", processes)
                assert r.returncode == 0, r.stderr[-3000:]
            done[loss, layout] = out
        return done[loss, layout]

    return run


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(epoch_checkpoints(run)[TRAIN["num_train_epochs"]] / "model.safetensors")


def batch_ids(run: Path) -> list:
    return [json.loads((c / "batch_ids.json").read_text()) for c in epoch_checkpoints(run).values()]


def traces(run: Path) -> list[list[dict]]:
    """Per epoch, the rows of the mechanism trace training recorded (poft.trace.TRACE_FILE)."""
    return [json.loads((c / TRACE_FILE).read_text())["rows"] for c in epoch_checkpoints(run).values()]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["sft", "poft"])
def test_two_ranks_train_as_one_process_with_the_whole_batch(trained, loss):
    """SFT's mean is over the step's tokens, PoFT's over its samples: each rank's share of the step counts both over
    the ranks. The same weights, the same batches recorded in the same order, and the same trace: every sample once."""
    runs = {layout: trained(loss, layout) for layout in LAYOUTS}
    one = final_weights(runs["one"])
    for layout in ("accumulated", "ranks"):
        weights = final_weights(runs[layout])
        for k, v in one.items():
            torch.testing.assert_close(weights[k], v, rtol=0, atol=1e-5, msg=f"{layout}: {k}")
        assert batch_ids(runs[layout]) == batch_ids(runs["one"])
        for mine, ones in zip(traces(runs[layout]), traces(runs["one"])):  # every rank's forwards, gathered
            assert [r["id"] for r in mine] == [r["id"] for r in ones] == sorted({r["id"] for r in ones})
            assert len(mine) == 16 and [r["r_theta"] for r in mine] == pytest.approx([r["r_theta"] for r in ones],
                                                                                    abs=1e-5)
    epoch1, epoch2 = batch_ids(runs["ranks"])
    assert [len(step) for step in epoch1 + epoch2] == [8] * 4 and sorted(sum(epoch1, [])) == sorted(sum(epoch2, []))
    ckpt = epoch_checkpoints(runs["ranks"])[1]
    assert {p.name for p in ckpt.glob("rng_state*")} == {"rng_state_0.pth", "rng_state_1.pth"}  # each rank's own
    assert json.loads((runs["ranks"] / "resolved_config.json").read_text())["processes"] == 2
    assert json.loads((runs["ranks"] / "train_summary.json").read_text())["global_step"] == 4


@pytest.mark.slow
def test_sft_and_poft_on_two_ranks_stay_paired(trained):
    assert batch_ids(trained("sft", "ranks")) == batch_ids(trained("poft", "ranks"))


@pytest.mark.slow
def test_a_two_rank_run_cut_after_epoch_one_resumes_to_the_uncut_weights(workspace, trained):
    out = workspace / "cut"
    argv = [str(a) for a in train_argv(workspace, "poft", out)]
    worker = ROOT / "tests" / "train_stop_worker.py"
    cut = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", *accelerate_flags(2), str(worker), "1",
                          *argv, "--processes", "2"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert cut.returncode == 0, cut.stderr[-3000:]
    assert list(epoch_checkpoints(out)) == [1] and not (out / "train_summary.json").exists()

    resumed = poft(*argv, "--processes", 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from"] == str(epoch_checkpoints(out)[1])
    uncut = trained("poft", "ranks")
    expected = final_weights(uncut)
    for k, v in final_weights(out).items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=1e-6, msg=k)
    assert batch_ids(out) == batch_ids(uncut)


@pytest.mark.slow
def test_two_ranks_score_the_rows_one_process_scores(workspace):
    """6 shards of 3 (the last of 1), dealt to the ranks in turn; the first rank joins them in order. max_length 64
    cuts some samples: the report's counts come through the join too."""
    args = ["score", "--data", workspace / "data.jsonl", "--model", workspace / "model", "--name", "m",
            "--shard-size", 3, "--max-length", 64, "--quiet"]
    assert main([str(a) for a in [*args, "--out", workspace / "one.json"]]) == 0
    r = poft(*args, "--processes", 2, "--out", workspace / "two.json")
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = (json.loads((workspace / f"{n}.json").read_text()) for n in ("one", "two"))
    assert [json.dumps(row) for row in two["rows"]] == [json.dumps(row) for row in one["rows"]]
    assert {**two["meta"], "seconds": 0} == {**one["meta"], "seconds": 0}
    assert one["meta"]["tokenization"]["n_truncated"] > 0
    assert not (workspace / "two.json.shards").exists()


@pytest.mark.slow
def test_dpo_runs_on_two_ranks(workspace, trained):
    """TRL's DPO on 2 ranks from a 2-rank run's last checkpoint: 16 pairs at 4 per rank, 2 steps. TRL caches the
    reference log-probs beside the dataset's files, which every rank must see (poft.dpo._pairs_dataset)."""
    from test_dpo import make_pairs

    from poft.io import write_jsonl

    write_jsonl(workspace / "pairs.jsonl", make_pairs(16))
    out = workspace / "dpo"
    r = poft("dpo", "--model", trained("sft", "ranks"), "--epoch", "last", "--pairs", workspace / "pairs.jsonl",
             *[a for o in ("per_device_train_batch_size=4", "max_length=96", "num_train_epochs=1", "bf16=false",
                           "gradient_checkpointing=false") for a in ("--set", o)], "--safe-resume", "--processes", 2,
             "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "dpo_metrics.json").read_text())
    assert (metrics["global_step"], metrics["n_pairs_trained"]) == (2, 16)
