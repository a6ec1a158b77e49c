"""``python -m bench johnson``: Johnson training images/s, tuned path vs the plain recipe.

Both runs go through the real ``train.johnson.train`` (data loading, VGG loss, optimizer step)
on the same generated photo folder in one process, one after the other; the first logging
window of each is discarded as warm-up. Plain = fp32, batch 4, no loader workers, NCHW (the
pytorch/examples recipe). Tuned = bf16 autocast, channels_last on CUDA, a larger batch, workers.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from realtime.cli.common import cli_entry
from realtime.core.devices import resolve_device
from train.johnson import JohnsonConfig, train

STYLE = Path(__file__).resolve().parents[1] / "samples" / "styles" / "mosaic.jpg"


def make_photos(folder: Path, count: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        img = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(img).resize((size, size), Image.BICUBIC).save(folder / f"{i:04d}.jpg", quality=90)
    return folder


def images_per_second(config: JohnsonConfig) -> float:
    train(config, progress=False)
    with open(Path(config.log_dir) / "log.csv", newline="") as f:
        rates = [float(row["images_per_s"]) for row in csv.DictReader(f)]
    steady = rates[1:] or rates
    return float(np.median(steady))


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench johnson", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--image-size", type=int, default=None, help="default 256 on CUDA, 128 on CPU")
    p.add_argument("--steps", type=int, default=None, help="steps per run (default 60 CUDA, 12 CPU)")
    p.add_argument("--arch", default="johnson", choices=("johnson", "small"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    size = args.image_size or (256 if cuda else 128)
    steps = args.steps or (60 if cuda else 12)
    tuned_batch = 32 if cuda else 8
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "photos").mkdir()
        photos = make_photos(tmp / "photos", 64, size)
        runs = {
            "plain (fp32, batch 4)": dict(amp="off", batch_size=4, workers=0, channels_last=False),
            f"tuned (bf16, batch {tuned_batch}{', channels_last' if cuda else ''}, workers)": dict(
                amp="bf16", batch_size=tuned_batch, workers=4 if cuda else 1, channels_last=cuda
            ),
        }
        results = {}
        for label, extra in runs.items():
            log_every = max(1, steps // 4)
            config = JohnsonConfig(
                style=str(STYLE),
                output=str(tmp / "m.pth"),
                dataset=str(photos),
                steps=steps,
                image_size=size,
                arch=args.arch,
                device=str(device),
                sample_every=0,
                checkpoint_every=0,
                log_every=log_every,
                log_dir=str(tmp / label[:5]),
                style_size=2 * size,
                **extra,
            )
            results[label] = images_per_second(config)
            (tmp / "m.pth").unlink()
    base = next(iter(results.values()))
    print(
        f"Johnson training, arch {args.arch}, {size}x{size} px, {steps} steps per run, device {device}"
        f" ({torch.cuda.get_device_name(device) if cuda else f'{torch.get_num_threads()} threads'})"
    )
    for label, rate in results.items():
        print(f"  {label:<48} {rate:8.1f} images/s   {rate / base:5.2f}x")
    return 0
