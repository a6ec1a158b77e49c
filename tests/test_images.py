"""read_image turns every kind of still into RGB uint8 (H, W, 3); bad files give UserError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from realtime.core.errors import UserError
from realtime.core.images import read_image, resize_longer_side, write_image


def check_rgb(rgb: np.ndarray, shape: tuple[int, int]) -> None:
    assert rgb.dtype == np.uint8 and rgb.shape == (*shape, 3) and rgb.flags["C_CONTIGUOUS"]


def test_rgb_png_round_trips_exactly(tmp_path, rng):
    rgb = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", rgb)
    got = read_image(tmp_path / "a.png")
    check_rgb(got, (12, 20))
    assert np.array_equal(got, rgb)


def test_grayscale_becomes_three_equal_channels(tmp_path, rng):
    grey = rng.integers(0, 256, (10, 14), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    got = read_image(tmp_path / "g.png")
    check_rgb(got, (10, 14))
    for c in range(3):
        assert np.array_equal(got[..., c], grey)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (200, 10, 20, 255)  # opaque: its own colour
    rgba[0, 1] = (200, 10, 20, 0)  # transparent: white
    rgba[0, 2] = (0, 0, 0, 128)  # half black over white: about mid grey
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = read_image(tmp_path / "a.png")
    check_rgb(got, (2, 3))
    assert tuple(got[0, 0]) == (200, 10, 20)
    assert tuple(got[0, 1]) == (255, 255, 255)
    assert np.all(np.abs(got[0, 2].astype(int) - 127) <= 1)


def test_palette_image_uses_its_palette(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    img.save(tmp_path / "p.png")
    got = read_image(tmp_path / "p.png")
    check_rgb(got, (2, 4))
    assert tuple(got[0, 0]) == (255, 0, 0) and tuple(got[0, 1]) == (0, 0, 255)


def test_palette_transparency_becomes_white(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    img.putdata([0, 1])
    img.save(tmp_path / "t.png", transparency=0)
    got = read_image(tmp_path / "t.png")
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[0, 1]) == (40, 50, 60)


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")  # mode I;16
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    got = read_image(tmp_path / "d.png")
    check_rgb(got, (1, 4))
    assert list(got[0, :, 0]) == [0, 1, 128, 255]
    assert np.array_equal(got[..., 0], got[..., 2])


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    img = Image.new("CMYK", (16, 8), (0, 0, 0, 0))  # no ink: white
    img.paste((255, 0, 0, 0), (0, 0, 8, 8))  # cyan on the left
    img.save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    got = read_image(tmp_path / "c.jpg").astype(int)
    check_rgb(got.astype(np.uint8), (8, 16))
    assert np.all(np.abs(got[4, 12] - (255, 255, 255)) <= 8)
    assert np.all(np.abs(got[4, 2] - (0, 255, 255)) <= 8)


@pytest.mark.parametrize("orientation, red_at", [(1, "left"), (3, "right"), (6, "top"), (8, "bottom")])
def test_exif_orientation_is_applied(tmp_path, orientation, red_at):
    rgb = np.full((20, 40, 3), 255, np.uint8)
    rgb[:, :20] = (255, 0, 0)  # left half red as stored
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    got = read_image(tmp_path / "r.jpg").astype(int)
    rotated = orientation in (6, 8)
    check_rgb(got.astype(np.uint8), (40, 20) if rotated else (20, 40))
    h, w = got.shape[:2]
    probe = {"left": got[h // 2, 3], "right": got[h // 2, w - 4], "top": got[3, w // 2], "bottom": got[h - 4, w // 2]}[
        red_at
    ]
    assert probe[0] > 200 and probe[1] < 60 and probe[2] < 60, (orientation, probe)


def test_max_side_resizes_keeping_the_aspect(tmp_path):
    Image.new("RGB", (100, 50), (1, 2, 3)).save(tmp_path / "big.png")
    got = read_image(tmp_path / "big.png", max_side=40)
    check_rgb(got, (20, 40))
    assert resize_longer_side(np.zeros((10, 30, 3), np.uint8), 60).shape == (20, 60, 3)
    with pytest.raises(UserError):
        resize_longer_side(got, 0)


def test_bad_files_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(UserError, match="folder"):
        read_image(tmp_path)
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    with pytest.raises(UserError, match="not an image"):
        read_image(tmp_path / "notes.jpg")
    Image.new("RGB", (64, 64), (9, 9, 9)).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError):
        read_image(tmp_path / "cut.jpg")


def test_write_image_refuses_unknown_types_and_leaves_no_temp_files(tmp_path):
    with pytest.raises(UserError, match="unsupported"):
        write_image(tmp_path / "x.tiff", np.zeros((2, 2, 3), np.uint8))
    write_image(tmp_path / "sub" / "x.jpg", np.zeros((4, 4, 3), np.uint8))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.jpg"]
