"""MultiStyleNet: conditional instance norm blends per-style parameters, new styles leave old ones alone,
the johnson preset loads a single-style TransformerNet, and the ONNX export matches PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lively_nets import lively_multistyle

from realtime.core.nets import TransformerNet
from realtime.core.nets.multistyle import (
    ARCHS,
    ConditionalInstanceNorm2d,
    MultiStyleNet,
    UpsampleLayer,
    add_styles,
    freeze_rows,
    from_single_style,
    style_parameters,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def one_style_copy(net: MultiStyleNet, rows: torch.Tensor) -> MultiStyleNet:
    """A 1-style net with ``net``'s convs whose norm rows are ``rows @ table`` (the expected blend)."""
    single = MultiStyleNet(**{**net.arch_kwargs(), "n_styles": 1}).eval()
    state = {k: (rows @ v)[None] if v.dim() == 2 else v for k, v in net.state_dict().items()}
    single.load_state_dict(state)
    return single


def levels(y: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(y)), 0, 255).astype(int)


def test_shapes_for_presets_and_weight_layouts() -> None:
    x = torch.rand(2, 3, 32, 40) * 255
    for arch in ARCHS:
        net = MultiStyleNet.from_arch(arch, 4).eval()
        with torch.no_grad():
            assert net(x, torch.eye(4)[1]).shape == x.shape
            assert net(x, torch.eye(4)[[0, 2]]).shape == x.shape
    with pytest.raises(ValueError, match=r"expected \(4,\) or \(batch, 4\)"):
        net(x, torch.ones(3))
    with pytest.raises(ValueError, match="unknown multi-style architecture"):
        MultiStyleNet.from_arch("huge", 2)
    small = MultiStyleNet.from_arch("small", 4)
    johnson = MultiStyleNet.from_arch("johnson", 4)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in johnson.parameters()) / 5


def test_arch_kwargs_rebuild_the_same_net() -> None:
    net = lively_multistyle()
    kwargs = net.arch_kwargs()
    assert kwargs["n_styles"] == 3 and kwargs["residual"] == "separable"
    json.dumps(kwargs)  # plain data, storable in a weights_only checkpoint
    rebuilt = MultiStyleNet(**kwargs)
    rebuilt.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 24, 32) * 255
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x, torch.eye(3)[2]), net(x, torch.eye(3)[2]))


def test_conditional_norm_blend_is_the_hand_computed_mean_of_parameters() -> None:
    torch.manual_seed(1)
    norm = ConditionalInstanceNorm2d(5, n_styles=2)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(2, 5))
        norm.bias.copy_(torch.randn(2, 5))
    x = torch.randn(2, 5, 6, 7) * 3 + 1
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    normalised = (x - mean) / torch.sqrt(var + 1e-5)
    gamma = (norm.weight[0] + norm.weight[1]) / 2
    beta = (norm.bias[0] + norm.bias[1]) / 2
    expected = normalised * gamma[None, :, None, None] + beta[None, :, None, None]
    with torch.no_grad():
        torch.testing.assert_close(norm(x, torch.tensor([0.5, 0.5])), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(norm(x, torch.tensor([[0.5, 0.5]] * 2)), expected, rtol=1e-5, atol=1e-5)
        one = normalised * norm.weight[1][None, :, None, None] + norm.bias[1][None, :, None, None]
        torch.testing.assert_close(norm(x, torch.tensor([0.0, 1.0])), one, rtol=1e-5, atol=1e-5)


def test_one_hot_selects_a_style_and_half_half_uses_mean_parameters() -> None:
    net = lively_multistyle(n_styles=2)
    x = torch.rand(1, 3, 32, 36) * 255
    with torch.no_grad():
        style0 = net(x, torch.tensor([1.0, 0.0]))
        style1 = net(x, torch.tensor([0.0, 1.0]))
        half = net(x, torch.tensor([0.5, 0.5]))
        torch.testing.assert_close(style0, one_style_copy(net, torch.tensor([1.0, 0.0]))(x, torch.ones(1)))
        torch.testing.assert_close(half, one_style_copy(net, torch.tensor([0.5, 0.5]))(x, torch.ones(1)))
    # the styles differ, and the blend is not simply the mean of the two images
    assert (style0 - style1).abs().mean() > 5
    assert (half - (style0 + style1) / 2).abs().mean() > 0.5


def test_per_image_weights_equal_separate_runs() -> None:
    net = lively_multistyle(n_styles=3)
    x = torch.rand(2, 3, 24, 28) * 255
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    with torch.no_grad():
        batched = net(x, weights)
        for i in range(2):
            torch.testing.assert_close(batched[i : i + 1], net(x[i : i + 1], weights[i]), rtol=1e-4, atol=1e-3)


def test_add_styles_keeps_old_styles_bit_identical() -> None:
    net = lively_multistyle(n_styles=2)
    bigger = add_styles(net, 3).eval()
    assert bigger.n_styles == 5
    x = torch.rand(1, 3, 28, 32) * 255
    with torch.no_grad():
        for i in range(2):
            assert torch.equal(bigger(x, torch.eye(5)[i]), net(x, torch.eye(2)[i]))
    for old, new in zip(style_parameters(net), style_parameters(bigger)):
        assert torch.equal(new[:2], old)
        assert torch.equal(new[2], old.mean(0)) and torch.equal(new[4], old.mean(0))
    copied = add_styles(net, 1, init_from=1)
    assert all(torch.equal(new[2], old[1]) for old, new in zip(style_parameters(net), style_parameters(copied)))


def test_freeze_rows_zeroes_old_styles_gradients() -> None:
    net = add_styles(lively_multistyle(n_styles=2), 1).train()
    handles = freeze_rows(net, range(2))
    net(torch.rand(1, 3, 16, 16) * 255, torch.tensor([0.3, 0.3, 0.4])).mean().backward()
    for p in style_parameters(net):
        assert p.grad[:2].abs().max() == 0 and p.grad[2].abs().max() > 0
    for h in handles:
        h.remove()


def test_subpixel_upsampling_starts_as_nearest_resize_of_a_conv() -> None:
    torch.manual_seed(3)
    layer = UpsampleLayer(6, 4, mode="shuffle")
    x = torch.randn(2, 6, 5, 7)
    conv = layer.conv2d
    with torch.no_grad():
        y = layer(x)
        expected = F.interpolate(
            F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), conv.weight[::4], conv.bias[::4]),
            scale_factor=2.0,
            mode="nearest",
        )
    assert y.shape == (2, 4, 10, 14)
    torch.testing.assert_close(y, expected)
    assert conv.weight.shape == (16, 6, 3, 3)  # four sub-pixel filters per output channel, trained apart


@pytest.mark.parametrize("arch", ["johnson", "small"])
def test_johnson_preset_loads_single_style_weights(arch: str) -> None:
    torch.manual_seed(2)
    single = TransformerNet.from_arch(arch).eval()
    with torch.no_grad():
        for p in single.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
    multi = from_single_style(single, 3).eval()
    assert multi.arch_kwargs()["channels"] == [
        single.conv1.conv2d.out_channels,
        single.conv2.conv2d.out_channels,
        single.conv3.conv2d.out_channels,
    ]
    if arch == "johnson":
        assert multi.arch_kwargs() == MultiStyleNet.from_arch("johnson", 3).arch_kwargs()
    x = torch.rand(1, 3, 32, 36) * 255
    with torch.no_grad():
        ref = single(x)
        for i in range(3):
            torch.testing.assert_close(multi(x, torch.eye(3)[i]), ref, rtol=1e-4, atol=1e-3)
