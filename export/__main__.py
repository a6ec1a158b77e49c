"""``python -m export CKPT -o OUT``: write a trained net as ONNX or TorchScript, checked against PyTorch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from export import FORMATS, export_model
from realtime.cli.common import cli_entry, configure_logging
from realtime.core.errors import UserError
from realtime.core.files import check_output
from realtime.core.model_zoo import REGISTRY, lookup, resolve_model
from realtime.core.onnx_file import DEFAULT_OPSET

EPILOG = """examples:
  python -m export checkpoints/starry.pth -o weights/starry.onnx
  python -m export checkpoints/starry.pth -o weights/starry.pt            # TorchScript
  python -m export mosaic.pth -o mosaic-fp16.onnx --fp16                   # pytorch/examples file as published
  python -m export published:horse2zebra -o horse2zebra_authors.onnx      # a published model, by name
  python -m export starry.pth -o starry-720p.onnx --static 720 1280       # fixed size, e.g. for TensorRT
  python -m export arbitrary -o weights/arbitrary.onnx                     # image + style vector inputs

The file is written only after it ran at two sizes and matched eager PyTorch (max abs
error printed in levels of 255). ONNX files take any batch, height and width unless
--static; the IO contract (value range, channel order, provenance) is stored inside, so
`--model FILE` needs nothing else.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Johnson transform net, CycleGAN generator or arbitrary-style transform net to ONNX "
        "(.onnx) or TorchScript (.pt), with its IO contract inside, and verify it against PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="checkpoint (.pth: this project's, pytorch/examples' or the CycleGAN authors'), "
        "or a model name from --list-models of the still/video/camera commands",
    )
    parser.add_argument("-o", "--output", required=True, help="output file: .onnx or .pt")
    parser.add_argument("-f", "--force", action="store_true", help="replace --output if it exists")
    parser.add_argument(
        "--fp16", action="store_true", help="half-precision weights and compute, float32 inputs/outputs (for GPUs)"
    )
    parser.add_argument(
        "--half-weights",
        action="store_true",
        help="store the weights in half precision (half the file size), compute in float32 (about 0.1 level off)",
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument(
        "--static",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="fix the ONNX input's height and width (multiples of 4); frames are resized to it",
    )
    parser.add_argument("--name", help="model name stored in the contract (default: the checkpoint's)")
    parser.add_argument(
        "--tolerance",
        type=float,
        metavar="LEVELS",
        help="max abs error allowed, in levels of 255 (default 0.5, or 8 with --fp16)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the parity check (not recommended)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if not any(args.output.lower().endswith(s) for s in FORMATS):
        raise UserError(f"--output {args.output} must end in .onnx (ONNX) or .pt (TorchScript)")
    check_output(args.output, force=args.force)  # before a download or a load
    source = resolve_model(args.checkpoint)  # a file, a name in weights/, or a published model
    if source.suffix.lower() == ".onnx" and not Path(args.checkpoint).suffix and lookup(args.checkpoint, REGISTRY):
        raise UserError(
            f"{args.checkpoint} names {source} here, which is already ONNX; "
            f"published:{args.checkpoint} exports the published checkpoint of that name"
        )
    result = export_model(
        source,
        args.output,
        fp16=args.fp16,
        half_weights=args.half_weights,
        opset=args.opset,
        static=tuple(args.static) if args.static else None,
        name=args.name,
        tolerance_levels=args.tolerance,
        verify=not args.no_verify,
        force=args.force,
    )
    c = result.contract
    shape = f"fixed {c.fixed_size[0]}x{c.fixed_size[1]}" if c.fixed_size else "any batch/height/width"
    print(
        f"wrote {result.path} ({result.format}, {result.precision}, {result.size_bytes / 1e6:.1f} MB): "
        f"{c.family} model {c.name!r}, {c.channel_order} {c.value_range[0]:g}..{c.value_range[1]:g}, {shape}"
    )
    for check in result.checks:
        print(f"  parity {check.describe()}  [tolerance {result.tolerance_levels:g}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
