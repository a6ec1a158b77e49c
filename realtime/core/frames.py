"""uint8 frames <-> model tensors, driven by the model's :class:`~realtime.core.contract.IOContract`.

The one place that states how a frame enters and leaves a model:

* **values**: ``model = pixel * scale + offset`` with ``(scale, offset)`` from :func:`pixel_mapping`
  (``0..255`` models see the pixels as they are; ``-1..1`` models see ``pixel / 127.5 - 1``);
* **channels**: ``RGB`` as read, ``BGR`` reversed;
* **geometry**: frames are padded at the bottom and right to a multiple of ``size_multiple``
  (reflection, or edge replication where the frame is too small to reflect) and at least
  :data:`MIN_SIDE` pixels, and cropped back afterwards; models with a ``fixed_size`` get the
  frame resized to that size and the result resized back (:func:`plan`).

:func:`to_model_input` / :func:`from_model_output` do this with NumPy (the ONNX backend);
:func:`to_model_tensor` / :func:`from_model_tensor` are their torch twins for the GPU path of
the torch backend, built from the same :func:`pixel_mapping` and :func:`plan`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from realtime.core.contract import IOContract
from realtime.core.errors import InvalidValue, UserError
from realtime.core.images import resize

MIN_SIDE = 16  # the nets' own reflection pads need about 8 px after padding; keep a margin

INPUT_RANGES = {"0-255": (0.0, 255.0), "0-1": (0.0, 1.0), "-1-1": (-1.0, 1.0)}


@dataclass(frozen=True)
class Crop:
    """How a batch was fitted to the model, and so how to undo it.

    ``height``/``width``: the frames' own size. ``model_height``/``model_width``: what the model
    saw. ``resized``: True for ``fixed_size`` models (frames were resized, not padded).
    """

    height: int
    width: int
    model_height: int
    model_width: int
    resized: bool = False

    @property
    def pad_bottom(self) -> int:
        return 0 if self.resized else self.model_height - self.height

    @property
    def pad_right(self) -> int:
        return 0 if self.resized else self.model_width - self.width


def parse_input_range(text: str) -> tuple[float, float]:
    """``"0-255"`` or ``"-1-1"`` (a model's pixel value range) -> ``(lo, hi)``."""
    key = text.strip().replace(" ", "").replace("..", "-").replace(",", "-")
    if key not in INPUT_RANGES:
        raise InvalidValue("input_range", f"must be one of {', '.join(INPUT_RANGES)}, got {text!r}")
    return INPUT_RANGES[key]


def check_contract(contract: IOContract) -> None:
    """Reject contracts the frame code cannot honour (one line, UserError)."""
    if contract.channel_order not in ("RGB", "BGR"):
        raise UserError(f"model {contract.name!r}: unsupported channel order {contract.channel_order!r}")
    if contract.layout not in ("NCHW", "NHWC"):
        raise UserError(f"model {contract.name!r}: unsupported layout {contract.layout!r}")
    lo, hi = contract.value_range
    if not hi > lo:
        raise UserError(f"model {contract.name!r}: bad value range {contract.value_range}")
    if contract.size_multiple < 1:
        raise UserError(f"model {contract.name!r}: size_multiple must be >= 1")


def pixel_mapping(contract: IOContract) -> tuple[float, float]:
    """``(scale, offset)`` with ``model_value = pixel * scale + offset`` for pixels in 0..255."""
    lo, hi = contract.value_range
    return (hi - lo) / 255.0, lo


def plan(height: int, width: int, contract: IOContract) -> Crop:
    """The model-side size for ``(height, width)`` frames under ``contract``."""
    if contract.fixed_size:
        fh, fw = contract.fixed_size
        return Crop(height, width, int(fh), int(fw), resized=True)
    m = max(1, int(contract.size_multiple))
    floor = math.ceil(MIN_SIDE / m) * m
    return Crop(height, width, max(floor, math.ceil(height / m) * m), max(floor, math.ceil(width / m) * m))


def check_frames(frames: Sequence[np.ndarray]) -> tuple[int, int]:
    """All frames ``(H, W, 3)`` uint8 of one size; returns ``(H, W)``."""
    if len(frames) == 0:
        raise ValueError("no frames given")
    first = frames[0]
    for f in frames:
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            what = f"{f.dtype} array of shape {f.shape}" if isinstance(f, np.ndarray) else type(f).__name__
            raise UserError(f"frames must be (H, W, 3) uint8 RGB arrays, got a {what}")
        if f.shape != first.shape:
            raise ValueError(f"frames of one batch must share a size: {first.shape} vs {f.shape}")
        if f.shape[0] == 0 or f.shape[1] == 0:
            raise UserError("cannot stylise an empty (zero-sized) frame")
    return int(first.shape[0]), int(first.shape[1])


def size_groups(frames: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of ``frames`` grouped by ``(H, W)``, in first-seen order: one forward pass per group."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(tuple(np.shape(frame)), []).append(i)
    return list(groups.values())


def _pad_mode(size: int, pad: int) -> str:
    # Reflection needs pad < size; tiny frames fall back to edge replication (same rule in torch).
    return "reflect" if pad < size else "edge"


def to_model_input(frames: Sequence[np.ndarray], contract: IOContract) -> tuple[np.ndarray, Crop]:
    """``B`` frames ``(H, W, 3)`` uint8 RGB -> ``float32 (B, 3, Hp, Wp)`` (or ``(B, Hp, Wp, 3)`` for NHWC).

    Values follow :func:`pixel_mapping`, channels ``contract.channel_order``; see :func:`plan`
    for the size. The returned :class:`Crop` undoes it in :func:`from_model_output`.
    """
    check_contract(contract)
    height, width = check_frames(frames)
    crop = plan(height, width, contract)
    if crop.resized:
        batch = np.stack([resize(f, crop.model_height, crop.model_width, "fast") for f in frames])
    else:
        batch = np.stack(frames)
        pb, pr = crop.pad_bottom, crop.pad_right
        if pb:
            batch = np.pad(batch, ((0, 0), (0, pb), (0, 0), (0, 0)), mode=_pad_mode(height, pb))
        if pr:
            batch = np.pad(batch, ((0, 0), (0, 0), (0, pr), (0, 0)), mode=_pad_mode(width, pr))
    scale, offset = pixel_mapping(contract)
    x = batch.astype(np.float32)
    if scale != 1.0:
        x *= np.float32(scale)
    if offset != 0.0:
        x += np.float32(offset)
    if contract.channel_order == "BGR":
        x = x[..., ::-1]
    if contract.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), crop


def from_model_output(array: np.ndarray, contract: IOContract, crop: Crop) -> list[np.ndarray]:
    """Model output ``(B, 3, Hp, Wp)`` (or NHWC) in ``contract.value_range`` -> ``B`` uint8 RGB frames.

    Values are clamped to 0..255 and rounded; padding is cropped off, resized frames resized back.
    """
    y = np.asarray(array, dtype=np.float32)
    if y.ndim != 4:
        raise UserError(f"model {contract.name!r} returned an array of shape {y.shape}, expected 4 dimensions")
    if contract.layout == "NCHW":
        y = y.transpose(0, 2, 3, 1)
    if y.shape[-1] != 3:
        raise UserError(f"model {contract.name!r} returned {y.shape[-1]} channels, expected 3")
    if contract.channel_order == "BGR":
        y = y[..., ::-1]
    if not crop.resized:
        y = y[:, : crop.height, : crop.width]
    scale, offset = pixel_mapping(contract)
    pixels = (y - np.float32(offset)) * np.float32(1.0 / scale)
    out = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    if crop.resized:
        return [np.ascontiguousarray(resize(f, crop.height, crop.width, "fast")) for f in out]
    return [np.ascontiguousarray(f) for f in out]


def to_model_tensor(
    batch: torch.Tensor,
    contract: IOContract,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[torch.Tensor, Crop]:
    """Torch twin of :func:`to_model_input`: ``(B, H, W, 3)`` uint8 tensor (any device) -> ``(B, 3, Hp, Wp)``.

    Padding-only contracts (no ``fixed_size``); NCHW models. ``dtype`` is the model's compute type.
    """
    check_contract(contract)
    if contract.fixed_size or contract.layout != "NCHW":
        raise ValueError("to_model_tensor handles padded NCHW models; use to_model_input for the others")
    _, height, width, _ = batch.shape
    crop = plan(int(height), int(width), contract)
    scale, offset = pixel_mapping(contract)
    x = batch.permute(0, 3, 1, 2).to(dtype)
    if contract.channel_order == "BGR":
        x = x.flip(1)
    x = x * scale + offset if (scale != 1.0 or offset != 0.0) else x
    pb, pr = crop.pad_bottom, crop.pad_right
    if pb:
        x = F.pad(x, (0, 0, 0, pb), mode="reflect" if _pad_mode(height, pb) == "reflect" else "replicate")
    if pr:
        x = F.pad(x, (0, pr, 0, 0), mode="reflect" if _pad_mode(width, pr) == "reflect" else "replicate")
    return x.contiguous(memory_format=memory_format), crop


def from_model_tensor(y: torch.Tensor, contract: IOContract, crop: Crop) -> torch.Tensor:
    """Torch twin of :func:`from_model_output`: ``(B, 3, Hp, Wp)`` -> ``(B, H, W, 3)`` uint8, same device."""
    scale, offset = pixel_mapping(contract)
    y = y[:, :, : crop.height, : crop.width].float()
    if contract.channel_order == "BGR":
        y = y.flip(1)
    pixels = (y - offset) * (1.0 / scale) if (scale != 1.0 or offset != 0.0) else y
    return pixels.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
