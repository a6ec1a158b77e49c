"""The colour-fidelity figure, by hand: CIE Lab conversion, Fréchet distance, the ratio on synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.core.metrics import colour_ratio, frechet_distance, lab_statistics, rgb_to_lab


def flat(rgb: tuple[int, int, int], h: int = 8, w: int = 8) -> np.ndarray:
    return np.full((h, w, 3), rgb, dtype=np.uint8)


def test_lab_of_reference_colours():
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255], [119, 119, 119]], np.uint8))
    expected = [(100, 0, 0), (0, 0, 0), (53.24, 80.09, 67.20), (32.30, 79.19, -107.86), (50.03, 0, 0)]
    np.testing.assert_allclose(lab, expected, atol=0.02)


def test_frechet_distance_by_hand():
    # point masses: the distance between the two colours
    red, blue = lab_statistics(flat((255, 0, 0))), lab_statistics(flat((0, 0, 255)))
    assert frechet_distance(red, blue) == pytest.approx(
        np.linalg.norm(rgb_to_lab(np.array([255, 0, 0], np.uint8)) - rgb_to_lab(np.array([0, 0, 255], np.uint8)))
    )
    # equal means, axis-aligned covariances: sqrt(sum (sigma_a - sigma_b)^2)
    a = (np.zeros(3), np.diag([4.0, 9.0, 1.0]))
    b = (np.zeros(3), np.diag([1.0, 1.0, 1.0]))
    assert frechet_distance(a, b) == pytest.approx(np.sqrt((2 - 1) ** 2 + (3 - 1) ** 2))
    # both at once, and symmetric
    c = (np.array([3.0, 4.0, 0.0]), np.diag([1.0, 1.0, 1.0]))
    assert frechet_distance(b, c) == pytest.approx(5.0) and frechet_distance(c, a) == pytest.approx(
        frechet_distance(a, c)
    )
    # a rotated covariance is as far as the unrotated one (the distance does not depend on the axes)
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    turned = (np.zeros(3), rotation @ a[1] @ rotation.T)
    assert frechet_distance(turned, (np.zeros(3), rotation @ b[1] @ rotation.T)) == pytest.approx(
        frechet_distance(a, b)
    )


def test_colour_ratio_is_one_for_the_photos_colours_and_zero_for_the_paintings(rng):
    photo = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) // 4 + 40  # dark and dull
    painting = np.concatenate([flat((230, 40, 30), 16, 24), flat((20, 60, 200), 16, 24)])  # red and blue halves
    assert colour_ratio(photo, painting, photo) == pytest.approx(1.0)
    assert colour_ratio(painting, painting, photo) == pytest.approx(0.0, abs=1e-6)
    # the painting's pixels rearranged, at another size: the same statistics, still ~0
    shuffled = rng.permutation(np.repeat(painting.reshape(-1, 3), 2, axis=0)).reshape(32, 48, 3)
    assert colour_ratio(shuffled, painting, photo) == pytest.approx(0.0, abs=1e-6)
    # half-way between the photo and the painting (pixel for pixel): in between
    half = ((photo.astype(int) + shuffled) // 2).astype(np.uint8)
    assert 0.2 < colour_ratio(half, painting, photo) < 0.8
    # a grey output is far from both
    assert colour_ratio(flat((128, 128, 128), 32, 48), painting, photo) > 0.5
