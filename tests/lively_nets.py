"""Small random networks whose outputs span the whole value range (fresh ones return ~constant)."""

from __future__ import annotations

import torch

from realtime.core.nets import ResnetGenerator, TransformerNet
from realtime.core.nets.multistyle import MultiStyleNet, style_parameters


def lively_johnson(seed: int = 0) -> TransformerNet:
    """A small random TransformerNet whose output spans 0..255."""
    torch.manual_seed(seed)
    net = TransformerNet.from_arch("small").eval()
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(150.0)
        net.deconv3.conv2d.bias.add_(128.0)
    return net


def lively_generator(seed: int = 0) -> ResnetGenerator:
    """A tiny random CycleGAN generator whose tanh output spans most of -1..1."""
    torch.manual_seed(seed)
    net = ResnetGenerator(ngf=8, n_blocks=1).eval()
    with torch.no_grad():
        net.model[-2].weight.mul_(8.0)
    return net


def lively_multistyle(arch: str = "small", n_styles: int = 3, seed: int = 0) -> MultiStyleNet:
    """A random multi-style net whose styles differ (random norm tables) and whose output spans 0..255."""
    torch.manual_seed(seed)
    net = MultiStyleNet.from_arch(arch, n_styles).eval()
    with torch.no_grad():
        for p in style_parameters(net):
            p.add_(torch.randn_like(p) * 0.5)
        net.deconv3.conv2d.weight.mul_(150.0)
        net.deconv3.conv2d.bias.add_(128.0)
    return net
