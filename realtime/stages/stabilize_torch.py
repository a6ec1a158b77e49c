"""The temporal stabiliser at GPU speed: the analysis of :mod:`realtime.stages.stabilize`, the pixels in torch.

:class:`TorchStabilizer` keeps :class:`~realtime.stages.stabilize.TemporalStabilizer`'s semantics
and constants (it runs one for the analysis) and moves the two costly parts off the frame path:

* **analysis** (optical flow, reliability weight, scene cuts): the stabiliser's own ``prepare``,
  on a worker thread in frame order, so decoding goes on while the flow is computed; the flow
  image is bounded (short side at most :data:`MAX_FLOW_SIDE`, i.e. 480x270 for 1080p) instead of
  half the frame size; flow need not be full HD to register textures;
* **warp, blend and contrast restoration**: per pixel at full size in torch on the model's
  device (``grid_sample`` bicubic for ``cv2.remap``, bilinear ``interpolate`` for ``cv2.resize``,
  reflect-padded ``avg_pool2d`` for ``cv2.blur``), on CUDA tensors the model left on the GPU.

On the CPU with NumPy frames it returns the same frames as the OpenCV path within a level or two
(``tests/test_stabilize_torch.py``); that path stays the CPU default (it is faster there).
Frames: ``(H, W, 3)`` uint8 RGB, NumPy arrays or tensors; the output has the type of ``styled``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from realtime.stages.stabilize import DEFAULT_STRENGTH, FLOW_SCALE, Motion, TemporalStabilizer

MAX_FLOW_SIDE = 270  # the flow image's short side at most (1080p: 480x270; 640x360 keeps FLOW_SCALE's 320x180)
GREY = (0.299, 0.587, 0.114)  # cv2.COLOR_RGB2GRAY


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    """``cv2.blur`` (``k`` x ``k`` mean, border reflected without the edge) of ``(C, H, W)``."""
    pad = k // 2
    return F.avg_pool2d(F.pad(x[None], (pad, pad, pad, pad), mode="reflect"), k, stride=1)[0]


def _grey(x: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` RGB -> ``(1, H, W)`` grey."""
    return (GREY[0] * x[0] + GREY[1] * x[1] + GREY[2] * x[2])[None]


class TorchStabilizer:
    """A drop-in :class:`TemporalStabilizer` whose per-pixel work runs on ``device``.

    ``strength`` is the history's weight at trusted pixels (a hotkey may change it between
    frames). One instance per run; ``prepare`` and ``__call__`` are each called in frame order.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, device: torch.device | str = "cpu") -> None:
        self.analysis = TemporalStabilizer(strength=strength)
        self.device = torch.device(device)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nst-flow")
        self._generation = 0  # mirrors the analysis stabiliser's (both start at 0, both bump on reset)
        self._out_generation, self._out_index = -1, -1
        self._prev_out: torch.Tensor | None = None  # (3, H, W) float32 on the device
        self._grids: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def strength(self) -> float:
        return self.analysis.strength

    @strength.setter
    def strength(self, value: float) -> None:
        self.analysis.strength = value

    @property
    def cuts(self) -> int:
        return self.analysis.cuts

    def reset(self) -> None:
        """Forget both histories (safe from any thread)."""
        self._generation += 1
        self.analysis.reset()

    def flow_scale(self, shape: tuple[int, ...]) -> float:
        """The flow image's size relative to a frame of ``shape``: FLOW_SCALE, bounded by MAX_FLOW_SIDE."""
        return min(FLOW_SCALE, MAX_FLOW_SIDE / max(1, min(shape[:2])))

    def _analyse(self, source: np.ndarray) -> Motion:
        self.analysis.flow_scale = self.flow_scale(source.shape)
        return self.analysis.prepare(source)

    def prepare(self, source: np.ndarray) -> Future:
        """Queue the analysis of ``source`` (flow to the previous input) on the worker thread."""
        return self._worker.submit(self._analyse, source)

    def close(self) -> None:
        self._worker.shutdown(wait=False)

    def _grid(self, h: int, w: int) -> torch.Tensor:
        """``(2, H, W)`` pixel coordinates ``(x, y)`` on the device."""
        grid = self._grids.get((h, w))
        if grid is None:
            ys, xs = torch.meshgrid(
                torch.arange(h, dtype=torch.float32, device=self.device),
                torch.arange(w, dtype=torch.float32, device=self.device),
                indexing="ij",
            )
            grid = self._grids[(h, w)] = torch.stack([xs, ys])
        return grid

    def __call__(self, source: np.ndarray, styled: Any, prepared: Any = None) -> Any:
        """The stabilised frame (``styled`` itself when there is nothing to blend)."""
        motion = prepared.result() if isinstance(prepared, Future) else prepared
        if motion is None:  # synchronous use without the pipeline
            motion = self._analyse(source)
        on_host = isinstance(styled, np.ndarray)
        frame = torch.from_numpy(styled).to(self.device) if on_host else styled
        current = frame.permute(2, 0, 1).float()  # (3, H, W) 0..255
        continuous = (
            motion.flow is not None
            and self._prev_out is not None
            and motion.generation == self._generation == self._out_generation
            and motion.index == self._out_index + 1
            and self._prev_out.shape == current.shape
        )
        self._out_generation, self._out_index = motion.generation, motion.index
        strength = float(self.strength)
        if not continuous or strength <= 0.0:
            self._prev_out = current
            return styled
        with torch.inference_mode():
            out = self._blend(current, motion, min(strength, 1.0))
        self._prev_out = out.float()
        result = out.permute(1, 2, 0)
        return np.ascontiguousarray(result.cpu().numpy()) if on_host else result.contiguous()

    def _blend(self, current: torch.Tensor, motion: Motion, strength: float) -> torch.Tensor:
        """``(3, H, W)`` float current frame -> ``(3, H, W)`` uint8 stabilised frame."""
        _, h, w = current.shape
        flow = torch.from_numpy(motion.flow).to(self.device).permute(2, 0, 1)[None]  # (1, 2, fh, fw)
        fh, fw = flow.shape[2:]
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)[0]
        scale = torch.tensor([w / fw, h / fh], device=self.device).view(2, 1, 1)
        coords = flow * scale + self._grid(h, w)  # (2, H, W) where to sample the previous output
        norm = torch.tensor([2.0 / max(1, w - 1), 2.0 / max(1, h - 1)], device=self.device).view(2, 1, 1)
        grid = (coords * norm - 1.0).permute(1, 2, 0)[None]
        warped = F.grid_sample(self._prev_out[None], grid, mode="bicubic", padding_mode="border", align_corners=True)
        warped = warped[0].round_().clamp_(0, 255)  # cv2.remap on uint8 rounds and saturates
        weight = torch.from_numpy(motion.weight).to(self.device)[None, None]
        weight = F.interpolate(weight, size=(h, w), mode="bilinear", align_corners=False)[0] * strength  # (1, H, W)
        blend = current + weight * (warped - current)
        if self.analysis.contrast > 0:
            blend = self._restore_contrast(current, blend, weight)
        return blend.clamp_(0, 255).round_().to(torch.uint8)

    def _restore_contrast(self, current: torch.Tensor, blend: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """:meth:`TemporalStabilizer._restore_contrast` in torch: the blend's detail back to the current contrast."""
        a = self.analysis
        low = _box(blend, a.band)
        high = blend - low
        high_grey = _grey(high)
        grey = _grey(current)
        grey = grey - _box(grey, a.band)
        ratio = (_box(grey * grey, a.energy_window) + 1.0) / (_box(high_grey * high_grey, a.energy_window) + 1.0)
        gain = ratio.sqrt() if a.contrast == 1.0 else ratio.pow(0.5 * a.contrast)
        gain = gain.clamp_(1.0, a.max_gain).masked_fill_(weight <= 0, 1.0)
        return high * gain + low


def use_torch_stabilizer(toggle: Any, device: torch.device | str) -> None:
    """Swap the OpenCV stabiliser inside ``toggle`` (a :class:`realtime.stages.Toggle`) for a TorchStabilizer."""
    if toggle is not None and isinstance(toggle.stage, TemporalStabilizer):
        toggle.stage = TorchStabilizer(strength=toggle.stage.strength, device=device)
