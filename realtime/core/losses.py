"""Loss functions as plain functions on tensors.

Features are ``(B, C, H, W)``; Gram matrices ``(B, C, C)`` normalised by ``C*H*W`` so style
losses are comparable across layers and image sizes.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

# Gatys et al. (2016): content on conv4_2, style on the first ReLU of each block.
GATYS_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
GATYS_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``(B, C, C)`` of ``(B, C, H, W)`` features, divided by ``C*H*W``.

    Computed in float32 even under autocast: the sums are long and bf16 loses them.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between feature maps of the same shape."""
    return F.mse_loss(features.float(), target.float())


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Sum over layers of the squared Gram difference (mean over entries).

    ``target_grams[name]`` is ``(1, C, C)`` or ``(B, C, C)`` and broadcasts over the batch.
    """
    total = None
    for name, target in target_grams.items():
        weight = 1.0 if layer_weights is None else layer_weights.get(name, 1.0)
        g = gram(features[name])
        term = weight * ((g - target) ** 2).mean()
        total = term if total is None else total + term
    assert total is not None, "no style layers given"
    return total


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels of ``(B, C, H, W)`` (anisotropic TV)."""
    dh = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs().mean()
    dw = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().mean()
    return dh + dw


def gram_distance(features: Mapping[str, torch.Tensor], reference_grams: Mapping[str, torch.Tensor],
                  layers: Sequence[str] = GATYS_STYLE_LAYERS) -> float:
    """Quality figure: mean over ``layers`` of ``‖G(x) − G(ref)‖ / ‖G(ref)‖`` (0 = same style statistics)."""
    values = []
    for name in layers:
        g, ref = gram(features[name]), reference_grams[name]
        values.append((torch.linalg.vector_norm(g - ref) / torch.linalg.vector_norm(ref)).item())
    return sum(values) / len(values)


def feature_distance(features: torch.Tensor, reference: torch.Tensor) -> float:
    """Quality figure: ``‖F(x) − F(ref)‖ / ‖F(ref)‖`` for one layer (0 = same content)."""
    return (torch.linalg.vector_norm(features.float() - reference.float())
            / torch.linalg.vector_norm(reference.float())).item()


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017), CycleGAN's default: MSE to 1 (real) or 0 (fake)."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction.float(), target.float())


def vanilla_gan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """The original GAN loss: binary cross-entropy on logits."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.binary_cross_entropy_with_logits(prediction.float(), target.float())
