"""Tiny generated video clips for the video tests (PyAV), with audio, rotation or irregular timing.

Also :func:`read_video` to read a clip back (frames, timestamps, rotation, audio duration) and a
few stand-in stylizers, so the tests need no trained model, camera or GPU.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from fakes import IdentityStylizer


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    """A moving test pattern: gradients plus a bar that moves with ``i``."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
    img[..., 2] = (i * 37) % 256
    bar = (i * 7) % max(1, width - 8)
    img[:, bar : bar + 8] = 255
    return img


def make_clip(
    path: Path,
    *,
    width: int = 160,
    height: int = 90,
    frames: int = 20,
    fps: int = 20,
    audio: str | None = "aac",
    rotation: int | None = None,
    durations_ms: Sequence[int] | None = None,
    codec: str = "libx264",
    first_ms: int = 0,
) -> Path:
    """Write a clip; ``durations_ms`` (cycled) makes it variable frame rate (time base 1/1000).

    ``first_ms``: the first frame's timestamp (streams cut from longer ones do not start at 0).
    """
    out = av.open(str(path), "w")
    vs = out.add_stream(codec, rate=fps)
    vs.width, vs.height = width, height
    vs.pix_fmt = "yuv444p" if (width % 2 or height % 2) else "yuv420p"
    tb = Fraction(1, 1000)
    vs.time_base = tb
    vs.codec_context.time_base = tb
    if rotation is not None:
        vs.set_display_rotation(rotation)
    a_stream = None
    if audio:
        rate = 48000 if audio == "libopus" else 44100
        a_stream = out.add_stream(audio, rate=rate)
        a_stream.layout = "stereo"
    pts = first_ms
    for i in range(frames):
        vf = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
        vf.pts, vf.time_base = pts, tb
        pts += durations_ms[i % len(durations_ms)] if durations_ms else round(1000 / fps)
        out.mux(vs.encode(vf))
    out.mux(vs.encode())
    if a_stream is not None:
        _write_sine(out, a_stream, seconds=(pts - first_ms) / 1000)
    out.close()
    return path


def _write_sine(out, stream, seconds: float) -> None:
    rate = stream.codec_context.sample_rate
    total = int(rate * seconds)
    size = stream.codec_context.frame_size or 1024
    t = 0
    while t < total:
        n = min(size, total - t)
        wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(t, t + n) / rate)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        af.sample_rate, af.pts, af.time_base = rate, t, Fraction(1, rate)
        out.mux(stream.encode(af))
        t += n
    out.mux(stream.encode())


@dataclass
class Clip:
    frames: list[np.ndarray]
    times: list[float]
    width: int
    height: int
    rate: Fraction | None
    rotation: int
    audio_seconds: list[float]
    audio_codecs: list[str]


def read_video(path: Path) -> Clip:
    """Decode everything: RGB frames, their times, the rotation, and each audio stream's duration."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        rate = vs.average_rate
        frames, times, rotation = [], [], 0
        for f in c.decode(vs):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
            rotation = f.rotation
        codecs = [s.codec_context.name for s in c.streams.audio]
    audio = []
    with av.open(str(path)) as c:
        for s in c.streams.audio:
            total = sum(p.duration or 0 for p in c.demux(s) if p.dts is not None)
            audio.append(float(total * s.time_base))
            c.seek(0)
    return Clip(
        frames,
        times,
        frames[0].shape[1] if frames else 0,
        frames[0].shape[0] if frames else 0,
        rate,
        rotation,
        audio,
        codecs,
    )


class SlowIdentity(IdentityStylizer):
    """Identity that takes ``delay`` seconds per frame (for Ctrl-C tests)."""

    def __init__(self, delay: float = 0.05) -> None:
        super().__init__()
        self.delay = delay

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return frame.copy()


class Invert(IdentityStylizer):
    """``255 - frame``: a visible, deterministic 'style'."""

    name = "invert"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return 255 - frame

    def stylize_batch(self, frames):
        return [255 - f for f in frames]


def fake_models_module(factory) -> types.ModuleType:
    """A stand-in ``realtime.backends.loader`` whose loaders return ``factory(model)``."""
    module = types.ModuleType("realtime.backends.loader")
    module.calls = []

    def load_stylizer(model, *, device="auto", provider=None, input_range=None, backend=None, **kwargs):
        module.calls.append(dict(model=str(model), device=device, provider=provider, backend=backend))
        return factory(model)

    module.load_stylizer = load_stylizer
    module.load_for_pipeline = load_stylizer
    return module


def install_fake_models(monkeypatch, factory=lambda model: IdentityStylizer()) -> types.ModuleType:
    module = fake_models_module(factory)
    monkeypatch.setitem(sys.modules, "realtime.backends.loader", module)
    return module
