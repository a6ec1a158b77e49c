"""``nst-video``: stylise video files frame by frame, keeping timing, rotation and audio.

Decoding (PyAV), the model and encoding run at once in three threads (:mod:`realtime.pipeline`).
Every frame keeps its timestamp (variable frame rate too), the frame rate and the rotation
metadata are copied, and the audio streams are remuxed untouched (no re-encoding).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import av
from tqdm import tqdm

from realtime.cli.common import (
    MAX_SIDE,
    ListModelsAction,
    OneLineParser,
    attach_dash_values,
    check_frame_memory,
    cli_entry,
    error_line,
    number,
    parse_size,
    strength_or_default,
)
from realtime.core.errors import UserError
from realtime.core.files import check_output, ensure_not_an_input, output_file
from realtime.core.images import IMAGE_SUFFIXES
from realtime.core.styles import apply_style_spec, has_picture_styles, style_listing
from realtime.io.encoders import hardware_encoder
from realtime.io.video_files import (
    VIDEO_SUFFIXES,
    EncodeOptions,
    VideoWriter,
    check_encode_options,
    choose_pix_fmt,
    default_encode_options,
    probe,
    read_frames,
)
from realtime.pipeline import Interrupted, RunStats, run
from realtime.stages import DEFAULT_STRENGTH, build_stages
from realtime.stages.style_strength import ContentAnchor, route_strength

EPILOG = """\
examples:
  nst-video clip.mp4 --model weights/candy.onnx                # -> clip_candy.mp4 beside clip.mp4
  nst-video clip.mp4 --model candy --size 640x360 --keep-size  # model at 640x360, output at full size
  nst-video holidays/ --model mosaic -o styled/ --stabilize     # every video in a folder, less flicker
  nst-video clip.mp4 --model candy --strength 0.6 --preserve-color --start 10 --duration 5
  nst-video clip.mp4 --model arbitrary --style poster.png --stabilize   # any picture as the style

sizes: --size WxH (as the video is shown, rotation considered) or --scale F set the size the
model sees; the output has that size too, unless --keep-size scales the result back up to the
input's size. Odd sizes: yuv420p needs even sides, so an odd-sized output is encoded yuv444p
(exact size, H.264 4:4:4: ffmpeg/VLC/mpv play it, browsers do not); --pix-fmt yuv420p pads
the right/bottom edge by one replicated pixel instead.
--lossless (libx264rgb, crf 0) stores the RGB frames exactly (large files; for tests and masters).
arbitrary-style models (--model arbitrary --style poster.png): any picture is the style. There
--strength S gives the net S * style + (1 - S) * the video's own style vector (Ghiasi et al.
2017), predicted from the first frame and refreshed every 25 frames as a running average.
Ctrl-C (or SIGTERM/SIGHUP) stops early and keeps a playable file with the frames done so far
(audio cut to match) under the output name, or as NAME.partial.mp4 beside an existing file that
--force would have replaced. Without --force an existing output is never replaced.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="nst-video",
        description="Stylise video files with a fast style, CycleGAN or arbitrary-style model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video files, or folders of them")
    p.add_argument("--list-models", action=ListModelsAction)
    p.add_argument("--list-styles", action="store_true", help="print the styles of --model (multi-style) and exit")
    p.add_argument(
        "--model",
        "-m",
        required=True,
        metavar="PATH|NAME",
        help="checkpoint, TorchScript or ONNX file, or a model name",
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="output file (one input) or folder (default: <input stem>_<model>.mp4 beside each input)",
    )
    p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
    g = p.add_argument_group("style")
    g.add_argument(
        "--style",
        metavar="SPEC",
        help="for multi-style and arbitrary-style models: a style name or index, an image, or a blend such "
        "as mosaic:0.5,candy:0.5 or a.jpg:0.7,b.jpg:0.3 (see --list-styles)",
    )
    g.add_argument(
        "--strength",
        type=number,
        default=1.0,
        help="0..1 blend with the original (default 1); arbitrary-style models move the style vector toward "
        "the video's own instead (see below)",
    )
    g.add_argument(
        "--preserve-color", action="store_true", help="keep the original colours, take the stylised luminance"
    )
    g.add_argument(
        "--stabilize",
        nargs="?",
        const="default",
        type=strength_or_default,
        metavar="S",
        help="reduce flicker with optical flow; S in 0..1 (flag alone: the stabiliser's default)",
    )
    g = p.add_argument_group("size and time")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--size", metavar="WxH", help="size the model sees, as the video is shown")
    size.add_argument("--scale", type=number, metavar="F", help="scale both sides by F (rounded to even)")
    g.add_argument("--keep-size", action="store_true", help="scale the result back up to the input's size")
    g.add_argument("--start", type=number, default=0.0, metavar="SEC", help="start at this time (seconds)")
    g.add_argument("--duration", type=number, metavar="SEC", help="process this many seconds")
    g = p.add_argument_group("encoding")
    g.add_argument(
        "--codec",
        help="video encoder (default libx264, or a hardware H.264 encoder such as h264_nvenc when the model runs "
        "on a GPU that has one; e.g. libx265, libvpx-vp9, ffv1)",
    )
    g.add_argument("--pix-fmt", metavar="FMT", help="encoder pixel format (default yuv420p; yuv444p for odd sizes)")
    rate = g.add_mutually_exclusive_group()
    rate.add_argument("--crf", type=number, help="constant quality, lower is better (libx264 default 18)")
    rate.add_argument("--bitrate", metavar="RATE", help="target bitrate, e.g. 4M or 800k")
    g.add_argument("--preset", help="x264/x265 speed preset (default veryfast; medium: smaller files, ~5x slower)")
    g.add_argument("--lossless", action="store_true", help="exact RGB frames: libx264rgb at crf 0")
    g.add_argument("--no-audio", action="store_true", help="drop the audio instead of copying it")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    g.add_argument(
        "--backend",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="auto (default): PyTorch, compiled, on a CUDA GPU (this project's .onnx files too); on the CPU ONNX "
        "Runtime for .onnx files and checkpoints (exported once, cached)",
    )
    g.add_argument(
        "--no-compile",
        action="store_true",
        help="GPU: run the model eagerly instead of compiling it for the frame size (no warm-up; slower)",
    )
    g.add_argument("--provider", metavar="NAME", help="ONNX Runtime execution provider, e.g. CUDAExecutionProvider")
    g.add_argument("--input-range", choices=("0-255", "0-1", "-1-1"), help="pixel range a foreign ONNX model expects")
    g.add_argument("--batch-size", type=int, default=1, metavar="N", help="frames per forward pass (GPU; default 1)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_bitrate(text: str | None) -> int | None:
    """``"4M"`` -> 4000000, ``"800k"`` -> 800000, ``"1500000"`` -> 1500000."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        raise UserError(f"--bitrate takes a number with an optional k or M, e.g. 4M; got {text!r}")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def model_label(model: str) -> str:
    """The model's name in output file names: a file's stem, or the registry name."""
    name = Path(model).stem if Path(model).suffix else Path(model).name
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "styled"


def gather_inputs(paths: Sequence[str]) -> list[Path]:
    """Files as given; folders expand to the video files directly inside them, sorted."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            videos = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
            )
            if not videos:
                raise UserError(f"{path}: no video files in this folder ({', '.join(VIDEO_SUFFIXES[:4])}, ...)")
            found.extend(videos)
        elif not path.exists():
            raise UserError(f"no such file: {path}")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"{path} is a still image, not a video; stylise it with python -m realtime.still")
        else:
            found.append(path)
    return found


def plan_outputs(inputs: list[Path], output: str | None, label: str, suffix: str, force: bool) -> list[Path]:
    """Where each input's result goes; refuses to overwrite without ``force`` or to write over an input."""
    if output is None:
        outs = [p.with_name(f"{p.stem}_{label}{suffix}") for p in inputs]
    else:
        target = Path(output)
        is_folder = target.is_dir() or not target.suffix or output.endswith(("/", "\\"))
        if not is_folder and len(inputs) > 1:
            raise UserError(f"-o {output} is a file name, but there are {len(inputs)} inputs; give a folder")
        outs = [target / f"{p.stem}_{label}{suffix}" for p in inputs] if is_folder else [target]
        if not is_folder and target.suffix.lower() not in VIDEO_SUFFIXES:
            raise UserError(f"-o {output}: unknown video type {target.suffix}; use .mp4, .mkv, .mov or .webm")
    if len(set(outs)) != len(outs):
        raise UserError("two inputs would write the same output file; process them into different folders")
    for out in outs:
        ensure_not_an_input(out, inputs)
        check_output(out, force=force)
    return outs


def processing_size(info, args: argparse.Namespace) -> tuple[int, int] | None:
    """The ``(width, height)`` the model sees, in stored orientation; None for the input's own size."""
    if args.size:
        w, h = parse_size(args.size)
        return (h, w) if abs(info.rotation) % 180 == 90 else (w, h)
    if args.scale is not None:
        if args.scale <= 0:
            raise UserError(f"--scale must be positive, got {args.scale:g}")
        size = tuple(max(16, 2 * round(side * args.scale / 2)) for side in (info.width, info.height))
        if max(size) > MAX_SIDE:
            raise UserError(f"--scale {args.scale:g} makes {size[0]}x{size[1]} frames; the limit is {MAX_SIDE} a side")
        return size
    return None


def encode_options(args: argparse.Namespace):
    if args.lossless:
        if args.crf not in (None, 0) or args.bitrate:
            raise UserError("--lossless sets crf 0; drop --crf/--bitrate")
        return EncodeOptions(
            codec="libx264rgb", pix_fmt=args.pix_fmt, crf=0, preset=args.preset or "veryfast", audio=not args.no_audio
        )
    options = default_encode_options(args.codec or "libx264", pix_fmt=args.pix_fmt, audio=not args.no_audio)
    if args.crf is not None or args.bitrate is not None:
        options.crf = args.crf
    options.bitrate = parse_bitrate(args.bitrate)
    options.preset = args.preset or options.preset
    check_encode_options(options)
    return options


def gpu_setup(stylizer, stages, args: argparse.Namespace, options: EncodeOptions) -> EncodeOptions:
    """On a CUDA model: keep frames on the GPU through the stages to the encoder's YUV conversion,
    the stabiliser's pixels in torch, x264 frame threads, and a hardware encoder when one opens."""
    device = getattr(stylizer, "device", None)
    if getattr(device, "type", None) != "cuda":
        return options
    # Lazy: torch (the stabiliser's GPU path), only for a model already on a GPU.
    from realtime.stages.stabilize_torch import use_torch_stabilizer  # noqa: PLC0415

    use_torch_stabilizer(stages.stabilizer, device)
    if hasattr(stylizer, "keep_on_device") and args.strength >= 1.0 and not args.preserve_color:
        stylizer.keep_on_device = options.device_frames = True  # strength and colour stages would need the host
    options.frame_threads = True
    if args.codec is None and args.crf is None and args.preset is None and not args.lossless:
        hardware, tried = hardware_encoder(options.codec)
        if hardware is not None:
            bitrate = options.bitrate
            options = default_encode_options(hardware, pix_fmt=args.pix_fmt, audio=not args.no_audio)
            options.bitrate, options.device_frames = bitrate, stylizer_keeps(stylizer)
            print(f"encoder: {hardware} (hardware)", file=sys.stderr)
        else:
            why = f"{', '.join(tried)} did not open" if tried else "no hardware H.264 encoder in this PyAV build"
            print(f"encoder: {options.codec} on {os.cpu_count()} cores ({why})", file=sys.stderr)
    return options


def stylizer_keeps(stylizer) -> bool:
    return bool(getattr(stylizer, "keep_on_device", False))


def process(path: Path, output: Path, stylizer, stages: list, args: argparse.Namespace, options) -> RunStats:
    """Stylise one file into ``output`` (atomically); print its summary line and return its statistics."""
    info = probe(path)
    if args.start and info.duration is not None and args.start >= info.duration:
        raise UserError(f"{path}: --start {args.start:g} s is past the end ({info.duration:.2f} s)")
    size = processing_size(info, args)
    check_frame_memory(*(size or (info.width, info.height)), advice="--size or --scale runs the model smaller")
    out_size = (info.width, info.height) if (args.keep_size or size is None) else size
    pix_fmt, pad = choose_pix_fmt(options.codec, *out_size, options.pix_fmt)
    if out_size[0] % 2 or out_size[1] % 2:
        how = f"padded to {out_size[0] + pad[0]}x{out_size[1] + pad[1]}" if any(pad) else "kept exactly"
        print(f"note: {path.name}: odd size {out_size[0]}x{out_size[1]} {how}, encoded {pix_fmt}", file=sys.stderr)
    span = args.duration if args.duration is not None else ((info.duration or 0) - args.start)
    total = max(1, round(span * float(info.rate))) if span and span > 0 else None
    for stage in stages:
        stage.reset()
    interrupted: Interrupted | None = None
    with output_file(output, force=args.force) as pending:
        bar = tqdm(total=total, unit="frame", desc=path.name, disable=args.no_progress, dynamic_ncols=True, leave=False)
        try:
            writer = VideoWriter(pending.tmp, info, options, size=out_size, start=args.start, duration=args.duration)
            frames = read_frames(info, start=args.start, duration=args.duration, size=size)
            stats = run(frames, stylizer, writer, stages, batch_size=args.batch_size, progress=lambda _: bar.update(1))
        except Interrupted as exc:
            if exc.stats.frames == 0:
                raise
            interrupted, stats = exc, exc.stats
            pending.partial = True
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError):
                raise  # no permission, disk full, ...: output_file words it
            raise UserError(f"writing {output} failed: {getattr(exc, 'strerror', None) or exc}") from None
        finally:
            bar.close()
    if interrupted is not None:
        kept = f"kept the {stats.frames} frames done so far in {pending.published} (playable, partial)"
        if pending.published != output:
            kept += f"; {output} is unchanged"
        print(f"interrupted: {kept}", file=sys.stderr)
        raise interrupted
    print(f"{output}: {stats.summary()}")
    return stats


def list_styles(args: argparse.Namespace) -> int:
    """``--list-styles``: load ``--model`` and print its style names, one per line."""
    # Lazy: the backends import torch (about 2 s), which every other early exit skips.
    from realtime.backends.loader import load_stylizer  # noqa: PLC0415
    from realtime.core.devices import resolve_device  # noqa: PLC0415

    print(style_listing(load_stylizer(args.model, device=str(resolve_device(args.device))), args.model))
    return 0


FLAGS = {"stabilize": "--stabilize"}


@cli_entry(flags=FLAGS)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(attach_dash_values(sys.argv[1:] if argv is None else list(argv)))
    if args.list_styles:
        return list_styles(args)
    if not args.inputs:
        raise UserError("give at least one INPUT video or folder (see --help)")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.start < 0 or (args.duration is not None and args.duration <= 0):
        raise UserError("--start must be >= 0 and --duration > 0")
    inputs = gather_inputs(args.inputs)
    options = encode_options(args)
    suffix = ".mkv" if options.codec == "ffv1" else ".mp4"
    outputs = plan_outputs(inputs, args.output, model_label(args.model), suffix, args.force)
    stabilize = DEFAULT_STRENGTH if args.stabilize == "default" else args.stabilize
    built = build_stages(args.strength, args.preserve_color, stabilize)
    if len(inputs) == 1:
        probe(inputs[0])  # a bad input is reported before the model loads (seconds)

    # Lazy: the backends import torch (about 2 s), which --help and bad input skip.
    from realtime.backends.loader import load_for_pipeline  # noqa: PLC0415
    from realtime.core.devices import resolve_device  # noqa: PLC0415

    device = str(resolve_device(args.device))
    stylizer = load_for_pipeline(
        args.model,
        device=device,
        provider=args.provider,
        input_range=args.input_range,
        backend=args.backend,
        compile=False if args.no_compile else None,
    )
    if args.style is not None:
        apply_style_spec(stylizer, args.style, args.model)
    route_strength(stylizer, built.strength, args.strength)
    stages = built.ordered
    if has_picture_styles(stylizer):  # --strength moves the style vector toward the video's own
        stages = [ContentAnchor(lambda: stylizer), *stages]
    options = gpu_setup(stylizer, built, args, options)
    failed = 0
    for path, output in zip(inputs, outputs):
        try:
            process(path, output, stylizer, stages, args, options)
        except UserError as exc:
            if len(inputs) == 1:
                raise
            failed += 1
            print(error_line(exc, FLAGS), file=sys.stderr)
    if failed:
        raise UserError(f"{failed} of {len(inputs)} inputs failed (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
