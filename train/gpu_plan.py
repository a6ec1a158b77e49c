"""What one GPU run trains, with which command lines and how much of the time each gets.

:func:`make_plan` turns the run's settings (:class:`RunSettings`) into :class:`Job` s: the five
single-style Johnson nets and ``mosaic_small``, the two multi-style nets (every bundled style), and
the horse2zebra / zebra2horse CycleGAN pair. Every command line uses the trainers' current flags
only. Johnson jobs share their slots by ``share`` (a job gets its share of the slot time left when
it starts, and is stopped with Ctrl-C when that is spent: the trainers save a resumable checkpoint
on Ctrl-C); CycleGAN takes one slot for the whole window and stops itself by ``--time-limit``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STYLES = REPO / "samples" / "styles"

# (model name, style image, --arch, time share): the shipped single-style nets.
SINGLE_STYLE = (
    ("mosaic", "mosaic.jpg", "johnson", 1.0),
    ("candy", "candy.jpg", "johnson", 1.0),
    ("udnie", "udnie.jpg", "johnson", 1.0),
    ("rain-princess", "rain-princess.jpg", "johnson", 1.0),
    ("starry_night", "starry_night.jpg", "johnson", 1.0),
    ("mosaic_small", "mosaic.jpg", "small", 0.6),
)
# (model name, --arch, time share): one net for every bundled style.
MULTI_STYLE = (("multistyle", "johnson", 3.0), ("multistyle_small", "small", 2.0))
CYCLEGAN_NAME = "horse2zebra"  # the pair: horse2zebra and zebra2horse


@dataclass
class Job:
    """One training process: ``argv`` after ``python -m <module>``; it writes ``outputs`` (name -> checkpoint)."""

    name: str
    module: str
    argv: list[str]
    outputs: dict[str, Path]
    share: float = 1.0  # of the Johnson slots' time; CycleGAN runs for the whole window
    log_dir: Path | None = None


@dataclass
class RunSettings:
    """The knobs of one GPU run (defaults: one H200 for about 9 minutes)."""

    data: Path  # holds photos/ (Johnson content) and horse2zebra/trainA, trainB
    out: Path
    device: str = "cuda"
    image_size: int = 256  # Johnson crops
    batch_size: int = 8
    style_size: int = 512
    style_weights: dict[str, float] = field(default_factory=dict)  # per model; default DEFAULT_STYLE_WEIGHT
    style_layer_weights: str | None = None  # e.g. "relu1_1=4" (realtime.core.losses.PALETTE_LAYER_WEIGHTS)
    workers: int = 4  # per Johnson process
    cyclegan_size: int = 128
    cyclegan_ngf: int = 32
    cyclegan_blocks: int = 6
    cyclegan_ndf: int = 64
    cyclegan_batch: int = 4
    cyclegan_rate: float = 25.0  # iterations/s assumed when fitting the lr schedule into the window
    cyclegan_resume: Path | None = None
    only: tuple[str, ...] = ()  # job names to run (default: all)
    tiny: bool = False  # CPU test sizes: a few steps each, tiny nets
    seed: int = 1


DEFAULT_STYLE_WEIGHT = 8.0  # what the shipped CPU runs settled on (scale-free loss: about the same on a GPU)


def _johnson(name: str, styles: Sequence[str], arch: str, share: float, s: RunSettings) -> Job:
    checkpoint = s.out / "checkpoints" / f"{name}.pth"
    log_dir = s.out / "logs" / name
    size, batch, style_size = (32, 2, 64) if s.tiny else (s.image_size, s.batch_size, s.style_size)
    argv = [
        "--dataset",
        str(s.data / "photos"),
        "--style",
        *[str(STYLES / style) for style in styles],
        "-o",
        str(checkpoint),
        "--name",
        name,
        "--arch",
        arch,
        "--image-size",
        str(size),
        "--batch-size",
        str(batch),
        "--style-size",
        str(style_size),
        "--style-weight",
        f"{s.style_weights.get(name, DEFAULT_STYLE_WEIGHT):g}",
        "--steps",
        "3" if s.tiny else "1000000",  # on a GPU the time share ends the run (Ctrl-C saves it)
        "--workers",
        "0" if s.tiny else str(s.workers),
        "--checkpoint-every",
        "1000" if s.tiny else "500",
        "--sample-every",
        "0" if s.tiny else "1000",  # a grid of four photos now and then, to look at
        "--log-every",
        "1" if s.tiny else "50",
        "--log-dir",
        str(log_dir),
        "--seed",
        str(s.seed),
        "--device",
        s.device,
    ]
    if not s.tiny and s.device != "cpu":
        argv += ["--amp", "bf16", "--channels-last"]
    if s.style_layer_weights is not None:
        argv += ["--style-layer-weights", s.style_layer_weights]
    return Job(name, "train.johnson", argv, {name: checkpoint}, share, log_dir)


def cyclegan_epochs(seconds: float, rate: float, images: int, batch: int) -> tuple[int, int]:
    """``(epochs, epochs_decay)`` that fit ``seconds`` at ``rate`` it/s, half constant, half decay (the paper's split).

    ``images`` is the larger domain's size (an epoch has that many samples).
    """
    per_epoch = max(1, math.ceil(images / batch))
    total = max(2, int(seconds * rate / per_epoch))
    return (total + 1) // 2, total // 2


def _cyclegan(s: RunSettings, seconds: float) -> Job:
    out = s.out / CYCLEGAN_NAME
    data = s.data / CYCLEGAN_NAME
    speed = ["--amp", "bf16", "--channels-last"] if s.device != "cpu" and not s.tiny else []
    running = ["--preload", "--workers", "0", "--device", s.device, "--no-progress", *speed]
    if s.tiny:
        net = ["--image-size", "32", "--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--batch-size", "2"]
        schedule = ["--steps", "3", "--log-every", "1", "--sample-every", "3"]
    else:
        largest = max((len(list((data / d).glob("*"))) for d in ("trainA", "trainB")), default=1)
        epochs, decay = cyclegan_epochs(seconds, s.cyclegan_rate, largest, s.cyclegan_batch)
        net = [
            *("--image-size", str(s.cyclegan_size), "--ngf", str(s.cyclegan_ngf)),
            *("--ndf", str(s.cyclegan_ndf), "--n-blocks", str(s.cyclegan_blocks)),
            *("--batch-size", str(s.cyclegan_batch), "--lr-scaling", "sqrt"),
        ]
        schedule = ["--epochs", str(epochs), "--epochs-decay", str(decay), "--log-every", "50", "--sample-every", "500"]
        running += ["--time-limit", f"{max(seconds, 1.0):.0f}"]
    if s.cyclegan_resume is not None:  # continue an earlier run: its settings come from its state file
        argv = ["--dataset", str(data), "-o", str(out), "--resume", str(s.cyclegan_resume), *running]
    else:
        argv = ["--dataset", str(data), "-o", str(out), *net, *schedule, "--seed", str(s.seed), *running]
    outputs = {"horse2zebra": out / "horse2zebra.pth", "zebra2horse": out / "zebra2horse.pth"}
    return Job(CYCLEGAN_NAME, "train.cyclegan", argv, outputs, 0.0, out / "logs")


def make_plan(s: RunSettings, cyclegan_seconds: float) -> tuple[list[Job], Job | None]:
    """``(johnson_jobs, cyclegan_job)`` for the run (``--only`` may leave either out)."""
    johnson = [_johnson(name, [style], arch, share, s) for name, style, arch, share in SINGLE_STYLE]
    every = sorted(p.name for p in STYLES.glob("*.jpg"))
    johnson += [_johnson(name, every, arch, share, s) for name, arch, share in MULTI_STYLE]
    cyclegan: Job | None = _cyclegan(s, cyclegan_seconds)
    if s.only:
        known = [j.name for j in johnson] + [CYCLEGAN_NAME]
        unknown = [n for n in s.only if n not in known]
        if unknown:
            raise ValueError(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(known)}")
        johnson = [j for j in johnson if j.name in s.only]
        cyclegan = cyclegan if CYCLEGAN_NAME in s.only else None
    return johnson, cyclegan


def command_line(job: Job) -> list[str]:
    """The full command that runs ``job`` with this Python."""
    return [sys.executable, "-m", job.module, *job.argv]


def parse_style_weights(text: str | None) -> dict[str, float]:
    """``"candy=12,udnie=6"`` -> ``{"candy": 12.0, "udnie": 6.0}``."""
    weights = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"style weights look like candy=12,udnie=6, got {text!r}") from None
        if not eq:
            raise argparse.ArgumentTypeError(f"style weights look like candy=12,udnie=6, got {text!r}")
    return weights
