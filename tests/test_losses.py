"""realtime.core.losses and the quality metrics on small tensors whose values are worked out by hand."""

from __future__ import annotations

import pytest
import torch

from realtime.core.losses import (
    LossWeights,
    PerceptualLoss,
    StyleTargets,
    content_term,
    gram,
    style_term,
    total_variation,
)
from realtime.core.metrics import feature_distance, gram_distance

# One image, two channels, 1x2 pixels: channel rows f1 = [1, 2], f2 = [3, 4].
FEATURES = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
# F F^T = [[5, 11], [11, 25]], divided by C*H*W = 4.
GRAM = torch.tensor([[[1.25, 2.75], [2.75, 6.25]]])
GRAM_MEAN_SQUARE = (1.25**2 + 2 * 2.75**2 + 6.25**2) / 4  # 13.9375


class PixelEncoder:
    """A stand-in encoder: layer ``a`` is the image itself, layer ``b`` the image doubled."""

    def __call__(self, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        out = {"a": image, "b": 2 * image}
        return {name: out[name] for name in layers}


def test_gram_by_hand():
    assert gram(FEATURES).shape == (1, 2, 2)
    torch.testing.assert_close(gram(FEATURES), GRAM)


def test_gram_is_symmetric_batched_and_float32_from_half():
    x = torch.randn(3, 4, 5, 6)
    g = gram(x)
    assert g.shape == (3, 4, 4)
    torch.testing.assert_close(g, g.transpose(1, 2))
    torch.testing.assert_close(g[1], gram(x[1:2])[0])
    assert gram(x.to(torch.bfloat16)).dtype == torch.float32


def test_gram_is_independent_of_spatial_size_for_a_repeated_texture():
    tile = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(gram(tile), gram(tile.repeat(1, 1, 3, 2)))


def test_content_term_by_hand():
    target = {"a": torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])}
    # zeros: mean(t^2) / mean(t^2) = 1; t + 1: mean(1) / mean(t^2) = 1 / 7.5
    assert content_term({"a": torch.zeros(1, 1, 2, 2)}, target, ["a"]).item() == pytest.approx(1.0)
    assert content_term({"a": target["a"] + 1}, target, ["a"]).item() == pytest.approx(1 / 7.5)
    assert content_term(target, target, ["a"]).item() == 0.0


def test_style_term_by_hand_with_layer_weights_and_batch_broadcast():
    zero = {"a": torch.zeros(1, 2, 2), "b": torch.zeros(1, 2, 2)}
    norm = {"a": torch.tensor([2.0]), "b": torch.tensor([1.0])}
    # layer a: mean(GRAM^2) / 2; layer b (features doubled, Gram x4): 16 mean(GRAM^2) / 1
    a, b = GRAM_MEAN_SQUARE / 2, 16 * GRAM_MEAN_SQUARE
    feats = {"a": FEATURES, "b": 2 * FEATURES}
    assert style_term(feats, zero, norm, ["a", "b"]).item() == pytest.approx((a + b) / 2)
    assert style_term(feats, zero, norm, ["a", "b"], {"a": 3.0, "b": 1.0}).item() == pytest.approx((3 * a + b) / 4)
    batch = {k: v.repeat(3, 1, 1, 1) for k, v in feats.items()}
    assert style_term(batch, zero, norm, ["a", "b"]).item() == pytest.approx((a + b) / 2)
    exact = {"a": GRAM, "b": 4 * GRAM}
    assert style_term(feats, exact, norm, ["a", "b"]).item() == pytest.approx(0.0)


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical |3-0|, |5-1| -> 3.5; horizontal |1-0|, |5-3| -> 1.5
    assert total_variation(image).item() == pytest.approx(5.0)
    assert total_variation(torch.full((1, 3, 4, 4), 7.0)).item() == 0.0


def test_perceptual_loss_against_a_hand_computation():
    """Content from layer b of the content image, style from layer a of two styles, per-sample style index."""
    torch.manual_seed(0)
    encoder = PixelEncoder()
    styles = [torch.rand(1, 3, 4, 4) * 255, torch.rand(1, 3, 6, 5) * 255]
    targets = StyleTargets.from_images(encoder, styles, ["a"], ["s0", "s1"])
    weights = LossWeights(content=2.0, style=5.0, tv=3.0)
    loss = PerceptualLoss(encoder, targets, ["b"], ["a"], weights)
    content = torch.rand(2, 3, 4, 4) * 255
    output = torch.rand(2, 3, 4, 4) * 255
    got = loss(output, loss.content_targets(content), torch.tensor([1, 0]))

    want_content = ((2 * output - 2 * content) ** 2).mean() / ((2 * content) ** 2).mean()
    g_out = [gram(output[i : i + 1])[0] for i in range(2)]
    g_style = [gram(s)[0] for s in styles]
    per_sample = [
        ((g_out[0] - g_style[1]) ** 2).mean() / (g_style[1] ** 2).mean(),
        ((g_out[1] - g_style[0]) ** 2).mean() / (g_style[0] ** 2).mean(),
    ]
    want_style = (per_sample[0] + per_sample[1]) / 2
    x = output / 255
    want_tv = (x[:, :, 1:] - x[:, :, :-1]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()
    torch.testing.assert_close(got["content"], want_content)
    torch.testing.assert_close(got["style"], want_style)
    torch.testing.assert_close(got["tv"], want_tv)
    torch.testing.assert_close(got["loss"], 2 * want_content + 5 * want_style + 3 * want_tv)


def test_blended_style_is_the_weighted_mean_of_grams():
    encoder = PixelEncoder()
    a, b = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 5, 3)
    blend = StyleTargets.blended(encoder, [a, b], [1.0, 3.0], ["a"])
    torch.testing.assert_close(blend.grams["a"][0], 0.25 * gram(a)[0] + 0.75 * gram(b)[0])
    assert blend.count == 1


def test_loss_is_zero_at_the_targets_and_has_gradients():
    encoder = PixelEncoder()
    image = torch.rand(1, 3, 5, 5) * 255
    loss = PerceptualLoss(encoder, StyleTargets.from_images(encoder, [image], ["a"]), ["b"], ["a"])
    assert loss(image, loss.content_targets(image))["loss"].item() == pytest.approx(0.0, abs=1e-6)
    x = (image + 10 * torch.randn_like(image)).requires_grad_(True)
    loss(x, loss.content_targets(image))["loss"].backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_quality_figures_by_hand():
    feats = {"a": FEATURES, "b": FEATURES}
    assert gram_distance(feats, {"a": GRAM, "b": GRAM}, layers=("a", "b")) == pytest.approx(0.0)
    # features scaled by sqrt(2) double the Gram: ||2G - G|| / ||G|| = 1 on both layers
    doubled = {"a": FEATURES * 2**0.5, "b": FEATURES}
    assert gram_distance(doubled, {"a": GRAM, "b": GRAM}, layers=("a", "b")) == pytest.approx(0.5)
    assert feature_distance(3 * FEATURES, FEATURES) == pytest.approx(2.0)
    assert feature_distance(FEATURES, FEATURES) == 0.0


def test_perceptual_loss_with_two_content_and_two_weighted_style_layers_by_hand():
    """Each term sums (content) or weight-averages (style) over its own layers, whatever the other term has."""
    torch.manual_seed(1)
    encoder = PixelEncoder()
    style = torch.rand(1, 3, 5, 4) * 255
    targets = StyleTargets.from_images(encoder, [style], ["a", "b"])
    loss = PerceptualLoss(encoder, targets, ["a", "b"], ["b", "a"], LossWeights(1.0, 1.0, 0.0), {"a": 3.0, "b": 1.0})
    content, output = torch.rand(2, 3, 4, 4) * 255, torch.rand(2, 3, 4, 4) * 255
    got = loss(output, loss.content_targets(content), 0)

    def relative(x, t):
        return ((x - t) ** 2).mean() / (t**2).mean()

    want_content = relative(output, content) + relative(2 * output, 2 * content)  # layer a + layer b
    g_style = {"a": gram(style)[0], "b": gram(2 * style)[0]}
    per_layer = {
        name: sum(relative(gram(scale * output[i : i + 1])[0], g_style[name]) for i in range(2)) / 2
        for name, scale in (("a", 1), ("b", 2))
    }
    want_style = (3 * per_layer["a"] + 1 * per_layer["b"]) / 4
    torch.testing.assert_close(got["content"], want_content)
    torch.testing.assert_close(got["style"], want_style)
    torch.testing.assert_close(got["loss"], want_content + want_style)
    assert got["tv"].item() == 0.0


def test_style_layer_weights_parse_and_are_checked():
    from realtime.core.errors import InvalidValue
    from realtime.core.losses import GATYS_STYLE_LAYERS, PALETTE_LAYER_WEIGHTS, parse_layer_weights

    assert parse_layer_weights("relu1_1=4, relu3_1=0.5", GATYS_STYLE_LAYERS) == {"relu1_1": 4.0, "relu3_1": 0.5}
    assert parse_layer_weights("equal", GATYS_STYLE_LAYERS) == {} and PALETTE_LAYER_WEIGHTS == {"relu1_1": 4.0}
    for bad, message in (
        ("relu1_1", "look like"),
        ("relu1_1=-1", "look like"),
        ("relu1_1=nan", "look like"),
        ("conv1_1=2", "not a style layer"),
        (",".join(f"{n}=0" for n in GATYS_STYLE_LAYERS), "all 0"),
    ):
        with pytest.raises(InvalidValue, match=message) as info:
            parse_layer_weights(bad, GATYS_STYLE_LAYERS)
        assert info.value.name == "style_layer_weights"
