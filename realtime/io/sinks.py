"""Pipeline sinks: a window with overlay and hotkeys, a recorder, and a tee.

A sink has ``write(frame, info)`` (``frame``: ``(H, W, 3)`` uint8 RGB, stylised and post-processed;
``info``: :class:`~realtime.pipeline.FrameInfo` with the source frame and timestamps) and
``close()``; :func:`realtime.pipeline.run` calls both on the calling (main) thread. The video
file writer with audio remuxing is :class:`realtime.io.video_files.VideoWriter`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserError
from realtime.io.overlay import FpsMeter, draw_overlay, fit_to_screen, side_by_side, status_line
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

    def idle(self) -> None:
        for sink in self.sinks:
            idle = getattr(sink, "idle", None)
            if idle is not None:
                idle()

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


HINT_SECONDS = 5.0  # the key hint shows this long at the start and after each key press


def screen_size() -> tuple[int, int] | None:
    """The X screen's ``(width, height)`` in pixels (through ``libX11``), or None where that is not known."""
    if not os.environ.get("DISPLAY"):
        return None
    try:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
        x11.XDisplayWidth.argtypes = x11.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        display = x11.XOpenDisplay(None)
        if not display:
            return None
        try:
            screen = x11.XDefaultScreen(display)
            return int(x11.XDisplayWidth(display, screen)), int(x11.XDisplayHeight(display, screen))
        finally:
            x11.XCloseDisplay(display)
    except (OSError, AttributeError):
        return None


def check_window_libraries(maps: str | None = None) -> None:
    """Refuse (one line) to open a window that would hang: PyAV's X libraries were loaded before OpenCV's.

    See :mod:`realtime.io`: both wheels bundle ``libxcb-shm``/``-shape``/``-xfixes`` under the same
    names, and Qt then calls PyAV's copies with a connection of the system ``libxcb``.
    ``maps``: the text of ``/proc/self/maps`` (read here on Linux; elsewhere nothing is checked).
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform not in ("", "xcb") or not os.environ.get("DISPLAY"):
        return  # no X connection will be made (offscreen, Wayland, no display)
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return
    shared = ("av.libs/libxcb-shm", "av.libs/libxcb-shape", "av.libs/libxcb-xfixes")
    if any(name in line for line in maps.splitlines() for name in shared):
        raise UserError(
            "PyAV was loaded before OpenCV in this program, and an OpenCV window would hang (both bundle the "
            "same X libraries); import cv2 (or realtime.io) before av"
        )


class WindowSink:
    """Shows frames in an OpenCV window with a status overlay; reads hotkeys.

    The window opens at the frame's size, shrunk to fit the screen, without OpenCV's Qt toolbar,
    and follows the frame's size when it changes (side by side doubles the width); the user may
    resize it (the aspect ratio is kept). Each frame is scaled to the window's size before the
    overlay is drawn (:func:`realtime.io.overlay.draw_overlay`), so the text is sharp at any size.
    ``on_key(key)`` gets every key pressed (OpenCV code, masked to 0..255) and may raise
    :class:`StopRun`; ``status()`` returns the overlay's lines (model, style, state), to which
    the frames/s and latency line is added; ``hint`` (the keys) shows for :data:`HINT_SECONDS`
    at the start and after each key press. ``side_by_side()`` says whether to show
    ``[original | stylised]``. Closing the window stops the run. ``last_frame`` is the latest
    clean stylised frame (for snapshots).
    """

    def __init__(
        self,
        title: str = "nst-cam",
        *,
        on_key: Callable[[int], None] | None = None,
        status: Callable[[], Sequence[str]] | None = None,
        side_by_side: Callable[[], bool] | None = None,
        overlay: bool = True,
        hint: str | None = None,
        screen: tuple[int, int] | None = None,
    ) -> None:
        self.title = title
        self.on_key = on_key
        self.status = status or (lambda: [])
        self.show_both = side_by_side or (lambda: False)
        self.overlay = overlay
        self.hint = hint
        self.screen = screen
        self.meter = FpsMeter()
        self.last_frame: np.ndarray | None = None
        self.window_size: tuple[int, int] | None = None  # (width, height) the picture is shown at
        self._opened = False
        self._view_shape: tuple[int, int] | None = None
        self._hint_until = 0.0

    def _open(self, view: np.ndarray) -> None:
        check_window_libraries()
        if not os.environ.get("QT_QPA_FONTDIR") and Path("/usr/share/fonts").is_dir():
            os.environ["QT_QPA_FONTDIR"] = "/usr/share/fonts"  # the pip wheel's Qt ships no fonts and says so
        if self.screen is None:
            self.screen = screen_size()
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        self._opened = True
        self._hint_until = time.perf_counter() + HINT_SECONDS

    def _fit(self, view: np.ndarray) -> tuple[int, int]:
        """The size to show ``view`` at: fitted anew when its shape changes, else the window's current size."""
        h, w = view.shape[:2]
        if self._view_shape != (h, w) or self.window_size is None:
            self._view_shape = (h, w)
            self.window_size = fit_to_screen(w, h, self.screen)
            cv2.resizeWindow(self.title, *self.window_size)
        else:
            try:
                _, _, cw, ch = cv2.getWindowImageRect(self.title)
            except cv2.error:
                cw = ch = 0
            if cw > 16 and ch > 16 and abs(cw / ch - w / h) < 0.05:
                self.window_size = (cw, ch)  # the user resized the window
        return self.window_size

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        now = time.perf_counter()
        self.last_frame = frame
        view = side_by_side(info.source, frame) if self.show_both() else frame
        if not self._opened:
            self._open(view)
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRun()  # the user closed the window
        width, height = self._fit(view)
        if (width, height) != (view.shape[1], view.shape[0]):
            shrink = width < view.shape[1]
            view = cv2.resize(view, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if self.overlay:
            lines = [*self.status(), status_line(self.meter.tick(now), now - info.t_start)]
            view = draw_overlay(view, lines, self.hint if now < self._hint_until else None)
        cv2.imshow(self.title, cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1)
        if key != -1:
            self._hint_until = time.perf_counter() + HINT_SECONDS
            if self.on_key is not None:
                self.on_key(key & 0xFF)

    def idle(self) -> None:
        """While no frame is ready (a model compiling for a new size): keep the window drawn and read keys."""
        if not self._opened:
            return
        key = cv2.waitKey(1)
        if key != -1:
            self._hint_until = time.perf_counter() + HINT_SECONDS
            if self.on_key is not None:
                self.on_key(key & 0xFF)

    def close(self) -> None:
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._opened = False
