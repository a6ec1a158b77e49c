"""export: ONNX and TorchScript files from our checkpoints and the published layouts, verified against PyTorch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from lively_nets import lively_generator, lively_johnson

from export import HalfPrecision, export_model
from export.__main__ import main as export_main
from realtime.backends import OnnxStylizer, TorchStylizer
from realtime.core.checkpoint import save_checkpoint
from realtime.core.contract import IOContract, cyclegan_contract, johnson_contract
from realtime.core.errors import UserError
from realtime.core.nets import PatchDiscriminator, TransformerNet
from realtime.core.onnx_file import CONTRACT_KEY, read_metadata
from realtime.core.torchscript_file import load_torchscript


def eager_reference(net: torch.nn.Module, contract: IOContract, frame: np.ndarray) -> np.ndarray:
    """Eager PyTorch on one frame, reflect-padded to a multiple of 4 (and >= 16) and cropped back."""
    h, w = frame.shape[:2]
    hp, wp = max(16, math.ceil(h / 4) * 4), max(16, math.ceil(w / 4) * 4)
    padded = np.pad(frame, ((0, hp - h), (0, wp - w), (0, 0)), mode="reflect").astype(np.float32)
    lo, hi = contract.value_range
    x = torch.from_numpy(padded).permute(2, 0, 1)[None] * ((hi - lo) / 255) + lo
    with torch.inference_mode():
        y = net(x)[0].permute(1, 2, 0).numpy()[:h, :w]
    return np.clip(np.rint((y - lo) * 255 / (hi - lo)), 0, 255).astype(np.uint8)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture
def johnson_ckpt(tmp_path: Path) -> tuple[Path, TransformerNet]:
    net = lively_johnson()
    path = save_checkpoint(
        tmp_path / "starry.pth",
        net,
        johnson_contract(name="starry", style="starry.jpg"),
        meta={"style_weight": 1e10, "epochs": 2, "dataset": "coco-subset"},
    )
    return path, net


@pytest.fixture
def frames(rng) -> list[np.ndarray]:
    return [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)]


def test_onnx_export_runs_at_two_sizes_and_matches_pytorch(tmp_path, johnson_ckpt, frames):
    ckpt, net = johnson_ckpt
    result = export_model(ckpt, tmp_path / "starry.onnx")
    assert result.path.is_file() and result.format == "onnx" and result.precision == "fp32"
    assert len(result.checks) == 2 and all(c.max_levels < 0.05 for c in result.checks)
    assert {(c.height, c.width) for c in result.checks} == {(64, 96), (100, 76)}
    stylizer = OnnxStylizer(result.path, providers="cpu")
    for f in frames:  # 37x53 is not a multiple of 4; 48x64 is
        styled = stylizer(f)
        reference = eager_reference(net, stylizer.contract, f)
        assert styled.shape == f.shape and styled.std() > 5  # a real image, not a constant
        assert max_diff(styled, reference) <= 1


def test_onnx_carries_contract_provenance_and_dynamic_axes(tmp_path, johnson_ckpt):
    ckpt, _ = johnson_ckpt
    path = export_model(ckpt, tmp_path / "m.onnx", name="renamed").path
    meta = read_metadata(path)
    contract = IOContract.from_json(meta[CONTRACT_KEY])
    assert (contract.family, contract.name, contract.style) == ("johnson", "renamed", "starry.jpg")
    assert contract.provenance["training"]["style_weight"] == 1e10
    assert meta["nst_value_range"] == "0..255" and meta["nst_precision"] == "fp32"
    assert json.loads(meta["nst_provenance"])["checkpoint"]["dataset"] == "coco-subset"
    model = onnx.load(str(path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_torchscript_export_runs_at_other_sizes_with_contract(tmp_path, johnson_ckpt, frames):
    ckpt, net = johnson_ckpt
    result = export_model(ckpt, tmp_path / "starry.pt")
    assert result.format == "torchscript" and all(c.max_levels < 0.05 for c in result.checks)
    module, contract, info = load_torchscript(result.path)
    assert contract.name == "starry" and info["meta"]["epochs"] == 2
    stylizer = TorchStylizer(result.path, device="cpu")
    for f in frames:
        assert max_diff(stylizer(f), eager_reference(net, contract, f)) <= 1


def test_cyclegan_generator_exports_to_both_formats(tmp_path, frames):
    net = lively_generator()
    ckpt = save_checkpoint(tmp_path / "h2z.pth", net, cyclegan_contract(name="h2z", style="horse->zebra"))
    for suffix in (".onnx", ".pt"):
        result = export_model(ckpt, tmp_path / f"h2z{suffix}")
        assert result.contract.family == "cyclegan" and result.contract.value_range == (-1.0, 1.0)
        stylizer = OnnxStylizer(result.path) if suffix == ".onnx" else TorchStylizer(result.path)
        assert stylizer.contract.family == "cyclegan"
        for f in frames:
            styled = stylizer(f)
            assert styled.std() > 5 and max_diff(styled, eager_reference(net, stylizer.contract, f)) <= 1


def test_fp16_onnx_is_half_inside_float_outside_and_close(tmp_path, johnson_ckpt, frames):
    ckpt, net = johnson_ckpt
    fp32 = export_model(ckpt, tmp_path / "a.onnx")
    fp16 = export_model(ckpt, tmp_path / "a16.onnx", fp16=True)
    assert fp16.precision == "fp16" and read_metadata(fp16.path)["nst_precision"] == "fp16"
    assert fp16.size_bytes < 0.6 * fp32.size_bytes
    model = onnx.load(str(fp16.path))
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert model.graph.input[0].type.tensor_type.elem_type == f32
    assert model.graph.output[0].type.tensor_type.elem_type == f32
    conv_weights = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert conv_weights and all(i.data_type == f16 for i in conv_weights)
    stylizer = OnnxStylizer(fp16.path)
    for f in frames:
        assert max_diff(stylizer(f), eager_reference(net, stylizer.contract, f)) <= 3


def test_fp16_wrapper_keeps_instance_norm_in_float32():
    wrapped = HalfPrecision(TransformerNet.from_arch("small"))
    norms = [m for m in wrapped.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    convs = [m for m in wrapped.modules() if isinstance(m, torch.nn.Conv2d)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)
    assert all(m.weight.dtype == torch.float16 for m in convs)


def test_pytorch_examples_layout_with_legacy_keys_exports(tmp_path, frames):
    net = lively_johnson(seed=1)
    state = net.state_dict()
    for name in ("in1", "in2", "in3", "in4", "in5", "res1.in1", "res2.in2"):  # as in the published mosaic.pth
        channels = state[f"{name}.weight"].shape[0]
        state[f"{name}.running_mean"] = torch.zeros(channels)
        state[f"{name}.running_var"] = torch.ones(channels)
    torch.save(state, tmp_path / "mosaic.pth")
    result = export_model(tmp_path / "mosaic.pth", tmp_path / "mosaic.onnx")
    assert result.contract.family == "johnson" and result.contract.name == "mosaic"
    stylizer = OnnxStylizer(result.path)
    assert max_diff(stylizer(frames[0]), eager_reference(net, stylizer.contract, frames[0])) <= 1


def test_cyclegan_authors_layout_exports(tmp_path, frames):
    net = lively_generator(seed=2)
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    result = export_model(tmp_path / "latest_net_G.pth", tmp_path / "g.onnx")
    assert result.contract.family == "cyclegan"
    stylizer = OnnxStylizer(result.path)
    assert max_diff(stylizer(frames[1]), eager_reference(net, stylizer.contract, frames[1])) <= 1


def test_static_export_fixes_the_size(tmp_path, johnson_ckpt, frames):
    ckpt, _ = johnson_ckpt
    result = export_model(ckpt, tmp_path / "s.onnx", static=(32, 48))
    assert result.contract.fixed_size == (32, 48)
    assert {(c.height, c.width) for c in result.checks} == {(32, 48)}
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 32, 48]
    stylizer = OnnxStylizer(result.path)
    assert stylizer.contract.fixed_size == (32, 48) and stylizer(frames[0]).shape == frames[0].shape
    with pytest.raises(UserError, match="multiples of 4"):
        export_model(ckpt, tmp_path / "bad.onnx", static=(30, 48))


def test_failed_verification_leaves_nothing(tmp_path, johnson_ckpt):
    ckpt, _ = johnson_ckpt
    out = tmp_path / "out" / "x.onnx"
    with pytest.raises(UserError, match="does not match PyTorch"):
        export_model(ckpt, out, tolerance_levels=0.0)  # fp32 differs by ~1e-5: above a zero tolerance
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_bad_inputs_are_one_line_errors(tmp_path, johnson_ckpt):
    ckpt, _ = johnson_ckpt
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(UserError, match="corrupt or truncated"):
        export_model(truncated, tmp_path / "t.onnx")
    data = torch.load(ckpt, weights_only=True)
    data["arch"] = "unet_generator"
    torch.save(data, tmp_path / "unknown.pth")
    with pytest.raises(UserError, match="unknown architecture 'unet_generator'"):
        export_model(tmp_path / "unknown.pth", tmp_path / "u.onnx")
    disc = save_checkpoint(tmp_path / "d.pth", PatchDiscriminator(ndf=8), cyclegan_contract())
    with pytest.raises(UserError, match="PatchDiscriminator"):
        export_model(disc, tmp_path / "d.onnx")
    with pytest.raises(UserError, match=r"\.onnx .* or \.pt"):
        export_model(ckpt, tmp_path / "x.tflite")
    with pytest.raises(UserError, match="already an ONNX"):
        export_model(tmp_path / "x.onnx", tmp_path / "y.onnx")
    with pytest.raises(UserError, match="ONNX only"):
        export_model(ckpt, tmp_path / "s.pt", static=(32, 32))


def test_cli_exports_and_reports_parity(tmp_path, johnson_ckpt, capsys):
    ckpt, _ = johnson_ckpt
    assert export_main([str(ckpt), "-o", str(tmp_path / "c.onnx"), "--name", "cli"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "'cli'" in out and out.count("parity") == 2 and "levels of 255" in out
    assert export_main([str(ckpt), "-o", str(tmp_path / "c.pt"), "--static", "32", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert export_main([str(tmp_path / "missing.pth"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_half_weights_halve_the_file_and_keep_float32_compute(tmp_path):
    """Weights stored as float16 with casts back to float32: about half the bytes, within a fraction of a level."""
    from realtime.core.onnx_file import initializer_arrays
    from realtime.core.onnx_weights import torch_model_from_onnx

    net = lively_johnson()
    with torch.no_grad():  # distinct tensors: the exporter merges identical initializers into one name
        for param in net.parameters():
            param.add_(0.01 * torch.randn_like(param))
    source = save_checkpoint(tmp_path / "distinct.pth", net, johnson_contract(name="distinct"))
    full = export_model(source, tmp_path / "full.onnx")
    half = export_model(source, tmp_path / "half.onnx", half_weights=True)
    assert half.size_bytes < 0.6 * full.size_bytes
    assert read_metadata(half.path)["nst_weights"] == "float16"
    assert all(c.max_levels < 1.0 for c in half.checks)
    weights = initializer_arrays(onnx.load(str(half.path)))
    assert weights["conv1.conv2d.weight"].dtype == np.float32  # read back under the state_dict key
    rebuilt = torch_model_from_onnx(half.path)  # the torch path finds every weight again
    assert set(rebuilt.model.state_dict()) <= set(weights)
    with pytest.raises(UserError, match="half_weights applies to ONNX files only"):
        export_model(source, tmp_path / "half.pt", half_weights=True)
