"""Conditioned stylizers: a backend whose net takes a style vector, plus the family's style resolver.

Multi-style and arbitrary-style nets take a second input, a ``(D,)`` style vector (see
:mod:`realtime.core.styles`). The backends (:class:`~realtime.backends.torch_backend.TorchStylizer`,
:class:`~realtime.backends.onnx_backend.OnnxStylizer`) feed their ``condition`` attribute as that
input; :class:`ConditionedStylizer` adds the family's :class:`StyleResolver` (names, spec -> vector)
and so implements both the ``Stylizer`` and the ``StyleControl`` protocols.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from realtime.core.contract import IOContract
from realtime.core.errors import InvalidValue
from realtime.core.styles import StyleTerm


class StyleResolver(Protocol):
    """What a family knows about its style vectors: the named choices and how a spec maps to a vector."""

    def names(self) -> list[str]: ...

    def vector(self, terms: Sequence[StyleTerm]) -> np.ndarray: ...

    def default(self) -> np.ndarray: ...


class ConditionedBackend(Protocol):
    """A backend stylizer with a settable ``condition`` (the style vector its net's second input gets)."""

    name: str
    contract: IOContract
    condition: np.ndarray | None

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class ConditionedStylizer:
    """A conditioned backend plus its resolver: frames in and out, and a style chosen at run time.

    ``set_style`` may be called from any thread: the vector is swapped whole and each forward pass
    reads it once, so a frame never mixes two styles.
    """

    def __init__(self, backend: ConditionedBackend, resolver: StyleResolver) -> None:
        self.backend, self.resolver = backend, resolver
        self.name, self.contract = backend.name, backend.contract
        self._lock = threading.Lock()
        self.set_style(resolver.default())

    # -- StyleControl --------------------------------------------------------------------------
    def style_names(self) -> list[str]:
        return self.resolver.names()

    def style_vector(self, terms: Sequence[StyleTerm]) -> np.ndarray:
        return np.asarray(self.resolver.vector(terms), dtype=np.float32)

    def set_style(self, vector: np.ndarray) -> None:
        vector = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        want = self.contract.condition_dim
        if want and vector.shape != (want,):
            raise InvalidValue("style", f"vector has {vector.size} values; model {self.name!r} takes {want}")
        with self._lock:
            self.backend.condition = vector

    def current_style(self) -> np.ndarray:
        with self._lock:
            return np.array(self.backend.condition, copy=True)

    # -- Stylizer ------------------------------------------------------------------------------
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.backend(frame)

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.backend.stylize_batch(frames)

    def __getattr__(self, name: str) -> Any:  # device, providers, … of the backend
        if name in ("backend", "resolver"):
            raise AttributeError(name)
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"ConditionedStylizer({self.backend!r}, styles={len(self.style_names())})"
