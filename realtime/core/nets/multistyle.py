"""One transform net for many styles: conditional instance normalisation (Dumoulin, Shlens & Kudlur 2017).

Every instance norm of the Johnson et al. (2016) transform net becomes a
:class:`ConditionalInstanceNorm2d` whose scale and shift are looked up per style (the paper's
``N x 2 x C`` table); convolutions are shared by all styles. A style is chosen, or several are
blended, by a weight vector over the ``N`` styles.

Layout and names follow :class:`realtime.core.nets.transformer.TransformerNet` (``conv1.conv2d``,
``in1``, ``res1.conv1.conv2d`` ... ``deconv3.conv2d``); the ``johnson`` preset has exactly its
parameter names, with every norm parameter ``(C,)`` widened to ``(N, C)``, so a trained
single-style net initialises it (:func:`from_single_style`). The variant knobs
(``channels``, ``up_channels``, kernels, separable residual blocks, sub-pixel upsampling, zero
padding) give the slim CPU presets in :data:`ARCHS`; ``bench/multistyle_arch.py`` measures them.

Input and output: ``(B, 3, H, W)`` float RGB in 0..255 (output not clamped); H and W
multiples of 4 keep the down- and up-sampling exact. Style weights: ``(N,)`` (one blend for
the whole batch) or ``(B, N)`` (one per image; what the exported files take). Either way every
conditional norm is one ``F.instance_norm`` call with the blended scale and shift, so an ONNX
export has one ``InstanceNormalization`` per norm (no per-image ``Mul``/``Add`` over the activations).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PADDINGS = ("reflect", "zeros")
RESIDUALS = ("conv", "separable")
UPSAMPLES = ("resize", "shuffle")

ARCHS: dict[str, dict[str, Any]] = {
    # The paper's network (Johnson widths, 5 residual blocks, 9x9 stem and output), every norm conditional.
    "johnson": {},
    # The CPU preset chosen by bench/multistyle_arch.py (640x360 on ORT CPU about 0.8x the time of the
    # peer's 26-style net): half width (16/32/64), 5 depthwise-separable residual blocks, 8 decoder
    # channels at full resolution, a 3x3 output conv (a 9x9 conv with 3 output channels is ORT's
    # slowest layer: NCHWc pads the 3 outputs to a block of 16), resize-convolution upsampling
    # (sub-pixel "shuffle" is ~10% faster but trained a visible 2-pixel grid in a side-by-side run).
    "small": {
        "channels": (16, 32, 64),
        "up_channels": (32, 8),
        "num_residual": 5,
        "residual": "separable",
        "out_kernel": 3,
    },
}


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose scale and shift are blended per image from a table of ``n_styles`` rows.

    ``weight`` and ``bias`` are ``(n_styles, C)`` (initialised to 1 and 0, as
    ``nn.InstanceNorm2d(affine=True)``). ``forward(x, style_weights)`` normalises ``x``
    ``(B, C, H, W)`` over H and W (eps ``1e-5``, biased variance) and applies
    ``gamma = style_weights @ weight`` and ``beta = style_weights @ bias``.

    The weights are used as given, not normalised: a one-hot vector selects a style, a convex
    combination is the paper's blend, and the caller may also scale or extrapolate (weights
    summing to other than 1). Normalising here would hide a caller's mistake, make zero-sum
    vectors undefined, and add graph nodes; :class:`realtime.core.styles.NamedStyles` builds
    convex blends from names.

    Per-image weights ``(B, N)`` normalise ``x`` viewed as ``(1, B*C, H, W)`` with the ``(B*C,)``
    scales and shifts (what ``F.instance_norm`` does inside anyway), so the export stays one
    ``InstanceNormalization`` node. In a half-precision net the statistics are computed in float32:
    Johnson nets see 0..255 inputs and early variances pass float16's range.
    """

    def __init__(self, channels: int, n_styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        if channels < 1 or n_styles < 1:
            raise ValueError("channels and n_styles must be positive")
        self.channels, self.n_styles, self.eps = int(channels), int(n_styles), float(eps)
        self.weight = nn.Parameter(torch.ones(n_styles, channels))
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, H, W)``, ``style_weights`` ``(N,)`` or ``(B, N)`` -> ``(B, C, H, W)``."""
        if style_weights.shape[-1] != self.n_styles or style_weights.dim() not in (1, 2):
            raise ValueError(
                f"style weights of shape {tuple(style_weights.shape)}; expected "
                f"({self.n_styles},) or (batch, {self.n_styles})"
            )
        gamma, beta = style_weights @ self.weight, style_weights @ self.bias
        reduced = x.dtype != torch.float32 or gamma.dtype != torch.float32  # half precision or autocast
        y = x.float() if reduced else x
        if reduced:  # casts only here: a float32 export has no no-op Cast nodes
            gamma, beta = gamma.float(), beta.float()
        if style_weights.dim() == 1:  # one blend for the batch
            y = F.instance_norm(y, weight=gamma, bias=beta, eps=self.eps)
        else:  # one blend per image: the B*C channels of one sample
            b, c, h, w = y.shape
            y = F.instance_norm(
                y.reshape(1, b * c, h, w), weight=gamma.reshape(-1), bias=beta.reshape(-1), eps=self.eps
            ).reshape(b, c, h, w)
        return y.to(x.dtype) if reduced else y

    def extra_repr(self) -> str:
        return f"{self.channels}, n_styles={self.n_styles}, eps={self.eps}"


class ConvLayer(nn.Module):
    """A convolution that keeps the size at stride 1 (halves it at stride 2); reflection or zero padding.

    With ``separable`` it is a depthwise ``kernel_size`` convolution (``depthwise``) followed by a
    1x1 convolution (``conv2d``), about ``kernel_size**2`` times fewer multiply-adds.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: str = "reflect",
        separable: bool = False,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.reflection_pad = nn.ReflectionPad2d(pad) if padding == "reflect" else None
        inner = 0 if padding == "reflect" else pad
        if separable:
            self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride, inner, groups=in_channels)
            self.conv2d = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.depthwise = None
            self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reflection_pad is not None:
            x = self.reflection_pad(x)
        if self.depthwise is not None:
            x = self.depthwise(x)
        return self.conv2d(x)


class UpsampleLayer(nn.Module):
    """Doubles height and width: ``resize`` (nearest x2 then a convolution, as TransformerNet) or
    ``shuffle`` (a convolution to ``4 * out_channels`` at the low resolution, then pixel shuffle;
    the same multiply-adds without materialising the upsampled input, initialised to behave like
    ``resize`` of a convolution (ICNR, Aitken et al. 2017) so it starts free of checkerboards)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, mode: str = "resize", padding: str = "reflect"
    ) -> None:
        super().__init__()
        self.mode = mode
        pad = kernel_size // 2
        self.reflection_pad = nn.ReflectionPad2d(pad) if padding == "reflect" else None
        inner = 0 if padding == "reflect" else pad
        factor = 4 if mode == "shuffle" else 1
        self.conv2d = nn.Conv2d(in_channels, out_channels * factor, kernel_size, 1, inner)
        if mode == "shuffle":
            with torch.no_grad():  # ICNR: the four sub-pixel filters of each output channel start equal
                w = self.conv2d.weight.view(out_channels, 4, in_channels, kernel_size, kernel_size)
                w.copy_(w[:, :1].expand_as(w))
                b = self.conv2d.bias.view(out_channels, 4)
                b.copy_(b[:, :1].expand_as(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "resize":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.reflection_pad is not None:
            x = self.reflection_pad(x)
        x = self.conv2d(x)
        return F.pixel_shuffle(x, 2) if self.mode == "shuffle" else x


class ResidualBlock(nn.Module):
    """conv-CIN-ReLU-conv-CIN plus identity; the convolutions optionally depthwise-separable."""

    def __init__(self, channels: int, n_styles: int, padding: str = "reflect", separable: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1, padding, separable)
        self.in1 = ConditionalInstanceNorm2d(channels, n_styles)
        self.conv2 = ConvLayer(channels, channels, 3, 1, padding, separable)
        self.in2 = ConditionalInstanceNorm2d(channels, n_styles)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.in1(self.conv1(x), style_weights))
        return x + self.in2(self.conv2(out), style_weights)


class MultiStyleNet(nn.Module):
    """The Johnson transform net with every instance norm conditional on the style (N styles, one set of convs).

    Stem ``stem_kernel`` conv to ``channels[0]``, two stride-2 convs to ``channels[1]`` and
    ``channels[2]``, ``num_residual`` residual blocks at a quarter of the resolution, two x2
    upsampling convs to ``up_channels`` (default ``channels[1], channels[0]``, the Johnson mirror)
    and an ``out_kernel`` conv to RGB. Each conv but the last is followed by a conditional
    instance norm and ReLU. Knobs: ``residual`` (``conv`` or ``separable``), ``upsample``
    (``resize`` or ``shuffle``), ``padding`` (``reflect`` or ``zeros``).

    ``forward(x, style_weights)``: ``x`` ``(B, 3, H, W)`` RGB 0..255 and ``style_weights``
    ``(N,)`` or ``(B, N)`` -> ``(B, 3, H, W)`` RGB, roughly 0..255 (unclamped).
    """

    def __init__(
        self,
        n_styles: int,
        channels: tuple[int, int, int] = (32, 64, 128),
        num_residual: int = 5,
        up_channels: tuple[int, int] | None = None,
        stem_kernel: int = 9,
        out_kernel: int = 9,
        residual: str = "conv",
        upsample: str = "resize",
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        up = tuple(int(c) for c in (up_channels or (channels[1], channels[0])))
        if n_styles < 1 or num_residual < 0 or len(channels) != 3 or len(up) != 2 or min(channels + up) < 1:
            raise ValueError(
                "n_styles and channel counts must be positive, num_residual non-negative, "
                "channels three numbers and up_channels two"
            )
        if stem_kernel % 2 == 0 or out_kernel % 2 == 0:
            raise ValueError("stem and output kernels must be odd")
        for value, allowed, what in (
            (residual, RESIDUALS, "residual"),
            (upsample, UPSAMPLES, "upsample"),
            (padding, PADDINGS, "padding"),
        ):
            if value not in allowed:
                raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")
        self.n_styles, self.num_residual = int(n_styles), int(num_residual)
        self._kwargs: dict[str, Any] = {
            "channels": channels,
            "num_residual": self.num_residual,
            "up_channels": up,
            "stem_kernel": int(stem_kernel),
            "out_kernel": int(out_kernel),
            "residual": residual,
            "upsample": upsample,
            "padding": padding,
        }
        c1, c2, c3 = channels
        n = self.n_styles
        self.conv1 = ConvLayer(3, c1, stem_kernel, 1, padding)
        self.in1 = ConditionalInstanceNorm2d(c1, n)
        self.conv2 = ConvLayer(c1, c2, 3, 2, padding)
        self.in2 = ConditionalInstanceNorm2d(c2, n)
        self.conv3 = ConvLayer(c2, c3, 3, 2, padding)
        self.in3 = ConditionalInstanceNorm2d(c3, n)
        for i in range(1, self.num_residual + 1):  # res1..resN as in TransformerNet
            self.add_module(f"res{i}", ResidualBlock(c3, n, padding, residual == "separable"))
        self.deconv1 = UpsampleLayer(c3, up[0], 3, upsample, padding)
        self.in4 = ConditionalInstanceNorm2d(up[0], n)
        self.deconv2 = UpsampleLayer(up[0], up[1], 3, upsample, padding)
        self.in5 = ConditionalInstanceNorm2d(up[1], n)
        self.deconv3 = ConvLayer(up[1], 3, out_kernel, 1, padding)

    @classmethod
    def from_arch(cls, arch: str, n_styles: int) -> MultiStyleNet:
        """A named preset of :data:`ARCHS` (``johnson`` or ``small``) for ``n_styles`` styles."""
        if arch not in ARCHS:
            raise ValueError(f"unknown multi-style architecture {arch!r}; known: {', '.join(ARCHS)}")
        return cls(n_styles, **ARCHS[arch])

    def arch_kwargs(self) -> dict[str, Any]:
        """All constructor arguments (``n_styles`` included), stored in checkpoints so loading needs nothing else."""
        return {
            "n_styles": self.n_styles,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self._kwargs.items()},
        }

    def norms(self) -> list[ConditionalInstanceNorm2d]:
        """The conditional norms, in forward order (their tables are the only per-style parameters)."""
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB 0..255 and ``(N,)`` or ``(B, N)`` weights -> ``(B, 3, H, W)`` RGB (unclamped)."""
        s = style_weights if style_weights.dtype == x.dtype else style_weights.to(x.dtype)
        y = F.relu(self.in1(self.conv1(x), s))
        y = F.relu(self.in2(self.conv2(y), s))
        y = F.relu(self.in3(self.conv3(y), s))
        for i in range(1, self.num_residual + 1):
            y = getattr(self, f"res{i}")(y, s)
        y = F.relu(self.in4(self.deconv1(y), s))
        y = F.relu(self.in5(self.deconv2(y), s))
        return self.deconv3(y)


def from_single_style(net: nn.Module, n_styles: int) -> MultiStyleNet:
    """A ``johnson``-layout MultiStyleNet initialised from a trained single-style TransformerNet.

    Convolutions are copied; every style's norm row starts as the single net's affine
    parameters, so each style initially reproduces ``net``. ``net`` needs the pytorch/examples
    names (``conv1.conv2d``, ``in1`` ...); its width and block count are kept.
    """
    state = net.state_dict()
    c1 = state["conv1.conv2d.weight"].shape[0]
    c2, c3 = state["conv2.conv2d.weight"].shape[0], state["conv3.conv2d.weight"].shape[0]
    blocks = len({k.split(".")[0] for k in state if k.startswith("res")})
    multi = MultiStyleNet(
        n_styles,
        channels=(c1, c2, c3),
        num_residual=blocks,
        stem_kernel=state["conv1.conv2d.weight"].shape[-1],
        out_kernel=state["deconv3.conv2d.weight"].shape[-1],
    )
    target = multi.state_dict()
    missing = [k for k in target if k not in state]
    if missing:
        raise ValueError(
            f"the single-style net lacks {len(missing)} parameters of the johnson layout, e.g. {missing[0]!r}"
        )
    new_state = {
        k: state[k].expand_as(v).clone() if v.dim() == 2 and state[k].dim() == 1 else state[k]
        for k, v in target.items()
    }
    multi.load_state_dict(new_state)
    return multi


def add_styles(net: MultiStyleNet, k: int, init_from: int | None = None) -> MultiStyleNet:
    """A copy of ``net`` with ``k`` more styles; the old styles keep their parameters bit for bit.

    The new rows of every norm table start as the mean of the old styles (or as style
    ``init_from``). The paper's fast path then trains only the new rows: train with one-hot
    weights on the new styles and pass only :func:`style_parameters` to the optimiser
    (rows of other styles get zero gradient from one-hot weights; see :func:`freeze_rows`).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if init_from is not None and not 0 <= init_from < net.n_styles:
        raise ValueError(f"init_from must be in 0..{net.n_styles - 1}")
    kwargs = net.arch_kwargs()
    kwargs["n_styles"] = net.n_styles + k
    bigger = MultiStyleNet(**kwargs).to(next(net.parameters()).device)
    new_state = {}
    for key, value in net.state_dict().items():
        if key.endswith((".weight", ".bias")) and _is_norm_param(net, key):
            seed = value.mean(0, keepdim=True) if init_from is None else value[init_from : init_from + 1]
            value = torch.cat([value, seed.expand(k, -1)], 0)
        new_state[key] = value.clone()
    bigger.load_state_dict(new_state)
    return bigger


def _is_norm_param(net: nn.Module, key: str) -> bool:
    return isinstance(net.get_submodule(key.rsplit(".", 1)[0]), ConditionalInstanceNorm2d)


def style_parameters(net: MultiStyleNet) -> list[nn.Parameter]:
    """The per-style tables (every norm's ``weight`` and ``bias``, ``(N, C)`` each)."""
    return [p for m in net.norms() for p in (m.weight, m.bias)]


def freeze_rows(net: MultiStyleNet, styles: range | list[int]) -> list[torch.utils.hooks.RemovableHandle]:
    """Zero the gradient of the given styles' rows in every norm table (e.g. the old styles when training
    blends of new and old); returns the hook handles (``handle.remove()`` undoes it)."""
    rows = torch.tensor(list(styles), dtype=torch.long)

    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[rows.to(grad.device)] = 0
        return grad

    return [p.register_hook(hook) for p in style_parameters(net)]
