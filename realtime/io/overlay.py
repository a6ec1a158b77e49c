"""What ``nst-cam`` draws over its window: frames/s and latency text, and the side-by-side view.

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
