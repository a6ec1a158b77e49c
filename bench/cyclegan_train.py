"""``python -m bench cyclegan``: CycleGAN training iterations/s, tuned path vs plain fp32, side by side.

Every variant runs the real training step (``train.cyclegan_model.CycleGAN.step``: both
generators, both discriminators, image pools, Adam) fed by the real data pipeline
(``UnpairedDataset`` + ``DataLoader``) on the same generated A/B folders, in one process.
Plain = fp32, NCHW, no loader workers (the authors' recipe). Tuned = channels_last + bf16
autocast + loader workers. The rows in between switch on one ingredient at a time, so the
table shows which one pays on this machine. Variants are measured in interleaved rounds and
the best round is kept, which damps noise from other processes sharing the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from realtime.cli.common import cli_entry
from realtime.core.devices import resolve_device
from realtime.core.errors import UserError
from train.cyclegan import CycleGANConfig
from train.cyclegan_model import CycleGAN
from train.unpaired import EpochBatchSampler, UnpairedDataset


def make_domains(root: Path, count: int, size: int) -> Path:
    """Two folders of smooth random photos, ``count`` each, a little larger than the load size."""
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        for i in range(count):
            small = rng.integers(0, 255, (max(4, size // 8), max(4, size // 8), 3), dtype=np.uint8)
            Image.fromarray(small).resize((size, size), Image.BICUBIC).save(root / domain / f"{i:03d}.jpg", quality=90)
    return root


def iterations_per_second(
    cfg: CycleGANConfig, dataset: UnpairedDataset, device: torch.device, steps: int, warmup: int
) -> float:
    """Time ``steps`` training iterations (data loading included) after ``warmup`` untimed ones."""
    torch.manual_seed(0)
    model = CycleGAN(cfg, device)
    loader = DataLoader(
        dataset,
        batch_sampler=EpochBatchSampler(len(dataset), cfg.batch_size),
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
    )
    batches = iter(loader)

    def run(n: int) -> None:
        for _ in range(n):
            batch = next(batches)
            losses, _ = model.step(batch["A"].to(device, non_blocking=True), batch["B"].to(device, non_blocking=True))
        losses["cycle_A"].item()  # wait for the device

    run(warmup)
    start = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - start)


def variants(cuda: bool, workers: int) -> dict[str, dict]:
    tuned = dict(channels_last=True, amp="bf16", workers=workers)
    rows = {
        "plain fp32 (NCHW, no workers)": dict(channels_last=False, amp="off", workers=0),
        f"+ {workers} loader workers": dict(channels_last=False, amp="off", workers=workers),
        "+ channels_last": dict(channels_last=True, amp="off", workers=0),
        "+ bf16 autocast": dict(channels_last=False, amp="bf16", workers=0),
    }
    if cuda:
        rows["tuned, fp16 + GradScaler"] = dict(tuned, amp="fp16")
    rows[f"tuned (channels_last, bf16, {workers} workers)"] = tuned
    return rows


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench cyclegan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench cyclegan\n"
        "  python -m bench cyclegan --device cuda --image-size 256 --ngf 64 "
        "--n-blocks 9",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (%(default)s)")
    p.add_argument("--image-size", type=int, help="training crop (default: 256 on CUDA, 64 on CPU)")
    p.add_argument("--ngf", type=int, help="generator and discriminator width (default: 64 CUDA, 16 CPU)")
    p.add_argument("--n-blocks", type=int, default=6, help="generator residual blocks (%(default)s)")
    p.add_argument("--batch-size", type=int, default=1, help="images per domain per step (%(default)s)")
    p.add_argument("--steps", type=int, help="timed iterations per variant and round (default: 50 CUDA, 16 CPU)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (%(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best is kept (%(default)s)")
    p.add_argument("--workers", type=int, default=2, help="loader workers of the tuned path (%(default)s)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    size = args.image_size or (256 if cuda else 64)
    ngf = args.ngf or (64 if cuda else 16)
    steps = args.steps or (50 if cuda else 16)
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(size, ngf, steps, args.rounds, args.batch_size) < 1 or size % 4:
        raise UserError("--image-size (a multiple of 4), --ngf, --steps, --rounds and --batch-size must be positive")
    rows = variants(cuda, args.workers)
    best = dict.fromkeys(rows, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_domains(Path(tmp) / "set", count=16, size=size * 5 // 4)
        dataset = UnpairedDataset(root, crop_size=size)
        for _ in range(args.rounds):
            for label, extra in rows.items():
                cfg = CycleGANConfig(
                    dataset=str(root),
                    image_size=size,
                    ngf=ngf,
                    ndf=ngf,
                    n_blocks=args.n_blocks,
                    batch_size=args.batch_size,
                    **extra,
                )
                best[label] = max(best[label], iterations_per_second(cfg, dataset, device, steps, args.warmup))
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"CycleGAN training, {size}x{size} px, batch {args.batch_size}, ngf=ndf={ngf}, {args.n_blocks} blocks, "
        f"{steps} timed iterations x {args.rounds} rounds (best kept), {where}"
    )
    base = best[next(iter(rows))]
    for label, rate in best.items():
        print(f"  {label:<44} {rate:8.2f} it/s   {rate / base:5.2f}x")
    return 0
