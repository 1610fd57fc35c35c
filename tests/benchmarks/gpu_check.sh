#!/usr/bin/env bash
# The GPU side of the benchmarks, in one command (<= 8 minutes on one GPU): training (TRL's SFTTrainer beside
# poft SFT and PoFT) and scoring on the ~0.5B preset in bf16, then, if a real model is given, scoring on it.
#
#     bash tests/benchmarks/gpu_check.sh                       # JSON files into results/benchmarks/gpu
#     bash tests/benchmarks/gpu_check.sh /models/Llama-3-8B   # also score a local HF directory (or a .gguf file)
#     OUT=elsewhere PYTHON=.venv/bin/python bash tests/benchmarks/gpu_check.sh
#
# Each step has its own time limit, and the scripts write their JSON after every configuration, so a step cut
# short still leaves what it measured (marked "complete": false). No test needs this script.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/benchmarks/gpu}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0

# 6 configurations x (process start-up, model init, warm-up, 2 epochs of 256 chats): ~4 minutes, most of it
# start-up. TRL's refusal of padding_free with max_length does not depend on the device: the CPU run records it.
configs=trl_default,trl_padding_free,poft_sft_padded,poft_sft_padding_free,poft_poft_padded,poft_poft_padding_free
timeout 270 "$PY" tests/benchmarks/bench_train.py --preset 0.5b --samples 256 --repeats 2 --timeout 100 \
    --configs "$configs" --json "$OUT/train-0.5b.json" || { echo "bench_train: exit $?"; status=1; }
# 4 scorers; pad_to_max computes 2048 positions and full logits per sample, the slowest of them.
timeout 110 "$PY" tests/benchmarks/bench_score.py --preset 0.5b --samples 256 --repeats 2 --timeout 60 \
    --json "$OUT/score-0.5b.json" || { echo "bench_score: exit $?"; status=1; }
if [ $# -ge 1 ]; then
    timeout 90 "$PY" tests/benchmarks/bench_score.py --model "$1" --samples 64 --repeats 1 --timeout 40 \
        --json "$OUT/score-model.json" || { echo "bench_score --model: exit $?"; status=1; }
fi
ls -l "$OUT"
exit $status
