"""``python -m realtime.still``: stylise one image, by Gatys optimisation or with a trained model.

``--method gatys`` optimises the pixels against VGG19 statistics (:mod:`realtime.core.gatys`; slow,
any style image). ``--method johnson`` / ``cyclegan`` run a trained network once
(:mod:`realtime.model_still`; fast, one style per model). Heavy imports happen only after the
arguments are checked, so ``--help`` and bad input answer at once.

Unless ``OMP_WAIT_POLICY`` is already set, the command sets it to ``PASSIVE`` before torch loads:
idle OpenMP threads then sleep instead of spinning, which on a machine shared with other work
made a CPU run 4-7x faster in wall time (and costs little when the cores are free).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.cli.common import ListModelsAction, OneLineParser, attach_dash_values, cli_entry
from realtime.core.errors import UserError
from realtime.core.files import OutputExists, check_output, ensure_not_an_input, glob_escape
from realtime.core.images import IMAGE_SUFFIXES, read_image, resize, write_image, write_partial_image
from realtime.core.memory import GATYS_BYTES_PER_PIXEL, default_budget, format_bytes, parse_bytes, whole_frame_bytes
from realtime.core.styles import style_listing

DEFAULT_GATYS_SIZE = 512
# Flags that belong to one kind of method; argparse leaves them None unless given.
GATYS_FLAGS = (
    "steps",
    "optimizer",
    "content_weight",
    "style_weight",
    "tv_weight",
    "init",
    "style_scale",
    "style_blend",
    "scales",
    "precision",
    "style_layer_weights",
    "pooling",
    "vgg",
    "snapshot_every",
    "lr",
    "seed",
)
MODEL_FLAGS = ("model", "strength", "provider", "input_range", "max_memory", "contact_sheet", "columns")

EPILOG = """examples:
  # Gatys et al.: 300 L-BFGS steps at 512 px (CUDA when present)
  python -m realtime.still --content samples/content/tubingen.jpg \\
      --style samples/styles/starry_night.jpg -o out/tubingen_starry.png

  # quicker on a CPU: 256 px, 100 steps in all (coarse to fine over two scales, the default)
  python -m realtime.still --content photo.jpg --style wave.jpg --size 256 --steps 100 -o out.png

  # two styles mixed 70/30, keeping the photo's colours, a snapshot every 50 steps
  python -m realtime.still --content photo.jpg --style a.jpg b.jpg --style-blend 0.7,0.3 \\
      --preserve-color --snapshot-every 50 -o out/mix.png

  # a trained fast model (Johnson) at 60% strength, or a CycleGAN generator
  python -m realtime.still --method johnson --model weights/candy.onnx --content photo.jpg --strength 0.6 -o out.jpg
  python -m realtime.still --method cyclegan --model horse2zebra.onnx --content horse.jpg -o zebra.png

  # any picture as the style, at the photo's full resolution (Magenta's arbitrary-style nets), or a blend
  python -m realtime.still --model arbitrary --style painting.jpg --content photo.jpg -o out.png
  python -m realtime.still --model arbitrary --style a.jpg:0.7,b.jpg:0.3 --content photo.jpg -o out.png

  # a multi-style model: one style, a blend, or every style side by side on one contact sheet
  python -m realtime.still --model multistyle --style mosaic:0.5,candy:0.5 --content photo.jpg -o blend.png
  python -m realtime.still --model multistyle --content photo.jpg --contact-sheet sheet.jpg --size 256

gatys losses are scale-free: content = ||F-Fc||^2/||Fc||^2 on relu4_2; style = the mean over
relu1_1..relu5_1 of ||G-Gs||^2/||Gs||^2 (Gram matrices); tv = mean |pixel step| on 0..1 pixels.
So the default weights (content 1, style 10, tv 1) suit any image and size.
--preserve-color: gatys matches each style image's colour mean and covariance to the content
before optimising (Gatys et al. 2017); the model methods keep the content's chroma and take
only the stylised luminance (realtime.stages.color.preserve_color).
--strength with --model arbitrary moves the style vector toward the photo's own (Ghiasi et al.
2017) instead of blending pixels: 0 is the photo restyled by its own vector.
An existing output is replaced only with --force. Ctrl-C (or SIGTERM) during gatys saves the
image as it is at that step, under the output name, or as NAME.partial.EXT beside an existing file.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m realtime.still",
        description="Stylise one image: Gatys et al. optimisation "
        "(any style image, slow) or a model (fast): a trained Johnson / CycleGAN net, or the arbitrary-style "
        "net that takes any picture as the style.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        metavar="gatys|FAMILY",
        help="gatys (default with --style), or the model family "
        "the --model must be (johnson, cyclegan, ...; default: taken from the model file)",
    )
    p.add_argument("--content", "-c", metavar="IMAGE", help="the photo to stylise (required)")
    p.add_argument(
        "--output",
        "-o",
        metavar="IMAGE",
        help="output .png/.jpg/.webp/.bmp, required (folder created; written atomically; never over an input)",
    )
    p.add_argument(
        "--size",
        type=int,
        metavar="PX",
        help="longer side of the output in pixels (gatys: "
        f"default {DEFAULT_GATYS_SIZE}; models: default the input's size)",
    )
    p.add_argument("--force", "-f", action="store_true", help="replace --output (and snapshots) if they exist")
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours (see below)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default auto)")

    g = p.add_argument_group("gatys")
    p.add_argument(
        "--style",
        "-s",
        nargs="+",
        metavar="STYLE",
        help="gatys: one or more style images. With --model, the model's style: a name, an index or a blend "
        "(mosaic:0.5,candy:0.5) for a multi-style model, any picture (or a.jpg:0.7,b.jpg:0.3) for an "
        "arbitrary-style one",
    )
    g.add_argument("--steps", type=int, metavar="N", help="optimiser steps in all, over all scales (default 300)")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), help="default lbfgs (one loss evaluation per step)")
    g.add_argument("--lr", type=float, metavar="PX", help="Adam's step in pixel units (default 4)")
    g.add_argument("--content-weight", type=float, metavar="W", help="default 1")
    g.add_argument("--style-weight", type=float, metavar="W", help="default 10")
    g.add_argument("--tv-weight", type=float, metavar="W", help="total-variation smoothing (default 1; 0 turns it off)")
    g.add_argument("--init", choices=("content", "noise"), help="start from the content (default) or noise")
    g.add_argument(
        "--style-scale",
        type=float,
        metavar="F",
        help="style image size relative to the content: 1 (default) "
        "gives it the content's pixel count, 2 twice its width and height",
    )
    g.add_argument("--style-blend", metavar="W1,W2,...", help="weights of the style images (default equal)")
    g.add_argument(
        "--scales",
        type=int,
        metavar="N",
        help="coarse to fine over N scales, each twice the last; each finer "
        "scale gets half the steps of the one before (default 2; 1 = all steps at full size)",
    )
    g.add_argument(
        "--style-layer-weights",
        metavar="L=W,...",
        help="weights of the style layers relu1_1..relu5_1, others 1 (default relu1_1=4: the painting's "
        "palette; 'equal' weighs them alike)",
    )
    g.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help="VGG arithmetic: auto (default) = bf16 where the device runs it natively (recent GPUs, "
        "CPUs with AVX512-BF16/AMX), else fp32",
    )
    g.add_argument("--pooling", choices=("max", "avg"), help="VGG pooling (default max)")
    g.add_argument(
        "--vgg",
        choices=("caffe", "torchvision"),
        help="VGG19 weights: caffe (the originals, offline; default) or torchvision (needs its download cache)",
    )
    g.add_argument(
        "--snapshot-every",
        type=int,
        metavar="N",
        help="also save every N-th step beside the output as NAME.stepNNNN.EXT",
    )
    g.add_argument("--seed", type=int, metavar="N", help="random seed for --init noise (default 0)")

    m = p.add_argument_group("johnson / cyclegan")
    m.add_argument("--list-styles", action="store_true", help="print the styles of --model (multi-style) and exit")
    m.add_argument(
        "--contact-sheet",
        metavar="IMAGE",
        help="instead of --output: the photo in every style of --model (multi-style), labelled, in one image; "
        "--style picks the tiles (names or blends)",
    )
    m.add_argument("--columns", type=int, metavar="N", help="tiles per row of --contact-sheet (default: square)")
    m.add_argument("--list-models", action=ListModelsAction)
    m.add_argument("--model", metavar="PATH|NAME", help="checkpoint, TorchScript or ONNX file, or a model name")
    m.add_argument(
        "--strength",
        type=float,
        metavar="S",
        help="0..1 blend with the original (default 1; --model arbitrary: toward the photo's own style vector)",
    )
    m.add_argument("--provider", metavar="NAME", help="onnxruntime execution provider, e.g. CUDAExecutionProvider")
    m.add_argument("--input-range", choices=("0-255", "0-1", "-1-1"), help="pixel range a foreign ONNX model expects")
    m.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget, e.g. 4G: a larger image runs in overlapping tiles with the whole image's statistics "
        f"(same result, several times slower; default a quarter of the RAM: {format_bytes(default_budget())})",
    )
    return p


def resolve_method(args: argparse.Namespace) -> str:
    """``gatys``, ``johnson``, ``cyclegan``, or ``model`` (a model whose family its file states)."""
    method = args.method
    if method is None:
        if not args.style and not args.model:
            raise UserError("give --style IMAGE for gatys, or --model for a trained model (see --help)")
        method = "model" if args.model else "gatys"
    gatys = method == "gatys"
    stray = [name for name in (MODEL_FLAGS if gatys else GATYS_FLAGS) if getattr(args, name) is not None]
    if stray:
        flag = "--" + stray[0].replace("_", "-")
        raise UserError(f"{flag} does not apply to " + ("--method gatys" if gatys else "a trained --model"))
    if gatys and not args.style:
        raise UserError("--method gatys needs at least one --style image")
    if not gatys and not args.model:
        raise UserError(f"--method {method} needs --model PATH|NAME")
    return method


def parse_blend(text: str | None) -> tuple[float, ...] | None:
    """``"0.7,0.3"`` -> ``(0.7, 0.3)``; UserError for anything else."""
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--style-blend takes comma-separated numbers like 0.7,0.3, got {text!r}") from None


def check_common(args: argparse.Namespace, inputs: Sequence[str]) -> None:
    """Refuse a bad size, an unknown output type, or an output over an input before any work."""
    if args.size is not None and args.size <= 0:
        raise UserError(f"--size must be a positive number of pixels, got {args.size}")
    if getattr(args, "max_memory", None):
        parse_bytes(args.max_memory)  # a bad value is reported before anything else
    if args.size is not None and args.size > 8192:
        raise UserError(f"--size {args.size} is larger than 8192 pixels")
    suffix = Path(args.output).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UserError(f"output {args.output} must end in one of {', '.join(IMAGE_SUFFIXES)}")
    if Path(args.output).is_dir():
        raise UserError(f"output {args.output} is a folder; give a file name")
    ensure_not_an_input(args.output, inputs)
    check_output(args.output, force=args.force)
    if getattr(args, "snapshot_every", None) and not args.force:
        output = Path(args.output)
        taken = sorted(output.parent.glob(f"{glob_escape(output.stem)}.step[0-9]*{glob_escape(output.suffix)}"))
        if taken:
            raise OutputExists(f"snapshots of an earlier run are in the way ({taken[0]}, ...)", taken[0])


def snapshot_path(output: Path, step: int) -> Path:
    """``out/name.png`` -> ``out/name.step0050.png``."""
    return output.with_name(f"{output.stem}.step{step:04d}{output.suffix}")


def start_cuda(device) -> threading.Thread:
    """Create ``device``'s CUDA context in a thread (it takes a while); an error there shows up again later."""
    import torch  # noqa: PLC0415 - imported by the caller already; see run_gatys

    def warm() -> None:
        try:
            torch.empty(1, device=device)
        except Exception:  # noqa: BLE001 - the main thread meets the same error and reports it
            pass

    thread = threading.Thread(target=warm, daemon=True)
    thread.start()
    return thread


def run_gatys(args: argparse.Namespace) -> np.ndarray:
    """Read the images, build VGG on the device, optimise; returns ``(H, W, 3)`` uint8."""
    # Lazy: realtime.core.gatys imports torch (see below).
    from realtime.core.gatys import STYLE_LAYERS, GatysConfig  # noqa: PLC0415
    from realtime.core.losses import parse_layer_weights  # noqa: PLC0415

    given = {
        name: getattr(args, name)
        for name in (
            "steps",
            "optimizer",
            "content_weight",
            "style_weight",
            "tv_weight",
            "init",
            "scales",
            "style_scale",
            "lr",
            "seed",
            "precision",
        )
        if getattr(args, name) is not None
    }
    if args.style_layer_weights is not None:
        given["style_layer_weights"] = tuple(parse_layer_weights(args.style_layer_weights, STYLE_LAYERS).items())
    config = GatysConfig(**given, style_blend=parse_blend(args.style_blend), preserve_color=args.preserve_color)
    config.check(len(args.style))
    if args.snapshot_every is not None and args.snapshot_every < 1:
        raise UserError(f"--snapshot-every must be at least 1, got {args.snapshot_every}")
    content = read_image(args.content, max_side=args.size or DEFAULT_GATYS_SIZE)
    styles = [read_image(path) for path in args.style]
    needed = GATYS_BYTES_PER_PIXEL * content.shape[0] * content.shape[1]
    if needed > default_budget():
        print(
            f"warning: gatys at {content.shape[1]}x{content.shape[0]} needs about {format_bytes(needed)} "
            f"(more than a quarter of this machine's memory); --size 512 --scales 2 is the way to large stills",
            file=sys.stderr,
        )

    # Lazy: these import torch; OMP_WAIT_POLICY must be set before that (see main), and --help skips it.
    import torch  # noqa: PLC0415

    from realtime.core.devices import resolve_device  # noqa: PLC0415
    from realtime.core.gatys import DEEPEST_LAYER, stylize  # noqa: PLC0415
    from realtime.core.nets.vgg import VGG19Features  # noqa: PLC0415

    device = resolve_device(args.device)
    torch.manual_seed(config.seed)
    warm = None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one fixed shape per scale
        warm = start_cuda(device)  # the CUDA context comes up while this thread decodes the VGG weights
    pooling = args.pooling or "max"
    source = VGG19Features.torchvision if args.vgg == "torchvision" else VGG19Features.caffe
    vgg = source(pooling, last=DEEPEST_LAYER)  # no more of VGG19 than the loss reads
    if warm is not None:
        warm.join()
    vgg = vgg.to(device)
    output = Path(args.output)
    bar = tqdm(total=config.steps, desc="gatys", unit="step", dynamic_ncols=True)
    latest = []  # the last step's Progress: Ctrl-C saves its image

    def on_step(p) -> None:
        latest[:] = [p]
        bar.update(1)
        bar.set_postfix_str(f"loss {p.loss:.4g}, {p.size[1]}x{p.size[0]}", refresh=False)
        if args.snapshot_every and p.step % args.snapshot_every == 0 and p.step < p.total:
            write_image(snapshot_path(output, p.step), p.image(), force=args.force)

    try:
        return stylize(content, styles, vgg, device, config, on_step=on_step)
    except KeyboardInterrupt:
        bar.close()
        if latest:
            save_interrupted(output, latest[0], content.shape[:2])
        raise
    finally:
        bar.close()


def save_interrupted(output: Path, progress, size: tuple[int, int]) -> Path:
    """Ctrl-C during Gatys: keep the image as it is now (not over an existing file; see write_partial_image).

    An image still at a coarse scale (``--scales``) is enlarged to the output's ``size`` ``(h, w)``.
    """
    image = progress.image()
    scale = ""
    if image.shape[:2] != tuple(size):
        scale = f", enlarged from scale {progress.scale}'s {progress.size[1]}x{progress.size[0]}"
        image = resize(image, size[0], size[1])
    where = write_partial_image(output, image)
    note = "" if where == output else f"; {output} is unchanged"
    print(
        f"interrupted at step {progress.step}/{progress.total}: saved the current image "
        f"({image.shape[1]}x{image.shape[0]}{scale}) to {where}{note}",
        file=sys.stderr,
    )
    return where


def run_model(args: argparse.Namespace, method: str) -> np.ndarray:
    """Run a trained Johnson or CycleGAN model once over the content image."""
    # Lazy: the backends import torch; OMP_WAIT_POLICY must be set before that (see main).
    from realtime.core.devices import resolve_device  # noqa: PLC0415
    from realtime.model_still import stylize_image  # noqa: PLC0415
    from realtime.stages import check_strength  # noqa: PLC0415

    strength = check_strength(args.strength if args.strength is not None else 1.0)
    budget = parse_bytes(args.max_memory) if args.max_memory else default_budget()
    content = read_image(args.content)
    height, width = content.shape[:2]
    if args.size:
        scale = args.size / max(height, width)
        height, width = max(1, round(height * scale)), max(1, round(width * scale))
    needed = whole_frame_bytes(height, width)
    bar = None
    if needed > budget:
        print(
            f"note: {width}x{height} needs about {format_bytes(needed)} in one piece, over the "
            f"{format_bytes(budget)} budget (--max-memory); running in tiles (several times slower)",
            file=sys.stderr,
        )
        bar = tqdm(total=None, desc="tiles", unit="tile", dynamic_ncols=True, leave=False)
    device = resolve_device(args.device)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        return stylize_image(
            content,
            args.model,
            size=args.size,
            strength=strength,
            preserve_color=args.preserve_color,
            device=str(device),
            provider=args.provider,
            input_range=args.input_range,
            family=None if method == "model" else method,
            style=",".join(args.style) if args.style else None,
            max_memory=budget,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()


def run_contact_sheet(args: argparse.Namespace) -> np.ndarray:
    """``--contact-sheet``: the content through every style of ``--model`` (or each ``--style`` spec), labelled."""
    # Lazy: the backends import torch; OMP_WAIT_POLICY must be set before that (see main).
    from realtime.backends.loader import load_stylizer  # noqa: PLC0415
    from realtime.contact_sheet import contact_sheet, sheet_styles  # noqa: PLC0415
    from realtime.core.devices import resolve_device  # noqa: PLC0415
    from realtime.core.images import resize_longer_side  # noqa: PLC0415
    from realtime.model_still import stylize_image  # noqa: PLC0415
    from realtime.stages import check_strength  # noqa: PLC0415

    if args.columns is not None and args.columns < 1:
        raise UserError(f"--columns must be at least 1, got {args.columns}")
    strength = check_strength(args.strength if args.strength is not None else 1.0)
    device = str(resolve_device(args.device))
    stylizer = load_stylizer(
        args.model, device=device, provider=args.provider, input_range=args.input_range, compile=False
    )
    specs = sheet_styles(stylizer, args.style, args.model)
    photo = read_image(args.content)
    photo = np.ascontiguousarray(resize_longer_side(photo, args.size)) if args.size else photo
    bar = tqdm(total=len(specs), desc="contact sheet", unit="style", dynamic_ncols=True)

    def render(spec: str) -> np.ndarray:
        styled = stylize_image(
            photo, args.model, strength=strength, preserve_color=args.preserve_color, style=spec, stylizer=stylizer
        )
        bar.update(1)
        return styled

    try:
        return contact_sheet(photo, specs, render, args.columns)
    finally:
        bar.close()


def list_styles(args: argparse.Namespace) -> int:
    """``--list-styles``: load ``--model`` and print its style names, one per line."""
    if not args.model:
        raise UserError("--list-styles needs --model")
    # Lazy: the backends import torch (about 2 s), which every other early exit skips.
    from realtime.backends.loader import load_stylizer  # noqa: PLC0415
    from realtime.core.devices import resolve_device  # noqa: PLC0415

    stylizer = load_stylizer(args.model, device=str(resolve_device(args.device)))
    print(style_listing(stylizer, args.model))
    return 0


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(attach_dash_values(sys.argv[1:] if argv is None else list(argv)))
    if args.list_styles:
        return list_styles(args)
    if args.contact_sheet and args.output:
        raise UserError("--contact-sheet is the output; leave out --output")
    args.output = args.output or args.contact_sheet
    for flag, value in (("--content", args.content), ("--output", args.output)):
        if not value:
            raise UserError(f"{flag} is required (see --help)")
    method = resolve_method(args)
    if args.contact_sheet and not args.model:
        raise UserError("--contact-sheet needs --model (a multi-style model)")
    inputs = [args.content, *(args.style or [])] if method == "gatys" else [args.content]
    if args.model and Path(args.model).exists():
        inputs.append(args.model)
    check_common(args, inputs)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads, just below
    start = time.perf_counter()
    if args.contact_sheet:
        result = run_contact_sheet(args)
    else:
        result = run_gatys(args) if method == "gatys" else run_model(args, method)
    write_image(args.output, result, force=args.force)
    print(f"wrote {args.output} ({result.shape[1]}x{result.shape[0]}) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
