"""The CycleGAN generator against the authors' published layout, checked with an independent forward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from realtime.core.checkpoint import load_model, load_state_dict_strict
from realtime.core.errors import UserError
from realtime.core.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from train.cyclegan_model import init_weights, linear_decay

torch.set_num_threads(1)


def authors_state_dict(ngf: int, n_blocks: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random generator state dict with the shapes and names of pytorch-CycleGAN-and-pix2pix's
    ``ResnetGenerator`` (use_dropout=False), written out by hand rather than taken from our module."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.1

    sd = {
        "model.1.weight": t(ngf, 3, 7, 7),
        "model.1.bias": t(ngf),
        "model.4.weight": t(2 * ngf, ngf, 3, 3),
        "model.4.bias": t(2 * ngf),
        "model.7.weight": t(4 * ngf, 2 * ngf, 3, 3),
        "model.7.bias": t(4 * ngf),
    }
    for b in range(n_blocks):
        for j in (1, 5):  # [pad, conv, norm, relu, pad, conv, norm]
            sd[f"model.{10 + b}.conv_block.{j}.weight"] = t(4 * ngf, 4 * ngf, 3, 3)
            sd[f"model.{10 + b}.conv_block.{j}.bias"] = t(4 * ngf)
    u = 10 + n_blocks
    sd[f"model.{u}.weight"], sd[f"model.{u}.bias"] = (
        t(4 * ngf, 2 * ngf, 3, 3),
        t(2 * ngf),
    )  # ConvTranspose: (in, out, k, k)
    sd[f"model.{u + 3}.weight"], sd[f"model.{u + 3}.bias"] = t(2 * ngf, ngf, 3, 3), t(ngf)
    sd[f"model.{u + 7}.weight"], sd[f"model.{u + 7}.bias"] = t(3, ngf, 7, 7), t(3)
    return sd


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """The authors' generator written with torch.nn.functional only."""

    def pad(h: torch.Tensor, p: int) -> torch.Tensor:
        return F.pad(h, (p, p, p, p), mode="reflect")

    def conv(h: torch.Tensor, key: str, stride: int = 1, padding: int = 0) -> torch.Tensor:
        return F.conv2d(h, sd[f"{key}.weight"], sd[f"{key}.bias"], stride=stride, padding=padding)

    def up(h: torch.Tensor, key: str) -> torch.Tensor:
        return F.conv_transpose2d(h, sd[f"{key}.weight"], sd[f"{key}.bias"], stride=2, padding=1, output_padding=1)

    norm = F.instance_norm  # no affine, no running statistics, eps 1e-5
    h = F.relu(norm(conv(pad(x, 3), "model.1")))
    h = F.relu(norm(conv(h, "model.4", 2, 1)))
    h = F.relu(norm(conv(h, "model.7", 2, 1)))
    for b in range(n_blocks):
        y = F.relu(norm(conv(pad(h, 1), f"model.{10 + b}.conv_block.1")))
        h = h + norm(conv(pad(y, 1), f"model.{10 + b}.conv_block.5"))
    u = 10 + n_blocks
    h = F.relu(norm(up(h, f"model.{u}")))
    h = F.relu(norm(up(h, f"model.{u + 3}")))
    return torch.tanh(conv(pad(h, 3), f"model.{u + 7}"))


@pytest.mark.parametrize("n_blocks", [2, 6])
def test_authors_layout_loads_and_matches_reference(tmp_path, n_blocks):
    sd = authors_state_dict(ngf=4, n_blocks=n_blocks)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(sd, path)
    loaded = load_model(path, expect_arch="resnet_generator")
    assert loaded.model.n_blocks == n_blocks and loaded.model.ngf == 4
    assert loaded.contract.family == "cyclegan" and loaded.contract.value_range == (-1.0, 1.0)
    x = torch.rand(2, 3, 24, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours, ref = loaded.model(x), reference_forward(sd, x, n_blocks)
    assert ours.shape == (2, 3, 24, 28)
    assert ours.abs().max() > 0.05  # not a degenerate all-zero output
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_nine_block_keys_are_the_authors():
    expected = set(authors_state_dict(ngf=2, n_blocks=9))
    ours = set(ResnetGenerator(ngf=2, n_blocks=9).state_dict())
    assert ours == expected
    assert "model.1.weight" in ours and "model.26.bias" in ours


def test_legacy_running_stats_are_dropped(tmp_path):
    sd = authors_state_dict(ngf=4, n_blocks=2)
    legacy = dict(sd)
    for key in ("model.2", "model.5", "model.10.conv_block.2", "model.13"):  # InstanceNorm layers
        legacy[f"{key}.running_mean"] = torch.zeros(8)
        legacy[f"{key}.running_var"] = torch.ones(8)
        legacy[f"{key}.num_batches_tracked"] = torch.tensor(0)
    torch.save(legacy, tmp_path / "old.pth")
    torch.save(sd, tmp_path / "new.pth")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        a = load_model(tmp_path / "old.pth").model(x)
        b = load_model(tmp_path / "new.pth").model(x)
    assert torch.equal(a, b)


def test_wrong_block_count_is_one_clear_line():
    model = ResnetGenerator(ngf=4, n_blocks=6)
    with pytest.raises(UserError) as info:
        load_state_dict_strict(model, authors_state_dict(ngf=4, n_blocks=9), "horse2zebra.pth")
    message = str(info.value)
    assert "\n" not in message and "n_blocks=6" in message and "horse2zebra.pth" in message


def test_discriminator_patch_shape():
    d = PatchDiscriminator(ndf=4, n_layers=3)
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)  # H/8 - 2


def test_init_weights_is_normal_002():
    net = init_weights(ResnetGenerator(ngf=16, n_blocks=2))
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert all(m.bias.abs().max() == 0 for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_linear_decay_is_the_authors_schedule():
    f = linear_decay(epochs=100, epochs_decay=100)
    assert f(0) == 1.0 and f(99) == 1.0
    assert f(100) == pytest.approx(1 - 1 / 101)
    assert f(199) == pytest.approx(1 / 101)
    assert f(500) == 0.0
