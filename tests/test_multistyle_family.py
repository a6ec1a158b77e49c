"""The multistyle family end to end: checkpoint, export (ONNX, TorchScript), loader, --style specs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from lively_nets import lively_multistyle

from export import export_model
from export.__main__ import main as export_main
from export.provenance import main as provenance_main
from realtime.backends.conditioned import ConditionedStylizer
from realtime.backends.loader import load_stylizer
from realtime.core.checkpoint import load_model, save_checkpoint
from realtime.core.contract import multistyle_contract
from realtime.core.nets.families import family, family_of
from realtime.core.nets.multistyle import MultiStyleNet
from realtime.core.onnx_file import CONTRACT_KEY, STYLE_INPUT_NAME
from realtime.core.styles import apply_style_spec, style_listing

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAMES = ("mosaic", "candy", "rain_princess")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "multi.pth"
    save_checkpoint(path, lively_multistyle(), multistyle_contract(name="multi", styles=NAMES), {"note": "test"})
    return path


def test_registry_and_checkpoint_carry_the_style_names(checkpoint) -> None:
    owner = family("multistyle")
    assert owner.runtime_inputs == ("image", "style") and family_of(lively_multistyle()) is owner
    loaded = load_model(checkpoint)
    assert isinstance(loaded.model, MultiStyleNet) and loaded.model.n_styles == 3
    assert loaded.contract.family == "multistyle" and loaded.contract.styles == NAMES
    assert loaded.contract.condition_dim == 3 and loaded.contract.value_range == (0.0, 255.0)
    resolver = owner.style_resolver(loaded.contract)
    np.testing.assert_allclose(resolver.default(), [1, 0, 0])


@pytest.fixture(scope="module")
def exported(checkpoint) -> Path:
    dest = checkpoint.with_name("multi.onnx")
    assert export_main([str(checkpoint), "-o", str(dest), "--half-weights"]) == 0
    return dest


def test_export_writes_a_two_input_onnx_checked_for_a_style_and_a_blend(checkpoint, exported, capfd) -> None:
    dest = exported
    model = onnx.load(str(dest))
    assert [i.name for i in model.graph.input] == ["input", STYLE_INPUT_NAME]
    style_dims = [d.dim_param or d.dim_value for d in model.graph.input[1].type.tensor_type.shape.dim]
    assert style_dims == ["batch", 3]
    # one InstanceNormalization per conditional norm: the blend is folded into its scale and bias
    norms = len(lively_multistyle().norms())
    assert sum(n.op_type == "InstanceNormalization" for n in model.graph.node) == norms
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta[CONTRACT_KEY])["styles"] == list(NAMES)

    # the file on ONNX Runtime against PyTorch on a photo-like frame, one style and a blend
    stylizer = load_stylizer(dest, device="cpu")
    assert isinstance(stylizer, ConditionedStylizer) and stylizer.style_names() == list(NAMES)
    net = load_model(checkpoint).model
    frame = np.random.default_rng(0).integers(0, 256, (36, 52, 3), dtype=np.uint8)
    outputs = {}
    for spec, weights in (("candy", [0, 1, 0]), ("mosaic:0.5,rain-princess:0.5", [0.5, 0, 0.5])):
        apply_style_spec(stylizer, spec)
        got = stylizer(frame).astype(int)
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            ref = net(x, torch.tensor(weights, dtype=torch.float32))[0].clamp(0, 255).round()
        assert np.abs(got - ref.permute(1, 2, 0).numpy().astype(int)).max() <= 2
        outputs[spec] = got
    assert np.abs(outputs["candy"] - outputs["mosaic:0.5,rain-princess:0.5"]).mean() > 5
    assert style_listing(stylizer).splitlines() == ["0\tmosaic", "1\tcandy", "2\train_princess"]


def test_the_onnx_file_rebuilds_as_the_pytorch_net(exported) -> None:
    """On a GPU our .onnx files run on PyTorch (compiled); the multi-style file rebuilds with its style input."""
    frame = np.random.default_rng(1).integers(0, 256, (28, 40, 3), dtype=np.uint8)
    via_torch = load_stylizer(exported, device="cpu", backend="torch")
    via_ort = load_stylizer(exported, device="cpu", backend="onnx")
    assert isinstance(via_torch.backend.module, MultiStyleNet) and via_torch.style_names() == list(NAMES)
    for stylizer in (via_torch, via_ort):
        apply_style_spec(stylizer, "candy:1,rain_princess:3")
    assert np.abs(via_torch(frame).astype(int) - via_ort(frame).astype(int)).max() <= 1


def test_torchscript_and_fp16_exports_verify(checkpoint, tmp_path) -> None:
    script = export_model(checkpoint, tmp_path / "multi.pt")
    assert script.contract.styles == NAMES and all(c.max_levels < 0.5 for c in script.checks)
    stylizer = load_stylizer(tmp_path / "multi.pt", device="cpu", backend="torch")
    assert stylizer.style_names() == list(NAMES)
    half = export_model(checkpoint, tmp_path / "multi_fp16.onnx", fp16=True)
    assert half.precision == "fp16" and all(c.max_levels <= 8 for c in half.checks)


def test_export_checks_single_styles_then_blends() -> None:
    from export.verify import _style_vectors

    contract = multistyle_contract(styles=NAMES)
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(_style_vectors(contract, 2, True, generator), torch.eye(3)[:2])
    blends = _style_vectors(contract, 4, False, generator)
    assert blends.shape == (4, 3) and (blends > 0).all()
    torch.testing.assert_close(blends.sum(1), torch.ones(4))


def test_the_provenance_table_names_every_style(exported, capsys) -> None:
    assert provenance_main([str(exported)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| multi.onnx"))
    assert "| multistyle fp32, fp16 weights | 3 styles: mosaic, candy, rain_princess |" in row
