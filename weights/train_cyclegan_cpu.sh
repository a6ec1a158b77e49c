#!/usr/bin/env bash
# The recipe that trained the shipped horse2zebra / zebra2horse generators on a CPU (no GPU was available):
# a narrower generator (ngf 16 instead of 64, 6 residual blocks instead of 9) at 128 px instead of 256,
# a short schedule (5 epochs constant + 2 epochs linear decay; the first run was 2 + 2 epochs, then resumed with this schedule), bf16 autocast, one torch thread.
# Usage: weights/train_cyclegan_cpu.sh HORSE2ZEBRA_DIR [OUT_DIR]   (HORSE2ZEBRA_DIR holds trainA/ trainB/)
# Running it again resumes from OUT_DIR/state.pth.
set -euo pipefail
data=${1:?usage: $0 HORSE2ZEBRA_DIR [OUT_DIR]}
out=${2:-checkpoints/horse2zebra}
py=${PYTHON:-python}
resume=()
[ -f "$out/state.pth" ] && resume=(--resume "$out/state.pth")
"$py" -m train.cyclegan --dataset "$data" -o "$out" --image-size 128 --ngf 16 --n-blocks 6 --ndf 32 \
  --amp bf16 --threads 1 --workers 1 --epochs 5 --epochs-decay 2 --seed 1 \
  --checkpoint-every 250 --sample-every 500 --log-every 25 "${resume[@]}"
