"""Strength: blend the stylised frame with the original (``strength`` 1 = fully stylised, 0 = the input).

Frames are ``(H, W, 3)`` uint8 RGB. :class:`StrengthBlend` implements
:class:`realtime.core.stylizer.Stage` and keeps its setting in a public attribute, so hotkeys
can change it between frames.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from realtime.core.errors import InvalidValue


def check_strength(value: float, name: str = "strength") -> float:
    """``value`` as a float in 0..1, else :class:`InvalidValue` about setting ``name``."""
    if not 0.0 <= value <= 1.0:
        raise InvalidValue(name, f"must be between 0 and 1, got {value}")
    return float(value)


def blend(source: np.ndarray, styled: np.ndarray, strength: float) -> np.ndarray:
    """``strength * styled + (1 - strength) * source``, rounded; 1 returns ``styled``, 0 a copy of ``source``."""
    if strength >= 1.0:
        return styled
    if strength <= 0.0:
        return source.copy()
    return cv2.addWeighted(styled, float(strength), source, 1.0 - float(strength), 0.0)


class StrengthBlend:
    """The :func:`blend` stage; ``strength`` in 0..1."""

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = check_strength(strength)

    def prepare(self, source: np.ndarray) -> Any:
        return None

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        return blend(source, styled, self.strength)

    def reset(self) -> None:
        pass
