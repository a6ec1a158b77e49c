"""The one perceptual loss (content + Gram style + total variation), shared by Gatys and every trainer.

All terms are scale-free: each is divided by its own target's mean square, so the same weights
work for any image, size, layer and encoder scale::

    content = sum_l  mean((F_l(x) - F_l(c))^2) / mean(F_l(c)^2)            over content layers
    style   = sum_l  w_l * mean((G_l(x) - G*_l)^2) / mean(G*_l^2) / sum_l w_l   over style layers
    tv      = TV(x / 255)                                                  (mean |neighbour step|)
    loss    = content_weight * content + style_weight * style + tv_weight * tv

``F_l`` are encoder features ``(B, C, H, W)``; ``G_l`` their Gram matrices ``(B, C, C)`` divided
by ``C*H*W`` (:func:`gram`); images are RGB 0..255 ``(B, 3, H, W)``. A layer's style term is the
square of the relative Gram distance that :func:`realtime.core.metrics.gram_distance` reports.

:class:`StyleTargets` holds ``S`` styles' Gram matrices, computed once (a blend of several images
is one style); :class:`PerceptualLoss` scores outputs against per-sample content targets and a
style index per sample, so one loss serves Gatys (one image, one blended style), the Johnson
trainer (a batch, one style) and the multi-style trainer (a batch, one style per sample).
The encoder is anything called as ``encoder(images, layers) -> {layer: features}``
(:class:`realtime.core.nets.vgg.VGG19Features`, or a tiny stand-in in tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from realtime.core.errors import InvalidValue

Encoder = Callable[[torch.Tensor, Sequence[str]], Mapping[str, torch.Tensor]]

# Gatys et al. (2016): content on relu4_2, style on the first ReLU of each block.
GATYS_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
GATYS_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# Johnson et al. (2016): content on relu2_2 keeps edges and layout, leaves colour and texture free.
JOHNSON_CONTENT_LAYERS: tuple[str, ...] = ("relu2_2",)
# Style-layer weights that take the painting's palette: relu1_1, whose Gram matrix holds the colour
# statistics, counts four times as much as each deeper layer (layers left out weigh 1). Gatys at
# 160 px, 60 steps, amber + chicago: colour ratio 0.35 -> 0.24 (mosaic) and 0.27 -> 0.20 (starry night)
# at the same Gram distance, content distance 0.87 -> 0.79 and 0.81 -> 0.73 (realtime.core.metrics).
# Gatys uses it by default. A Johnson net fine-tuned for 300 images on a CPU did not show it (colour
# 0.50 equal, 0.56 with it, mosaic_small at 128 px): trainers pass it only when asked to.
PALETTE_LAYER_WEIGHTS: dict[str, float] = {"relu1_1": 4.0}
_EPS = 1e-12


def parse_layer_weights(text: str, layers: Sequence[str]) -> dict[str, float]:
    """``"relu1_1=4,relu3_1=0.5"`` -> ``{"relu1_1": 4.0, "relu3_1": 0.5}`` (``"equal"`` or ``""``: ``{}``).

    Every name must be one of ``layers``, every weight a number >= 0; layers not named weigh 1.
    Raises :class:`realtime.core.errors.InvalidValue` (setting ``style_layer_weights``).
    """
    if text.strip() in ("", "equal"):
        return {}
    weights = {}
    for part in text.split(","):
        name, eq, value = (x.strip() for x in part.partition("="))
        try:
            weight = float(value) if eq else math.nan
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise InvalidValue("style_layer_weights", f"look like relu1_1=4,relu2_1=1 (weights >= 0), got {text!r}")
        if name not in layers:
            raise InvalidValue("style_layer_weights", f"names {name!r}, not a style layer ({', '.join(layers)})")
        weights[name] = weight
    if not any(weights.get(name, 1.0) for name in layers):
        raise InvalidValue("style_layer_weights", "are all 0; nothing would be matched")
    return weights


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``(B, C, C)`` of ``(B, C, H, W)`` features, divided by ``C*H*W``.

    Computed in float32 even under autocast: the sums are long and bf16 loses them.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels of ``(B, C, H, W)`` (anisotropic TV), a scalar."""
    dh = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs().mean()
    dw = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().mean()
    return dh + dw


def content_term(
    features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor], layers: Sequence[str]
) -> torch.Tensor:
    """``sum_l mean((F_l - T_l)^2) / mean(T_l^2)``: 0 at the target, 1 for all-zero features."""
    total = features[layers[0]].new_zeros((), dtype=torch.float32)
    for name in layers:
        target = targets[name].float()
        total = total + (features[name].float() - target).pow(2).mean() / target.pow(2).mean().clamp_min(_EPS)
    return total


def style_term(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    target_norms: Mapping[str, torch.Tensor],
    layers: Sequence[str],
    layer_weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Weighted mean over ``layers`` of ``mean((G_l - G*_l)^2) / norm_l``.

    ``target_grams[l]`` is ``(B, C, C)`` or ``(1, C, C)`` (broadcast over the batch) and
    ``target_norms[l]`` the matching ``(B,)`` or ``(1,)`` mean squares of the targets.
    ``layer_weights`` default to 1 each; the result is divided by their sum.
    """
    weights = {name: 1.0 if layer_weights is None else float(layer_weights.get(name, 1.0)) for name in layers}
    total = features[layers[0]].new_zeros((), dtype=torch.float32)
    for name in layers:
        if weights[name] == 0.0:
            continue
        per_sample = (gram(features[name]) - target_grams[name]).pow(2).mean(dim=(1, 2)) / target_norms[name]
        total = total + weights[name] * per_sample.mean()
    return total / sum(weights.values())


@dataclass(frozen=True)
class LossWeights:
    """The weights of the three terms (the defaults suit any style: the terms are scale-free)."""

    content: float = 1.0
    style: float = 10.0
    tv: float = 0.0


@dataclass
class StyleTargets:
    """Gram matrices of ``S`` styles on the style layers, each with its mean square.

    ``grams[layer]`` is ``(S, C, C)`` float32 and ``norms[layer]`` ``(S,)``; ``names`` labels the styles.
    """

    grams: dict[str, torch.Tensor]
    norms: dict[str, torch.Tensor]
    names: list[str] = field(default_factory=list)

    @classmethod
    @torch.no_grad()
    def from_images(
        cls,
        encoder: Encoder,
        images: Sequence[torch.Tensor],
        layers: Sequence[str],
        names: Sequence[str] | None = None,
    ) -> StyleTargets:
        """One style per image; each image is ``(1, 3, h, w)`` RGB 0..255 on the encoder's device."""
        grams: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        for image in images:
            feats = encoder(image, layers)
            for name in layers:
                grams[name].append(gram(feats[name])[0])
        stacked = {name: torch.stack(g) for name, g in grams.items()}
        return cls.from_grams(stacked, list(names) if names is not None else [str(i) for i in range(len(images))])

    @classmethod
    @torch.no_grad()
    def blended(
        cls, encoder: Encoder, images: Sequence[torch.Tensor], weights: Sequence[float], layers: Sequence[str]
    ) -> StyleTargets:
        """One style: the ``weights``-weighted mean of the images' Gram matrices (Gatys's style mixing)."""
        total = float(sum(weights))
        each = cls.from_images(encoder, images, layers)
        mix = torch.tensor([w / total for w in weights], dtype=torch.float32)
        grams = {name: (g * mix.to(g.device).view(-1, 1, 1)).sum(0, keepdim=True) for name, g in each.grams.items()}
        return cls.from_grams(grams, ["blend"])

    @classmethod
    def from_grams(cls, grams: Mapping[str, torch.Tensor], names: Sequence[str]) -> StyleTargets:
        norms = {name: g.pow(2).mean(dim=(1, 2)).clamp_min(_EPS) for name, g in grams.items()}
        return cls(dict(grams), norms, list(names))

    @property
    def count(self) -> int:
        return len(self.names)

    def select(self, style_index: torch.Tensor | int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The targets for a batch: ``style_index`` an int (all samples) or ``(B,)`` long, one per sample."""
        if isinstance(style_index, int):
            index = slice(style_index, style_index + 1)
            return ({k: g[index] for k, g in self.grams.items()}, {k: n[index] for k, n in self.norms.items()})
        return (
            {k: g.index_select(0, style_index.to(g.device)) for k, g in self.grams.items()},
            {k: n.index_select(0, style_index.to(n.device)) for k, n in self.norms.items()},
        )

    def to(self, device: torch.device | str) -> StyleTargets:
        return StyleTargets(
            {k: g.to(device) for k, g in self.grams.items()},
            {k: n.to(device) for k, n in self.norms.items()},
            list(self.names),
        )


class PerceptualLoss:
    """Content + style + TV loss of outputs against content targets and style targets.

    ``encoder`` is frozen and shared; ``content_layers``/``style_layers`` name its outputs;
    ``layer_weights`` weight the style layers (default equal). Images are RGB 0..255.
    """

    def __init__(
        self,
        encoder: Encoder,
        style: StyleTargets,
        content_layers: Sequence[str] = GATYS_CONTENT_LAYERS,
        style_layers: Sequence[str] = GATYS_STYLE_LAYERS,
        weights: LossWeights = LossWeights(),
        layer_weights: Mapping[str, float] | None = None,
    ) -> None:
        if not content_layers and weights.content:
            raise ValueError("a content weight needs at least one content layer")
        if not style_layers and weights.style:
            raise ValueError("a style weight needs at least one style layer")
        self.encoder, self.style, self.weights = encoder, style, weights
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.layer_weights = dict(layer_weights) if layer_weights else None
        self.layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))

    @torch.no_grad()
    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder features of the content images ``(B, 3, H, W)``, detached."""
        if not self.content_layers:
            return {}
        return dict(self.encoder(content, self.content_layers))

    def __call__(
        self, output: torch.Tensor, content_targets: Mapping[str, torch.Tensor], style_index: torch.Tensor | int = 0
    ) -> dict[str, torch.Tensor]:
        """``{"loss", "content", "style", "tv"}`` scalars for ``output`` ``(B, 3, H, W)`` RGB 0..255."""
        w = self.weights
        layers = tuple(
            name for name in self.layers if (name in self.content_layers and w.content) or name in self.style_layers
        )
        feats = self.encoder(output, layers) if layers else {}
        zero = output.new_zeros((), dtype=torch.float32)
        content = content_term(feats, content_targets, self.content_layers) if w.content else zero
        if w.style:
            grams, norms = self.style.select(style_index)
            style = style_term(feats, grams, norms, self.style_layers, self.layer_weights)
        else:
            style = zero
        tv = total_variation(output.float() / 255.0) if w.tv else zero
        total = w.content * content + w.style * style + w.tv * tv
        return {"loss": total, "content": content, "style": style, "tv": tv}
