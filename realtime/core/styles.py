"""Choosing the style at run time, for families whose net is conditioned on a style vector.

A multi-style net (conditional instance norm) takes a vector of weights over the styles it was
trained on; an arbitrary-style net takes a style embedding predicted from any picture. Both are
run the same way, so the commands (``--style``, the camera's keys, the web page) speak to them
through one protocol, :class:`StyleControl`:

* a *spec* says which style: ``candy``, ``3``, ``mosaic:0.5,candy:0.5``, ``painting.jpg``,
  ``a.jpg:0.7,b.jpg:0.3`` (:func:`parse_style_spec`); the stylizer resolves it to a *style
  vector* (``(D,)`` float32: blend weights, or an embedding) with :meth:`StyleControl.style_vector`;
* :meth:`StyleControl.set_style` makes a vector current from the next frame on, without
  reloading or stalling (thread-safe: a key handler sets, the inference thread reads);
* :class:`CrossFade` moves from the current vector to another over a number of frames.

Blending *vectors* is the papers' own interpolation (Dumoulin et al. 2017 blend the norm
parameters; Ghiasi et al. 2017 the style embeddings), not a cross-fade of pixels.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from realtime.core.errors import InvalidValue


@dataclass(frozen=True)
class StyleTerm:
    """One part of a style spec: ``key`` (a style name, an index or an image path) and its weight."""

    key: str
    weight: float = 1.0


def parse_style_spec(text: str) -> list[StyleTerm]:
    """``"mosaic:0.5,candy:0.5"`` -> two terms; a term without ``:weight`` weighs 1.

    Weights are kept as given (a stylizer normalises them); they must be finite and >= 0 with a
    positive sum. A ``:`` followed by something that is not a number belongs to the key, so
    ``C:\\art\\a.jpg`` and ``http://host/a.jpg`` stay whole. Raises :class:`InvalidValue`
    (setting ``style``).
    """
    terms = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, tail = part.rpartition(":")
        weight = 1.0
        if sep and key:
            try:
                weight = float(tail)
            except ValueError:
                key, weight = part, 1.0
        else:
            key = part
        if not np.isfinite(weight) or weight < 0:
            raise InvalidValue("style", f"{part!r}: a weight must be a number >= 0")
        terms.append(StyleTerm(key.strip(), weight))
    if not terms:
        raise InvalidValue("style", f"{text!r} names no style; e.g. candy, 3 or mosaic:0.5,candy:0.5")
    if sum(t.weight for t in terms) <= 0:
        raise InvalidValue("style", f"{text!r}: the weights add up to 0")
    return terms


def blend(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The convex combination ``sum w_i v_i / sum w_i`` of ``(D,)`` vectors, float32."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("blend weights must have a positive sum")
    stacked = np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
    return (np.asarray(weights, dtype=np.float32)[:, None] * stacked).sum(0) / np.float32(total)


@runtime_checkable
class StyleControl(Protocol):
    """A stylizer whose style is chosen while it runs (multi-style and arbitrary-style families)."""

    def style_names(self) -> list[str]:
        """The styles to step through with a key, in order (names, or labels of style images)."""
        ...

    def style_vector(self, terms: Sequence[StyleTerm]) -> np.ndarray:
        """Resolve a parsed spec to this net's conditioning vector ``(D,)`` float32."""
        ...

    def set_style(self, vector: np.ndarray) -> None:
        """Use ``vector`` from the next frame on (any thread)."""
        ...

    def current_style(self) -> np.ndarray:
        """The vector the next frame will use."""
        ...


@runtime_checkable
class PictureStyleControl(StyleControl, Protocol):
    """A :class:`StyleControl` whose styles are pictures (the arbitrary-style family) adds:

    * a strength that moves the style vector toward the *content's own* vector (Ghiasi et al. 2017
      interpolate style vectors this way) instead of fading pixels: the net gets
      ``strength * style + (1 - strength) * content`` once a content vector is set;
    * the style vector of any in-memory picture (a frame), and adding one as a named style
      (a camera frame taken as the style).
    """

    @property
    def strength(self) -> float:
        """0..1: how far the style vector is from the content's own vector (1: the style itself)."""
        ...

    def set_strength(self, strength: float) -> None: ...

    def picture_vector(self, picture: np.ndarray) -> np.ndarray:
        """The style vector of an ``(H, W, 3)`` uint8 RGB picture, ``(D,)`` float32."""
        ...

    def set_content_vector(self, vector: np.ndarray | None) -> None:
        """The content's own vector that strength below 1 moves toward (None: strength has no effect)."""
        ...

    def add_picture_style(self, label: str, picture: np.ndarray) -> tuple[int, np.ndarray]:
        """Add ``picture`` to :meth:`style_names` as ``label``; returns its index and vector."""
        ...

    def prepare_styles(self, stop: threading.Event | None = None) -> None:
        """Load what the first picture needs (the predictor), then the vectors of the named styles until ``stop``."""
        ...


def has_picture_styles(stylizer: object) -> bool:
    """True when ``stylizer`` takes pictures as styles (implements :class:`PictureStyleControl`)."""
    return isinstance(stylizer, PictureStyleControl)


def has_style_control(stylizer: object) -> bool:
    """True when ``stylizer`` takes a run-time style (implements :class:`StyleControl`)."""
    return isinstance(stylizer, StyleControl)


def require_style_control(stylizer: object, model: str = "") -> StyleControl:
    """``stylizer`` as a :class:`StyleControl`; :class:`InvalidValue` (``style``) for a one-style model."""
    if not has_style_control(stylizer):
        which = f"model {model!r}" if model else "this model"
        raise InvalidValue(
            "style",
            f"does not apply to {which}: it has one fixed style (multi-style and arbitrary-style models take one)",
        )
    return stylizer  # type: ignore[return-value]


def apply_style_spec(stylizer: object, spec: str, model: str = "") -> np.ndarray:
    """Make the style ``spec`` (see :func:`parse_style_spec`) current on a conditioned stylizer; returns its vector."""
    control = require_style_control(stylizer, model)
    vector = control.style_vector(parse_style_spec(spec))
    control.set_style(vector)
    return vector


def style_listing(stylizer: object, model: str = "") -> str:
    """The style names of a conditioned model, one per line, numbered from 0 (``--list-styles``)."""
    names = require_style_control(stylizer, model).style_names()
    return "\n".join(f"{i}\t{name}" for i, name in enumerate(names))


class NamedStyles:
    """The style vector of a multi-style net: a weight per named style, normalised to sum 1.

    Keys are names (letter case, ``-`` and ``_`` do not matter) or 0-based indices.
    """

    def __init__(self, names: Sequence[str]) -> None:
        if not names:
            raise ValueError("a multi-style net needs at least one style name")
        self._names = [str(n) for n in names]
        self._index = {_key(n): i for i, n in enumerate(self._names)}

    def names(self) -> list[str]:
        return list(self._names)

    def index(self, key: str) -> int:
        """The position of a style named or numbered ``key``; :class:`InvalidValue` (``style``) if none."""
        text = key.strip()
        if text.isdigit() and int(text) < len(self._names):
            return int(text)
        if _key(text) in self._index:
            return self._index[_key(text)]
        close = difflib.get_close_matches(text, self._names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidValue(
            "style", f"{key!r} is not one of this model's styles (0-{len(self._names) - 1} or a name){hint}"
        )

    def vector(self, terms: Sequence[StyleTerm]) -> np.ndarray:
        weights = np.zeros(len(self._names), dtype=np.float32)
        for term in terms:
            weights[self.index(term.key)] += term.weight
        return weights / weights.sum()

    def default(self) -> np.ndarray:
        return np.eye(len(self._names), dtype=np.float32)[0]


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class CrossFade:
    """Moves a :class:`StyleControl` from its current vector to ``target`` over ``frames`` frames.

    Call :meth:`step` once per frame (e.g. from a pipeline stage's ``prepare``); it sets the
    next vector on the stylizer and returns False once the target is reached.
    """

    def __init__(self, control: StyleControl, target: np.ndarray, frames: int = 12) -> None:
        if frames < 1:
            raise ValueError("a cross-fade needs at least 1 frame")
        self.control, self.frames = control, int(frames)
        self.start = np.asarray(control.current_style(), dtype=np.float32).copy()
        self.target = np.asarray(target, dtype=np.float32)
        self.done = 0

    def step(self) -> bool:
        if self.done >= self.frames:
            return False
        self.done += 1
        t = self.done / self.frames
        self.control.set_style(((1.0 - t) * self.start + t * self.target).astype(np.float32))
        return self.done < self.frames
