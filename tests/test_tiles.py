"""Tiled inference: overlapping tiles with the whole frame's instance-norm statistics give the whole-frame result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lively_nets import lively_generator, lively_johnson

from realtime.backends.torch_backend import TorchStylizer
from realtime.core.contract import cyclegan_contract, johnson_contract
from realtime.core.errors import InvalidValue
from realtime.core.frames import from_model_tensor, to_model_tensor
from realtime.core.memory import format_bytes, parse_bytes, whole_frame_bytes
from realtime.core.onnx_weights import NotRebuildable, torch_model_from_onnx
from realtime.core.tiles import tile_core, tiled_forward, tiled_frame
from realtime.model_still import stylize_image

REPO_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def picture(height: int = 128, width: int = 160) -> np.ndarray:
    """Smooth gradients plus blocks: regions of different statistics, so per-tile normalisation shows."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=2).astype(np.uint8)
    img[: height // 2, : width // 3] = (250, 240, 30)
    img[height // 2 :, width // 2 :] //= 4
    return img


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.mark.parametrize(
    "make, contract", [(lively_johnson, johnson_contract()), (lively_generator, cyclegan_contract())]
)
def test_tiles_with_whole_frame_statistics_match_one_piece(make, contract, one_torch_thread):
    net = make()
    frame = picture()
    x, crop = to_model_tensor(torch.from_numpy(frame)[None], contract)
    with torch.inference_mode():
        whole = from_model_tensor(net(x), contract, crop)[0].numpy()
        tiled = from_model_tensor(tiled_forward(net, x, core=48, margin=48), contract, crop)[0].numpy()
    diff = levels(whole, tiled)
    assert diff.max() <= 2 and diff.mean() < 0.05, (diff.max(), diff.mean())
    stylizer = TorchStylizer(net, contract)  # the same tiles, each normalised on its own: seams
    naive = levels(whole, tiled_frame(frame, stylizer, core=48, margin=48))
    assert naive.max() > 20 and naive.mean() > 10 * max(diff.mean(), 0.01)


def test_stylize_image_tiles_above_the_budget(one_torch_thread):
    stylizer = TorchStylizer(lively_johnson(), johnson_contract())
    frame = picture(130, 170)  # not a multiple of 4: padded, tiled, cropped back
    whole = stylize_image(frame, "lively", stylizer=stylizer, max_memory=whole_frame_bytes(130, 170))
    seen = []
    tiled = stylize_image(frame, "lively", stylizer=stylizer, max_memory=4 << 20, progress=lambda *p: seen.append(p))
    assert tiled.shape == whole.shape == frame.shape
    assert levels(whole, tiled).max() <= 2
    assert seen and seen[-1][0] == seen[-1][1] and len(seen) == seen[-1][1]  # every tile of every pass reported


def test_shipped_onnx_file_tiles_like_one_piece(one_torch_thread):
    """weights/mosaic_small.onnx: whole on ONNX Runtime; in tiles rebuilt in PyTorch with whole-frame statistics."""
    from realtime.backends.loader import load_stylizer

    stylizer = load_stylizer(REPO_WEIGHTS / "mosaic_small.onnx", device="cpu")
    frame = picture(96, 136)
    whole = stylizer(frame)
    tiled = stylize_image(frame, "mosaic_small", stylizer=stylizer, max_memory=2 << 20)
    assert levels(whole, tiled).max() <= 2


def test_foreign_onnx_files_are_not_rebuilt(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(NotRebuildable):
        torch_model_from_onnx(junk)


def test_budget_sizes():
    assert parse_bytes("4G") == 4 << 30 and parse_bytes("512m") == 512 << 20 and parse_bytes("1.5GB") == 3 << 29
    for bad in ("lots", "10M", "-1G"):
        with pytest.raises(InvalidValue, match="max_memory"):
            parse_bytes(bad)
    assert format_bytes(11.4 * (1 << 30)) == "11.4 GB" and format_bytes(3 << 20) == "3.0 MB"
    assert tile_core(6 << 30) > 2000 and tile_core(1) == 64  # a 6 GB budget: tiles of about 2400 px
