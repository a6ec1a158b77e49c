"""RGB -> YUV 4:2:0 on the model's device, so only the encoder's planes cross to the host.

A 1080p RGB frame is 6.2 MB; its ``yuv420p`` planes are half that, and converting on the GPU
takes the colour conversion off the encoding thread. The conversion is the standard one an
encoder expects (what FFmpeg's own ``rgb24 -> yuv420p`` conversion gives with a box chroma
filter, within one level; ``tests/test_yuv.py``):

* matrix: BT.709 for HD, BT.601 for SD (:func:`realtime.io.colorspace.matrix_for`);
* limited ("TV", "MPEG") range: Y in 16..235, Cb/Cr in 16..240;
* chroma: each 2x2 block's mean, stored as I420 (all of Y, then U, then V).

:class:`YuvConverter` keeps one pinned host buffer and returns the planes as one
``(H * 3 // 2, W)`` uint8 array, the layout ``av.VideoFrame.from_ndarray(..., format="yuv420p")`` takes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from realtime.io.colorspace import MATRICES


def rgb_to_i420(frame: torch.Tensor, matrix: str) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB (any device, H and W even) -> ``(H * 3 // 2, W)`` uint8 I420 planes, same device."""
    height, width, channels = frame.shape
    if channels != 3 or height % 2 or width % 2:
        raise ValueError(f"need an (H, W, 3) frame with even sides, got {tuple(frame.shape)}")
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    rgb = frame.permute(2, 0, 1).float()  # (3, H, W) in 0..255
    r, g, b = rgb[0], rgb[1], rgb[2]
    luma = kr * r + kg * g + kb * b
    y = luma * (219.0 / 255.0) + 16.0
    # chroma of the 2x2 blocks: the mean of the per-pixel chroma (linear, so the mean of RGB works too)
    rgb_half = F.avg_pool2d(rgb[None], 2)[0]
    luma_half = kr * rgb_half[0] + kg * rgb_half[1] + kb * rgb_half[2]
    u = (rgb_half[2] - luma_half) * (224.0 / 255.0 / (2.0 * (1.0 - kb))) + 128.0
    v = (rgb_half[0] - luma_half) * (224.0 / 255.0 / (2.0 * (1.0 - kr))) + 128.0
    planes = torch.cat([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
    return planes.round_().clamp_(0, 255).to(torch.uint8).reshape(height * 3 // 2, width)


def pad_to_even(frame: torch.Tensor) -> torch.Tensor:
    """``(H, W, 3)`` with the last row / column repeated where a side is odd (what 4:2:0 needs)."""
    if frame.shape[0] % 2:
        frame = torch.cat([frame, frame[-1:]], 0)
    if frame.shape[1] % 2:
        frame = torch.cat([frame, frame[:, -1:]], 1)
    return frame


class YuvConverter:
    """Converts frames on their device and copies the planes into one reused (pinned, on CUDA) host buffer.

    ``__call__(frame)`` returns a NumPy view of that buffer: use it (hand it to PyAV, which copies)
    before the next call.
    """

    def __init__(self) -> None:
        self._host: torch.Tensor | None = None

    def __call__(self, frame: torch.Tensor, matrix: str) -> np.ndarray:
        planes = rgb_to_i420(pad_to_even(frame), matrix)
        if planes.device.type != "cuda":
            return planes.numpy()
        if self._host is None or self._host.shape != planes.shape:
            self._host = torch.empty(planes.shape, dtype=torch.uint8, pin_memory=True)
        self._host.copy_(planes, non_blocking=True)
        torch.cuda.current_stream(planes.device).synchronize()
        return self._host.numpy()
