"""TransformerNet: the pytorch/examples layout loads unchanged and computes what the paper's net computes."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from realtime.core.checkpoint import load_model, save_checkpoint
from realtime.core.contract import johnson_contract
from realtime.core.errors import UserError
from realtime.core.nets import TransformerNet


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, blocks: int) -> torch.Tensor:
    """An independent forward pass written from the paper's description, on raw state-dict tensors."""

    def conv(prefix: str, y: torch.Tensor, stride: int = 1, upsample: bool = False) -> torch.Tensor:
        if upsample:
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
        w = sd[f"{prefix}.conv2d.weight"]
        pad = w.shape[-1] // 2
        return F.conv2d(F.pad(y, (pad, pad, pad, pad), mode="reflect"), w, sd[f"{prefix}.conv2d.bias"], stride)

    def norm(prefix: str, y: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(y, weight=sd[f"{prefix}.weight"], bias=sd[f"{prefix}.bias"], eps=1e-5)

    y = F.relu(norm("in1", conv("conv1", x)))
    y = F.relu(norm("in2", conv("conv2", y, stride=2)))
    y = F.relu(norm("in3", conv("conv3", y, stride=2)))
    for i in range(1, blocks + 1):
        r = F.relu(norm(f"res{i}.in1", conv(f"res{i}.conv1", y)))
        y = y + norm(f"res{i}.in2", conv(f"res{i}.conv2", r))
    y = F.relu(norm("in4", conv("deconv1", y, upsample=True)))
    y = F.relu(norm("in5", conv("deconv2", y, upsample=True)))
    return conv("deconv3", y)


def published_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict shaped like pytorch/examples' mosaic.pth, legacy InstanceNorm running stats included."""
    torch.manual_seed(seed)
    net = TransformerNet()
    for p in net.parameters():  # non-trivial affine parameters so the norms matter
        p.data.normal_(0, 0.1) if p.dim() == 1 else None
    sd = dict(net.state_dict())
    for key in list(sd):
        m = re.match(r"^(.*in\d+)\.weight$", key)
        if m:
            sd[f"{m.group(1)}.running_mean"] = torch.zeros_like(sd[key])
            sd[f"{m.group(1)}.running_var"] = torch.ones_like(sd[key])
    return sd


def test_module_names_match_pytorch_examples() -> None:
    keys = set(TransformerNet().state_dict())
    for expected in (
        "conv1.conv2d.weight",
        "in1.weight",
        "res1.conv1.conv2d.weight",
        "res5.in2.bias",
        "deconv1.conv2d.weight",
        "in5.bias",
        "deconv3.conv2d.bias",
    ):
        assert expected in keys
    assert TransformerNet().conv1.conv2d.weight.shape == (32, 3, 9, 9)
    assert TransformerNet().deconv3.conv2d.weight.shape == (3, 32, 9, 9)


def test_published_layout_gives_reference_pixels(tmp_path) -> None:
    sd = published_state_dict()
    path = tmp_path / "mosaic.pth"
    torch.save(sd, path)  # exactly how pytorch/examples saved its models
    loaded = load_model(path)
    assert loaded.contract.family == "johnson" and loaded.contract.value_range == (0.0, 255.0)
    x = torch.rand(1, 3, 36, 52) * 255
    with torch.no_grad():
        ours = loaded.model(x)
        ref = reference_forward(sd, x, blocks=5)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-3)


def test_small_arch_round_trips_through_checkpoint(tmp_path) -> None:
    net = TransformerNet.from_arch("small")
    assert net.conv1.conv2d.out_channels == 16 and net.num_residual == 3
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in TransformerNet().parameters()) / 3
    path = save_checkpoint(tmp_path / "small.pth", net, johnson_contract(name="small"), {"style": "x.jpg"})
    loaded = load_model(path, expect_arch="transformer_net")
    assert loaded.model.arch_kwargs() == {"width": 0.5, "num_residual": 3}
    assert loaded.meta["style"] == "x.jpg"
    x = torch.rand(2, 3, 32, 40) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net.eval()(x))
    # loading needs nothing but the file: it opens with weights_only
    assert torch.load(path, weights_only=True)["arch_kwargs"] == {"width": 0.5, "num_residual": 3}


def test_truncated_checkpoint_is_one_clear_error(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pth", TransformerNet.from_arch("small"), johnson_contract())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_model(path)


def test_wrong_shapes_are_reported(tmp_path) -> None:
    sd = published_state_dict()
    sd["conv2.conv2d.weight"] = torch.zeros(64, 32, 5, 5)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="another shape"):
        load_model(tmp_path / "bad.pth")
