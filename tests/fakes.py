"""Stand-ins the tests share: a stylizer that returns its input and a sink that keeps what it gets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from realtime.core.contract import johnson_contract
from realtime.pipeline import FrameInfo


class IdentityStylizer:
    """Returns every frame unchanged: the stand-in stylizer of tests."""

    name = "identity"

    def __init__(self) -> None:
        self.contract = johnson_contract(name="identity")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return frame.copy()

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [f.copy() for f in frames]


class ListSink:
    """Collects frames and their infos in lists: the sink of tests."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.infos: list[FrameInfo] = []
        self.closed = False
        self.aborted = False

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        self.frames.append(frame)
        if info is not None:
            self.infos.append(info)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
