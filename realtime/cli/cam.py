"""``nst-cam``: live style transfer from a camera, stream or file into a window, with hotkeys.

A grabber thread always hands over the newest camera frame (stale ones are dropped, so the
picture lags by one frame however slow the model is); the model runs beside the capture and
the display (:mod:`realtime.pipeline`). ``--no-display --output FILE`` runs headless.

Keys are handled by :func:`handle_key`, a pure function from (state, key) to the new state, so
they are tested without a window; :class:`Controls` applies a state to the live objects.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.cli.common import (
    ListModelsAction,
    OneLineParser,
    attach_dash_values,
    check_frame_memory,
    cli_entry,
    number,
    parse_size,
    strength_or_default,
)
from realtime.core.errors import UserError
from realtime.core.files import check_output, ensure_not_an_input, output_file
from realtime.core.images import write_image
from realtime.core.styles import StyleTerm, apply_style_spec, has_style_control, style_listing
from realtime.pipeline import StopRun, run
from realtime.stages import DEFAULT_STRENGTH, build_stages
from realtime.stages.style_fade import StyleSchedule
from realtime.stages.style_grab import StyleGrab, StylePreparation
from realtime.stages.style_strength import ContentAnchor, route_strength

KEYS_HELP = (
    "keys: n/p next/previous model, ]/[ next/previous style (multi-style models, a folder of pictures), "
    "g take the live frame as the style (arbitrary-style models), +/- strength, "
    "c colour preservation, t stabiliser, s snapshot, space side by side, q/Esc quit"
)
KEYS_HINT = "n/p model  +/- strength  c colour  t stabiliser  s snapshot  space side by side  q quit"
STYLE_KEYS_HINT = "]/[ style  g grab style"  # added where a model takes styles
STRENGTH_STEP = 0.1
ESC = 27

EPILOG = f"""\
{KEYS_HELP}

examples:
  nst-cam --model candy --model mosaic                  # camera 0, switch models with n/p
  nst-cam --model weights/udnie.onnx --size 640x360     # smaller frames: faster on a CPU
  nst-cam --model candy --source clip.mp4 --no-display --output out.mp4 --max-frames 300
  nst-cam --model mosaic --source clip.mp4 --live        # a file played as a live camera: honest latency
  nst-cam --model arbitrary --style paintings/ --size 640x360   # ]/[ step through the pictures, g grabs
Files are read frame by frame (none dropped; the window plays them at their frame rate), or with
--live as a camera would deliver them; cameras and stream URLs always deliver the newest frame.
On a CUDA GPU the model is compiled for the camera's size before the first frame (seconds; cached
on disk) and for a new size or a newly selected model when it first runs (the window stays open).
--output records the stylised frames (no overlay) at the camera's real timing; Ctrl-C or q keeps
what was recorded.
Arbitrary-style models: --style takes a picture, a blend (a.jpg:0.7,b.jpg:0.3) or a folder;
g predicts the live frame's style vector on a worker thread and switches to it; +/- move the
style vector toward the stream's own (refreshed every 25 frames) instead of blending pixels.
"""


@dataclass(frozen=True)
class CamState:
    """Everything the hotkeys change. ``snapshots`` counts ``s`` presses (a request, kept pure)."""

    model: int = 0
    models: int = 1
    style: int = 0
    styles: int = 0  # of the current model; 0 for a model with one fixed style
    strength: float = 1.0
    preserve_color: bool = False
    stabilize: bool = False
    side_by_side: bool = False
    snapshots: int = 0
    grabs: int = 0  # g presses: requests to take the live frame as the style
    quit: bool = False


def handle_key(state: CamState, key: int) -> CamState:
    """The state after pressing ``key`` (an OpenCV key code; unknown keys change nothing)."""
    if key < 0:
        return state
    ch = chr(key & 0xFF)
    replace = dataclasses.replace
    if key == ESC or ch in "qQ":
        return replace(state, quit=True)
    if ch == "n":
        return replace(state, model=(state.model + 1) % state.models)
    if ch == "p":
        return replace(state, model=(state.model - 1) % state.models)
    if ch in "+=":
        return replace(state, strength=round(min(1.0, state.strength + STRENGTH_STEP), 2))
    if ch in "-_":
        return replace(state, strength=round(max(0.0, state.strength - STRENGTH_STEP), 2))
    if ch in "][" and state.styles:
        return replace(state, style=(state.style + (1 if ch == "]" else -1)) % state.styles)
    if ch == "c":
        return replace(state, preserve_color=not state.preserve_color)
    if ch == "t":
        return replace(state, stabilize=not state.stabilize)
    if ch == " ":
        return replace(state, side_by_side=not state.side_by_side)
    if ch == "s":
        return replace(state, snapshots=state.snapshots + 1)
    if ch == "g":
        return replace(state, grabs=state.grabs + 1)
    return state


class ModelCycle:
    """A stylizer that forwards to one of several loaded models; ``index`` picks it between frames."""

    def __init__(self, stylizers: Sequence[Any]) -> None:
        if not stylizers:
            raise ValueError("need at least one model")
        self.stylizers = list(stylizers)
        self.index = 0

    @property
    def current(self) -> Any:
        return self.stylizers[self.index]

    @property
    def name(self) -> str:
        return self.current.name

    @property
    def contract(self) -> Any:
        return self.current.contract

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.current(frame)

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.current.stylize_batch(frames)


class Controls:
    """Applies :class:`CamState` changes to the model cycle, the stages and the snapshot folder."""

    def __init__(
        self,
        state: CamState,
        models: ModelCycle,
        blend: Any,
        color: Any,
        stabilizer: Any,
        snapshot_dir: Path,
        schedule: StyleSchedule | None = None,
        grabber: StyleGrab | None = None,
    ) -> None:
        self.state = state
        self.models, self.blend, self.color, self.stabilizer = models, blend, color, stabilizer
        self.snapshot_dir = snapshot_dir
        self.schedule = schedule or StyleSchedule()
        self.grabber = grabber
        self.window: Any = None  # the WindowSink, for snapshots of the last frame
        self._lock = threading.RLock()  # a grab finishing on its worker thread updates the state too
        self.apply(state)

    def on_key(self, key: int) -> None:
        with self._lock:
            new = handle_key(self.state, key)
            if new.snapshots != self.state.snapshots:
                self.snapshot()
            if new.grabs != self.state.grabs:
                self.grab_style()
            self.apply(new)
        if new.quit:
            raise StopRun()

    def grab_style(self) -> Any:
        """Start taking the live frame as the current model's style (a future, or None if it cannot)."""
        if self.grabber is None:
            return None
        return self.grabber.grab(self.models.current, on_done=self._grabbed)

    def _grabbed(self, index: int) -> None:
        with self._lock:
            self.state = dataclasses.replace(self.state, style=index, styles=len(self.style_names()))

    def apply(self, state: CamState) -> None:
        if state.model != self.models.index:
            self.models.index = state.model
            state = dataclasses.replace(state, style=0, styles=len(self.style_names()))
            if self.stabilizer is not None:
                self.stabilizer.reset()  # a new style is a scene cut for the stabiliser
        elif state.style != self.state.style and state.styles:
            control = self.models.current
            name = self.style_names()[state.style]
            self.schedule.go_to(control, control.style_vector([StyleTerm(name)]))
        route_strength(self.models.current, self.blend, state.strength)
        self.color.enabled = state.preserve_color
        if self.stabilizer is not None:
            self.stabilizer.enabled = state.stabilize
        self.state = state

    def status(self) -> list[str]:
        """The overlay's lines: the model (and its place in the cycle), the style where one is set, the state."""
        s = self.state
        lines = [f"{self.models.name}  [{s.model + 1}/{s.models}]"]
        if s.styles:
            lines.append(f"style [{s.style + 1}/{s.styles}] {os.path.basename(self.style_names()[s.style])}")
        colour = "colour kept" if s.preserve_color else "colour off"
        stabiliser = "stabiliser on" if s.stabilize else "stabiliser off"
        lines.append(f"strength {s.strength:.1f}  {colour}  {stabiliser}")
        return lines

    def style_names(self) -> list[str]:
        """The current model's styles (empty for a model with one fixed style)."""
        current = self.models.current
        return current.style_names() if has_style_control(current) else []

    def snapshot(self) -> Path | None:
        frame = getattr(self.window, "last_frame", None)
        if frame is None:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.snapshot_dir / f"nst-cam_{self.models.name}_{stamp}_{self.state.snapshots:03d}.png"
        try:
            write_image(path, frame, force=False)
        except UserError as exc:  # a full disk or a read-only folder must not end the live view
            print(f"error: snapshot not saved: {' '.join(str(exc).split())}", file=sys.stderr)
            return None
        print(f"saved {path}")
        return path


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="nst-cam",
        description="Live style transfer from a camera, a stream or a video file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--list-models", action=ListModelsAction)
    p.add_argument("--list-styles", action="store_true", help="print the styles of each --model and exit")
    p.add_argument(
        "--style",
        metavar="SPEC",
        help="the starting style of multi-style / arbitrary-style models: a name, an index, a picture, a "
        "folder of pictures or a blend such as mosaic:0.5,candy:0.5 (keys ]/[ step through the styles)",
    )
    p.add_argument(
        "--model",
        "-m",
        action="append",
        required=True,
        metavar="PATH|NAME",
        help="a model; repeat to switch between several with n/p",
    )
    p.add_argument("--source", default="0", help="camera index, video file or stream URL (default 0)")
    p.add_argument("--size", metavar="WxH", help="resize frames to this before the model (faster on CPU)")
    p.add_argument("--camera-size", metavar="WxH", help="ask the camera for this resolution")
    p.add_argument(
        "--strength",
        type=number,
        default=1.0,
        help="0..1 blend with the original (default 1; arbitrary-style models: toward the stream's own style)",
    )
    p.add_argument("--preserve-color", action="store_true", help="keep the original colours (key c)")
    p.add_argument(
        "--stabilize",
        nargs="?",
        const="default",
        type=strength_or_default,
        metavar="S",
        help="start with the flicker stabiliser on; S in 0..1 (key t toggles it)",
    )
    p.add_argument("--no-display", action="store_true", help="no window (servers, tests); use with --output")
    p.add_argument("--output", "-o", metavar="FILE", help="also record the stylised stream to this video file")
    p.add_argument("--force", "-f", action="store_true", help="overwrite --output if it exists")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--snapshot-dir", default=".", metavar="DIR", help="where s saves PNG snapshots (default .)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument(
        "--backend",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="auto (default): PyTorch, compiled, on a CUDA GPU (this project's .onnx files too); ONNX Runtime "
        "for .onnx files and checkpoints on the CPU",
    )
    p.add_argument(
        "--no-compile", action="store_true", help="GPU: run the model eagerly (no torch.compile warm-up; slower)"
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="play a video --source as a live camera: at its frame rate, newest frame wins, late frames dropped "
        "(measures capture-to-display latency without a camera)",
    )
    p.add_argument("--provider", metavar="NAME", help="ONNX Runtime execution provider")
    p.add_argument("--input-range", choices=("0-255", "0-1", "-1-1"), help="pixel range a foreign ONNX model expects")
    return p


def check_display(environ: dict | None = None) -> None:
    """Refuse to open a window where OpenCV's Qt would abort the process instead of failing.

    OpenCV's Qt build aborts when it has no usable platform: no X/Wayland display, or a
    ``QT_QPA_PLATFORM`` whose plugin it does not ship (the pip wheel ships only ``xcb``).
    """
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return
    platform = (env.get("QT_QPA_PLATFORM") or "").split(":")[0]
    plugins = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
    if platform and plugins.is_dir() and not any(plugins.glob(f"libq{platform}*")):
        raise UserError(
            f"OpenCV's window toolkit has no {platform!r} platform here (QT_QPA_PLATFORM); "
            "run with --no-display (and --output FILE to record)"
        )
    if platform in ("", "xcb", "wayland") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        raise UserError("no display found; run with --no-display (and --output FILE to record)")


def _with_camera_state(source: str, no_display: str) -> str:
    """The no-display message, saying in the same line when the camera cannot be opened either."""
    # Lazy: realtime.io.sources imports PyAV; only this error path and a real run need it.
    from realtime.io.sources import camera_opens, parse_source  # noqa: PLC0415

    kind, target = parse_source(source)
    if kind == "camera" and not camera_opens(int(target)):
        return (
            f"no camera and no display: camera {target} cannot be opened (none connected, or in use) and "
            "there is no display; try --source VIDEO_FILE --no-display --output out.mp4"
        )
    return no_display


def list_styles(args: argparse.Namespace) -> int:
    """``--list-styles``: each model's style names, one per line, under the model's name."""
    # Lazy: the backends import torch (about 2 s), which every other early exit skips.
    from realtime.backends.loader import load_stylizer  # noqa: PLC0415
    from realtime.core.devices import resolve_device  # noqa: PLC0415

    device = str(resolve_device(args.device))
    for model in args.model:
        print(f"{model}:\n{style_listing(load_stylizer(model, device=device), model)}")
    return 0


@cli_entry(flags={"stabilize": "--stabilize"})
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(attach_dash_values(sys.argv[1:] if argv is None else list(argv)))
    if args.list_styles:
        return list_styles(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    if args.no_display and not args.output and args.max_frames is None:
        print("note: --no-display without --output shows and saves nothing; stop with Ctrl-C", file=sys.stderr)
    if not args.no_display:
        try:
            check_display()
        except UserError as no_display:
            raise UserError(_with_camera_state(args.source, str(no_display))) from None
    output = Path(args.output) if args.output else None
    if output is not None:
        ensure_not_an_input(output, [args.source])
        check_output(output, force=args.force)
    size = parse_size(args.size) if args.size else None
    if size is not None:
        check_frame_memory(*size)
    capture_size = parse_size(args.camera_size, "--camera-size") if args.camera_size else None
    stabilize = DEFAULT_STRENGTH if args.stabilize == "default" else args.stabilize
    stages = build_stages(args.strength, args.preserve_color, stabilize, stabilizer_available=True)

    # Lazy: the backends import torch and ONNX Runtime (about 2 s), which --help and bad input skip.
    from realtime.backends.loader import load_for_pipeline  # noqa: PLC0415
    from realtime.core.devices import resolve_device  # noqa: PLC0415
    from realtime.io.sources import CameraLost, CaptureSource  # noqa: PLC0415

    device = str(resolve_device(args.device))
    models = ModelCycle(
        [
            load_for_pipeline(
                m,
                device=device,
                provider=args.provider,
                input_range=args.input_range,
                backend=args.backend,
                compile=False if args.no_compile else None,
            )
            for m in args.model
        ]
    )
    if args.style is not None:
        conditioned = [s for s in models.stylizers if has_style_control(s)]
        if not conditioned:
            apply_style_spec(models.stylizers[0], args.style, args.model[0])  # raises: one fixed style
        for stylizer in conditioned:
            apply_style_spec(stylizer, args.style, stylizer.name)
    schedule = StyleSchedule()
    grabber = StyleGrab(schedule)
    extra_stages = [schedule, grabber, ContentAnchor(lambda: models.current)]
    state = CamState(
        models=len(models.stylizers),
        styles=len(models.current.style_names()) if has_style_control(models.current) else 0,
        strength=stages.strength.strength,
        preserve_color=stages.color.enabled,
        stabilize=stages.stabilizer.enabled,
    )
    if device.startswith("cuda"):
        from realtime.stages.stabilize_torch import use_torch_stabilizer  # noqa: PLC0415 - GPU only

        use_torch_stabilizer(stages.stabilizer, device)
    controls = Controls(
        state, models, stages.strength, stages.color, stages.stabilizer, Path(args.snapshot_dir), schedule, grabber
    )
    live = True if args.live else None
    pace = args.live or not args.no_display
    with CaptureSource(args.source, size=size, capture_size=capture_size, live=live, pace=pace) as source:
        warm_up = getattr(models.current, "warm_up", None)
        if warm_up is not None:  # compile for the camera's size before the first frame is captured
            width, height = source.frame_size
            if width and height:
                warm_up(height, width)
        frames = itertools.islice(source, args.max_frames) if args.max_frames else source
        if output is None:
            return _run(frames, models, None, [*extra_stages, *stages.ordered], controls, args, source)
        stopped: BaseException | None = None
        with output_file(output, force=args.force) as pending:
            try:
                return _run(frames, models, pending.tmp, [*extra_stages, *stages.ordered], controls, args, source)
            except (CameraLost, KeyboardInterrupt) as exc:  # keep the recording, then report
                stopped = exc
                pending.partial = True
    where = f"the recording so far is in {pending.published}"
    if pending.published != output:
        where += f" ({output} is unchanged)"
    if isinstance(stopped, CameraLost):
        raise UserError(f"{stopped}; {where}")
    print(f"interrupted: {where}", file=sys.stderr)
    raise stopped


def _run(
    frames,
    models: ModelCycle,
    record_to: Path | None,
    stages: list,
    controls: Controls,
    args: argparse.Namespace,
    source,
) -> int:
    # Lazy: the sinks import OpenCV's GUI and PyAV, which a bad command line never needs.
    from realtime.io.sinks import RecordingSink, TeeSink, WindowSink  # noqa: PLC0415
    from realtime.io.video_files import EncodeOptions  # noqa: PLC0415

    window = None
    if not args.no_display:
        window = WindowSink(
            "nst-cam",
            on_key=controls.on_key,
            status=controls.status,
            side_by_side=lambda: controls.state.side_by_side,
            hint=KEYS_HINT if not any(map(has_style_control, models.stylizers)) else f"{KEYS_HINT}  {STYLE_KEYS_HINT}",
        )
        controls.window = window
        print(KEYS_HELP, file=sys.stderr)
    recorder = None
    if record_to is not None:
        recorder = RecordingSink(record_to, source.rate, EncodeOptions(crf=20.0, preset="veryfast", audio=False))
    sink = TeeSink(window, recorder)
    preparing = StylePreparation(models.stylizers)  # the predictor and a folder's vectors, while frames flow
    # Cameras hand over their newest frame (live); a file shown in a window plays every frame, and a
    # queue deeper than one frame there would add latency without adding speed (the model sets the pace).
    queue = 1 if source.live or window is not None else 4
    try:
        stats = run(frames, models, sink, stages, queue_size=queue, live=source.live)
    finally:
        preparing.stop()
        if controls.grabber is not None:
            controls.grabber.close()
    dropped = f", {source.dropped} stale camera frames skipped" if source.live else ""
    interval = f" (frame interval {1000 / source.fps:.0f} ms)" if source.live else ""
    print(f"{stats.summary()}; capture-to-display latency {stats.mean_latency * 1000:.0f} ms{interval}{dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
