"""Stylise a frame too large for memory in overlapping tiles, seamlessly.

A feed-forward style net's memory grows with the frame (:mod:`realtime.core.memory`: about 870
bytes per pixel for ``mosaic``; a 4000x3000 still: 10-11 GB). :func:`tiled_forward` runs such a
net over overlapping tiles that fit a memory budget and gives the whole-frame result:

* **geometry**: tiles start at multiples of the net's size multiple (its stride-2 grids line up
  with the whole frame's) and overlap by a margin of :data:`MARGIN` pixels, wider than the
  nets' receptive-field radius (Johnson nets about 57 px, 9-block CycleGAN generators about 87);
  each tile contributes only its core, where its view is the same as the whole frame's;
* **statistics**: instance normalisation normalises each channel by its mean and variance over
  the *whole* frame, which a tile alone does not see (tiles normalised on their own differ in
  tone: seams). The statistics of every ``InstanceNorm2d`` are therefore gathered over all
  tiles first, one layer at a time in network order (each pass stops at the layer it measures,
  with the layers before it already fixed), then the tiles run with those fixed statistics.

The result matches a whole-frame run to within float rounding (1-2 levels of 255 at a few
pixels); it costs about ``1 + (norm layers) / 2`` forward passes (Johnson nets: 15 layers,
about 6-8x), so it is used only when the whole frame would not fit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from realtime.core.memory import BYTES_PER_PIXEL

MARGIN = 96  # pixels of context around each tile's core (a multiple of 4)
MIN_CORE = 64


def tile_core(budget: int, margin: int = MARGIN, multiple: int = 4) -> int:
    """The largest core side (a multiple of ``multiple``) whose tile, margins included, fits ``budget``."""
    side = int(math.sqrt(max(budget, 1) / BYTES_PER_PIXEL))
    core = (side - 2 * margin) // multiple * multiple
    return max(MIN_CORE, core)


# -- instance norms with whole-frame statistics -------------------------------------------------
class _Stop(Exception):
    """Ends a statistics pass at the layer it measures."""


@dataclass
class _Control:
    """Shared by the wrapped norms: what they do in the current pass."""

    fixed: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    target: int | None = None  # the layer measured in this pass
    tile_size: tuple[int, int] = (0, 0)  # (h, w) of the tile in input pixels
    core: tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, y1, x0, x1 of its core, tile coordinates
    sums: list[torch.Tensor | float] = field(default_factory=lambda: [0.0, 0.0, 0])
    order: list[int] | None = None  # the norms in the order a forward pass calls them, once recorded


class _WholeFrameNorm(nn.Module):
    """An ``InstanceNorm2d`` that normalises with statistics given for the whole frame (or measures them)."""

    def __init__(self, norm: nn.InstanceNorm2d, index: int, control: _Control) -> None:
        super().__init__()
        self.norm, self.index, self.control = norm, index, control

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.control
        if c.order is None:
            raise RuntimeError("record the call order first")
        if c.order and c.order[-1] == -1:  # recording: module order need not be call order
            if self.index not in c.order:
                c.order.insert(len(c.order) - 1, self.index)
            return self.norm(x)
        if self.index in c.fixed:
            mean, var = c.fixed[self.index]
            y = (x - mean.view(1, -1, 1, 1)) * torch.rsqrt(var.view(1, -1, 1, 1) + self.norm.eps)
            if self.norm.affine:
                y = y * self.norm.weight.view(1, -1, 1, 1) + self.norm.bias.view(1, -1, 1, 1)
            return y
        if self.index == c.target:
            th, tw = c.tile_size
            fy, fx = x.shape[-2] / th, x.shape[-1] / tw
            y0, y1, x0, x1 = c.core
            core = x[..., round(y0 * fy) : round(y1 * fy), round(x0 * fx) : round(x1 * fx)].double()
            c.sums[0] = c.sums[0] + core.sum(dim=(0, 2, 3))
            c.sums[1] = c.sums[1] + (core * core).sum(dim=(0, 2, 3))
            c.sums[2] += core.shape[0] * core.shape[2] * core.shape[3]
            raise _Stop
        return self.norm(x)


def _needs_whole_frame_stats(module: nn.Module) -> bool:
    return isinstance(module, nn.InstanceNorm2d) and (module.training or not module.track_running_stats)


@contextlib.contextmanager
def _whole_frame_norms(net: nn.Module) -> Iterator[tuple[_Control, int]]:
    """Swap every instance norm of ``net`` for a :class:`_WholeFrameNorm` (restored afterwards)."""
    control = _Control()
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if _needs_whole_frame_stats(child):
                swapped.append((parent, name, child))
    try:
        for index, (parent, name, child) in enumerate(swapped):
            setattr(parent, name, _WholeFrameNorm(child, index, control))
        yield control, len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def _spans(size: int, core: int, margin: int) -> list[tuple[int, int, int, int]]:
    """``(core_start, core_end, tile_start, tile_end)`` along one axis; cores partition ``[0, size)``."""
    out = []
    for start in range(0, size, core):
        end = min(size, start + core)
        out.append((start, end, max(0, start - margin), min(size, end + margin)))
    return out


def tile_count(height: int, width: int, core: int) -> int:
    return math.ceil(height / core) * math.ceil(width / core)


def tiled_forward(
    net: nn.Module,
    x: torch.Tensor,
    *,
    core: int,
    margin: int = MARGIN,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """``net(x)`` for one ``(1, 3, H, W)`` input, computed in tiles; returns ``(1, C, H, W)`` on the CPU.

    ``x`` may live on the CPU (it is moved tile by tile to the net's device). ``H``/``W`` and
    ``core``/``margin`` must be multiples of the net's size multiple (4 for these nets), so
    tiles sit on the whole frame's stride grid. ``progress(done, total)`` is called after
    every tile of every pass.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"tiled_forward takes one frame (1, 3, H, W), got {tuple(x.shape)}")
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in net.parameters()), torch.float32)
    _, _, height, width = x.shape
    rows, cols = _spans(height, core, margin), _spans(width, core, margin)
    tiles = [(r, c) for r in rows for c in cols]
    out: torch.Tensor | None = None
    with torch.inference_mode(), _whole_frame_norms(net) as (control, layers):
        total, done = (layers + 1) * len(tiles), 0

        def each_tile() -> Iterator[tuple[torch.Tensor, tuple[int, int, int, int, int, int, int, int]]]:
            nonlocal done
            for (ys, ye, ya, yb), (xs, xe, xa, xb) in tiles:
                control.tile_size = (yb - ya, xb - xa)
                control.core = (ys - ya, ye - ya, xs - xa, xe - xa)
                yield x[..., ya:yb, xa:xb].to(device, dtype), (ys, ye, ya, yb, xs, xe, xa, xb)
                done += 1
                if progress is not None:
                    progress(done, total)

        control.order = [-1]  # record the call order on a small crop
        net(x[..., : min(height, 64), : min(width, 64)].to(device, dtype))
        control.order.pop()
        for layer in control.order:  # the statistics, one layer after another in call order
            control.target, control.sums = layer, [0.0, 0.0, 0]
            for tile, _ in each_tile():
                with contextlib.suppress(_Stop):
                    net(tile)
            total_sum, total_sq, count = control.sums
            mean = total_sum / count
            var = (total_sq / count - mean * mean).clamp_min(0.0)
            control.fixed[layer] = (mean.to(dtype), var.to(dtype))
        control.target = None
        for tile, (ys, ye, ya, _, xs, xe, xa, _) in each_tile():
            y = net(tile).float().cpu()
            if out is None:
                out = torch.empty((1, y.shape[1], height, width), dtype=torch.float32)
            out[..., ys:ye, xs:xe] = y[..., ys - ya : ye - ya, xs - xa : xe - xa]
    assert out is not None
    return out


def tiled_frame(
    frame: np.ndarray,
    stylize: Callable[[np.ndarray], np.ndarray],
    *,
    core: int,
    margin: int = MARGIN,
    multiple: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Tile a uint8 ``(H, W, 3)`` frame through any ``stylize`` (each tile normalised on its own).

    For nets that cannot be opened up (a foreign ONNX graph, TorchScript): memory stays bounded,
    but tiles of instance-normalised nets may differ slightly in tone at their seams.
    """
    height, width = frame.shape[:2]
    core = max(multiple, core // multiple * multiple)
    margin = margin // multiple * multiple
    out = np.empty_like(frame)
    tiles = [(r, c) for r in _spans(height, core, margin) for c in _spans(width, core, margin)]
    for done, ((ys, ye, ya, yb), (xs, xe, xa, xb)) in enumerate(tiles, 1):
        styled = stylize(np.ascontiguousarray(frame[ya:yb, xa:xb]))
        out[ys:ye, xs:xe] = styled[ys - ya : ye - ya, xs - xa : xe - xa]
        if progress is not None:
            progress(done, len(tiles))
    return out
