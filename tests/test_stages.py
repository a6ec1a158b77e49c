"""realtime.stages: strength and colour preservation against hand computations, the stage order, Toggle.

The values are asymmetric on purpose (strength 0.3, not 0.5; different colours in source and
styled frame), so a swapped operand or plane gives a different answer instead of the same one.
"""

from __future__ import annotations

import numpy as np
import pytest

from realtime.core.stylizer import apply_stages
from realtime.stages import (
    PreserveColor,
    StrengthBlend,
    TemporalStabilizer,
    Toggle,
    blend,
    build_stages,
    preserve_color,
)

# BT.601 luma, as OpenCV's RGB <-> YCrCb conversion uses it
LUMA = np.array([0.299, 0.587, 0.114])


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ LUMA


@pytest.fixture
def pair(rng) -> tuple[np.ndarray, np.ndarray]:
    """A source and a 'styled' frame of unrelated colours, kept within 90..165 so any luma/chroma mix stays in gamut."""
    source = rng.integers(90, 166, (24, 32, 3), dtype=np.uint8)
    styled = rng.integers(90, 166, (24, 32, 3), dtype=np.uint8)
    return source, styled


@pytest.mark.parametrize("strength", [0.3, 0.8])
def test_strength_is_the_linear_blend_by_hand(rng, strength):
    source = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    styled = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    want = strength * styled.astype(np.float64) + (1 - strength) * source.astype(np.float64)
    got = blend(source, styled, strength)
    assert got.dtype == np.uint8 and got.shape == source.shape
    assert np.abs(got - want).max() <= 0.5 + 1e-6  # rounded, never further than half a level
    assert np.array_equal(StrengthBlend(strength)(source, styled), got)


def test_strength_ends_are_exact_and_zero_is_a_copy(rng):
    source = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    styled = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    zero = blend(source, styled, 0.0)
    assert np.array_equal(zero, source) and zero is not source  # sinks may draw on what they get
    assert np.array_equal(blend(source, styled, 1.0), styled)


def test_preserve_color_is_styled_luma_with_source_chroma_by_hand(pair):
    source, styled = pair
    # Y from the styled frame, Cr and Cb from the source: each channel is the source's own
    # channel shifted by the luma difference (R = Y + 1.403 Cr' = Y_styled + (R_src - Y_src), ...).
    want = source.astype(np.float64) + (luma(styled) - luma(source))[..., None]
    got = preserve_color(source, styled)
    assert got.dtype == np.uint8 and got.shape == source.shape
    assert np.abs(got - want).max() <= 2.5  # 8-bit Y, Cr, Cb on the way
    assert np.abs(luma(got) - luma(styled)).max() <= 1.5
    assert np.abs(luma(got) - luma(source)).mean() > 10  # the test pair really differs in luma


def test_preserve_color_stage_toggles():
    source = np.full((4, 4, 3), (200, 40, 40), np.uint8)
    styled = np.full((4, 4, 3), (40, 40, 200), np.uint8)
    stage = PreserveColor()
    kept = stage(source, styled)
    assert kept[0, 0, 0] > kept[0, 0, 2]  # red like the source, not blue like the styled frame
    stage.enabled = False
    assert stage(source, styled) is styled


def test_build_stages_order_makes_strength_zero_exactly_the_input(rng):
    clip = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(3)]
    stages = build_stages(strength=0.0, preserve_color=True, stabilize=0.9)
    assert [type(s) for s in stages.ordered] == [Toggle, PreserveColor, StrengthBlend]
    assert isinstance(stages.stabilizer.stage, TemporalStabilizer) and stages.stabilizer.enabled
    for frame in clip:
        styled = 255 - frame
        assert np.array_equal(apply_stages(stages.ordered, frame, styled), frame)


def test_build_stages_without_a_stabilizer_and_with_one_switched_off():
    assert build_stages().stabilizer is None
    off = build_stages(stabilizer_available=True)
    assert off.stabilizer is not None and not off.stabilizer.enabled


class CountingStage:
    def __init__(self) -> None:
        self.resets = self.prepared = 0

    def prepare(self, source):
        self.prepared += 1
        return self.prepared

    def __call__(self, source, styled, prepared=None):
        return styled + np.uint8(prepared)

    def reset(self):
        self.resets += 1


def test_toggle_skips_while_off_and_resets_when_back_on():
    inner = CountingStage()
    toggle = Toggle(inner)
    frame = np.zeros((2, 2, 3), np.uint8)
    assert toggle(frame, frame, toggle.prepare(frame))[0, 0, 0] == 1
    assert inner.resets == 1  # the first frame starts a fresh history
    assert toggle(frame, frame, toggle.prepare(frame))[0, 0, 0] == 2
    assert inner.resets == 1
    toggle.enabled = False
    off = toggle(frame, frame, toggle.prepare(frame))
    assert off is frame and inner.prepared == 2  # no analysis while off
    toggle.enabled = True
    assert toggle(frame, frame, toggle.prepare(frame))[0, 0, 0] == 3
    assert inner.resets == 2  # back on: history forgotten, nothing blended across the gap
