"""Adversarial losses for CycleGAN's discriminators and generators (scores of any shape)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017), CycleGAN's default: MSE to 1 (real) or 0 (fake)."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction.float(), target.float())


def vanilla_gan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """The original GAN loss: binary cross-entropy on logits."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.binary_cross_entropy_with_logits(prediction.float(), target.float())
