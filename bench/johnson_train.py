"""``python -m bench johnson``: Johnson training images/s, each speed ingredient and all of them vs the plain recipe.

Every row goes through the real ``train.johnson.train`` (data loading, VGG loss, optimizer step) on the
same generated photo folder in one process. Plain = fp32, batch 4, no loader workers, NCHW (the
pytorch/examples recipe). The rows in between switch on one ingredient at a time (bf16 autocast, a
larger batch, loader workers, channels_last on CUDA); "tuned" combines them, ``--compile`` adds a
``torch.compile`` row. Rows run in interleaved rounds; each row's figure is the median of its steady
logging windows over all rounds (the first window of each run is warm-up), so load drifting during the
run affects all rows alike. ``--styles N`` trains an N-style net instead (one style per batch).

``--profile`` then profiles plain and tuned for a few steps after warm-up and prints the top operators
by self time (CPU, or CUDA time on a GPU) and, on CUDA, the host-device synchronisations per step.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.profiler import ProfilerActivity, profile, schedule

from realtime.cli.common import cli_entry
from realtime.core.devices import resolve_device
from train.johnson import JohnsonConfig, train

STYLES = Path(__file__).resolve().parents[1] / "samples" / "styles"
STYLE = STYLES / "mosaic.jpg"


def make_photos(folder: Path, count: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        img = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(img).resize((size, size), Image.BICUBIC).save(folder / f"{i:04d}.jpg", quality=90)
    return folder


def window_rates(config: JohnsonConfig) -> list[float]:
    """images/s of every logging window of a run but its first (warm-up)."""
    train(config, progress=False)
    with open(Path(config.log_dir) / "log.csv", newline="") as f:
        rates = [float(row["images_per_s"]) for row in csv.DictReader(f)]
    return rates[1:] or rates


def rows_for(cuda: bool, compile_row: bool) -> dict[str, dict[str, Any]]:
    big = 32 if cuda else 8
    workers = 4 if cuda else 1
    rows: dict[str, dict[str, Any]] = {
        "plain (fp32, batch 4)": dict(amp="off", batch_size=4, workers=0, channels_last=False),
        "+ bf16 autocast": dict(amp="bf16", batch_size=4, workers=0, channels_last=False),
        f"+ batch {big}": dict(amp="off", batch_size=big, workers=0, channels_last=False),
        f"+ {workers} loader workers": dict(amp="off", batch_size=4, workers=workers, channels_last=False),
    }
    if cuda:
        rows["+ channels_last"] = dict(amp="off", batch_size=4, workers=0, channels_last=True)
    tuned = dict(amp="bf16", batch_size=big, workers=workers, channels_last=cuda)
    rows[f"tuned (bf16, batch {big}, workers{', channels_last' if cuda else ''})"] = tuned
    if compile_row:
        rows["tuned + torch.compile"] = {**tuned, "compile": True}
    return rows


def profile_run(config: JohnsonConfig, device: torch.device, warmup: int, active: int, top: int) -> str:
    """Top operators of ``active`` steps after ``warmup`` steps of one run (and the syncs per step on CUDA)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, schedule=schedule(wait=0, warmup=warmup, active=active, repeat=1)) as prof:
        train(config, progress=False, on_step=lambda step: prof.step())
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=top, max_name_column_width=42)
    if device.type == "cuda":
        syncs = sum(e.count for e in prof.key_averages() if "synchronize" in e.key.lower() or e.key == "aten::item")
        table += f"\n  host-device synchronisations (item/synchronize calls) per step: {syncs / active:.1f}"
    return table


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench johnson", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--image-size", type=int, default=None, help="default 256 on CUDA, 128 on CPU")
    p.add_argument("--steps", type=int, default=None, help="steps per run (default 60 CUDA, 12 CPU)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every row (default 1)")
    p.add_argument("--arch", default="johnson", choices=("johnson", "small"))
    p.add_argument("--styles", type=int, default=1, help="train an N-style net (default 1: the one-style net)")
    p.add_argument("--compile", action="store_true", help="add a torch.compile row (compiling takes minutes)")
    p.add_argument("--profile", action="store_true", help="then profile plain and tuned (top operators)")
    p.add_argument("--top", type=int, default=10, help="operators listed per profile (%(default)s)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    size = args.image_size or (256 if cuda else 128)
    steps = args.steps or (60 if cuda else 12)
    styles = [str(s) for s in sorted(STYLES.glob("*.jpg"))[: args.styles]] if args.styles > 1 else [str(STYLE)]
    rows = rows_for(cuda, args.compile)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "photos").mkdir()
        photos = make_photos(tmp / "photos", 64, size)

        def config(label: str, extra: dict[str, Any], n: int, log_every: int) -> JohnsonConfig:
            (tmp / "m.pth").unlink(missing_ok=True)
            return JohnsonConfig(
                style=styles,
                output=str(tmp / "m.pth"),
                dataset=str(photos),
                steps=n,
                image_size=size,
                arch=args.arch,
                device=str(device),
                sample_every=0,
                checkpoint_every=0,
                log_every=log_every,
                log_dir=str(tmp / f"log{abs(hash(label))}"),
                style_size=2 * size,
                **extra,
            )

        rates: dict[str, list[float]] = {label: [] for label in rows}
        for _ in range(args.rounds):
            for label, extra in rows.items():
                rates[label] += window_rates(config(label, extra, steps, max(1, steps // 4)))
        base = float(np.median(rates[next(iter(rows))]))
        print(
            f"Johnson training, arch {args.arch}, {len(styles)} style(s), {size}x{size} px, {steps} steps per run, "
            f"{args.rounds} round(s), device {device} "
            f"({torch.cuda.get_device_name(device) if cuda else f'{torch.get_num_threads()} threads'})"
        )
        for label, values in rates.items():
            rate = float(np.median(values))
            print(f"  {label:<48} {rate:8.2f} images/s   {rate / base:5.2f}x")
        if args.profile:
            warmup, active = (10, 10) if cuda else (2, 4)
            for label in (next(iter(rows)), [k for k in rows if k.startswith("tuned")][0]):
                print(f"\n  profile: {label}, steps {warmup + 1}-{warmup + active}")
                print(profile_run(config(label, rows[label], warmup + active, 1000), device, warmup, active, args.top))
    return 0
