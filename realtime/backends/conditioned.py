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
        vector = self._checked(vector)
        with self._lock:
            self.backend.condition = vector

    def _checked(self, vector: np.ndarray) -> np.ndarray:
        """``vector`` as a contiguous ``(D,)`` float32 array; InvalidValue (``style``) for another length."""
        vector = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        want = self.contract.condition_dim
        if want and vector.shape != (want,):
            raise InvalidValue("style", f"vector has {vector.size} values; model {self.name!r} takes {want}")
        return vector

    def current_style(self) -> np.ndarray:
        with self._lock:
            return np.array(self.backend.condition, copy=True)

    # -- Stylizer ------------------------------------------------------------------------------
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.backend(frame)

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.backend.stylize_batch(frames)

    @property
    def keep_on_device(self) -> bool:
        """The backend's setting (a CUDA TorchStylizer's), read and written through; AttributeError when it has none."""
        return self.backend.keep_on_device  # type: ignore[attr-defined]

    @keep_on_device.setter
    def keep_on_device(self, value: bool) -> None:
        self.backend.keep_on_device = value  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:  # device, providers, … of the backend
        if name in ("backend", "resolver"):
            raise AttributeError(name)
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"ConditionedStylizer({self.backend!r}, styles={len(self.style_names())})"


class PictureResolver(StyleResolver, Protocol):
    """A resolver whose styles are pictures (see :class:`realtime.core.arbitrary_styles.ArbitraryStyles`)."""

    def picture_vector(self, picture: np.ndarray) -> np.ndarray: ...

    def add_picture(self, label: str, picture: np.ndarray) -> tuple[int, np.ndarray]: ...

    def load_predictor(self) -> None: ...

    def prefetch(self, stop: threading.Event | None = None) -> None: ...


class PictureStylizer(ConditionedStylizer):
    """A conditioned stylizer whose styles are pictures (implements :class:`~realtime.core.styles.PictureStyleControl`).

    It keeps the chosen style vector (the *target*, what :meth:`set_style` and cross-fades set),
    the content's own vector and the strength apart, and gives the net
    ``strength * target + (1 - strength) * content`` (the target alone at strength 1 or before a
    content vector is set). Each setter recomputes the net's vector under the lock, so a frame
    never sees a half-made mix.
    """

    resolver: PictureResolver

    def __init__(self, backend: ConditionedBackend, resolver: PictureResolver) -> None:
        self._target: np.ndarray | None = None
        self._content: np.ndarray | None = None
        self._strength = 1.0
        super().__init__(backend, resolver)

    def set_style(self, vector: np.ndarray) -> None:
        vector = self._checked(vector)
        with self._lock:
            self._target = vector
            self._mix()

    def current_style(self) -> np.ndarray:
        with self._lock:
            return np.array(self._target, copy=True)

    @property
    def strength(self) -> float:
        return self._strength

    def set_strength(self, strength: float) -> None:
        if not 0.0 <= strength <= 1.0:
            raise InvalidValue("strength", f"must be between 0 and 1, got {strength}")
        with self._lock:
            self._strength = float(strength)
            self._mix()

    def set_content_vector(self, vector: np.ndarray | None) -> None:
        vector = None if vector is None else self._checked(vector)
        with self._lock:
            self._content = vector
            self._mix()

    def picture_vector(self, picture: np.ndarray) -> np.ndarray:
        return np.asarray(self.resolver.picture_vector(picture), dtype=np.float32)

    def add_picture_style(self, label: str, picture: np.ndarray) -> tuple[int, np.ndarray]:
        return self.resolver.add_picture(label, picture)

    def prepare_styles(self, stop: threading.Event | None = None) -> None:
        self.resolver.load_predictor()
        self.resolver.prefetch(stop)

    def _mix(self) -> None:
        """Set the net's vector from target, content and strength (caller holds the lock)."""
        target, content, s = self._target, self._content, self._strength
        if target is None:
            return
        if content is None or s >= 1.0:
            self.backend.condition = target
        else:
            self.backend.condition = (np.float32(s) * target + np.float32(1.0 - s) * content).astype(np.float32)
