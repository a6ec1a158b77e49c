"""export.verify: the parity guard rejects an export that is off by a few levels, at the default tolerance.

Each case compares an exported file with a *perturbed* copy of the model it came from, sized
so that the worst pixel is a few levels of 255 off while the average stays far below the
tolerance (so only a max check sees it), for a 0..255 (Johnson) and a -1..1 (CycleGAN) model.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from lively_nets import lively_generator, lively_johnson
from torch import nn

from export import VERIFY_SHAPES, export_model
from export.torchscript_writer import write_torchscript
from export.verify import TOLERANCE_LEVELS, verify_export
from realtime.core.checkpoint import save_checkpoint
from realtime.core.contract import IOContract, cyclegan_contract, johnson_contract
from realtime.core.errors import UserError
from realtime.core.onnx_file import write_onnx

TOLERANCE = TOLERANCE_LEVELS["fp32"]


def last_conv_weight(net: nn.Module) -> torch.Tensor:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)][-1].weight


# family -> (net factory, contract, perturbation of one output weight: rejected, accepted)
FAMILIES = {
    "johnson": (lively_johnson, johnson_contract(name="j"), 1.0, 0.05),
    "cyclegan": (lively_generator, cyclegan_contract(name="g"), 0.005, 0.0002),
}


def perturbed(net: nn.Module, delta: float) -> nn.Module:
    """A copy of ``net`` with one tap of its last convolution moved by ``delta``."""
    other = copy.deepcopy(net)
    with torch.no_grad():
        last_conv_weight(other)[0, 0, 3, 3] += delta
    return other


def error_levels(a: nn.Module, b: nn.Module, contract: IOContract) -> tuple[float, float]:
    """Max and mean difference of two models' clamped outputs, in levels of 255, on full-range noise."""
    lo, hi = contract.value_range
    generator = torch.Generator().manual_seed(7)
    worst, means = 0.0, []
    for batch, height, width in VERIFY_SHAPES:
        x = torch.rand(batch, 3, height, width, generator=generator) * (hi - lo) + lo
        with torch.inference_mode():
            diff = (a(x).clamp(lo, hi) - b(x).clamp(lo, hi)).abs() * (255.0 / (hi - lo))
        worst, means = max(worst, diff.max().item()), [*means, diff.mean().item()]
    return worst, max(means)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, tuple[nn.Module, IOContract, Path]]:
    """Each family's lively net exported to ONNX (verified on the way)."""
    folder = tmp_path_factory.mktemp("verify")
    out = {}
    for family, (factory, contract, _, _) in FAMILIES.items():
        net = factory()
        ckpt = save_checkpoint(folder / f"{family}.pth", net, contract)
        out[family] = (net, contract, export_model(ckpt, folder / f"{family}.onnx").path)
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_perturbed_weights_are_rejected_at_the_default_tolerance(exports, family):
    net, contract, path = exports[family]
    _, _, rejected, accepted = FAMILIES[family]
    bad = perturbed(net, rejected)
    worst, mean = error_levels(net, bad, contract)
    assert mean < 0.25 * TOLERANCE and TOLERANCE < worst < 20  # off by a few levels, at a few pixels
    with pytest.raises(UserError, match="does not match PyTorch"):
        verify_export(path, bad, contract, VERIFY_SHAPES, TOLERANCE)
    near = perturbed(net, accepted)
    checks = verify_export(path, near, contract, VERIFY_SHAPES, TOLERANCE)
    assert [(c.batch, c.height, c.width) for c in checks] == list(VERIFY_SHAPES)
    lo, hi = contract.value_range
    for check in checks:
        assert 0 < check.max_levels < TOLERANCE
        assert check.max_levels == pytest.approx(check.max_abs * 255.0 / (hi - lo))  # levels of 255, any range


class Probe(nn.Module):
    """``PReLU(conv1x1(x))`` starting as ``x`` for x >= 0 and ``x / 4`` below: no normalisation.

    The real nets normalise right after their first convolution, so they hardly care which
    range their input noise comes from; this probe does. Its convolution's error grows with
    the input's size, its PReLU slope matters for negative inputs only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.act = nn.PReLU(3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None])
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class SecondShapeDiffers(nn.Module):
    """``model`` perturbed only for single frames: the second of VERIFY_SHAPES."""

    def __init__(self, model: nn.Module, perturbed_model: nn.Module) -> None:
        super().__init__()
        self.model, self.perturbed_model = model, perturbed_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.perturbed_model(x) if x.shape[0] == 1 else self.model(x)


def probe_export(tmp_path: Path, contract: IOContract, suffix: str = ".onnx") -> tuple[nn.Module, Path]:
    probe = Probe().eval()
    path = tmp_path / f"probe{suffix}"
    if suffix == ".onnx":
        write_onnx(probe, contract, path)
    else:
        write_torchscript(probe, contract, path)
    assert verify_export(path, probe, contract, VERIFY_SHAPES, TOLERANCE)  # the file itself is right
    return probe, path


def test_inputs_span_the_0_255_range(tmp_path):
    """A weight 0.004 off is 1 level at a pixel value of 255, but only 0.004 levels at 1."""
    contract = johnson_contract(name="probe")
    probe, path = probe_export(tmp_path, contract)
    bad = copy.deepcopy(probe)
    with torch.no_grad():
        bad.conv.weight[0, 0] += 0.004
    with pytest.raises(UserError, match="does not match PyTorch"):
        verify_export(path, bad, contract, VERIFY_SHAPES, TOLERANCE)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_inputs_span_the_negative_half_of_minus1_1(tmp_path, suffix):
    """A PReLU slope 0.02 off is 2.5 levels at -1 and nothing at all for inputs in 0..1."""
    contract = cyclegan_contract(name="probe")
    probe, path = probe_export(tmp_path, contract, suffix)
    bad = copy.deepcopy(probe)
    with torch.no_grad():
        bad.act.weight[0] += 0.02
    with pytest.raises(UserError, match="does not match PyTorch"):
        verify_export(path, bad, contract, VERIFY_SHAPES, TOLERANCE)


@pytest.mark.parametrize("family", ["johnson", "cyclegan"])
def test_every_shape_is_enforced(tmp_path, exports, family):
    net, contract, path = exports[family]
    reference = SecondShapeDiffers(net, perturbed(net, FAMILIES[family][2]))
    batch, height, width = VERIFY_SHAPES[1]
    with pytest.raises(UserError, match=f"at {batch}x{height}x{width}"):
        verify_export(path, reference, contract, VERIFY_SHAPES, TOLERANCE)
