"""realtime.stages.flow: DIS flow, warping, reliability masks (small generated images, CPU)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.stages.flow import (
    DisFlow,
    motion_boundary_mask,
    occlusion_mask,
    pixel_grid,
    resize_flow,
    to_grey,
    unreliable_mask,
    warp,
)


def texture(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (uint8) with detail at a few scales: good for optical flow."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for cell, amp in ((3, 40), (9, 60), (27, 60)):
        small = rng.random((h // cell + 2, w // cell + 2, 3), np.float32)
        out += (
            amp
            * cv2.resize(small, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)[
                cell : cell + h, cell : cell + w
            ]
        )
    return np.clip(out, 0, 255).astype(np.uint8)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``out(x) = image(x - (dx, dy))``: the content moves by ``(dx, dy)``."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("preset", ["ultrafast", "medium"])
def test_known_shift_is_recovered(preset: str) -> None:
    a = texture()
    b = shifted(a, 3.0, -2.0)
    flow = DisFlow(preset)(to_grey(a), to_grey(b))  # a(x) ≈ b(x + flow)
    assert flow.shape == (120, 160, 2) and flow.dtype == np.float32
    inner = flow[15:-15, 15:-15].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [3.0, -2.0], atol=0.25)


def test_warping_by_the_recovered_flow_aligns_the_frames() -> None:
    a = texture()
    b = shifted(a, -4.0, 2.5)
    flow = DisFlow("medium")(to_grey(a), to_grey(b))
    aligned = warp(b, flow)
    inner = (slice(12, -12), slice(12, -12))
    before = np.abs(b[inner].astype(float) - a[inner]).mean()
    after = np.abs(aligned[inner].astype(float) - a[inner]).mean()
    assert after < 2.0 < before / 4


def test_warp_by_integer_flow_is_an_exact_shift() -> None:
    a = texture(64, 80)
    flow = np.zeros((64, 80, 2), np.float32)
    np.testing.assert_array_equal(warp(a, flow), a)
    flow[..., 0], flow[..., 1] = 3.0, -2.0
    out = warp(a, flow)  # out(x, y) = a(x + 3, y - 2)
    np.testing.assert_array_equal(out[2:, :-3], a[:-2, 3:])
    grey = warp(to_grey(a), flow)
    assert grey.shape == (64, 80) and grey.dtype == np.uint8


def test_consistent_flows_have_no_occlusion_inside_the_frame() -> None:
    fwd = np.zeros((40, 50, 2), np.float32)
    fwd[..., 0] = 2.0
    bwd = -fwd
    occ = occlusion_mask(fwd, bwd)
    assert not occ[:, :-2].any()  # consistent
    assert occ[:, -2:].all()  # these flow out of the frame
    assert not motion_boundary_mask(fwd).any()
    bad = bwd.copy()
    bad[10:20, 10:20] = 3.0  # the backward flow does not undo the forward one here
    assert unreliable_mask(fwd, bad)[10:20, 8:18].all()


def test_motion_boundary_marks_a_flow_discontinuity() -> None:
    flow = np.zeros((30, 40, 2), np.float32)
    flow[:, 20:, 0] = 5.0
    mb = motion_boundary_mask(flow)
    assert mb[:, 19].all() and mb.sum() == 30


def test_resize_flow_rescales_the_vectors() -> None:
    flow = np.zeros((30, 40, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.5, -0.5
    big = resize_flow(flow, (60, 80))
    assert big.shape == (60, 80, 2)
    np.testing.assert_allclose(big[..., 0], 3.0)
    np.testing.assert_allclose(big[..., 1], -1.0)
    assert resize_flow(flow, (30, 40)) is flow


def test_to_grey_and_bad_input() -> None:
    a = texture(64, 96)
    assert to_grey(a).shape == (64, 96)
    assert to_grey(a, 0.5).shape == (32, 48)
    assert to_grey(to_grey(a)).shape == (64, 96)
    with pytest.raises(ValueError):
        to_grey(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        DisFlow("slowest")
    with pytest.raises(ValueError):
        DisFlow()(to_grey(a), to_grey(a)[:32])
    grid = pixel_grid(3, 4)
    assert grid[2, 3].tolist() == [3.0, 2.0] and not grid.flags.writeable
