"""The one interface every backend implements: RGB frames in, RGB frames out, plus an IO contract.

A frame is a ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype ``uint8``, RGB. Backends
(ONNX Runtime, PyTorch eager/TorchScript) do their own pre- and post-processing from the
model's :class:`~realtime.core.contract.IOContract`; callers only ever see uint8 frames.

Pipeline stages that need both the source frame and the stylised frame (strength blending,
colour preservation, temporal stabilisation) implement :class:`Stage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from realtime.core.contract import IOContract


@runtime_checkable
class Stylizer(Protocol):
    """Anything that stylises frames."""

    name: str
    contract: IOContract

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(H, W, 3)`` uint8 RGB, same size."""
        ...

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several frames of one size at once (one forward pass where the backend allows)."""
        ...


@runtime_checkable
class Stage(Protocol):
    """A post-processing step of the pipeline, applied to every frame in order.

    Frames are ``(H, W, 3)`` uint8 RGB. The pipeline calls ``prepare(source)`` for each
    frame, in order, on its pre-processing thread *while the model runs*, so analysis of the
    input alone (optical flow, scene-cut detection) overlaps inference; it then calls
    ``stage(source, styled, prepared)`` in order on the post-processing thread with what
    ``prepare`` returned. Stages that need no analysis return ``None`` from ``prepare``.
    """

    def prepare(self, source: np.ndarray) -> Any: ...

    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Any = None) -> np.ndarray: ...

    def reset(self) -> None:
        """Forget any history (a new clip, a scene cut, a model switch)."""
        ...


def apply_stages(stages: Sequence[Stage], source: np.ndarray, styled: np.ndarray) -> np.ndarray:
    """Run ``stages`` on one frame synchronously (stills, tests): prepare then apply, in order."""
    for stage in stages:
        styled = stage(source, styled, stage.prepare(source))
    return styled
