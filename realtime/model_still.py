"""Stylise one still image with a feed-forward model (a Johnson net, a CycleGAN generator, an arbitrary-style net).

``realtime.cli.still`` calls :func:`stylize_image` for ``--method johnson`` and ``--method
cyclegan``; the model is anything ``--model`` accepts (see :func:`realtime.backends.loader.load_stylizer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from realtime.backends.loader import load_stylizer
from realtime.core.errors import InvalidValue, UserError
from realtime.core.frames import from_model_tensor, to_model_tensor
from realtime.core.images import resize_longer_side
from realtime.core.memory import default_budget, whole_frame_bytes
from realtime.core.nets.families import family as family_named
from realtime.core.onnx_weights import NotRebuildable, torch_model_from_onnx
from realtime.core.styles import apply_style_spec, has_picture_styles
from realtime.core.stylizer import Stylizer, apply_stages
from realtime.core.tiles import MARGIN, tile_core, tiled_forward, tiled_frame
from realtime.stages import build_stages
from realtime.stages.style_strength import route_strength

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
    max_memory: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> the stylised image, uint8 RGB, the size of the (resized) input.

    ``size`` resizes the longer side first. Any size works: the frame is padded to the
    model's multiple and cropped back (or resized for fixed-size models). ``strength`` blends
    with the input (1 = fully stylised), or for a picture-style (arbitrary) model moves the style
    vector toward the input's own (:mod:`realtime.stages.style_strength`); ``preserve_color``
    keeps the input's colours.
    ``family`` (``johnson``/``cyclegan``) must match the model's. ``style``: a style spec for a
    conditioned model (:func:`realtime.core.styles.parse_style_spec`). ``stylizer``: an already
    loaded one, to stylise many images without reloading ``model``. ``max_memory`` (bytes,
    default :func:`realtime.core.memory.default_budget`): a frame whose estimated inference
    memory exceeds it runs in tiles (:func:`stylize_in_tiles`); ``progress(done, total)``
    follows the tiles.
    """
    stages = build_stages(strength, preserve_color)
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
    route_strength(stylizer, stages.strength, strength)
    if has_picture_styles(stylizer) and strength < 1.0:
        stylizer.set_content_vector(stylizer.picture_vector(frame))
    budget = default_budget() if max_memory is None else int(max_memory)
    if needs_tiles(frame.shape[0], frame.shape[1], stylizer, budget):
        styled = stylize_in_tiles(frame, stylizer, budget, progress)
    else:
        styled = stylizer(frame)
    log.info("stylised %dx%d with %s", frame.shape[1], frame.shape[0], stylizer.name)
    return apply_stages(stages.ordered, frame, styled)


def needs_tiles(height: int, width: int, stylizer: Stylizer, budget: int) -> bool:
    """Whether a ``height`` x ``width`` frame would pass ``budget`` bytes whole (fixed-size models never do)."""
    return stylizer.contract.fixed_size is None and whole_frame_bytes(height, width) > budget


def _torch_net(stylizer: Stylizer) -> torch.nn.Module | None:
    """The stylizer's network as a PyTorch module whose norms tiles can control, or None."""
    if stylizer.contract.condition_dim or len(family_named(stylizer.contract.family).runtime_inputs) > 1:
        return None  # a conditioned net: only the stylizer knows its conditioning
    module = getattr(stylizer, "module", None)
    if isinstance(module, torch.nn.Module) and not isinstance(module, torch.jit.ScriptModule):
        return module
    path = getattr(stylizer, "path", None)
    if path is not None and str(path).lower().endswith(".onnx"):
        try:
            return torch_model_from_onnx(path).model  # checked against the file on a small input
        except NotRebuildable as exc:
            log.info("tiles without whole-frame statistics: %s", exc)
    return None


def stylize_in_tiles(
    frame: np.ndarray, stylizer: Stylizer, budget: int, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Stylise ``frame`` in tiles that fit ``budget`` bytes (see :mod:`realtime.core.tiles`).

    With the net in PyTorch (checkpoints, and this project's ONNX files rebuilt from their
    weights) the tiles share the whole frame's instance-norm statistics: the result matches a
    whole-frame run. Other models run tile by tile through their backend, which keeps memory
    bounded but may show faint seams (logged as a warning).
    """
    contract = stylizer.contract
    multiple = max(4, contract.size_multiple)
    core = tile_core(budget, MARGIN, multiple)
    net = _torch_net(stylizer)
    if net is None:
        log.warning("%s cannot be opened up for tiling; each tile is normalised alone (faint seams)", stylizer.name)
        return tiled_frame(frame, stylizer, core=core, multiple=multiple, progress=progress)
    x, crop = to_model_tensor(torch.from_numpy(frame)[None], contract)  # padded to the size multiple
    y = tiled_forward(net, x, core=core, margin=MARGIN, progress=progress)
    with torch.inference_mode():
        return from_model_tensor(y, contract, crop)[0].numpy()
