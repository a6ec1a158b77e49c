"""A pipeline stage that moves a conditioned model's style between frames (cross-fades on key presses).

It changes no pixels: its ``prepare`` runs once per frame on the decode thread, before that frame
reaches the model, and advances a :class:`realtime.core.styles.CrossFade` by one step, so a new
style blends in over a few frames without reloading the model or stalling the stream.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from realtime.core.styles import CrossFade, StyleControl

DEFAULT_FADE_FRAMES = 12  # about half a second at 25 frames/s


class StyleSchedule:
    """Steps pending cross-fades of whichever :class:`StyleControl` is current (a Stage)."""

    def __init__(self, frames: int = DEFAULT_FADE_FRAMES) -> None:
        self.frames = int(frames)
        self._fade: CrossFade | None = None
        self._lock = threading.Lock()

    def go_to(self, control: StyleControl, vector: np.ndarray, frames: int | None = None) -> None:
        """Fade ``control`` from its current style to ``vector`` over the next frames (any thread)."""
        fade = CrossFade(control, vector, self.frames if frames is None else frames)
        with self._lock:
            self._fade = fade

    def prepare(self, source: np.ndarray) -> Any:
        with self._lock:
            fade = self._fade
        if fade is not None and not fade.step():
            with self._lock:
                if self._fade is fade:
                    self._fade = None
        return None

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        return styled

    def reset(self) -> None:
        pass
