"""``python -m bench gpu``: the GPU runtime's figures, each as a ratio to the plain eager fp32 forward.

One unattended command (under 5 minutes on one GPU: ``--budget``) that prints a table and writes
every row to a JSON file as soon as it is measured (``--json``), so a run cut short by
``timeout`` still leaves its results. Sections (``--sections``):

* ``model``: per net (Johnson, the slim Johnson, the CycleGAN paper generator ngf 64 / 9 blocks,
  random weights) and size (1080p, 720p): the **reference**, a plain eager fp32 forward of a
  ready ``(1, 3, H, W)`` tensor, then :class:`TorchStylizer` per setting (eager / compiled x
  fp32 / fp16 / bf16 x contiguous / channels_last), uint8 frame in and out; the default setting
  is marked. Core settings first; the rest while the budget lasts.
* ``e2e``: ``nst-video`` end to end through its own code path (``realtime.cli.video``: loader,
  GPU setup, pipeline, encoder) on a generated 1080p/720p clip with the shipped
  ``weights/mosaic.onnx``: default, ``--stabilize``, the same weights as a ``.pth``, ``--no-compile``,
  and ``--backend onnx`` (ONNX Runtime; CPU-only on a default install, so a few frames).
* ``live``: ``nst-cam --live`` (the clip paced at 30 fps as a camera, newest frame wins):
  capture-to-display latency against 2 frame intervals + the model's time.
* ``startup``: time from process start to the first stylised 1080p frame, with an empty and
  then a warm compile cache (fresh processes).

Ratios: ``x ref`` is reference time / this time (above 1 is faster). On a machine without CUDA
it runs the same code at small sizes (eager only unless ``--compile-on-cpu``), so it is testable.
Run on a GPU box: ``timeout 330 python -m bench gpu --json out/bench_gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CLIP = REPO / "samples" / "video" / "cockatoo.mp4"
SHIPPED = REPO / "weights" / "mosaic.onnx"
GPU_SIZES = {"1080p": (1920, 1080), "720p": (1280, 720)}
CPU_SIZES = {"128x72": (128, 72), "96x56": (96, 56)}
NETS = ("johnson", "small", "cyclegan")
SECTIONS = ("model", "e2e", "live", "startup")
LIVE_FPS = 30
# (compiled, precision, channels_last): the core settings first, then the rest while the budget lasts
CORE = [(False, "fp32", False), (False, "fp16", False), (True, "fp16", True)]
EXTRA = [(True, "fp32", False), (True, "bf16", True), (True, "fp16", False), (True, "fp32", True)]
EXTRA_EAGER = [(False, "fp16", True), (False, "bf16", False)]


def build_net(name: str) -> tuple[torch.nn.Module, Any]:
    """A net with random (seeded) weights and its contract."""
    from realtime.core.contract import cyclegan_contract, johnson_contract
    from realtime.core.nets import TransformerNet
    from realtime.core.nets.cyclegan import ResnetGenerator

    torch.manual_seed(0)
    if name == "cyclegan":
        return ResnetGenerator(ngf=64, n_blocks=9).eval(), cyclegan_contract(name="cyclegan-ngf64-9")
    return TransformerNet.from_arch(name).eval(), johnson_contract(name=f"johnson-{name}")


class Bench:
    """Rows, the budget, the JSON file and the printed table of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start = time.perf_counter()
        self.cuda = torch.cuda.is_available() and not args.cpu
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.sizes = GPU_SIZES if self.cuda else CPU_SIZES
        self.frames = args.frames or (40 if self.cuda else 4)
        self.compile = self.cuda or args.compile_on_cpu
        self.rows: list[dict[str, Any]] = []
        self.refs: dict[tuple[str, str], float] = {}  # (net, size) -> reference ms
        self.skipped: list[str] = []
        self.env = environment(self.device)

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.start)

    def affordable(self, what: str, cost_s: float) -> bool:
        if self.left() >= cost_s:
            return True
        self.skipped.append(what)
        print(f"  skipped (time budget): {what}", flush=True)
        return False

    def add(self, section: str, net: str, size: str, setting: str, ms: float | None, **extra: Any) -> None:
        ref = self.refs.get((net, size))
        row = {"section": section, "net": net, "size": size, "setting": setting, "ms": ms, **extra}
        row["x_ref"] = ref / ms if ref and ms else None
        self.rows.append(row)
        ratio = f"{row['x_ref']:6.2f}x" if row["x_ref"] else "      -"
        value = f"{ms:9.2f} ms" if ms is not None else "        - ms"
        note = extra.get("note", "")
        print(f"  {section:8} {net:9} {size:8} {setting:38} {value} {ratio}  {note}", flush=True)
        self.save()

    def save(self) -> None:
        path = Path(self.args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"env": self.env, "rows": self.rows, "skipped": self.skipped, "targets": targets(self.rows)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        tmp.replace(path)


def environment(device: torch.device) -> dict[str, Any]:
    import av

    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "pyav": av.__version__,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        import onnxruntime as ort

        env["onnxruntime"] = f"{ort.__version__} {','.join(ort.get_available_providers())}"
    except ImportError:
        env["onnxruntime"] = "not installed"
    return env


def timed(fn: Callable[[], Any], frames: int, cuda: bool, warmup: int = 3) -> float:
    """Median ms per call of ``fn`` (synchronised per call on CUDA), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def label(compiled: bool, precision: str, channels_last: bool) -> str:
    return f"{'compiled' if compiled else 'eager'} {precision}{' channels_last' if channels_last else ''}"


def model_plan(b: Bench) -> tuple[list, list]:
    """``(first, later)`` items ``(net, size, (compiled, precision, channels_last))`` in the order measured.

    First: the targets' rows (Johnson and CycleGAN at the first size, core settings); later: the
    slim net and the second size (core settings), then every other setting at the first size.
    """
    settings = CORE + (EXTRA + EXTRA_EAGER if b.cuda else [(True, "fp32", False)])  # the CPU compiles in fp32
    nets = [n for n in NETS if n in b.args.nets.split(",")]
    first_size = list(b.sizes)[0]
    items = [(n, size, s) for size in b.sizes for n in nets for s in settings if s in CORE or size == first_size]
    first = [i for i in items if i[2] in CORE and i[1] == first_size and i[0] in ("johnson", "cyclegan")]
    core = [i for i in items if i[2] in CORE and i not in first]
    return first, core + [i for i in items if i[2] not in CORE]


def bench_models(b: Bench, plan: list) -> None:
    from realtime.backends.torch_backend import CUDA_SETTINGS, TorchStylizer

    print("\n== model alone: uint8 frame in, uint8 frame out (x ref: bare eager fp32 forward / this)", flush=True)
    default = (True, *CUDA_SETTINGS[True]) if b.cuda else (False, "fp32", False)
    nets: dict[str, tuple[torch.nn.Module, Any]] = {}
    for net_name, size, (compiled, precision, channels_last) in plan:
        if compiled and not b.compile:
            continue
        if not b.cuda and precision != "fp32":
            continue
        what = f"{net_name} {size} {label(compiled, precision, channels_last)}"
        if not b.affordable(what, 60.0 if compiled else 5.0):
            continue
        if net_name not in nets:
            nets[net_name] = build_net(net_name)
        net, contract = nets[net_name]
        w, h = b.sizes[size]
        if (net_name, size) not in b.refs:
            reference(b, net_name, size, net, contract)
        frame = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
        stylizer = TorchStylizer(
            build_net(net_name)[0],
            contract,
            device=b.device,
            compile=compiled,
            precision=precision,
            channels_last=channels_last,
        )
        t0 = time.perf_counter()
        stylizer.warm_up(h, w)
        warm_s = time.perf_counter() - t0
        ms = timed(lambda s=stylizer, f=frame: s(f), b.frames, b.cuda)
        mark = " (default)" if (compiled, precision, channels_last) == default else ""
        note = f"compile+warm-up {warm_s:.1f} s" if compiled else ""
        if compiled and not stylizer.compiled:
            note = "compile failed; ran eagerly"
        b.add("model", net_name, size, label(compiled, precision, channels_last) + mark, ms, note=note)
        del stylizer
        if b.cuda:
            torch.cuda.empty_cache()


def reference(b: Bench, net_name: str, size: str, net: torch.nn.Module, contract: Any) -> None:
    w, h = b.sizes[size]
    ref_net = net.to(b.device).float().eval()
    lo, hi = contract.value_range
    x = torch.rand(1, 3, h, w, device=b.device) * (hi - lo) + lo
    with torch.inference_mode():
        ms = timed(lambda: ref_net(x), b.frames, b.cuda)
    b.refs[(net_name, size)] = ms
    b.add("model", net_name, size, "bare forward, eager fp32 (reference)", ms)


def make_clip(path: Path, size: tuple[int, int], frames: int) -> Path:
    """The sample clip, upscaled to ``size`` and looped to ``frames`` frames at 30 fps (x264 ultrafast)."""
    import av
    import cv2

    from realtime.io.video_files import probe, read_frames

    source = [f.image for f in read_frames(probe(SAMPLE_CLIP))]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=LIVE_FPS)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(frames):
            image = cv2.resize(source[(i // 2) % len(source)], size, interpolation=cv2.INTER_CUBIC)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def clip_for(b: Bench, tmp: Path, size: str) -> Path:
    """The generated clip of ``size`` (made once per run)."""
    path = tmp / f"clip_{size}.mp4"
    if not path.exists():
        make_clip(path, b.sizes[size], b.args.e2e_frames or (300 if b.cuda else 24))
    return path


def bench_e2e(b: Bench, tmp: Path, keys: list[str]) -> None:
    """nst-video end to end through realtime.cli.video, for the runs named by ``keys`` (and ``--e2e-runs``)."""
    from realtime.backends.loader import load_for_pipeline
    from realtime.cli import video
    from realtime.core.checkpoint import save_checkpoint
    from realtime.core.onnx_weights import torch_model_from_onnx
    from realtime.stages import DEFAULT_STRENGTH, build_stages

    print("\n== nst-video end to end, weights/mosaic.onnx (x ref: bare johnson forward / ms per frame)", flush=True)
    pth = tmp / "mosaic.pth"
    if not pth.exists():
        loaded = torch_model_from_onnx(SHIPPED)
        save_checkpoint(pth, loaded.model, loaded.contract)
    first, second = list(b.sizes)
    runs = [  # (key for --e2e-runs, size, row name, model, extra flags)
        ("default", first, "default", str(SHIPPED), []),
        ("default-2", second, "default", str(SHIPPED), []),
        ("stabilize", first, "--stabilize", str(SHIPPED), ["--stabilize"]),
        ("pth", first, "same weights as .pth", str(pth), []),
        ("no-compile", first, "--no-compile", str(SHIPPED), ["--no-compile"]),
        ("batch", first, "--batch-size 4", str(SHIPPED), ["--batch-size", "4"]),
        ("onnx", first, "--backend onnx (ONNX Runtime)", str(SHIPPED), ["--backend", "onnx", "--duration", "0.3"]),
    ]
    wanted = b.args.e2e_runs.split(",")
    for key, size, name, model, extra in runs:
        if key not in keys or key not in wanted or not b.affordable(f"e2e {size} {name}", 45.0):
            continue
        if ("johnson", size) not in b.refs:  # the ratio's denominator: the plain forward of the same net
            net, contract = build_net("johnson")
            reference(b, "johnson", size, net, contract)
        clip = clip_for(b, tmp, size)
        args = video.build_parser().parse_args(
            [str(clip), "--model", model, "-o", str(tmp / "out.mp4"), "--force", "--no-progress", *extra]
        )
        device = str(b.device)
        stages = build_stages(stabilize=DEFAULT_STRENGTH if args.stabilize else None)
        try:
            stylizer = load_for_pipeline(
                model, device=device, backend=args.backend, compile=False if args.no_compile else None
            )
            options = video.gpu_setup(stylizer, stages, args, video.encode_options(args))
            warm = getattr(stylizer, "warm_up", None)
            if warm is not None:
                w, h = b.sizes[size]
                warm(h, w, args.batch_size)
            with contextlib.redirect_stdout(io.StringIO()):  # its summary line; the row below says it all
                stats = video.process(clip, tmp / "out.mp4", stylizer, stages.ordered, args, options)
        except Exception as exc:  # noqa: BLE001 - one failing configuration is a row, not the end of the run
            b.add("e2e", "johnson", size, name, None, note=f"failed: {' '.join(str(exc).split())[:120]}")
            continue
        parts = ", ".join(f"{k} {v:.1f}" for k, v in stats.per_frame_ms().items())
        note = f"{stats.fps:.1f} fps; ms/frame {parts}; {stylizer!r}; encoder {options.codec}"
        b.add("e2e", "johnson", size, name, 1000.0 / stats.fps if stats.fps else None, fps=stats.fps, note=note)


class DisplaySink:
    """Stands in for the window: takes each frame to the host as BGR (what imshow needs); keeps latencies."""

    def __init__(self) -> None:
        self.latencies: list[float] = []

    def write(self, frame: Any, info: Any) -> None:
        import cv2

        image = frame if isinstance(frame, np.ndarray) else frame.cpu().numpy()
        cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        self.latencies.append(time.perf_counter() - info.t_start)

    def close(self) -> None:
        pass


def bench_live(b: Bench, clip: Path, size: str) -> None:
    from realtime.backends.loader import load_for_pipeline
    from realtime.io.sources import CaptureSource
    from realtime.pipeline import run

    print(f"\n== nst-cam --live, {size} at {LIVE_FPS} fps: capture-to-display latency", flush=True)
    if not b.affordable(f"live {size}", 30.0):
        return
    stylizer = load_for_pipeline(str(SHIPPED), device=str(b.device))
    with CaptureSource(str(clip), live=True, pace=True) as source:
        w, h = source.frame_size
        warm = getattr(stylizer, "warm_up", None)
        if warm is not None:
            warm(h, w)
        sink = DisplaySink()
        frames = b.args.live_frames or (150 if b.cuda else 12)
        stats = run(itertools.islice(source, frames), stylizer, sink, live=True, queue_size=1)
        dropped, interval = source.dropped, 1000.0 / source.fps
    latency = 1000.0 * statistics.median(sink.latencies[5:] or sink.latencies)
    model_ms = 1000.0 * stats.infer / max(1, stats.frames)
    bound = 2 * interval + model_ms
    note = (
        f"median latency; bound 2 x {interval:.1f} + model {model_ms:.1f} = {bound:.1f} ms "
        f"({'met' if latency <= bound else 'MISSED'}); {stats.fps:.1f} fps shown, {dropped} frames dropped"
    )
    b.add("live", "johnson", size, "nst-cam --live latency", latency, bound_ms=bound, note=note)


STARTUP = """
import sys, time, numpy as np
from realtime.backends.loader import load_stylizer
s = load_stylizer(sys.argv[1], device=sys.argv[2])
w, h = int(sys.argv[3]), int(sys.argv[4])
s(np.zeros((h, w, 3), np.uint8))
print("first frame", flush=True)
"""


def bench_startup(b: Bench, tmp: Path, size: str) -> None:
    print(f"\n== time to the first {size} frame from process start (mosaic.onnx, default settings)", flush=True)
    w, h = b.sizes[size]
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)  # carried wheels too
    env = {**os.environ, "NST_CACHE": str(tmp / "cache"), "PYTHONPATH": path}
    for key in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        env.pop(key, None)  # the project's own cache folder, emptied: a cold start
    for which in ("cold compile cache", "warm compile cache"):
        if not b.affordable(f"startup {which}", 20.0):
            return
        command = [sys.executable, "-c", STARTUP, str(SHIPPED), str(b.device), str(w), str(h)]
        t0 = time.perf_counter()
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=max(10, b.left()))
        except subprocess.TimeoutExpired:
            b.add("startup", "johnson", size, which, None, note="did not finish within the budget")
            return
        seconds = time.perf_counter() - t0
        ok = result.returncode == 0 and "first frame" in result.stdout
        note = "" if ok else f"failed: {' '.join(result.stderr.split())[-160:]}"
        b.add("startup", "johnson", size, which, 1000.0 * seconds if ok else None, seconds=seconds, note=note)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, read from the rows measured (absent rows: not measured)."""

    def find(section: str, net: str, size: str, setting: str) -> dict[str, Any] | None:
        for row in rows:
            if (row["section"], row["net"], row["size"]) == (section, net, size) and row["setting"].startswith(setting):
                return row
        return None

    out = []

    def check(name: str, row: dict[str, Any] | None, value: Callable[[dict], float | None], ok: Callable) -> None:
        v = value(row) if row and row.get("ms") is not None else None
        out.append({"target": name, "value": v, "met": None if v is None else bool(ok(v))})

    default_model = "compiled fp16 channels_last"
    check(
        "Johnson 1080p model alone <= 5 ms",
        find("model", "johnson", "1080p", default_model),
        lambda r: r["ms"],
        lambda v: v <= 5,
    )
    check(
        "CycleGAN 1080p <= 12 ms",
        find("model", "cyclegan", "1080p", default_model),
        lambda r: r["ms"],
        lambda v: v <= 12,
    )
    check(
        "nst-video 1080p >= 90 fps", find("e2e", "johnson", "1080p", "default"), lambda r: r["fps"], lambda v: v >= 90
    )
    check(
        "nst-video 720p >= 150 fps", find("e2e", "johnson", "720p", "default"), lambda r: r["fps"], lambda v: v >= 150
    )
    plain, stab = find("e2e", "johnson", "1080p", "default"), find("e2e", "johnson", "1080p", "--stabilize")
    cost = 1 - stab["fps"] / plain["fps"] if plain and stab and plain.get("fps") and stab.get("fps") else None
    out.append(
        {
            "target": "--stabilize costs <= 15% fps at 1080p",
            "value": cost,
            "met": None if cost is None else cost <= 0.15,
        }
    )
    pth = find("e2e", "johnson", "1080p", "same weights as .pth")
    ratio = plain["fps"] / pth["fps"] if plain and pth and plain.get("fps") and pth.get("fps") else None
    out.append(
        {
            "target": "shipped .onnx as fast as .pth (ratio >= 0.95)",
            "value": ratio,
            "met": None if ratio is None else ratio >= 0.95,
        }
    )
    live = find("live", "johnson", "1080p", "nst-cam")
    check("nst-cam --live latency <= 2 intervals + model", live, lambda r: r["ms"], lambda v: v <= live["bound_ms"])
    check(
        "warm start: first frame within 5 s",
        find("startup", "johnson", "1080p", "warm"),
        lambda r: r["seconds"],
        lambda v: v <= 5,
    )
    return out


def print_targets(rows: list[dict[str, Any]]) -> None:
    print("\n== targets (issue #13; measured on this machine)")
    for t in targets(rows):
        value = "not measured" if t["value"] is None else f"{t['value']:.3g}"
        verdict = {None: "", True: "met", False: "MISSED"}[t["met"]]
        print(f"  {t['target']:48} {value:>14}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default="bench_gpu.json", help="results file, rewritten after every row")
    p.add_argument("--budget", type=float, default=280.0, help="seconds; rows that would not fit are skipped")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    p.add_argument("--nets", default=",".join(NETS), help=f"comma-separated, of {', '.join(NETS)}")
    p.add_argument("--frames", type=int, help="timed calls per model figure (default 40 on CUDA, 4 on the CPU)")
    p.add_argument("--e2e-frames", type=int, help="frames of the generated clip (default 300 on CUDA, 24 on the CPU)")
    p.add_argument(
        "--e2e-runs",
        default="default,default-2,stabilize,pth,no-compile,batch,onnx",
        help="which end-to-end runs (default: all)",
    )
    p.add_argument("--live-frames", type=int, help="frames shown in the live run (default 150 on CUDA)")
    p.add_argument("--cpu", action="store_true", help="measure on the CPU even where CUDA is present")
    p.add_argument(
        "--compile-on-cpu", action="store_true", help="also compile on the CPU (about 30 s per net and size)"
    )
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    b = Bench(args)
    print(
        f"bench gpu on {b.env['device']}: torch {b.env['torch']} (CUDA {b.env['cuda']}), PyAV {b.env['pyav']}, "
        f"{b.env['cores']} cores, ONNX Runtime {b.env['onnxruntime']}; budget {args.budget:.0f} s",
        flush=True,
    )
    if not b.cuda:
        print("no CUDA GPU: small sizes, eager only unless --compile-on-cpu (the code path, not GPU figures)")
    first_models, later_models = model_plan(b)
    first_size = list(b.sizes)[0]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        # The targets' figures first, so a tight budget or a timeout cuts only the extras.
        if "model" in sections:
            bench_models(b, first_models)
        if "e2e" in sections:
            bench_e2e(b, tmp, ["default", "stabilize", "pth"])
        if "live" in sections:
            bench_live(b, clip_for(b, tmp, first_size), first_size)
        if "startup" in sections and (b.cuda or args.compile_on_cpu):
            bench_startup(b, tmp, first_size)
        if "e2e" in sections:
            bench_e2e(b, tmp, ["default-2", "no-compile", "onnx"])
        if "model" in sections:
            bench_models(b, later_models)
        if "e2e" in sections:
            bench_e2e(b, tmp, ["batch"])
    print_targets(b.rows)
    b.save()
    print(
        f"\n{len(b.rows)} rows in {time.perf_counter() - b.start:.0f} s -> {args.json}"
        + (f"; {len(b.skipped)} skipped for time" if b.skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
