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


class InterruptingStylizer(IdentityStylizer):
    """An identity stylizer that raises KeyboardInterrupt at its ``at``-th frame (Ctrl-C mid-run)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return frame.copy()


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


class TintStylizer(IdentityStylizer):
    """A conditioned stand-in (implements StyleControl): style ``i`` adds ``20 * (i + 1)`` grey levels.

    The vector is a weight per style; a blend adds the weighted mean of the offsets, so tests can
    read the style a frame was made with from its pixels.
    """

    name = "tint"

    def __init__(self, names: Sequence[str] = ("red", "green", "blue")) -> None:
        super().__init__()
        self.names = list(names)
        self.vector = np.eye(len(self.names), dtype=np.float32)[0]

    def style_names(self) -> list[str]:
        return list(self.names)

    def style_vector(self, terms) -> np.ndarray:
        from realtime.core.errors import InvalidValue
        from realtime.core.styles import blend

        rows = []
        for term in terms:
            key = term.key
            if key.isdigit() and int(key) < len(self.names):
                key = self.names[int(key)]
            if key not in self.names:
                raise InvalidValue("style", f"{term.key!r} is not one of {', '.join(self.names)}")
            rows.append(np.eye(len(self.names), dtype=np.float32)[self.names.index(key)])
        return blend(rows, [t.weight for t in terms])

    def set_style(self, vector) -> None:
        self.vector = np.asarray(vector, dtype=np.float32)

    def current_style(self) -> np.ndarray:
        return self.vector

    def offset(self) -> float:
        return float(self.vector @ (20.0 * np.arange(1, len(self.names) + 1)))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return np.clip(frame.astype(np.float32) + self.offset(), 0, 255).round().astype(np.uint8)

    def stylize_batch(self, frames):
        return [self(f) for f in frames]
