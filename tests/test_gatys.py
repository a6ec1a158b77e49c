"""realtime.core.gatys: scale bookkeeping, colour matching, the scale-free objective, and tiny end-to-end runs.

Most tests use a tiny random stand-in encoder with VGG's layer names (fast, exercises the loop);
one end-to-end test uses the real Caffe VGG19 at 64 px.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from realtime.core.errors import UserError
from realtime.core.gatys import (
    CONTENT_LAYER,
    LBFGS,
    STYLE_LAYERS,
    Adam,
    GatysConfig,
    GatysObjective,
    match_color,
    scale_sizes,
    steps_per_scale,
    style_size,
    stylize,
    to_rgb,
    to_tensor,
)
from realtime.core.images import read_image
from realtime.core.losses import gram
from realtime.core.metrics import gram_distance

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


ORDER = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


class TinyEncoder(nn.Module):
    """A frozen random conv stack answering VGG's layer names; ``scale`` multiplies every output."""

    def __init__(self, scale: float = 1.0, nan_after: int | None = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        chans = (3, 8, 8, 12, 12, 12, 12)
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(6))
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
        self.requires_grad_(False)
        self.scale, self.nan_after, self.calls = scale, nan_after, 0

    def forward(self, rgb255: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        self.calls += 1
        x, out = rgb255 / 127.5 - 1, {}
        for i, (name, conv) in enumerate(zip(ORDER, self.convs)):
            x = F.relu(conv(x))
            out[name] = x * self.scale
            if self.nan_after is not None and self.calls > self.nan_after:
                out[name] = out[name] * math.nan
            if i in (0, 1, 2):
                x = F.avg_pool2d(x, 2)
        return {n: out[n] for n in layers}


def image(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    """A smooth random colour image ``(h, w, 3)`` uint8."""
    small = np.random.default_rng(seed).integers(0, 256, (h // 4, w // 4, 3)).astype(np.uint8)
    return np.asarray(
        torch.nn.functional.interpolate(
            torch.from_numpy(small).permute(2, 0, 1)[None].float(), size=(h, w), mode="bilinear"
        )[0]
        .permute(1, 2, 0)
        .round()
        .byte()
    )


def test_steps_per_scale_halves_and_sums():
    assert steps_per_scale(60, 1) == [60]
    assert steps_per_scale(60, 2) == [40, 20]
    assert steps_per_scale(60, 3) == [35, 17, 8]
    assert steps_per_scale(3, 3) == [1, 1, 1]
    for scales in range(1, 7):
        for steps in range(scales, 80):
            counts = steps_per_scale(steps, scales)
            assert sum(counts) == steps and min(counts) >= 1, (steps, scales, counts)


def test_scale_sizes_double_up_to_the_full_size():
    assert scale_sizes(144, 192, 1) == [(144, 192)]
    assert scale_sizes(144, 192, 3) == [(36, 48), (72, 96), (144, 192)]
    assert scale_sizes(40, 40, 3)[0] == (16, 16)  # never below 16 px


def test_style_size_keeps_the_style_aspect_and_matches_the_area():
    h, w = style_size((100, 300), (60, 80), 1.0)
    assert abs(h * w - 60 * 80) / (60 * 80) < 0.03 and abs(w / h - 3) < 0.1
    h2, w2 = style_size((100, 300), (60, 80), 2.0)
    assert abs(h2 / h - 2) < 0.05 and abs(w2 / w - 2) < 0.05


def test_match_color_gives_the_style_the_content_colour_statistics():
    rng = np.random.default_rng(1)
    style = rng.integers(0, 120, (30, 40, 3)).astype(np.uint8)
    content = (rng.normal(150, 20, (25, 35, 3)) + np.array([40, -30, 0])).clip(0, 255).astype(np.uint8)
    out = match_color(style, content)
    assert out.shape == style.shape and out.dtype == np.uint8
    flat_o, flat_c = out.reshape(-1, 3).astype(float), content.reshape(-1, 3).astype(float)
    np.testing.assert_allclose(flat_o.mean(0), flat_c.mean(0), atol=1.5)
    np.testing.assert_allclose(np.cov(flat_o, rowvar=False), np.cov(flat_c, rowvar=False), atol=15)


def test_tensor_round_trip():
    rgb = image(3)
    t = to_tensor(rgb, CPU)
    assert t.shape == (1, 3, 24, 32) and t.dtype == torch.float32 and t.max() <= 255
    assert np.array_equal(to_rgb(t), rgb)
    assert np.array_equal(to_rgb(t * 10 - 5000)[..., 0], np.zeros((24, 32), np.uint8))  # clipped


def test_objective_is_zero_at_the_targets_and_scale_free():
    content, style = to_tensor(image(1), CPU), to_tensor(image(2), CPU)
    config = GatysConfig(tv_weight=0.0)
    objective = GatysObjective(TinyEncoder(), content, [style], [1.0], config)
    only_content = GatysObjective(TinyEncoder(), content, [style], [1.0], GatysConfig(style_weight=0, tv_weight=0))
    only_style = GatysObjective(TinyEncoder(), content, [style], [1.0], GatysConfig(content_weight=0, tv_weight=0))
    assert only_content(content).item() == pytest.approx(0.0, abs=1e-6)
    assert only_style(style).item() == pytest.approx(0.0, abs=1e-3)
    assert objective(content).item() > 0
    # features 1000x larger (another encoder, another layer) give the same loss
    louder = GatysObjective(TinyEncoder(scale=1000.0), content, [style], [1.0], config)
    noisy = to_tensor(image(5), CPU)
    assert louder(noisy).item() == pytest.approx(objective(noisy).item(), rel=1e-4)


def test_bf16_objective_is_zero_at_its_targets_and_close_to_fp32():
    content, style = to_tensor(image(1), CPU), to_tensor(image(2), CPU)
    noisy = to_tensor(image(5), CPU)
    only_content = GatysConfig(style_weight=0, tv_weight=0)
    bf16 = GatysObjective(TinyEncoder(), content, [style], [1.0], only_content, precision="bf16")
    assert bf16(content).dtype == torch.float32 and bf16(content).item() == 0.0
    config = GatysConfig(tv_weight=0)
    fp32 = GatysObjective(TinyEncoder(), content, [style], [1.0], config)(noisy).item()
    half = GatysObjective(TinyEncoder(), content, [style], [1.0], config, precision="bf16")(noisy).item()
    assert half == pytest.approx(fp32, rel=0.05) and half != fp32


def test_precision_auto_is_bf16_only_where_native(monkeypatch):
    from realtime.core import gatys

    monkeypatch.setattr(gatys, "native_bf16", lambda device: device.type == "cuda")
    assert gatys.resolve_precision("auto", CPU) == "fp32"
    assert gatys.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert gatys.resolve_precision("bf16", CPU) == "bf16" and gatys.resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(UserError, match="precision"):
        GatysConfig(precision="fp8").check(n_styles=1)


def test_style_layer_weights_default_to_the_palette_and_reach_the_loss():
    content, style = to_tensor(image(1), CPU), to_tensor(image(2), CPU)
    assert dict(GatysConfig().style_layer_weights) == {"relu1_1": 4.0}
    only_style = dict(content_weight=0, tv_weight=0)
    palette = GatysObjective(TinyEncoder(), content, [style], [1.0], GatysConfig(**only_style))
    equal = GatysObjective(TinyEncoder(), content, [style], [1.0], GatysConfig(**only_style, style_layer_weights=()))
    assert palette.loss.layer_weights == {"relu1_1": 4.0} and equal.loss.layer_weights is None
    assert palette(content).item() != pytest.approx(equal(content).item(), rel=1e-3)
    with pytest.raises(UserError, match="not a style layer"):
        GatysConfig(style_layer_weights=(("relu4_2", 2.0),)).check(n_styles=1)


def test_default_is_two_scales_but_one_for_a_single_step():
    assert GatysConfig().n_scales == 2 and GatysConfig(steps=1).n_scales == 1
    assert GatysConfig(scales=3).n_scales == 3


def test_style_blend_weights_the_gram_targets():
    content, a, b = (to_tensor(image(s), CPU) for s in (1, 2, 4))
    config = GatysConfig(content_weight=0.0, tv_weight=0.0)
    half = GatysObjective(TinyEncoder(), content, [a, b], [1.0, 3.0], config)
    encoder = TinyEncoder()
    ga, gb = (gram(encoder(t, [STYLE_LAYERS[2]])[STYLE_LAYERS[2]]) for t in (a, b))
    torch.testing.assert_close(half.loss.style.grams[STYLE_LAYERS[2]], 0.25 * ga + 0.75 * gb)


def test_blend_of_one_and_zero_equals_the_single_style():
    content, a, b = image(1), image(2), image(4)
    config = GatysConfig(steps=4, tv_weight=0.1)
    single = stylize(content, [a], TinyEncoder(), CPU, config)
    blended = stylize(content, [a, b], TinyEncoder(), CPU, GatysConfig(steps=4, tv_weight=0.1, style_blend=(1.0, 0.0)))
    assert np.array_equal(single, blended)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls_and_progress_is_reported(optimizer):
    seen = []
    config = GatysConfig(steps=12, optimizer=optimizer, scales=2, lr=4.0)
    out = stylize(image(1, 32, 48), [image(2)], TinyEncoder(), CPU, config, on_step=seen.append)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert [p.step for p in seen] == list(range(1, 13)) and all(p.total == 12 for p in seen)
    assert [p.scale for p in seen] == [1] * 8 + [2] * 4
    assert seen[0].size == (16, 24) and seen[-1].size == (32, 48)
    assert seen[-1].image().shape == (32, 48, 3)
    first_scale = [p.loss for p in seen if p.scale == 1]
    assert first_scale[-1] < first_scale[0]


def test_noise_init_is_seeded():
    config = GatysConfig(steps=1, init="noise", seed=7)
    a = stylize(image(1), [image(2)], TinyEncoder(), CPU, config)
    b = stylize(image(1), [image(2)], TinyEncoder(), CPU, config)
    c = stylize(image(1), [image(2)], TinyEncoder(), CPU, GatysConfig(steps=1, init="noise", seed=8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_nan_loss_is_a_user_error():
    with pytest.raises(UserError, match="nan"):
        stylize(image(1), [image(2)], TinyEncoder(nan_after=3), CPU, GatysConfig(steps=5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=0), "steps"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(init="photo"), "init"),
        (dict(style_weight=-1.0), "style_weight"),
        (dict(content_weight=0.0, style_weight=0.0), "nothing to optimise"),
        (dict(scales=0), "scales"),
        (dict(steps=2, scales=3), "scales"),
        (dict(style_scale=0.0), "style_scale"),
        (dict(style_blend=(1.0,)), "style_blend"),
        (dict(style_blend=(1.0, -1.0)), "style_blend"),
        (dict(lr=0.0), "lr"),
    ],
)
def test_bad_settings_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        GatysConfig(**kwargs).check(n_styles=2)


def test_end_to_end_with_vgg_moves_towards_the_style(samples):
    from realtime.core.nets.vgg import VGG19Features

    vgg = VGG19Features.caffe()
    content = read_image(samples / "content" / "tubingen.jpg", max_side=64)
    style = read_image(samples / "styles" / "starry_night.jpg", max_side=96)

    def style_distance(rgb: np.ndarray) -> float:
        h, w = rgb.shape[:2]
        ref = to_tensor(
            np.asarray(
                torch.nn.functional.interpolate(
                    to_tensor(style, CPU), size=style_size(style.shape[:2], (h, w), 1.0), mode="area"
                )[0]
                .permute(1, 2, 0)
                .round()
                .byte()
            ),
            CPU,
        )
        with torch.no_grad():
            grams = {n: gram(f) for n, f in vgg(ref, STYLE_LAYERS).items()}
            return gram_distance(vgg(to_tensor(rgb, CPU), STYLE_LAYERS), grams)

    losses = []
    one = GatysConfig(steps=10, scales=1)
    out = stylize(content, [style], vgg, CPU, one, on_step=lambda p: losses.append(p.loss))
    assert out.shape == content.shape
    assert losses[-1] < 0.5 * losses[0]
    before, after = style_distance(content), style_distance(out)
    assert after < 0.8 * before, (before, after)
    default = stylize(content, [style], vgg, CPU, GatysConfig(steps=10))  # two scales, bf16 where native
    assert default.shape == content.shape and style_distance(default) < 0.8 * before
    assert CONTENT_LAYER == "relu4_2"


def quadratic(seed: int, n: int = 12):
    """A random convex quadratic ``0.5 x'Ax - b'x`` and a starting point."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return a, b, torch.randn(n, generator=g, dtype=torch.float64) * 3


def run(optimizer_cls, steps: int, seed: int, **kwargs) -> list[torch.Tensor]:
    a, b, x0 = quadratic(seed)
    x = x0.clone().requires_grad_(True)
    opt = optimizer_cls(x, **kwargs) if optimizer_cls in (LBFGS, Adam) else optimizer_cls([x], **kwargs)
    path = []

    def closure():
        x.grad = None
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
        path.append(x.detach().clone())
    return path


@pytest.mark.parametrize("seed", [0, 1])
def test_our_lbfgs_matches_torch_step_for_step(seed):
    ours = run(LBFGS, 15, seed, history=5)
    theirs = run(torch.optim.LBFGS, 15, seed, lr=1.0, max_iter=1, history_size=5)
    for mine, reference in zip(ours, theirs):
        torch.testing.assert_close(mine, reference, rtol=1e-9, atol=1e-9)


def test_our_adam_matches_torch_step_for_step():
    ours = run(Adam, 10, 0, lr=0.3)
    theirs = run(torch.optim.Adam, 10, 0, lr=0.3)
    for mine, reference in zip(ours, theirs):
        torch.testing.assert_close(mine, reference, rtol=1e-9, atol=1e-9)


def test_lbfgs_first_step_moves_each_element_by_first_step_on_average():
    x = torch.full((1000,), 100.0, requires_grad=True)
    target = torch.linspace(0, 200, 1000)
    opt = LBFGS(x, first_step=1.0)

    def closure():
        x.grad = None
        loss = 1e-6 * (x - target).pow(2).sum()  # tiny gradients, as with a scale-free loss
        loss.backward()
        return loss

    opt.step(closure)
    assert (x.detach() - 100).abs().mean().item() == pytest.approx(1.0, rel=1e-4)
    for _ in range(5):
        opt.step(closure)
    torch.testing.assert_close(x.detach(), target, rtol=1e-4, atol=1e-3)  # quadratic: solved in a few steps


class VectorLoopLBFGS:
    """The textbook two-loop recursion, vector by vector (this module's L-BFGS before it ran on inner products)."""

    def __init__(self, param: torch.Tensor, history: int, first_step: float) -> None:
        self.param, self.history, self.first_step = param, history, first_step
        self.s, self.y, self.rho, self.h_diag = [], [], [], 1.0
        self.prev_grad = self.prev_step = None
        self.rejected = 0  # curvature pairs left out (ys <= 1e-10: negative curvature)

    @torch.no_grad()
    def step(self, closure) -> None:
        with torch.enable_grad():
            closure()
        g = self.param.grad.reshape(-1)
        if self.prev_grad is not None:
            y, s = g - self.prev_grad, self.prev_step
            ys = y.dot(s)
            if ys > 1e-10:
                if len(self.s) == self.history:
                    del self.s[0], self.y[0], self.rho[0]
                self.s.append(s)
                self.y.append(y)
                self.rho.append(1.0 / ys)
                self.h_diag = ys / y.dot(y)
            else:
                self.rejected += 1
        d = None
        if self.s:
            q, alphas = -g, []
            for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
                alphas.append(s.dot(q) * rho)
                q = q - alphas[-1] * y
            d = q * self.h_diag
            for s, y, rho, alpha in zip(self.s, self.y, self.rho, reversed(alphas)):
                d = d + s * (alpha - y.dot(d) * rho)
        if d is None or g.dot(d) >= 0:
            self.s, self.y, self.rho, self.h_diag = [], [], [], 1.0
            d = -g * (self.first_step * g.numel() / g.abs().sum())
        self.param.view(-1).add_(d)
        self.prev_grad, self.prev_step = g.clone(), d


def test_lbfgs_on_inner_products_matches_the_vector_loop():
    """A non-convex function: the history wraps, and pairs of negative curvature are left out."""
    x0 = torch.linspace(-1.5, 1.2, 10, dtype=torch.float64)

    def run(make) -> tuple[list[torch.Tensor], object]:
        x = x0.clone().requires_grad_(True)
        opt = make(x)

        def closure():
            x.grad = None
            loss = (torch.sin(3 * x) * torch.cos(2 * x.flip(0))).sum() + 0.05 * x.pow(2).sum()
            loss.backward()
            return loss

        path = []
        for _ in range(40):
            opt.step(closure)
            path.append(x.detach().clone())
        return path, opt

    ours, _ = run(lambda x: LBFGS(x, history=4, first_step=0.05))
    theirs, reference = run(lambda x: VectorLoopLBFGS(x, history=4, first_step=0.05))
    assert reference.rejected >= 2  # the case this test is about, besides the wrapping history
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected, rtol=1e-9, atol=1e-9)
