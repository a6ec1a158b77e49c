"""Stylise one still image with a feed-forward model (a Johnson net or a CycleGAN generator).

``realtime.cli.still`` calls :func:`stylize_image` for ``--method johnson`` and ``--method
cyclegan``; the model is anything ``--model`` accepts (see :func:`realtime.backends.loader.load_stylizer`).
"""

from __future__ import annotations

import logging

import numpy as np

from realtime.backends.loader import load_stylizer
from realtime.core.errors import InvalidValue, UserError
from realtime.core.images import resize_longer_side
from realtime.core.nets.families import family as family_named
from realtime.core.styles import apply_style_spec
from realtime.core.stylizer import Stylizer, apply_stages
from realtime.stages import build_stages

log = logging.getLogger(__name__)


def check_family(stylizer: Stylizer, family: str | None, model: str) -> None:
    """Raise :class:`InvalidValue` (setting ``method``) when ``family`` is not the model's own family."""
    if family is None:
        return
    family_named(family)  # an unknown name raises
    actual = stylizer.contract.family
    if actual != family:
        raise InvalidValue("method", f"{family}: model {model!r} is a {actual} model, not a {family} model")


def stylize_image(
    content_rgb: np.ndarray,
    model: str,
    *,
    size: int | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    device: str = "auto",
    provider: str | None = None,
    input_range: str | None = None,
    family: str | None = None,
    style: str | None = None,
    stylizer: Stylizer | None = None,
) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> the stylised image, uint8 RGB, the size of the (resized) input.

    ``size`` resizes the longer side first. Any size works: the frame is padded to the
    model's multiple and cropped back (or resized for fixed-size models). ``strength`` blends
    with the input (1 = fully stylised); ``preserve_color`` keeps the input's colours.
    ``family`` (``johnson``/``cyclegan``) must match the model's. ``style``: a style spec for a
    conditioned model (:func:`realtime.core.styles.parse_style_spec`). ``stylizer``: an already
    loaded one, to stylise many images without reloading ``model``.
    """
    stages = build_stages(strength, preserve_color).ordered
    if (
        not isinstance(content_rgb, np.ndarray)
        or content_rgb.dtype != np.uint8
        or content_rgb.ndim != 3
        or content_rgb.shape[2] != 3
    ):
        raise UserError("the content image must be an (H, W, 3) uint8 RGB array")
    if stylizer is None:
        # One image does not repay a compile (tens of seconds cold, seconds warm, against ~20 ms eager at
        # 1080p): on a GPU our files run on PyTorch eager in float32, the fastest eager setting measured.
        stylizer = load_stylizer(model, device=device, provider=provider, input_range=input_range, compile=False)
    check_family(stylizer, family, model)
    if style is not None:
        apply_style_spec(stylizer, style, str(model))
    frame = resize_longer_side(content_rgb, size) if size else content_rgb
    frame = np.ascontiguousarray(frame)
    styled = stylizer(frame)
    log.info("stylised %dx%d with %s", frame.shape[1], frame.shape[0], stylizer.name)
    return apply_stages(stages, frame, styled)
