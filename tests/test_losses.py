"""realtime.core.losses on small tensors whose values are worked out by hand."""
from __future__ import annotations

import pytest
import torch

from realtime.core.losses import content_loss, feature_distance, gram, gram_distance, style_loss, total_variation

# One image, two channels, 1x2 pixels: channel rows f1 = [1, 2], f2 = [3, 4].
FEATURES = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
# F F^T = [[5, 11], [11, 25]], divided by C*H*W = 4.
GRAM = torch.tensor([[[1.25, 2.75], [2.75, 6.25]]])


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


def test_content_loss_by_hand():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert content_loss(a, b).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert content_loss(b, b).item() == 0.0


def test_style_loss_by_hand_with_layer_weights_and_batch_broadcast():
    target = {"a": torch.zeros(1, 2, 2)}
    # mean(GRAM^2) = (1.5625 + 2 * 7.5625 + 39.0625) / 4 = 13.9375
    assert style_loss({"a": FEATURES}, target).item() == pytest.approx(13.9375)
    assert style_loss({"a": FEATURES}, target, {"a": 2.0}).item() == pytest.approx(27.875)
    batch = {"a": FEATURES.repeat(3, 1, 1, 1)}
    assert style_loss(batch, target).item() == pytest.approx(13.9375)
    assert style_loss({"a": FEATURES}, {"a": GRAM}).item() == pytest.approx(0.0)


def test_style_loss_sums_layers():
    feats = {"a": FEATURES, "b": 2 * FEATURES}
    targets = {"a": torch.zeros(1, 2, 2), "b": torch.zeros(1, 2, 2)}
    # gram(2F) = 4 gram(F), squared: 16x
    assert style_loss(feats, targets).item() == pytest.approx(13.9375 * 17)


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical |3-0|, |5-1| -> 3.5; horizontal |1-0|, |5-3| -> 1.5
    assert total_variation(image).item() == pytest.approx(5.0)
    assert total_variation(torch.full((1, 3, 4, 4), 7.0)).item() == 0.0


def test_losses_have_gradients():
    x = FEATURES.clone().requires_grad_(True)
    (style_loss({"a": x}, {"a": torch.zeros(1, 2, 2)}) + total_variation(x) + content_loss(x, 0 * x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_quality_figures_by_hand():
    feats = {"a": FEATURES, "b": FEATURES}
    assert gram_distance(feats, {"a": GRAM, "b": GRAM}, layers=("a", "b")) == pytest.approx(0.0)
    # features scaled by sqrt(2) double the Gram: ||2G - G|| / ||G|| = 1 on both layers
    doubled = {"a": FEATURES * 2 ** 0.5, "b": FEATURES}
    assert gram_distance(doubled, {"a": GRAM, "b": GRAM}, layers=("a", "b")) == pytest.approx(0.5)
    assert feature_distance(3 * FEATURES, FEATURES) == pytest.approx(2.0)
    assert feature_distance(FEATURES, FEATURES) == 0.0
