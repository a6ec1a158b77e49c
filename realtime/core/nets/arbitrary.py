"""Arbitrary-style transfer networks of Ghiasi et al. (2017), as Magenta ships them in int8 form.

Two networks (paper: "style prediction network" P and "style transfer network" T):

* :class:`StylePredictor` -- a MobileNetV2 (width 1.0, 17 inverted-residual blocks, 1280-channel
  head) followed by a global mean and a 1x1 convolution to the 100-number style vector S.
* :class:`ArbitraryTransformNet` -- the Magenta image-stylisation transformer at width 0.25:
  ``contract`` (9x9 conv to 8 channels, two stride-2 3x3 convs to 16 and 32), five ``residual``
  blocks at 32 channels, ``expand`` (two nearest-neighbour x2 upsample + 3x3 conv steps to 16 and 8
  channels, then a 9x9 conv to RGB and a sigmoid). The contract convs carry folded batch-norm
  biases; every residual and expand conv has no bias and is followed by conditional instance
  normalisation whose gamma and beta are 1x1 projections (``nn.Linear``) of S.

Details that matter for matching the published graphs:

* All spatial padding in the transformer is reflection padding by ``kernel // 2`` on each side
  before a VALID convolution (TF ``MirrorPad``). The predictor uses TF "SAME" zero padding
  (for stride 2 at even sizes: nothing before, one row/column after).
* Instance-norm statistics are per sample and channel over H and W, biased variance,
  ``eps = 1e-5``, in TF's order: ``inv = gamma / sqrt(var + eps)``,
  ``y = x * inv + (beta - mean * inv)``.
* The published networks are fully int8 (TFLite post-training quantisation converted to ONNX QDQ):
  weights per output channel (symmetric), biases int32, and **every activation** (including the
  intermediate results inside each instance norm) per tensor with a fixed scale and zero point.
  :class:`FakeQuant` modules reproduce each of those rounding points; with them enabled the
  networks match the ONNX graphs to within float summation order. ``set_activation_quant(False)``
  turns them all into identities (the float network on the dequantised weights).

Value ranges and layouts (NCHW here, where the ONNX files are NHWC):

* content / style images: RGB float in ``0..1`` (the graphs quantise their input to steps of 1/255).
* style vector S: ``(B, 100)`` float, roughly ``-2..3`` (the predictor output grid is
  ``(q + 25) * 0.019879`` for int8 ``q``).
* stylised output: ``(B, 3, H, W)`` float in ``0..255/256``; with activation quantisation on
  it takes values ``k / 256`` (``k = 0..255``), as the published graph does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

STYLE_DIM = 100
TRANSFORM_EPS = 1e-5
MIN_SIDE = 5  # the 9x9 reflection pad needs 5 rows, so does the 3x3 one at a quarter of the size
QMIN, QMAX = -128, 127


class FakeQuant(nn.Module):
    """Simulated int8 rounding of an activation: ``(clamp(round(x / scale) + zp, -128, 127) - zp) * scale``.

    ``scale`` and ``zero_point`` are buffers (so they travel in the state dict); forward uses Python
    copies of them, so the eager path needs no device sync. Rounding is half to even, as ONNX
    QuantizeLinear. On CPU ``x / scale`` is computed as ``x * (1 / scale)`` in four in-place passes
    (at most one ulp apart; about 10x faster than ``torch.fake_quantize_per_tensor_affine`` there);
    on CUDA the fused op is used, and ONNX export writes a QuantizeLinear/DequantizeLinear pair,
    as the published graph has. Infinite inputs saturate. Shape-preserving.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor

    def __init__(self, scale: float = 1.0, zero_point: int = 0) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("zero_point", torch.tensor(int(zero_point), dtype=torch.int32))
        self.enabled = True
        self._refresh()

    def configure(self, scale: float, zero_point: int) -> None:
        """Set the quantisation step and the int8 code of 0.0."""
        with torch.no_grad():
            self.scale.fill_(float(scale))
            self.zero_point.fill_(int(zero_point))
        self._refresh()

    def _refresh(self) -> None:
        self._scale = float(self.scale)
        self._low = float(QMIN - int(self.zero_point))
        self._high = float(QMAX - int(self.zero_point))

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if x.is_cuda or torch.onnx.is_in_onnx_export():  # one fused kernel / a QuantizeLinear+DequantizeLinear pair
            return torch.fake_quantize_per_tensor_affine(x, self._scale, QMAX - int(self._high), QMIN, QMAX)
        return x.mul(1.0 / self._scale).round_().clamp_(self._low, self._high).mul_(self._scale)

    def extra_repr(self) -> str:
        return f"scale={self._scale:.6g}, zero_point={QMAX - int(self._high)}, enabled={self.enabled}"


def set_activation_quant(module: nn.Module, enabled: bool) -> None:
    """Switch every :class:`FakeQuant` inside ``module`` on (match the int8 graph) or off (plain float)."""
    for m in module.modules():
        if isinstance(m, FakeQuant):
            m.enabled = bool(enabled)


# --------------------------------------------------------------------------------------------------
# Style transfer network T(c, S)
# --------------------------------------------------------------------------------------------------


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose per-channel gamma and beta are affine functions of the style vector S.

    ``forward(x, style)``: ``x`` ``(B, C, H, W)`` (already quantised conv output), ``style``
    ``(B, 100)`` or ``(1, 100)`` -> ``(B, C, H, W)`` before the activation. The quantisation points
    follow TF's ``tf.nn.moments`` + ``tf.nn.batch_normalization`` as the int8 graph evaluates them.
    """

    def __init__(self, channels: int, style_dim: int = STYLE_DIM, eps: float = TRANSFORM_EPS) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Linear(style_dim, channels)
        self.beta = nn.Linear(style_dim, channels)
        self.gamma_quant = FakeQuant()
        self.beta_quant = FakeQuant()
        self.mean_quant = FakeQuant()
        self.sq_diff_quant = FakeQuant()
        self.var_quant = FakeQuant()
        self.var_eps_quant = FakeQuant()
        self.rsqrt_quant = FakeQuant()
        self.scale_quant = FakeQuant()  # gamma / sqrt(var + eps)
        self.mean_scale_quant = FakeQuant()  # mean * scale
        self.shift_quant = FakeQuant()  # beta - mean * scale
        self.x_scale_quant = FakeQuant()  # x * scale

    def _scale_shift(
        self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float network: per-sample, per-channel ``(scale, shift)`` with ``y = x * scale + shift``."""
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = torch.clamp((x * x).mean(dim=(2, 3), keepdim=True) - mean * mean, min=0.0)
        scale = gamma * torch.rsqrt(var + self.eps)
        return scale, beta - mean * scale

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma_quant(self.gamma(style))[:, :, None, None]
        beta = self.beta_quant(self.beta(style))[:, :, None, None]
        if not self.mean_quant.enabled:  # float network: E[x^2] - E[x]^2 (torch.var_mean is ~20x slower on CPU)
            if x.dtype == torch.float32:
                scale, shift = self._scale_shift(x, gamma, beta)
                return x * scale + shift
            # in float32 for a half-precision net: E[x^2] - E[x]^2 cancels badly in float16
            scale, shift = self._scale_shift(x.float(), gamma.float(), beta.float())
            return x * scale.to(x.dtype) + shift.to(x.dtype)
        mean = self.mean_quant(x.mean(dim=(2, 3), keepdim=True))
        diff = x - mean
        var = self.var_quant(self.sq_diff_quant(diff * diff).mean(dim=(2, 3), keepdim=True))
        inv = self.rsqrt_quant(torch.reciprocal(torch.sqrt(self.var_eps_quant(var + self.eps))))  # inf saturates
        scale = self.scale_quant(inv * gamma)
        shift = self.shift_quant(beta - self.mean_scale_quant(mean * scale))
        return self.x_scale_quant(x * scale) + shift


class ContractConv(nn.Module):
    """Reflection pad ``k // 2``, conv (folded batch-norm bias), ReLU. ``(B, Cin, H, W)`` -> ``(B, Cout, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride)
        self.out_quant = FakeQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.out_quant(F.relu(self.conv(x)))


def space_to_depth_weight(weight: torch.Tensor) -> torch.Tensor:
    """Rewrite a ``(Co, Ci, k, k)`` stride-1 kernel (odd ``k``) for a 2x2 pixel-unshuffled input.

    Returns ``(4 Co, 4 Ci, m, m)`` with ``m = (k + 1) // 2`` such that
    ``pixel_shuffle(conv2d(pixel_unshuffle(x, 2), W'), 2) == conv2d(x, weight)`` for even-sized ``x``
    (channel order ``(c, row parity, column parity)`` on both sides, as torch's (un)shuffle use).
    Same products, different summation order. Output element ``(o, p, q)`` at half-grid ``(a, b)``
    takes ``weight[o, c, 2 i + r - p, 2 j + s - q]`` from input ``(c, r, s)`` at ``(a + i, b + j)``.
    """
    co, ci, k, _ = weight.shape
    m = (k + 1) // 2
    wp = F.pad(weight, (1, 1, 1, 1))  # index shift by one so that "2 i + r - p" never goes negative
    rows = torch.stack([wp[:, :, 1 - p : 1 - p + 2 * m, :] for p in (0, 1)], dim=1)  # (co, p, ci, 2m, k+2)
    cols = torch.stack([rows[..., 1 - q : 1 - q + 2 * m] for q in (0, 1)], dim=2)  # (co, p, q, ci, 2m, 2m)
    cols = cols.reshape(co, 2, 2, ci, m, 2, m, 2)  # (.., i, r, j, s)
    return cols.permute(0, 1, 2, 3, 5, 7, 4, 6).reshape(4 * co, 4 * ci, m, m)


class StyleConv(nn.Module):
    """Optional nearest x``upsample``, reflection pad ``k // 2``, bias-free conv, conditional instance norm.

    ``forward(x, style)``: ``(B, Cin, H, W)`` -> ``(B, Cout, H * upsample, W * upsample)``;
    ``activation`` is ``"relu"``, ``"sigmoid"`` or ``None`` (the residual blocks' second conv).
    ``space_to_depth``: evaluate the conv on a 2x2 pixel-unshuffled input (see
    :func:`space_to_depth_weight`) when the padded size is even -- the same arithmetic, about twice
    as fast on CPU for a wide kernel with few output channels (the final 9x9 8 -> 3 conv).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        upsample: int = 1,
        activation: str | None = "relu",
        space_to_depth: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ("relu", "sigmoid", None):
            raise ValueError(f"unknown activation {activation!r}")
        self.upsample = upsample
        self.pad = kernel_size // 2
        self.activation = activation
        self.space_to_depth = space_to_depth
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=False)
        self.conv_quant = FakeQuant()
        self.norm = ConditionalInstanceNorm(out_channels)
        self.norm_quant = FakeQuant() if activation == "sigmoid" else None  # sigmoid input is rounded too
        self.out_quant = FakeQuant()

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample, pad, convolve and round: ``(B, Cin, H, W)`` -> ``(B, Cout, H * up, W * up)``."""
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=float(self.upsample), mode="nearest")
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        if self.space_to_depth and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
            y = F.conv2d(F.pixel_unshuffle(x, 2), space_to_depth_weight(self.conv.weight))
            y = F.pixel_shuffle(y, 2)
        else:
            y = self.conv(x)
        return self.conv_quant(y)

    def normalize(self, y: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Conditional instance norm, activation and rounding of a :meth:`convolve` result."""
        y = self.norm(y, style)
        if self.activation == "relu":
            y = F.relu(y)
        elif self.activation == "sigmoid":
            y = torch.sigmoid(self.norm_quant(y))
        return self.out_quant(y)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.convolve(x), style)


class ResidualBlock(nn.Module):
    """``x + conv2(conv1(x))`` with conditional instance norm in both convs, ReLU after the first only."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = StyleConv(channels, channels, kernel_size, activation="relu")
        self.conv2 = StyleConv(channels, channels, kernel_size, activation=None)
        self.add_quant = FakeQuant()

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.add_quant(x + self.conv2(self.conv1(x, style), style))


class ArbitraryTransformNet(nn.Module):
    """Style transfer network T(c, S) of Ghiasi et al. (2017), Magenta's width-0.25 int8 release.

    ``forward(content, style)``:

    * ``content``: ``(B, 3, H, W)`` RGB float in ``0..1``; any ``H, W >= 5`` (fully convolutional;
      the published ONNX graph is fixed at 384x384). Sizes that are not multiples of 4 are handled
      as TF would (stride-2 convs round up) and the output is cropped back to ``H x W``.
    * ``style``: ``(B, 100)`` or ``(1, 100)`` (broadcast over the batch); ``(B, 1, 1, 100)`` as the
      predictor graph returns it is accepted too.

    Returns ``(B, 3, H, W)`` RGB in ``0..1`` (sigmoid output; ``k / 256`` steps while quantised).
    Instance-norm statistics are taken over the frame actually given, so a frame run at its own
    size is not identical to the same frame padded into a 384x384 square.

    ``activation_quant``: simulate the int8 graph's activation rounding (True, the converter's
    default: matches the published ONNX) or run the plain float network on the same weights (False:
    the runtime's choice, faster on every backend and exportable in half precision; its instance-norm
    statistics are taken in float32 whatever the net's dtype).
    """

    def __init__(
        self,
        widths: Sequence[int] = (8, 16, 32),
        num_residual: int = 5,
        style_dim: int = STYLE_DIM,
        activation_quant: bool = True,
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.widths, self.num_residual = tuple(int(w) for w in widths), int(num_residual)
        self.style_dim = style_dim
        self.content_quant = FakeQuant(1 / 255, -128)
        self.style_quant = FakeQuant()
        self.contract = nn.ModuleDict(
            {
                "conv1": ContractConv(3, c1, 9, 1),
                "conv2": ContractConv(c1, c2, 3, 2),
                "conv3": ContractConv(c2, c3, 3, 2),
            }
        )
        self.residual = nn.ModuleDict({f"residual{i}": ResidualBlock(c3) for i in range(1, num_residual + 1)})
        self.expand = nn.ModuleDict(
            {
                "conv1": StyleConv(c3, c2, 3, upsample=2),
                "conv2": StyleConv(c2, c1, 3, upsample=2),
                "conv3": StyleConv(c1, 3, 9, upsample=1, activation="sigmoid", space_to_depth=True),
            }
        )
        set_activation_quant(self, activation_quant)

    def arch_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (checkpoints store them); ``activation_quant`` as currently set."""
        return {
            "widths": list(self.widths),
            "num_residual": self.num_residual,
            "style_dim": self.style_dim,
            "activation_quant": self.content_quant.enabled,
        }

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if content.dim() != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be (B, 3, H, W), got {tuple(content.shape)}")
        if style.shape[-1] != self.style_dim:
            raise ValueError(f"style must end in {self.style_dim} numbers, got {tuple(style.shape)}")
        height, width = content.shape[-2:]
        if min(height, width) < MIN_SIDE:
            raise ValueError(f"content must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {height}x{width}")
        style = self.style_quant(style.reshape(-1, self.style_dim))
        x = self.content_quant(content)
        for layer in self.contract.values():
            x = layer(x)
        for block in self.residual.values():
            x = block(x, style)
        for layer in self.expand.values():
            x = layer(x, style)
        return x[:, :, :height, :width]


# --------------------------------------------------------------------------------------------------
# Style prediction network P(s)
# --------------------------------------------------------------------------------------------------


def _same_pad(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """TF "SAME" zero padding: total ``max((ceil(n / s) - 1) * s + k - n, 0)``, the odd one after."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        total = max((-(-n // stride) - 1) * stride + kernel_size - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class ConvReLU6(nn.Module):
    """Conv (folded batch norm) with TF SAME padding, then ReLU6. Depthwise when ``groups == channels``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        relu6: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.relu6 = relu6
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, groups=groups)
        self.out_quant = FakeQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size > 1:
            x = _same_pad(x, self.kernel_size, self.stride)
        y = self.conv(x)
        if self.relu6:
            y = F.relu6(y)
        return self.out_quant(y)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand + ReLU6], 3x3 depthwise + ReLU6, 1x1 linear project, [+ input]."""

    def __init__(self, in_channels: int, expanded: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.expand = ConvReLU6(in_channels, expanded) if expanded != in_channels else None
        self.depthwise = ConvReLU6(expanded, expanded, 3, stride, groups=expanded)
        self.project = ConvReLU6(expanded, out_channels, relu6=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.add_quant = FakeQuant() if self.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x) if self.expand is not None else x))
        return self.add_quant(x + y) if self.add_quant is not None else y


# (expansion t, output channels, repeats, first stride) of MobileNetV2 (Sandler et al. 2018), width 1.0
MOBILENET_V2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class StylePredictor(nn.Module):
    """Style prediction network P(s): MobileNetV2 features, global mean, 1x1 conv to the style vector S.

    ``forward(style_image)``: ``(B, 3, H, W)`` RGB float in ``0..1`` (trained and published at
    256x256; the peer centre-crops a square and resizes it with Lanczos) -> ``(B, 100)`` float.
    The published graph feeds the ``0..1`` image (rounded to steps of 1/255) straight into the
    first conv; there is no separate normalisation step. ``(B, 100)`` values lie on the graph's
    output grid ``(q + 25) * 0.019879`` while activation quantisation is on.
    """

    def __init__(
        self,
        stem: int = 32,
        head: int = 1280,
        style_dim: int = STYLE_DIM,
        blocks: Sequence[tuple[int, int, int, int]] = MOBILENET_V2,
    ) -> None:
        super().__init__()
        self.image_quant = FakeQuant(1 / 255, -128)
        self.stem = ConvReLU6(3, stem, 3, 2)
        layers = []
        channels = stem
        for t, out, repeats, first_stride in blocks:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, channels * t, out, first_stride if i == 0 else 1))
                channels = out
        self.blocks = nn.Sequential(*layers)
        self.head = ConvReLU6(channels, head)
        self.pool_quant = FakeQuant()
        self.bottleneck = nn.Linear(head, style_dim)
        self.style_quant = FakeQuant()

    def forward(self, style_image: torch.Tensor) -> torch.Tensor:
        if style_image.dim() != 4 or style_image.shape[1] != 3:
            raise ValueError(f"style_image must be (B, 3, H, W), got {tuple(style_image.shape)}")
        x = self.head(self.blocks(self.stem(self.image_quant(style_image))))
        pooled = self.pool_quant(x.mean(dim=(2, 3)))
        return self.style_quant(self.bottleneck(pooled))
