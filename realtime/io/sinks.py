"""Pipeline sinks: a window with overlay and hotkeys, a recorder, and a tee.

A sink has ``write(frame, info)`` (``frame``: ``(H, W, 3)`` uint8 RGB, stylised and post-processed;
``info``: :class:`~realtime.pipeline.FrameInfo` with the source frame and timestamps) and
``close()``; :func:`realtime.pipeline.run` calls both on the calling (main) thread. The video
file writer with audio remuxing is :class:`realtime.io.video_files.VideoWriter`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from realtime.io.overlay import FpsMeter, draw_text, side_by_side, status_line
from realtime.io.video_files import EncodeOptions, VideoInfo, VideoWriter
from realtime.pipeline import FrameInfo, StopRun

log = logging.getLogger(__name__)


class TeeSink:
    """Writes every frame to several sinks in turn; closes all of them (errors after the first are logged)."""

    def __init__(self, *sinks: object) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        for sink in self.sinks:
            sink.write(frame, info)

    def _finish(self, method: str) -> None:
        first: BaseException | None = None
        for sink in self.sinks:
            fn = getattr(sink, method, None) or getattr(sink, "close", None)
            try:
                if fn is not None:
                    fn()
            except BaseException as exc:  # noqa: BLE001 - close the others, raise the first
                if first is None:
                    first = exc
                else:
                    log.warning("closing %s failed too: %s", type(sink).__name__, exc)
        if first is not None:
            raise first

    def close(self) -> None:
        self._finish("close")

    def abort(self) -> None:
        self._finish("abort")

    def stopped_early(self) -> None:
        for sink in self.sinks:
            notice = getattr(sink, "stopped_early", None)
            if notice is not None:
                notice()


class RecordingSink:
    """Records the stylised stream of ``nst-cam`` to a video file (no overlay, no side-by-side).

    The writer opens on the first frame, at that frame's size. Frames keep the timestamps their
    source gave them (camera capture times, so the recording plays at the real speed).
    """

    def __init__(self, path: str | os.PathLike, rate: Fraction, options: EncodeOptions | None = None) -> None:
        self.path = Path(path)
        self.rate = Fraction(rate)
        self.options = options or EncodeOptions(audio=False)
        self.writer: VideoWriter | None = None

    @property
    def frames(self) -> int:
        return self.writer.frames if self.writer is not None else 0

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            time_base = info.meta.time_base if hasattr(info.meta, "time_base") else 1 / self.rate
            stream = VideoInfo(
                path=self.path,
                width=w,
                height=h,
                rate=self.rate,
                time_base=Fraction(time_base),
                frames=0,
                duration=None,
                codec="",
            )
            self.writer = VideoWriter(self.path, stream, self.options)
        self.writer.write(frame, info)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


class WindowSink:
    """Shows frames in an OpenCV window with frames/s and latency drawn on top; reads hotkeys.

    ``on_key(key)`` gets every key pressed (OpenCV code, masked to 0..255) and may raise
    :class:`StopRun`; ``status()`` returns extra overlay lines (model, strength, …);
    ``side_by_side()`` says whether to show ``[original | stylised]``. Closing the window stops
    the run. ``last_frame`` is the latest clean stylised frame (for snapshots).
    """

    def __init__(
        self,
        title: str = "nst-cam",
        *,
        on_key: Callable[[int], None] | None = None,
        status: Callable[[], Sequence[str]] | None = None,
        side_by_side: Callable[[], bool] | None = None,
        overlay: bool = True,
    ) -> None:
        self.title = title
        self.on_key = on_key
        self.status = status or (lambda: [])
        self.show_both = side_by_side or (lambda: False)
        self.overlay = overlay
        self.meter = FpsMeter()
        self.last_frame: np.ndarray | None = None
        self._opened = False

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        now = time.perf_counter()
        self.last_frame = frame
        view = side_by_side(info.source, frame) if self.show_both() else frame
        if self.overlay:
            lines = [status_line(self.meter.tick(now), now - info.t_start), *self.status()]
            view = draw_text(view, lines)
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            self._opened = True
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRun()  # the user closed the window
        cv2.imshow(self.title, cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1)
        if key != -1 and self.on_key is not None:
            self.on_key(key & 0xFF)

    def close(self) -> None:
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._opened = False
