"""Johnson et al. (2016) image transform net, laid out as pytorch/examples ``fast_neural_style``.

Module names and shapes match that code (``conv1.conv2d``, ``in1``, ``res1.conv1.conv2d``
… ``deconv3.conv2d``), so its published checkpoints load unchanged. ``width`` scales
every channel count and ``num_residual`` sets the number of residual blocks, which gives
the slim CPU-real-time variant (``TransformerNet.small()``) from the same code.

Input and output: ``(B, 3, H, W)`` float RGB in 0..255 (output not clamped); H and W
multiples of 4 keep the down- and up-sampling exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = {
    # name: (width multiplier, residual blocks)
    "johnson": (1.0, 5),
    "small": (0.5, 3),
}


class ConvLayer(nn.Module):
    """Reflection-padded convolution (keeps the size at stride 1; halves it at stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus identity (He et al. 2016, as used by Johnson et al.)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(out))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then convolution (avoids transposed-conv checkerboards)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, upsample: int | None = None
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=float(self.upsample), mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    """The Johnson transform net: 9x9 stem, two stride-2 convs, residual blocks, two upsampling convs, 9x9 out."""

    def __init__(self, width: float = 1.0, num_residual: int = 5) -> None:
        super().__init__()
        if width <= 0 or num_residual < 0:
            raise ValueError("width must be positive and num_residual non-negative")
        self.width = float(width)
        self.num_residual = int(num_residual)
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        self.conv1 = ConvLayer(3, c1, kernel_size=9, stride=1)
        self.in1 = nn.InstanceNorm2d(c1, affine=True)
        self.conv2 = ConvLayer(c1, c2, kernel_size=3, stride=2)
        self.in2 = nn.InstanceNorm2d(c2, affine=True)
        self.conv3 = ConvLayer(c2, c3, kernel_size=3, stride=2)
        self.in3 = nn.InstanceNorm2d(c3, affine=True)
        for i in range(1, num_residual + 1):  # named res1..resN as in pytorch/examples
            self.add_module(f"res{i}", ResidualBlock(c3))
        self.deconv1 = UpsampleConvLayer(c3, c2, kernel_size=3, stride=1, upsample=2)
        self.in4 = nn.InstanceNorm2d(c2, affine=True)
        self.deconv2 = UpsampleConvLayer(c2, c1, kernel_size=3, stride=1, upsample=2)
        self.in5 = nn.InstanceNorm2d(c1, affine=True)
        self.deconv3 = ConvLayer(c1, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    @classmethod
    def from_arch(cls, arch: str) -> TransformerNet:
        """Build a named architecture: ``johnson`` (the paper's) or ``small`` (half width, 3 blocks)."""
        width, blocks = ARCHS[arch]
        return cls(width=width, num_residual=blocks)

    def arch_kwargs(self) -> dict[str, float | int]:
        """The constructor arguments, stored in checkpoints so loading needs nothing else."""
        return {"width": self.width, "num_residual": self.num_residual}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB 0..255 -> ``(B, 3, H, W)`` RGB, roughly 0..255 (unclamped)."""
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        for i in range(1, self.num_residual + 1):
            y = getattr(self, f"res{i}")(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)
