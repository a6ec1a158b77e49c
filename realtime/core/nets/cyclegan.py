"""CycleGAN networks (Zhu et al. 2017), laid out as the authors' pytorch-CycleGAN-and-pix2pix.

:class:`ResnetGenerator` keeps the authors' ``nn.Sequential`` indices (``model.1.weight`` …
``model.26.bias`` for 9 blocks), so their published generators load unchanged.
:class:`PatchDiscriminator` is the 70x70 PatchGAN. Both use InstanceNorm without affine
parameters or running statistics. Images are ``(B, 3, H, W)`` RGB in -1..1.
"""

from __future__ import annotations

import torch
from torch import nn


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convs with InstanceNorm, plus the identity."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            _instance_norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            _instance_norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """7x7 stem, two stride-2 convs, ``n_blocks`` residual blocks, two transposed convs, 7x7 out, tanh.

    ``ngf`` 64 and 9 blocks is the paper's 256 px generator; 6 blocks its 128 px one.
    Input ``(B, 3, H, W)`` in -1..1 with H, W multiples of 4; output the same shape in -1..1.
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        if n_blocks < 0 or ngf < 1:
            raise ValueError("n_blocks must be >= 0 and ngf >= 1")
        self.ngf, self.n_blocks = int(ngf), int(n_blocks)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=True),
            _instance_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):  # downsample: ngf -> 2 ngf -> 4 ngf
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                _instance_norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):  # upsample: 4 ngf -> 2 ngf -> ngf
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                _instance_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def arch_kwargs(self) -> dict[str, int]:
        return {
            "ngf": self.ngf,
            "n_blocks": self.n_blocks,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in -1..1 -> ``(B, 3, H, W)`` in -1..1."""
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: ``(B, 3, H, W)`` in -1..1 -> ``(B, 1, H/8 - 2, W/8 - 2)`` real/fake scores."""

    def __init__(self, ndf: int = 64, n_layers: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        self.ndf, self.n_layers, self.in_channels = int(ndf), int(n_layers), int(in_channels)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=True),
                _instance_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=True),
            _instance_norm(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def arch_kwargs(self) -> dict[str, int]:
        return {"ndf": self.ndf, "n_layers": self.n_layers, "in_channels": self.in_channels}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
