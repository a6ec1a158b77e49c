#!/usr/bin/env bash
# The recipe that trained the shipped multi-style nets on a 2-core CPU (no GPU was available).
# Usage: weights/train_multistyle_cpu.sh CONTENT_DIR [OUT_DIR] [STEPS]
#   CONTENT_DIR: photos to train on (the same 1,006 as weights/train_johnson_cpu.sh: the 406 MS-COCO photos
#                of the project's data folder plus the first 300 trainA and 300 trainB photos of horse2zebra).
# Both nets learn every style of samples/styles/, one style per batch in turn. multistyle (Johnson width)
# starts from the shipped one-style mosaic net (its convolutions, and its norm parameters in every style's
# row); multistyle_small (the slim CPU net) starts from scratch. Running the script again resumes each
# net from its last checkpoint (Ctrl-C saves one); the two runs share the machine, one thread each.
set -euo pipefail
content=${1:?usage: $0 CONTENT_DIR [OUT_DIR] [STEPS]}
out=${2:-checkpoints}
steps=${3:-20000}
py=${PYTHON:-python}
styles=(samples/styles/*.jpg)
common=(--dataset "$content" --style "${styles[@]}" --image-size 128 --batch-size 4 --style-size 256
        --style-weight 8 --amp bf16 --workers 1 --threads 1 --checkpoint-every 100 --sample-every 200
        --log-every 10 --seed 1 --steps "$steps")

run() {  # name arch [extra args...]
  local name=$1 arch=$2; shift 2
  if [ -f "$out/$name.pth" ]; then
    "$py" -m train.johnson --resume "$out/$name.pth" --steps "$steps" --workers 1 --threads 1
  else
    "$py" -m train.johnson "${common[@]}" -o "$out/$name.pth" --name "$name" --arch "$arch" "$@"
  fi
}

run multistyle       johnson --init-from weights/mosaic.onnx &
run multistyle_small small &
wait
