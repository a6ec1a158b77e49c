"""Pipeline stages applied after the model: strength, colour preservation, the temporal stabiliser.

Each implements :class:`realtime.core.stylizer.Stage`. :func:`build_stages` is the one place
that orders them for the commands (stabiliser on the model output, then colour, then strength,
so strength 0 is exactly the input). :mod:`realtime.stages.flicker` scores the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.core.stylizer import Stage
from realtime.stages.color import PreserveColor, preserve_color
from realtime.stages.stabilize import DEFAULT_STRENGTH, TemporalStabilizer, check_stabilize
from realtime.stages.strength import StrengthBlend, blend, check_strength


class Toggle:
    """Wrap a pipeline Stage so the ``t`` key can switch it off between frames at no cost.

    While off, ``prepare`` skips the inner stage's analysis (the stabiliser's optical flow) and
    frames pass unchanged. When it comes back on, the inner stage is reset first, so it never
    blends across the gap.
    """

    _OFF = object()

    def __init__(self, stage: Any, enabled: bool = True) -> None:
        self.stage = stage
        self.enabled = bool(enabled)
        self._was_on = False

    def prepare(self, source: np.ndarray) -> Any:
        if not self.enabled:
            self._was_on = False
            return self._OFF
        if not self._was_on:
            self.stage.reset()
            self._was_on = True
        return self.stage.prepare(source)

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray:
        if prepared is self._OFF:
            return styled
        return self.stage(source, styled, prepared)

    def reset(self) -> None:
        self.stage.reset()


@dataclass
class Stages:
    """The stages of one run, by role; ``stabilizer`` is a :class:`Toggle` (``None`` when not built)."""

    stabilizer: Toggle | None
    color: PreserveColor
    strength: StrengthBlend

    @property
    def ordered(self) -> list[Stage]:
        """The stages in pipeline order."""
        return [s for s in (self.stabilizer, self.color, self.strength) if s is not None]


def build_stages(
    strength: float = 1.0,
    preserve_color: bool = False,
    stabilize: float | None = None,
    stabilizer_available: bool = False,
) -> Stages:
    """The stages for a run. ``stabilize``: the stabiliser's strength in 0..1, or ``None`` for off.

    ``stabilizer_available`` builds the stabiliser switched off when ``stabilize`` is ``None``, so
    a live command can turn it on later (its ``enabled`` flag).
    """
    stabilizer = None
    if stabilize is not None or stabilizer_available:
        inner = TemporalStabilizer(strength=check_stabilize(stabilize) if stabilize is not None else DEFAULT_STRENGTH)
        stabilizer = Toggle(inner, enabled=stabilize is not None)
    return Stages(stabilizer, PreserveColor(preserve_color), StrengthBlend(check_strength(strength)))


__all__ = [
    "DEFAULT_STRENGTH",
    "PreserveColor",
    "Stages",
    "StrengthBlend",
    "TemporalStabilizer",
    "Toggle",
    "blend",
    "build_stages",
    "check_stabilize",
    "check_strength",
    "preserve_color",
]
