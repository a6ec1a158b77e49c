"""Quality figures for stylised images, measured on the Caffe VGG19.

* style distance: mean over ``relu1_1 … relu5_1`` of ``‖G(x) − G(style)‖ / ‖G(style)‖``
  (lower = closer to the style's texture statistics);
* content distance: ``‖F(x) − F(content)‖ / ‖F(content)‖`` at ``relu4_2``
  (lower = more of the content kept);
* colour ratio: the Fréchet distance between the CIE Lab colour statistics (mean and covariance
  of all pixels) of the output and of the style image, divided by the same distance for the
  content photo: 1 = the photo's own colours, near 0 = the painting's palette (:func:`colour_ratio`).

Images are RGB ``uint8`` ``(H, W, 3)``; each is measured at its own size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from realtime.core.losses import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, gram
from realtime.core.nets.vgg import VGG19Features


def gram_distance(
    features: Mapping[str, torch.Tensor],
    reference_grams: Mapping[str, torch.Tensor],
    layers: Sequence[str] = GATYS_STYLE_LAYERS,
) -> float:
    """Mean over ``layers`` of ``‖G(x) − G(ref)‖ / ‖G(ref)‖`` (0 = the same style statistics)."""
    values = []
    for name in layers:
        g, ref = gram(features[name]), reference_grams[name]
        values.append((torch.linalg.vector_norm(g - ref) / torch.linalg.vector_norm(ref)).item())
    return sum(values) / len(values)


def feature_distance(features: torch.Tensor, reference: torch.Tensor) -> float:
    """``‖F(x) − F(ref)‖ / ‖F(ref)‖`` for one layer (0 = the same content)."""
    return (
        torch.linalg.vector_norm(features.float() - reference.float()) / torch.linalg.vector_norm(reference.float())
    ).item()


# sRGB (IEC 61966-2-1) to CIE XYZ, D65 white; Lab relative to that white (CIE 1976).
_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_D65_WHITE = _SRGB_TO_XYZ.sum(axis=1)  # XYZ of RGB (1, 1, 1): (0.9505, 1.0000, 1.0890)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``(..., 3)`` uint8 -> CIE L*a*b* ``(..., 3)`` float64 (L 0..100; D65 white; white -> (100, 0, 0))."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _SRGB_TO_XYZ.T) / _D65_WHITE
    eps = (6 / 29) ** 3
    f = np.where(t > eps, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_statistics(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(3,)`` and covariance ``(3, 3)`` of all pixels of an RGB ``(H, W, 3)`` uint8 image in CIE Lab."""
    lab = rgb_to_lab(rgb).reshape(-1, 3)
    return lab.mean(axis=0), np.cov(lab, rowvar=False, bias=True)


def frechet_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Fréchet (2-Wasserstein) distance between Gaussians given as ``(mean, covariance)``, in their units.

    ``sqrt(|m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2))``, the square root of what FID reports.
    """

    def sqrt_psd(m: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh((m + m.T) / 2)
        return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T

    (mean_a, cov_a), (mean_b, cov_b) = a, b
    root_a = sqrt_psd(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    squared = float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(squared, 0.0) ** 0.5


def colour_ratio(output_rgb: np.ndarray, style_rgb: np.ndarray, content_rgb: np.ndarray) -> float:
    """How far the output's colours are from the style's, relative to the photo's: 1 = the photo's, 0 = the style's.

    ``frechet_distance(Lab(output), Lab(style)) / frechet_distance(Lab(content), Lab(style))``.
    """
    style = lab_statistics(style_rgb)
    return frechet_distance(lab_statistics(output_rgb), style) / max(
        frechet_distance(lab_statistics(content_rgb), style), 1e-12
    )


def to_batch(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 0..255."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float().to(device)


@dataclass(frozen=True)
class StyleScore:
    style_distance: float  # of the stylised image to the style
    content_style_distance: float  # of the unstylised content photo to the style (the baseline)
    content_distance: float  # of the stylised image to the content photo
    colour_ratio: float = float("nan")  # Lab Fréchet distance to the style's colours, relative to the photo's

    @property
    def style_ratio(self) -> float:
        """Stylised style distance relative to the content photo's own (below 1 = closer to the style)."""
        return self.style_distance / self.content_style_distance


class StyleMeter:
    """Measures stylised images against one style image; the style's Gram matrices are computed once."""

    def __init__(
        self, style_rgb: np.ndarray, vgg: VGG19Features | None = None, device: torch.device | str = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.vgg = (vgg or VGG19Features.caffe()).to(self.device)
        with torch.no_grad():
            feats = self.vgg(to_batch(style_rgb, self.device), GATYS_STYLE_LAYERS)
        self.style_grams = {k: gram(v) for k, v in feats.items()}
        self.style_colours = lab_statistics(style_rgb)

    @torch.no_grad()
    def style_distance(self, rgb: np.ndarray) -> float:
        feats = self.vgg(to_batch(rgb, self.device), GATYS_STYLE_LAYERS)
        return gram_distance(feats, self.style_grams)

    @torch.no_grad()
    def score(self, output_rgb: np.ndarray, content_rgb: np.ndarray) -> StyleScore:
        layers = GATYS_STYLE_LAYERS + GATYS_CONTENT_LAYERS
        out = self.vgg(to_batch(output_rgb, self.device), layers)
        ref = self.vgg(to_batch(content_rgb, self.device), layers)
        colours = frechet_distance(lab_statistics(output_rgb), self.style_colours) / max(
            frechet_distance(lab_statistics(content_rgb), self.style_colours), 1e-12
        )
        return StyleScore(
            style_distance=gram_distance(out, self.style_grams),
            content_style_distance=gram_distance(ref, self.style_grams),
            content_distance=feature_distance(out[GATYS_CONTENT_LAYERS[0]], ref[GATYS_CONTENT_LAYERS[0]]),
            colour_ratio=colours,
        )
