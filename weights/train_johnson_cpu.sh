#!/usr/bin/env bash
# The recipe that trained the shipped Johnson models on a 2-core CPU (no GPU was available).
# Usage: weights/train_johnson_cpu.sh CONTENT_DIR [OUT_DIR]
#   CONTENT_DIR: photos to train on (we used the 406 MS-COCO photos of the project's data folder
#                plus the first 300 trainA and 300 trainB photos of CycleGAN horse2zebra: 1,006 images).
# Each style after the first is fine-tuned from the trained mosaic net (--init-from), which converges
# several times faster than a fresh start; the slim CPU model trains from scratch. Running the script
# again resumes an interrupted model from its last checkpoint.
set -euo pipefail
content=${1:?usage: $0 CONTENT_DIR [OUT_DIR]}
out=${2:-checkpoints}
py=${PYTHON:-python}
common=(--dataset "$content" --image-size 128 --batch-size 2 --style-size 256 --workers 1
        --checkpoint-every 50 --sample-every 100 --log-every 10 --seed 1 --style-weight 4)

train() {  # name style steps init(-|checkpoint) [extra args...]
  local name=$1 style=$2 steps=$3 init=$4; shift 4
  local start=()
  if [ -f "$out/$name.pth" ]; then start=(--resume "$out/$name.pth")
  elif [ "$init" != - ]; then start=(--init-from "$init")
  fi
  "$py" -m train.johnson "${common[@]}" --style "samples/styles/$style" -o "$out/$name.pth" \
    --steps "$steps" --name "$name" "${start[@]}" "$@"
}

train mosaic        mosaic.jpg        600 -
train mosaic_small  mosaic.jpg        400 -  --arch small
# After measuring mosaic at 600 steps (style distance 0.63-0.76 of the photos', content distance
# 0.83-0.93: content to spare), the fine-tuned styles use twice the style weight.
train candy         candy.jpg         400 "$out/mosaic.pth" --style-weight 8
train udnie         udnie.jpg         400 "$out/mosaic.pth" --style-weight 8
train rain_princess rain-princess.jpg 400 "$out/mosaic.pth" --style-weight 8
train starry_night  starry_night.jpg  400 "$out/mosaic.pth" --style-weight 8
# mosaic and mosaic_small continue with the stronger style weight.
train mosaic        mosaic.jpg        1000 - --style-weight 8
train mosaic_small  mosaic.jpg        800  - --arch small --style-weight 8
# candy measured 0.65 of the photos' style distance at 400 steps; 200 more with style weight 12.
train candy         candy.jpg         600  - --style-weight 12
