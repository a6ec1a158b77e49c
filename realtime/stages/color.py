"""Colour preservation: keep the original's colours, take only the stylised luminance.

Luminance-only transfer (Gatys et al. 2017) in YCrCb: the stylised frame's Y with the source's
Cr and Cb. Frames are ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def preserve_color(source: np.ndarray, styled: np.ndarray) -> np.ndarray:
    """The styled frame's luma (Y) with the source's chroma (Cr, Cb); same shape, uint8 RGB."""
    styled_ycc = cv2.cvtColor(styled, cv2.COLOR_RGB2YCrCb)
    source_ycc = cv2.cvtColor(source, cv2.COLOR_RGB2YCrCb)
    styled_ycc[..., 1:] = source_ycc[..., 1:]
    return cv2.cvtColor(styled_ycc, cv2.COLOR_YCrCb2RGB)


class PreserveColor:
    """The :func:`preserve_color` stage; ``enabled`` toggles it between frames."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def prepare(self, source: np.ndarray) -> Any:
        return None

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        return preserve_color(source, styled) if self.enabled else styled

    def reset(self) -> None:
        pass
