"""Per-frame pipeline stages that need no history: strength blending and colour preservation.

Both implement :class:`realtime.stylizer.Stage` and keep their setting in a public attribute,
so ``nst-cam`` hotkeys can change it between frames. Frames are ``(H, W, 3)`` uint8 RGB.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from train.errors import UserError


def check_strength(value: float) -> float:
    """Validate a 0..1 strength from the command line."""
    if not 0.0 <= value <= 1.0:
        raise UserError(f"--strength must be between 0 and 1, got {value}")
    return float(value)


def blend(source: np.ndarray, styled: np.ndarray, strength: float) -> np.ndarray:
    """``strength * styled + (1 - strength) * source``; strength 1 returns ``styled``, 0 returns ``source``."""
    if strength >= 1.0:
        return styled
    if strength <= 0.0:
        return source.copy()
    return cv2.addWeighted(styled, float(strength), source, 1.0 - float(strength), 0.0)


def preserve_color(source: np.ndarray, styled: np.ndarray) -> np.ndarray:
    """Luminance-only transfer (Gatys et al. 2017): the styled frame's Y with the source's chroma (YCrCb)."""
    styled_ycc = cv2.cvtColor(styled, cv2.COLOR_RGB2YCrCb)
    source_ycc = cv2.cvtColor(source, cv2.COLOR_RGB2YCrCb)
    styled_ycc[..., 1:] = source_ycc[..., 1:]
    return cv2.cvtColor(styled_ycc, cv2.COLOR_YCrCb2RGB)


class StrengthBlend:
    """Blend the stylised frame with the original; ``strength`` in 0..1 (1 = fully stylised)."""

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = check_strength(strength)

    def prepare(self, source: np.ndarray) -> Any:
        return None

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        return blend(source, styled, self.strength)

    def reset(self) -> None:
        pass


class PreserveColor:
    """Keep the original colours, take only the stylised luminance; ``enabled`` toggles it."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def prepare(self, source: np.ndarray) -> Any:
        return None

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        return preserve_color(source, styled) if self.enabled else styled

    def reset(self) -> None:
        pass
