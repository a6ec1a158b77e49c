"""What ``nst-cam`` draws over its window: the status band, the key hint, and the side-by-side view.

:func:`draw_overlay` is the window's overlay: a translucent dark band at the top left holding
the status lines (model, style, state, frames/s and latency) in white text sized to the window
(about 1/22 of its height, never below 11 px, shrunk only to fit the width), and optionally a
band along the bottom with a key hint. It draws on the picture at the size it is shown, so the
text stays sharp and legible on any frame. :func:`fit_to_screen` picks the window's size.

All functions take and return ``(H, W, 3)`` uint8 RGB arrays and never modify their input.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np


class FpsMeter:
    """Frames per second over a sliding window of recent frames (steady yet quick to follow)."""

    def __init__(self, window: int = 30) -> None:
        self.window = max(2, window)
        self._times: list[float] = []

    def tick(self, now: float | None = None) -> float:
        """Record a frame shown at ``now`` (``perf_counter``); return the current rate."""
        self._times.append(time.perf_counter() if now is None else now)
        if len(self._times) > self.window:
            del self._times[0]
        return self.fps

    @property
    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def draw_text(
    image: np.ndarray, lines: Sequence[str], *, origin: tuple[int, int] = (8, 8), scale: float | None = None
) -> np.ndarray:
    """Write ``lines`` at the top left: white text on a dark outline, readable on any picture.

    The text size follows the image height (about 1/30 of it) unless ``scale`` is given.
    """
    out = image.copy()
    if not lines:
        return out
    scale = scale if scale is not None else max(0.35, out.shape[0] / 900.0)
    thickness = max(1, round(scale * 1.5))
    x, y = origin
    for line in lines:
        (_, h), base = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        y += h + base
        cv2.putText(out, line, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(out, line, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def side_by_side(original: np.ndarray, styled: np.ndarray) -> np.ndarray:
    """``[original | styled]``; the original is resized to the stylised frame's height if they differ."""
    if original.shape[:2] != styled.shape[:2]:
        h, w = styled.shape[:2]
        original = cv2.resize(original, (w, h), interpolation=cv2.INTER_AREA)
    return np.hstack([original, styled])


def status_line(fps: float, latency_s: float) -> str:
    """``"23.4 fps  41 ms"``."""
    return f"{fps:.1f} fps  {latency_s * 1000:.0f} ms"


FONT = cv2.FONT_HERSHEY_SIMPLEX
CAP_HEIGHT = 22.0  # Hershey simplex capital height at font scale 1, in pixels
BAND_ALPHA = 0.6  # how dark the bands are (0 clear, 1 black)
MIN_TEXT_PX, MAX_TEXT_PX = 11, 30


def text_height(view_height: int) -> int:
    """Capital-letter height in pixels for a window ``view_height`` pixels tall."""
    return int(min(MAX_TEXT_PX, max(MIN_TEXT_PX, round(view_height / 22))))


def _scale_for(lines: Sequence[str], height_px: int, max_width: int) -> float:
    scale = height_px / CAP_HEIGHT
    widest = max(cv2.getTextSize(line, FONT, scale, 1)[0][0] for line in lines)
    return scale * min(1.0, max_width / max(widest, 1))


def _darken(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    region = image[y0:y1, x0:x1]
    region[:] = (region.astype(np.float32) * (1.0 - BAND_ALPHA)).astype(np.uint8)


def _write(image: np.ndarray, lines: Sequence[str], x: int, y: int, scale: float, line_px: int) -> None:
    thickness = max(1, round(scale * 1.6))
    for line in lines:
        y += line_px
        cv2.putText(image, line, (x, y - line_px // 4), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def wrap(text: str, width_px: int, scale: float) -> list[str]:
    """Split ``text`` at spaces into lines no wider than ``width_px`` at font ``scale``."""
    lines: list[str] = []
    for word in text.split("  "):  # the hint separates its items with two spaces
        candidate = f"{lines[-1]}  {word}" if lines else word
        if lines and cv2.getTextSize(candidate, FONT, scale, 1)[0][0] <= width_px:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def draw_overlay(view: np.ndarray, lines: Sequence[str], hint: str | None = None) -> np.ndarray:
    """``view`` with the status ``lines`` on a dark band at the top left and ``hint`` along the bottom.

    ``view``: ``(H, W, 3)`` uint8 at the size it is shown. Text is white, about ``H / 22`` px
    tall (11 to 30 px), reduced only where a line would not fit the width.
    """
    out = view.copy()
    height, width = out.shape[:2]
    pad = max(3, text_height(height) // 3)
    usable = width - 2 * pad
    lines = [line for line in lines if line]
    if lines:
        scale = _scale_for(lines, text_height(height), usable)
        line_px = round(CAP_HEIGHT * scale * 1.6)
        widest = max(cv2.getTextSize(line, FONT, scale, 1)[0][0] for line in lines)
        _darken(out, 0, 0, min(width, widest + 2 * pad), min(height, len(lines) * line_px + 2 * pad))
        _write(out, lines, pad, pad, scale, line_px)
    if hint:
        scale = max(MIN_TEXT_PX, text_height(height) * 0.8) / CAP_HEIGHT
        rows = wrap(hint, usable, scale)
        scale = _scale_for(rows, round(CAP_HEIGHT * scale), usable)
        line_px = round(CAP_HEIGHT * scale * 1.6)
        top = max(0, height - len(rows) * line_px - 2 * pad)
        _darken(out, 0, top, width, height)
        _write(out, rows, pad, top + pad, scale, line_px)
    return out


def fit_to_screen(width: int, height: int, screen: tuple[int, int] | None, share: float = 0.9) -> tuple[int, int]:
    """The window size for a ``width`` x ``height`` picture: its own size, shrunk (aspect kept) to fit
    ``share`` of the ``screen`` ``(width, height)``; without a known screen, to 1600x900."""
    limit_w, limit_h = (round(screen[0] * share), round(screen[1] * share)) if screen else (1600, 900)
    scale = min(1.0, limit_w / width, limit_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))
