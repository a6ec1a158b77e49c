"""Strength for picture-style models: move the style vector toward the content's own, not the pixels.

For the arbitrary-style family ``--strength`` is the paper's interpolation (Ghiasi et al. 2017):
the net gets ``s * style + (1 - s) * content``, where ``content`` is the style vector the
predictor computes from the content itself. Every other family keeps the pixel blend of
:mod:`realtime.stages.strength`. :func:`route_strength` is the one place that decides.

In a video or a camera stream the content changes, so :class:`ContentAnchor` (a Stage that changes
no pixels) keeps the content vector current: predicted from the first frame, then every
:data:`REFRESH_FRAMES` frames (about a second at 25 frames/s), each new estimate blended into the
running one with weight :data:`REFRESH_WEIGHT` (an exponential moving average), so the look drifts
with the scene instead of jumping; ``reset()`` (a new clip) starts over. The prediction runs in
``prepare`` on the decode thread while the model works on earlier frames (~20-60 ms per refresh on a
CPU), and not at all at strength 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from realtime.core.styles import PictureStyleControl, has_picture_styles
from realtime.stages.strength import StrengthBlend

REFRESH_FRAMES = 25
REFRESH_WEIGHT = 0.25


def route_strength(model: object, blend: StrengthBlend, strength: float) -> None:
    """Apply ``strength`` to ``model``'s style vector (picture-style models; pixels then untouched) or to ``blend``."""
    if has_picture_styles(model):
        model.set_strength(strength)  # type: ignore[attr-defined]
        blend.strength = 1.0
    else:
        blend.strength = strength


class ContentAnchor:
    """Keeps a picture-style model's content vector current for strength below 1 (see the module docstring).

    ``current``: returns the model frames go to now (``lambda: stylizer``, or the camera's model
    cycle's current one); models that are not picture-style are left alone.
    """

    def __init__(
        self, current: Callable[[], object], every: int = REFRESH_FRAMES, weight: float = REFRESH_WEIGHT
    ) -> None:
        if every < 1 or not 0.0 < weight <= 1.0:
            raise ValueError("every must be >= 1 and weight in (0, 1]")
        self._current = current
        self.every, self.weight = int(every), float(weight)
        self._model: object | None = None
        self._vector: np.ndarray | None = None
        self._count = 0
        self.refreshes = 0  # predictions made (tests, benchmarks)

    def prepare(self, source: np.ndarray) -> Any:
        model = self._current()
        if not has_picture_styles(model) or model.strength >= 1.0:  # type: ignore[attr-defined]
            return None
        if model is not self._model:  # another model (the camera's n/p): its own anchor
            self.reset()
            self._model = model
        if self._vector is None or self._count % self.every == 0:
            self._refresh(model, source)  # type: ignore[arg-type]
        self._count += 1
        return None

    def _refresh(self, model: PictureStyleControl, source: np.ndarray) -> None:
        estimate = model.picture_vector(source)
        if self._vector is None:
            self._vector = estimate
        else:
            self._vector = ((1.0 - self.weight) * self._vector + self.weight * estimate).astype(np.float32)
        model.set_content_vector(self._vector)
        self.refreshes += 1

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        return styled

    def reset(self) -> None:
        self._vector, self._count, self._model = None, 0, None
