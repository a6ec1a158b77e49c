"""The Johnson et al. perceptual loss: content and style terms on VGG19 features, plus total variation.

Each term is normalised so the weights do not depend on the VGG's activation scale: content is
the squared error over the target's mean square, each style layer's squared Gram error over the
style Gram's mean square (averaged over layers). Images are ``(B, 3, H, W)`` RGB 0..255.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from realtime.core.losses import gram, total_variation
from realtime.core.nets.vgg import VGG19Features

if TYPE_CHECKING:
    from train.johnson import JohnsonConfig


class PerceptualLoss:
    """Content + style + TV loss of a batch of outputs against its inputs and one style image.

    ``style_grams`` are computed once from the style image; all images are RGB 0..255.
    """

    def __init__(self, vgg: VGG19Features, style_rgb: torch.Tensor, config: "JohnsonConfig") -> None:
        self.vgg, self.config = vgg, config
        self.layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
        with torch.no_grad():
            feats = vgg(style_rgb, config.style_layers)
            self.style_grams = {k: gram(v) for k, v in feats.items()}
        self.style_norm = {k: g.pow(2).mean() for k, g in self.style_grams.items()}

    def __call__(self, inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        with torch.no_grad():
            targets = self.vgg(inputs, cfg.content_layers)
        feats = self.vgg(outputs, self.layers)
        content = sum(((feats[k].float() - targets[k].float()) ** 2).mean() / targets[k].float().pow(2).mean()
                      for k in cfg.content_layers)
        style = sum(((gram(feats[k]) - self.style_grams[k]) ** 2).mean() / self.style_norm[k]
                    for k in cfg.style_layers) / len(cfg.style_layers)
        tv = total_variation(outputs.float()) / 255.0 if cfg.tv_weight else outputs.new_zeros(())
        total = cfg.content_weight * content + cfg.style_weight * style + cfg.tv_weight * tv
        return {"loss": total, "content": content, "style": style, "tv": tv}
