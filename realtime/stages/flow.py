"""Dense optical flow (OpenCV DIS), backward warping and the flow reliability masks.

Conventions used throughout:

* A flow is ``(H, W, 2)`` float32, ``(dx, dy)`` in pixels, defined on the grid of its
  *first* image: ``flow_ab = flow(a, b)`` says that pixel ``x`` of ``a`` is seen at
  ``x + flow_ab(x)`` in ``b``, so ``a(x) ≈ b(x + flow_ab(x))``.
* ``warp(b, flow_ab)`` therefore pulls ``b`` onto ``a``'s grid (backward warping, bilinear,
  borders replicated).
* Masks are ``(H, W)`` bool on the first image's grid; ``True`` marks *unreliable* pixels
  (occluded, on a motion boundary, or flowing out of the frame).

The two masks are those of Ruder et al. (2016) as used by Lai et al. (2018) for the warping
error: a forward-backward check
``|F(x) + B(x + F(x))|² > 0.01 (|F(x)|² + |B(x + F(x))|²) + 0.5`` and a motion-boundary test
``|∇F_u|² + |∇F_v|² > 0.01 |F|² + 0.002`` (forward differences), all in pixel units.
"""

from __future__ import annotations

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# Lai et al. (2018) / Ruder et al. (2016) thresholds, in pixels (squared).
FB_RELATIVE, FB_ABSOLUTE = 0.01, 0.5
MB_RELATIVE, MB_ABSOLUTE = 0.01, 0.002


def to_grey(frame: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) -> ``(h, w)`` uint8 grey, resized by ``scale`` (area filter)."""
    if frame.ndim != 2 and (frame.ndim != 3 or frame.shape[2] != 3):
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey frame, got shape {frame.shape}")
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        h, w = grey.shape
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(grey, dtype=np.uint8)


class DisFlow:
    """OpenCV's DIS optical flow (Kroeger et al. 2016) with a fixed preset.

    ``DisFlow("ultrafast")(a, b)`` returns ``flow(a, b)`` for two ``(H, W)`` uint8 grey
    images. ``finest_scale`` overrides the preset's finest pyramid level (the presets stop at
    level 2 for ultrafast/fast, i.e. a quarter of the image size, and 1 for medium): level 1
    on a half-size image gives ultrafast's full-size accuracy at half the cost. One instance
    keeps OpenCV scratch buffers: use it from one thread only.
    """

    def __init__(self, preset: str = "ultrafast", finest_scale: int | None = None) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; known: {', '.join(PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        if finest_scale is not None:
            self._dis.setFinestScale(int(finest_scale))

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.shape != b.shape or a.ndim != 2 or a.dtype != np.uint8:
            raise ValueError(
                f"DIS needs two uint8 grey images of one size, got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
            )
        return self._dis.calc(a, b, None)


_GRIDS: dict[tuple[int, int], np.ndarray] = {}


def pixel_grid(h: int, w: int) -> np.ndarray:
    """``(H, W, 2)`` float32 pixel coordinates ``(x, y)``; cached per size (read-only)."""
    grid = _GRIDS.get((h, w))
    if grid is None:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        grid = np.ascontiguousarray(np.stack([xs, ys], axis=-1))
        grid.setflags(write=False)
        _GRIDS[(h, w)] = grid
    return grid


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Backward warp: ``out(x) = image(x + flow(x))`` (bilinear, borders replicated).

    ``image`` is ``(H, W)`` or ``(H, W, C)`` (uint8 or float32), ``flow`` ``(H, W, 2)`` on the
    output grid; the result has ``image``'s dtype and the flow's ``H, W``.
    """
    h, w = flow.shape[:2]
    coords = pixel_grid(h, w) + flow
    return cv2.remap(image, coords, None, interpolation, borderMode=cv2.BORDER_REPLICATE)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a flow to ``size = (H, W)``, rescaling the vectors to the new pixel units."""
    h, w = size
    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / fw
    out[..., 1] *= h / fh
    return out


def _sq_norm(flow: np.ndarray) -> np.ndarray:
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def occlusion_mask(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Forward-backward check on ``a``'s grid: ``True`` where ``flow_ab`` is not undone by ``flow_ba``.

    Also ``True`` where ``x + flow_ab(x)`` leaves the frame (no correspondence in ``b``).
    """
    back = warp(flow_ba, flow_ab)  # B(x + F(x)) on a's grid
    err = _sq_norm(flow_ab + back)
    occluded = err > FB_RELATIVE * (_sq_norm(flow_ab) + _sq_norm(back)) + FB_ABSOLUTE
    h, w = flow_ab.shape[:2]
    target = pixel_grid(h, w) + flow_ab
    outside = (target[..., 0] < 0) | (target[..., 0] > w - 1) | (target[..., 1] < 0) | (target[..., 1] > h - 1)
    return occluded | outside


def motion_boundary_mask(flow: np.ndarray) -> np.ndarray:
    """``True`` where the flow changes sharply: ``|∇u|² + |∇v|² > 0.01 |F|² + 0.002`` (forward differences)."""
    grad = np.zeros(flow.shape[:2], np.float32)
    dx = flow[:, 1:] - flow[:, :-1]  # (H, W-1, 2)
    dy = flow[1:, :] - flow[:-1, :]  # (H-1, W, 2)
    grad[:, :-1] += _sq_norm(dx)
    grad[:-1, :] += _sq_norm(dy)
    return grad > MB_RELATIVE * _sq_norm(flow) + MB_ABSOLUTE


def unreliable_mask(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Occlusion or motion boundary on ``a``'s grid (Lai et al. 2018's mask); ``True`` = do not trust."""
    return occlusion_mask(flow_ab, flow_ba) | motion_boundary_mask(flow_ab)
