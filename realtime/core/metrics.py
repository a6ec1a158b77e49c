"""Quality figures for stylised images, measured on the Caffe VGG19.

* style distance: mean over ``relu1_1 … relu5_1`` of ``‖G(x) − G(style)‖ / ‖G(style)‖``
  (lower = closer to the style's texture statistics);
* content distance: ``‖F(x) − F(content)‖ / ‖F(content)‖`` at ``relu4_2``
  (lower = more of the content kept).

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


def to_batch(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 0..255."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().to(device)


@dataclass(frozen=True)
class StyleScore:
    style_distance: float  # of the stylised image to the style
    content_style_distance: float  # of the unstylised content photo to the style (the baseline)
    content_distance: float  # of the stylised image to the content photo

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

    @torch.no_grad()
    def style_distance(self, rgb: np.ndarray) -> float:
        feats = self.vgg(to_batch(rgb, self.device), GATYS_STYLE_LAYERS)
        return gram_distance(feats, self.style_grams)

    @torch.no_grad()
    def score(self, output_rgb: np.ndarray, content_rgb: np.ndarray) -> StyleScore:
        layers = GATYS_STYLE_LAYERS + GATYS_CONTENT_LAYERS
        out = self.vgg(to_batch(output_rgb, self.device), layers)
        ref = self.vgg(to_batch(content_rgb, self.device), layers)
        return StyleScore(
            style_distance=gram_distance(out, self.style_grams),
            content_style_distance=gram_distance(ref, self.style_grams),
            content_distance=feature_distance(out[GATYS_CONTENT_LAYERS[0]], ref[GATYS_CONTENT_LAYERS[0]]),
        )
