"""realtime.core.frames: value mapping, channel order, padding/cropping, fixed sizes, and the torch twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realtime.core.contract import IOContract, cyclegan_contract, johnson_contract
from realtime.core.errors import UserError
from realtime.core.frames import (
    Crop,
    check_frames,
    from_model_output,
    from_model_tensor,
    parse_input_range,
    pixel_mapping,
    plan,
    size_groups,
    to_model_input,
    to_model_tensor,
)

CONTRACTS = {
    "johnson": johnson_contract(name="j"),
    "cyclegan": cyclegan_contract(name="c"),
    "bgr": johnson_contract(name="b", channel_order="BGR"),
    "nhwc": cyclegan_contract(name="n", layout="NHWC"),
}


def frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_pixel_mapping_states_both_ranges():
    assert pixel_mapping(johnson_contract()) == (1.0, 0.0)
    scale, offset = pixel_mapping(cyclegan_contract())
    assert offset == -1.0 and scale == pytest.approx(2 / 255)


def test_johnson_input_is_pixels_padded_by_reflection(rng):
    f = frame(rng, 30, 45)
    x, crop = to_model_input([f], CONTRACTS["johnson"])
    assert x.dtype == np.float32 and x.shape == (1, 3, 32, 48)
    assert crop == Crop(30, 45, 32, 48) and (crop.pad_bottom, crop.pad_right) == (2, 3)
    np.testing.assert_array_equal(x[0, :, :30, :45], f.transpose(2, 0, 1).astype(np.float32))
    # reflection about the last row/column (row 30 mirrors row 28, column 45 mirrors column 43)
    np.testing.assert_array_equal(x[0, :, 30, :45], x[0, :, 28, :45])
    np.testing.assert_array_equal(x[0, :, :30, 45], x[0, :, :30, 43])


def test_cyclegan_range_and_bgr_order(rng):
    f = np.zeros((16, 16, 3), np.uint8)
    f[..., 0] = 255  # pure red
    x, _ = to_model_input([f], CONTRACTS["cyclegan"])
    assert x[0, 0].min() == pytest.approx(1.0) and x[0, 1].max() == pytest.approx(-1.0)
    x, _ = to_model_input([f], CONTRACTS["bgr"])
    assert x[0, 2].min() == 255 and x[0, 0].max() == 0  # red lands in the last channel


@pytest.mark.parametrize("name", sorted(CONTRACTS))
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (33, 47), (64, 48)])
def test_identity_roundtrip_is_exact(rng, name, size):
    contract = CONTRACTS[name]
    frames = [frame(rng, *size) for _ in range(2)]
    x, crop = to_model_input(frames, contract)
    hw = x.shape[1:3] if contract.layout == "NHWC" else x.shape[2:]
    assert all(s % 4 == 0 and s >= 16 for s in hw)
    out = from_model_output(x, contract, crop)
    for a, b in zip(out, frames):
        assert a.dtype == np.uint8 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_output_is_clamped_and_rounded():
    contract = CONTRACTS["johnson"]
    y = np.array([-10.0, 300.0, 127.4, 127.6], np.float32).reshape(1, 1, 2, 2).repeat(3, axis=1)
    (out,) = from_model_output(y, contract, Crop(2, 2, 2, 2))
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [127, 128]])
    y = np.full((1, 3, 2, 2), 2.0, np.float32)  # above the -1..1 range
    (out,) = from_model_output(y, CONTRACTS["cyclegan"], Crop(2, 2, 2, 2))
    assert (out == 255).all()


def test_fixed_size_resizes_in_and_back(rng):
    contract = johnson_contract(fixed_size=(224, 224))
    f = np.full((50, 70, 3), 90, np.uint8)
    f[:, 35:] = 200
    x, crop = to_model_input([f, f], contract)
    assert x.shape == (2, 3, 224, 224) and crop.resized and crop.pad_bottom == 0
    out = from_model_output(x, contract, crop)
    assert out[0].shape == (50, 70, 3)
    assert np.abs(out[0].astype(int) - f).mean() < 3  # only the two resizes differ


def test_plan_respects_size_multiple_and_minimum():
    assert plan(100, 7, IOContract(size_multiple=8)) == Crop(100, 7, 104, 16)
    assert plan(16, 17, IOContract(size_multiple=1)) == Crop(16, 17, 16, 17)


@pytest.mark.parametrize("name", ["johnson", "cyclegan", "bgr"])
@pytest.mark.parametrize("size", [(2, 3), (37, 53)])
def test_torch_twin_matches_numpy(rng, name, size):
    contract = CONTRACTS[name]
    frames = [frame(rng, *size) for _ in range(3)]
    x_np, crop_np = to_model_input(frames, contract)
    x_t, crop_t = to_model_tensor(torch.from_numpy(np.stack(frames)), contract)
    assert crop_np == crop_t
    np.testing.assert_allclose(x_t.numpy(), x_np, rtol=0, atol=1e-6)
    lo, hi = contract.value_range
    y = rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), x_np.shape).astype(np.float32)
    out_np = from_model_output(y, contract, crop_np)
    out_t = from_model_tensor(torch.from_numpy(y), contract, crop_t).numpy()
    for a, b in zip(out_np, out_t):
        np.testing.assert_array_equal(a, b)


def test_torch_twin_keeps_dtype_and_memory_format(rng):
    batch = torch.from_numpy(np.stack([frame(rng, 20, 24)]))
    x, _ = to_model_tensor(batch, CONTRACTS["cyclegan"], torch.float64, torch.channels_last)
    assert x.dtype == torch.float64 and x.is_contiguous(memory_format=torch.channels_last)


def test_bad_frames_raise_one_line(rng):
    with pytest.raises(UserError, match="uint8"):
        check_frames([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(UserError, match=r"\(H, W, 3\)"):
        to_model_input([np.zeros((8, 8), np.uint8)], CONTRACTS["johnson"])
    with pytest.raises(UserError, match="empty"):
        check_frames([np.zeros((0, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="share a size"):
        to_model_input([frame(rng, 8, 8), frame(rng, 8, 9)], CONTRACTS["johnson"])
    with pytest.raises(UserError, match="channel order"):
        to_model_input([frame(rng, 8, 8)], johnson_contract(channel_order="YUV"))


def test_parse_input_range():
    assert parse_input_range("0-255") == (0.0, 255.0)
    assert parse_input_range("-1-1") == (-1.0, 1.0)
    assert parse_input_range("-1..1") == (-1.0, 1.0)
    with pytest.raises(UserError, match="input_range must be one of"):
        parse_input_range("0-2")


def test_size_groups_keep_first_seen_order(rng):
    frames = [frame(rng, 8, 8), frame(rng, 9, 8), frame(rng, 8, 8), frame(rng, 9, 8), frame(rng, 4, 4)]
    assert size_groups(frames) == [[0, 2], [1, 3], [4]]
