"""Frame sources for the pipeline: cameras, stream URLs and video files read with OpenCV.

:class:`CaptureSource` yields :class:`~realtime.pipeline.Frame` objects, ``(H, W, 3)`` uint8
**RGB** (OpenCV's BGR is converted here, once). Two reading modes:

* **live** (cameras, stream URLs): a grabber thread reads continuously and keeps only the newest
  frame; the pipeline always gets the most recent picture and never a backlog, so latency stays
  at one frame however slow the model is. ``dropped`` counts the stale frames skipped.
* **sequential** (files): every frame in order, none dropped; ``pace=True`` holds them to the
  file's frame rate (a window showing a file plays at normal speed on a fast GPU).
* **paced live** (a file with ``live=True, pace=True``, ``nst-cam --live``): the grabber plays the
  file at its frame rate and the newest frame wins, exactly as a camera delivers frames, so
  capture-to-display latency and dropped frames are measured without a camera.

Video files for ``nst-video`` are read with PyAV instead (:mod:`realtime.io.video_files`), which keeps
timestamps, rotation and audio; plain lists of arrays are sources too (tests).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import InvalidValue, UserError
from realtime.io.video_files import FrameTime
from realtime.pipeline import Frame

LOST_AFTER_S = 3.0  # a camera silent for this long is reported as gone
DEFAULT_CAMERA_FPS = 30.0


class CameraLost(UserError):
    """The camera (or stream) stopped delivering frames in the middle of a run."""


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings while probing devices (we print one clear line instead)."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def camera_opens(index: int) -> bool:
    """Whether camera ``index`` can be opened now (it is released again at once)."""
    with _quiet_opencv():
        cap = cv2.VideoCapture(index)
        try:
            return bool(cap.isOpened())
        finally:
            cap.release()


def parse_source(spec: str | int) -> tuple[str, int | str]:
    """``"0"`` -> ``("camera", 0)``; ``"rtsp://…"`` -> ``("url", …)``; else ``("file", path)``."""
    text = str(spec).strip()
    if text.isdigit():
        return "camera", int(text)
    if "://" in text:
        return "url", text
    return "file", text


class CaptureSource:
    """Frames from a camera index, a stream URL or a video file (OpenCV), as RGB.

    ``size`` ``(w, h)``: resize every frame (area filter) before it enters the pipeline.
    ``capture_size``: ask the camera for this resolution (it may pick the nearest it has).
    ``live``: grabber thread, newest frame wins; default True for cameras and URLs, False for
    files. ``pace``: deliver a file's frames no faster than its frame rate (sequential mode), or,
    live, make them available at that rate as a camera would. ``frame_size``: ``(w, h)`` of the
    frames it yields.
    """

    def __init__(
        self,
        spec: str | int,
        *,
        size: tuple[int, int] | None = None,
        capture_size: tuple[int, int] | None = None,
        live: bool | None = None,
        pace: bool = False,
    ) -> None:
        self.kind, self.target = parse_source(spec)
        self.spec = str(spec)
        self.size = size
        self.live = (self.kind != "file") if live is None else live
        self.pace = pace
        self.dropped = 0
        self._cap = self._open(capture_size)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 1000.0 else DEFAULT_CAMERA_FPS
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float] | None = None
        self._seq = 0
        self._ended = False
        self._error: BaseException | None = None
        self._closed = threading.Event()
        self._grabber: threading.Thread | None = None

    def _open(self, capture_size: tuple[int, int] | None) -> cv2.VideoCapture:
        if self.kind == "file" and not Path(self.target).exists():
            raise UserError(f"no such file: {self.target}")
        with _quiet_opencv():
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if self.kind == "camera":
                raise InvalidValue(
                    "source",
                    f"{self.target}: cannot open camera {self.target} (none connected, or "
                    "in use by another program); try another camera index, or a video file",
                )
            raise UserError(f"cannot open {self.target} as a video {'stream' if self.kind == 'url' else 'file'}")
        if self.kind == "camera":
            # MJPG lets USB cameras deliver HD at full rate; a 1-frame buffer keeps latency low.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if capture_size:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, capture_size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, capture_size[1])
        return cap

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames this source yields (as reported by the device or file)."""
        if self.size is not None:
            return self.size
        return int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    @property
    def rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def _to_frame(self, bgr: np.ndarray, t: float, pts: int, time_base: Fraction) -> Frame:
        if self.size is not None and (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), FrameTime(pts, time_base), t)

    def __iter__(self) -> Iterator[Frame]:
        return self._iter_live() if self.live else self._iter_sequential()

    # -- sequential: files -------------------------------------------------------------------
    def _iter_sequential(self) -> Iterator[Frame]:
        time_base = 1 / self.rate
        t0 = time.perf_counter()
        index = 0
        while not self._closed.is_set():
            ok, bgr = self._cap.read()
            if not ok:
                return
            now = time.perf_counter()
            if self.pace:
                wait = t0 + index / self.fps - now
                if wait > 0:
                    time.sleep(wait)
                now = time.perf_counter()
            yield self._to_frame(bgr, now, index, time_base)
            index += 1

    # -- live: cameras and streams -----------------------------------------------------------
    def _grab(self) -> None:
        last_ok = time.perf_counter()
        t0, index = None, 0  # a paced file: frame i is "captured" at t0 + i / fps, as a camera would deliver it
        while not self._closed.is_set():
            ok, bgr = self._cap.read()
            now = time.perf_counter()
            if ok and self.pace and self.kind == "file":
                t0 = now if t0 is None else t0
                wait = t0 + index / self.fps - now
                if wait > 0 and self._closed.wait(wait):
                    return
                now, index = time.perf_counter(), index + 1
            if ok:
                last_ok = now
                with self._cond:
                    self._latest = (bgr, now)
                    self._seq += 1
                    self._cond.notify_all()
                continue
            if self.kind != "camera" or now - last_ok > LOST_AFTER_S:
                with self._cond:
                    if self.kind == "camera":
                        self._error = self._lost()
                    self._ended = True
                    self._cond.notify_all()
                return
            time.sleep(0.01)

    def _lost(self) -> CameraLost:
        what = f"camera {self.target}" if self.kind == "camera" else str(self.target)
        return CameraLost(f"{what} stopped delivering frames (unplugged or taken by another program)")

    def _iter_live(self) -> Iterator[Frame]:
        if self._grabber is None:
            self._grabber = threading.Thread(target=self._grab, name="nst-grab", daemon=True)
            self._grabber.start()
        seen = 0
        t0: float | None = None
        while not self._closed.is_set():
            with self._cond:
                deadline = time.perf_counter() + LOST_AFTER_S
                while self._seq == seen and not self._ended and not self._closed.is_set():
                    if time.perf_counter() > deadline:
                        self._error = self._lost()
                        break
                    self._cond.wait(0.1)
                if self._seq > seen:
                    self.dropped += self._seq - seen - 1
                    seen = self._seq
                    bgr, t = self._latest
                elif self._error is not None:
                    raise self._error
                else:
                    return
            t0 = t if t0 is None else t0
            yield self._to_frame(bgr, t, round((t - t0) * 1000), Fraction(1, 1000))

    def close(self) -> None:
        """Stop the grabber and release the device. Safe to call twice."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        if self._grabber is not None:
            self._grabber.join(timeout=2.0)
        self._cap.release()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
