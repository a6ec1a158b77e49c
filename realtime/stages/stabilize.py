"""Runtime temporal stabilisation for any model: a pipeline :class:`~realtime.core.stylizer.Stage`.

Per-frame style transfer flickers: a small change of the input (noise, compression, a small
move) repaints the texture. :class:`TemporalStabilizer` only sees frames, so it works for
every model family. Per frame ``t``:

* ``prepare(source_t)`` (pre-processing thread, while the model runs): optical flow from the
  current input to the previous one and back (DIS ``fast`` on a half-size grey image, finest
  pyramid level 1), a reliability weight in 0..1, and a scene-cut test. The weight is 0 where
  the forward-backward check or the motion-boundary test of :mod:`realtime.stages.flow` fails, and
  ramps from 1 to 0 as the previous input, warped by the flow, stops matching the current
  input (photometric check, so newly uncovered areas and lighting changes take the current
  frame); trusted areas are then shrunk and softened.
* ``stage(source_t, styled_t, prepared)`` (post-processing thread): warp the previous
  *stabilised* output onto frame ``t`` (bicubic) and blend
  ``out = styled + w * (warped_prev_out - styled)`` with ``w = strength * weight``. Pixels
  with ``w = 0`` are exactly the stylised frame, so moving objects leave no ghosts. Where
  the two textures do not line up, averaging them softens the look; the blend's fine detail
  is therefore scaled back to the local contrast of the current stylised frame
  (``contrast``). A plain blend halves flicker partly by blurring the texture (the VGG Gram
  distance to the style image grows by up to 18% on the sample clip); with the restoration
  it stays within 5% for mosaic_small, candy and udnie (mosaic: 8% *closer* to the style),
  and flicker still falls to 0.41-0.49x (``python -m bench stabilize``).

The first frame, the frame after a scene cut or a :meth:`reset`, and ``strength = 0`` return
the stylised frame unchanged. Frames are ``(H, W, 3)`` uint8 RGB.

Small frames: the flow image keeps a short side of at least ``MIN_FLOW_SIDE`` (160; it was 96)
pixels, so a frame under 320 px high gets its flow at a finer scale than ``flow_scale`` (320x180:
at 0.89, where it was at 0.53). The photometric error's averaging window then grows to cover the
same part of the frame (``PHOTO_WINDOW`` 3 flow pixels at scale 0.5 -> 5 at 0.89, 7 at full
size); the thresholds keep their meaning. Frames of 320 px and more are analysed as before.
Measured on the walking clip at 320x180 with ``mosaic_small`` (50 frames, ``python -m bench
stabilize --model mosaic_small --size 320x180 --clips extra``): flicker 0.61x the per-frame
output with the old rule (prepare 3.4 ms), 0.50x now (prepare 8.6 ms); Gram to the style -0.1%.

Threading: ``prepare`` owns the previous-input state, ``__call__`` the previous-output state;
each is called in frame order. ``reset`` only bumps a generation counter that both sides
check, so it is safe from any thread (a hotkey, a model switch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.core.images import resize
from realtime.stages.flow import DisFlow, pixel_grid, resize_flow, unreliable_mask, warp
from realtime.stages.strength import check_strength

DEFAULT_STRENGTH = 0.9  # chosen with `python -m bench stabilize` (README: Flicker)
FLOW_SCALE = 0.5  # flow image size relative to the frame (at least MIN_FLOW_SIDE px short side)
MIN_FLOW_SIDE = 160  # was 96; see "Small frames" in the module docstring
FLOW_PRESET, FLOW_FINEST_SCALE = "fast", 1  # ~2 ms a call at 320x180, 0.1 px error on the bench clip
PHOTO_LOW, PHOTO_HIGH = 6.0, 18.0  # max-channel RGB error (0..255): full trust below, none above (at FLOW_SCALE)
PHOTO_WINDOW = 3  # the photometric error is averaged over this window (flow-image pixels at FLOW_SCALE)
ERODE = 1  # trusted areas shrink by this many flow-image pixels
CUT_THRESHOLD = 30.0  # mean photometric error above this = scene cut (motion: 2-6; cuts: 60-106)
CUT_MIN_RELIABLE = 0.05  # ... or fewer pixels than this pass the forward-backward check
CONTRAST = 1.0  # restore the blend's detail contrast: 1 fully, 0 off (a plain blend)
BAND, ENERGY_WINDOW, MAX_GAIN = 9, 15, 3.0  # detail = above a 9-px box low-pass; energy over 15 px


def check_stabilize(value: float) -> float:
    """The stabiliser's strength as a float in 0..1, else :class:`InvalidValue` about ``stabilize``."""
    return check_strength(value, name="stabilize")


@dataclass(frozen=True)
class Motion:
    """What ``prepare`` hands to ``__call__`` for one frame.

    ``flow``: ``(h, w, 2)`` float32 from the current input to the previous one, in pixels of
    the ``(h, w)`` flow image; ``weight``: ``(h, w)`` float32 in 0..1, how far to trust it.
    Both are ``None`` when there is no usable history (first frame, cut, reset, size change).
    ``cut_score``: the mean photometric error (0..255) the scene-cut test used.
    """

    index: int
    generation: int
    flow: np.ndarray | None = None
    weight: np.ndarray | None = None
    cut: bool = False
    cut_score: float = 0.0


class TemporalStabilizer:
    """Blend each stylised frame with the motion-compensated previous output where that is reliable.

    ``strength`` (0..1, a plain attribute a hotkey may change between frames) is the weight
    of the history at fully trusted pixels. The other arguments tune the analysis and the
    blend (see the module constants): ``cut_threshold`` is the mean photometric error
    (0..255) above which a frame starts a new scene; ``contrast`` 0 gives a plain blend.
    """

    def __init__(
        self,
        strength: float = DEFAULT_STRENGTH,
        flow_scale: float = FLOW_SCALE,
        preset: str = FLOW_PRESET,
        finest_scale: int | None = FLOW_FINEST_SCALE,
        cut_threshold: float = CUT_THRESHOLD,
        photo_low: float = PHOTO_LOW,
        photo_high: float = PHOTO_HIGH,
        window: int = PHOTO_WINDOW,
        erode: int = ERODE,
        interpolation: int = cv2.INTER_CUBIC,
        contrast: float = CONTRAST,
        band: int = BAND,
        energy_window: int = ENERGY_WINDOW,
        max_gain: float = MAX_GAIN,
    ) -> None:
        if not 0.0 < flow_scale <= 1.0:
            raise ValueError(f"flow_scale must be in (0, 1], got {flow_scale}")
        if not 0.0 <= photo_low < photo_high:
            raise ValueError("need 0 <= photo_low < photo_high")
        self.strength = check_stabilize(strength)
        self.flow_scale, self.cut_threshold = float(flow_scale), float(cut_threshold)
        self.photo_low, self.photo_high = float(photo_low), float(photo_high)
        self.window, self.erode, self.interpolation = int(window), int(erode), interpolation
        self.contrast, self.band = float(contrast), int(band)
        self.energy_window, self.max_gain = int(energy_window), float(max_gain)
        self.cuts = 0  # scene cuts seen (logs, benchmarks)
        self._generation = 0
        # prepare's side: the previous input
        self._dis = DisFlow(preset, finest_scale)
        self._in_generation, self._in_index = -1, -1
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (small RGB, small grey)
        # __call__'s side: the previous output
        self._out_generation, self._out_index = -1, -1
        self._prev_out: np.ndarray | None = None
        self._buffers: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        """Forget both histories; the next frame prepared is returned as stylised. Safe from any thread."""
        self._generation += 1

    # -- pre-processing thread ------------------------------------------------------------------
    def _scale_for(self, shape: tuple[int, ...]) -> float:
        short = min(shape[:2])
        return self.flow_scale if short * self.flow_scale >= MIN_FLOW_SIDE else min(1.0, MIN_FLOW_SIDE / short)

    def prepare(self, source: np.ndarray) -> Motion:
        """Flow from ``source`` to the previous input, its reliability, and the scene-cut test."""
        generation = self._generation
        self._in_index += 1
        scale = self._scale_for(source.shape)
        finer = max(1.0, scale / self.flow_scale)  # > 1 for small frames: a wider window (module docstring)
        height, width = (max(8, round(side * scale)) for side in source.shape[:2])
        small = np.ascontiguousarray(resize(source, height, width, "fast"))
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        previous, self._previous = self._previous, (small, grey)
        if generation != self._in_generation or previous is None or previous[0].shape != small.shape:
            self._in_generation = generation
            return Motion(self._in_index, generation)
        prev, prev_grey = previous
        back = self._dis(grey, prev_grey)  # current -> previous: prev(x + back(x)) ≈ current(x)
        forward = self._dis(prev_grey, grey)
        r, g, b = cv2.split(cv2.absdiff(warp(prev, back), small))
        error = cv2.max(cv2.max(r, g), b)  # max over channels (numpy's .max(axis=2) is 70x slower)
        window = self.window if finer == 1.0 else 2 * math.floor((self.window * finer - 1) / 2 + 0.5) + 1
        if window > 1:
            error = cv2.blur(error, (window, window))
        error = error.astype(np.float32)
        reliable = ~unreliable_mask(back, forward)
        cut_score = float(error.mean())
        if cut_score > self.cut_threshold or reliable.mean() < CUT_MIN_RELIABLE:
            self.cuts += 1
            return Motion(self._in_index, generation, cut=True, cut_score=cut_score)
        return Motion(self._in_index, generation, back, self._weight(reliable, error), cut_score=cut_score)

    def _weight(self, reliable: np.ndarray, error: np.ndarray) -> np.ndarray:
        # the ramp starts at twice the median error when that is higher (sensor noise must not
        # switch the stabiliser off), but never above 3 * photo_low (a frame of mismatches is no excuse)
        low = min(max(self.photo_low, 2.0 * float(np.median(error))), 3.0 * self.photo_low)
        span = self.photo_high - self.photo_low
        weight = np.clip((low + span - error) / span, 0.0, 1.0) * reliable
        if self.erode > 0:  # shrink trusted areas, then soften inside them only (blur narrower than the erosion)
            k = 2 * self.erode + 1
            weight = cv2.erode(weight, np.ones((k, k), np.uint8))
            if k > 3:
                weight = cv2.blur(weight, (k - 2, k - 2))
        return weight.astype(np.float32)

    # -- post-processing thread -----------------------------------------------------------------
    def __call__(self, source: np.ndarray, styled: np.ndarray, prepared: Motion | None = None) -> np.ndarray:
        """The stabilised frame (``styled`` itself when there is nothing to blend)."""
        if prepared is None:  # synchronous use without the pipeline
            prepared = self.prepare(source)
        continuous = (
            prepared.flow is not None
            and self._prev_out is not None
            and prepared.generation == self._generation == self._out_generation
            and prepared.index == self._out_index + 1
            and self._prev_out.shape == styled.shape
        )
        self._out_generation, self._out_index = prepared.generation, prepared.index
        strength = float(self.strength)
        if not continuous or strength <= 0.0:
            self._prev_out = styled.copy()  # a copy: sinks may draw on the frame they are given
            return styled
        h, w = styled.shape[:2]
        buf = self._buffer
        coords = cv2.add(resize_flow(prepared.flow, (h, w)), pixel_grid(h, w), dst=buf("coords", (h, w, 2)))
        warped = cv2.remap(
            self._prev_out,
            coords,
            None,
            self.interpolation,
            dst=buf("warped", (h, w, 3), np.uint8),
            borderMode=cv2.BORDER_REPLICATE,
        )
        weight = cv2.resize(prepared.weight, (w, h), dst=buf("weight", (h, w)), interpolation=cv2.INTER_LINEAR)
        weight *= min(strength, 1.0)
        current, blend = buf("current", (h, w, 3)), buf("blend", (h, w, 3))
        np.copyto(current, styled, casting="unsafe")
        np.copyto(blend, warped, casting="unsafe")
        cv2.subtract(blend, current, dst=blend)  # blend = current + weight * (warped - current)
        cv2.multiply(blend, cv2.merge((weight, weight, weight), dst=buf("weight3", (h, w, 3))), dst=blend)
        cv2.add(blend, current, dst=blend)
        if self.contrast > 0:
            blend = self._restore_contrast(current, blend, weight)
        np.maximum(blend, 0.0, out=blend)
        out = cv2.convertScaleAbs(blend)  # round, saturate at 255
        self._prev_out = out.copy()
        return out

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """A scratch array of ``__call__``'s, kept between frames (fresh multi-MB arrays cost page faults)."""
        array = self._buffers.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._buffers[name] = np.empty(shape, dtype)
        return array

    def _restore_contrast(self, current: np.ndarray, blend: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Give the blend's fine detail the local contrast of the current stylised frame.

        Averaging two textures that do not line up exactly lowers their contrast (the look goes
        soft and the style statistics drift). The detail above a ``band``-px box low-pass is
        scaled by ``(E_current / E_blend) ** (contrast / 2)``, the ratio of the local detail
        energies of the grey images over ``energy_window`` px, kept in ``[1, max_gain]`` and 1
        where nothing was blended. All ``(H, W[, 3])`` float32 in 0..255.
        """
        band, window = (self.band, self.band), (self.energy_window, self.energy_window)
        low = cv2.blur(blend, band, dst=self._buffer("low", blend.shape))
        high = cv2.subtract(blend, low, dst=blend)  # the caller's blend is not needed any more
        high_grey = cv2.cvtColor(high, cv2.COLOR_RGB2GRAY)
        grey = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY)
        grey -= cv2.blur(grey, band)
        ratio = cv2.blur(cv2.multiply(grey, grey), window) + 1.0
        ratio /= cv2.blur(cv2.multiply(high_grey, high_grey), window) + 1.0
        gain = cv2.sqrt(ratio) if self.contrast == 1.0 else cv2.pow(ratio, 0.5 * self.contrast)
        np.clip(gain, 1.0, self.max_gain, out=gain)
        np.copyto(gain, 1.0, where=weight <= 0)
        cv2.multiply(high, cv2.merge((gain, gain, gain), dst=self._buffer("weight3", high.shape)), dst=high)
        return cv2.add(high, low, dst=high)
