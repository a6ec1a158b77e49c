"""Flicker score: the warping error of Lai et al. (2018, "Learning Blind Video Temporal Consistency").

For each consecutive pair of *input* frames ``(t, t+1)`` the forward and backward optical flow
are computed (OpenCV DIS, preset ``medium``, full resolution, on grey images); pixels that are
occluded (forward-backward check), on a motion boundary, or that flow out of the frame are
excluded (see :mod:`realtime.stages.flow`). *Output* frame ``t+1`` is warped back onto frame ``t`` with
the forward flow, and the mean squared RGB difference (values in 0..1) over the remaining
pixels is that pair's error; the score is the mean over pairs. Lower is steadier.

The flow comes from the input, so the score measures how far the output's changes stray from
the input's motion. Computing the same measure with the input as the output gives the
*floor*: what interpolation, noise and lighting changes alone cost. A pair with no reliable
pixel contributes 0 (as in Lai et al.'s evaluation code).

``nst-flicker INPUT OUTPUT`` (:mod:`realtime.cli.flicker`) prints the output's score and the input's floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from realtime.core.errors import UserError
from realtime.stages.flow import DisFlow, to_grey, unreliable_mask, warp

SCORE_PRESET = "medium"  # fixed so scores are comparable between runs and machines


def pair_error(reference: np.ndarray, following: np.ndarray, flow: np.ndarray, unreliable: np.ndarray) -> float:
    """Masked MSE (RGB 0..1) between ``reference`` (frame t) and ``following`` (t+1) warped onto it."""
    keep = ~unreliable
    count = int(keep.sum())
    if count == 0:
        return 0.0
    warped = warp(following, flow)
    diff = warped[keep].astype(np.float32) - reference[keep].astype(np.float32)
    return float(np.mean(np.square(diff / 255.0)))


def flicker_scores(
    input_frames: Iterable[np.ndarray], *outputs: Iterable[np.ndarray], preset: str = SCORE_PRESET
) -> list[float]:
    """Warping error of each of ``outputs`` against the motion of ``input_frames``; one flow pass for all.

    Frames are ``(H, W, 3)`` uint8 RGB; every sequence must have the input's length and frame
    size (checked while streaming, so long videos need not fit in memory). Raises
    :class:`UserError` on a mismatch or fewer than two frames.
    """
    dis = DisFlow(preset)
    iters: list[Iterator[np.ndarray]] = [iter(input_frames)] + [iter(o) for o in outputs]
    totals = [0.0] * len(outputs)
    prev_grey = None
    prev_outs: list[np.ndarray] = []
    pairs = 0
    index = 0
    while True:
        frames = [next(it, None) for it in iters]
        ended = [f is None for f in frames]
        if all(ended):
            break
        if any(ended):
            which = "the input" if ended[0] else f"output {ended.index(True)}"
            raise UserError(
                f"frame count mismatch: {which} ends after {index} frames while the other "
                "video goes on; the flicker score needs the same number of frames"
            )
        source, outs = frames[0], frames[1:]
        for k, out in enumerate(outs):
            if out.shape != source.shape:
                raise UserError(
                    f"frame size mismatch at frame {index}: the input is "
                    f"{source.shape[1]}x{source.shape[0]} but output {k + 1} is "
                    f"{out.shape[1]}x{out.shape[0]}; resize one to match first"
                )
        grey = to_grey(source)
        if prev_grey is not None:
            forward, backward = dis(prev_grey, grey), dis(grey, prev_grey)
            unreliable = unreliable_mask(forward, backward)
            for k, out in enumerate(outs):
                totals[k] += pair_error(prev_outs[k], out, forward, unreliable)
            pairs += 1
        prev_grey, prev_outs = grey, outs
        index += 1
    if pairs == 0:
        raise UserError(f"the flicker score needs at least 2 frames, got {index}")
    return [t / pairs for t in totals]


def flicker_score(
    input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray], preset: str = SCORE_PRESET
) -> float:
    """Warping error of ``output_frames`` along the motion of ``input_frames`` (lower is steadier)."""
    return flicker_scores(input_frames, output_frames, preset=preset)[0]
