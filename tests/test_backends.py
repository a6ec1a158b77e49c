"""realtime.backends: ONNX Runtime and PyTorch stylizers, foreign ONNX files, providers, bad model files."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from lively_nets import lively_johnson
from onnx import TensorProto, helper

from export import export_model
from realtime.backends import OnnxStylizer, TorchStylizer, choose_providers, is_torchscript, provider_name
from realtime.core.checkpoint import save_checkpoint
from realtime.core.contract import cyclegan_contract, johnson_contract
from realtime.core.errors import UserError
from realtime.core.frames import from_model_output, to_model_input
from realtime.core.nets import TransformerNet
from realtime.core.stylizer import Stylizer


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """One small net as checkpoint, ONNX and TorchScript, plus the net itself."""
    folder = tmp_path_factory.mktemp("models")
    net = lively_johnson()
    ckpt = save_checkpoint(folder / "net.pth", net, johnson_contract(name="net"))
    return {
        "net": net,
        "pth": ckpt,
        "onnx": export_model(ckpt, folder / "net.onnx").path,
        "pt": export_model(ckpt, folder / "net.pt").path,
    }


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory) -> tuple[Path, TransformerNet]:
    """A file in the ONNX Model Zoo layout: input1/output1, fixed 1x3x224x224, opset 9, no metadata."""
    path = tmp_path_factory.mktemp("zoo") / "mosaic-9.onnx"
    net = lively_johnson(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.rand(1, 3, 224, 224) * 255,),
            str(path),
            dynamo=False,
            opset_version=9,
            input_names=["input1"],
            output_names=["output1"],
        )
    assert not onnx.load(str(path)).metadata_props
    return path, net


def tiny_onnx(path: Path, shape: list) -> Path:
    """An Identity model whose single input has ``shape``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_backends_implement_the_protocol_and_agree(exported, rng):
    frame = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    onnx_s = OnnxStylizer(exported["onnx"])
    script_s = TorchStylizer(exported["pt"], device="cpu")
    eager_s = TorchStylizer(exported["pth"], device="cpu")
    module_s = TorchStylizer(exported["net"], johnson_contract(name="m"), device=torch.device("cpu"))
    outs = [s(frame) for s in (onnx_s, script_s, eager_s, module_s)]
    for s in (onnx_s, script_s, eager_s, module_s):
        assert isinstance(s, Stylizer)
    assert outs[0].shape == frame.shape and outs[0].dtype == np.uint8 and outs[0].std() > 5
    for other in outs[1:]:
        assert max_diff(outs[0], other) <= 2
    assert onnx_s.name == "net" and onnx_s.contract.family == "johnson" and onnx_s.batch_size is None


@pytest.mark.parametrize("kind", ["onnx", "pt", "pth"])
def test_stylize_batch_groups_sizes_and_keeps_order(exported, rng, kind):
    stylizer = OnnxStylizer(exported[kind]) if kind == "onnx" else TorchStylizer(exported[kind])
    frames = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(32, 40, 3), (21, 30, 3), (32, 40, 3)]]
    batch = stylizer.stylize_batch(frames)
    assert [b.shape for b in batch] == [f.shape for f in frames]
    for b, f in zip(batch, frames):
        assert max_diff(b, stylizer(f)) <= 1
    assert stylizer.stylize_batch([]) == []


def test_model_zoo_layout_runs_at_any_size(zoo_model, rng):
    path, net = zoo_model
    stylizer = OnnxStylizer(path)
    c = stylizer.contract
    assert (c.family, c.value_range, c.fixed_size, stylizer.batch_size) == ("johnson", (0.0, 255.0), (224, 224), 1)
    frames = [rng.integers(0, 256, (50, 70, 3), dtype=np.uint8) for _ in range(3)]
    styled = stylizer.stylize_batch(frames)  # three runs of batch 1
    assert [s.shape for s in styled] == [(50, 70, 3)] * 3
    x, crop = to_model_input(frames[:1], c)  # the same resize in, eager PyTorch, resize out
    with torch.inference_mode():
        reference = from_model_output(net(torch.from_numpy(x)).numpy(), c, crop)[0]
    assert max_diff(styled[0], reference) <= 1
    assert stylizer(rng.integers(0, 256, (300, 17, 3), dtype=np.uint8)).shape == (300, 17, 3)


def test_input_range_override(zoo_model, rng):
    path, _ = zoo_model
    frame = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    stylizer = OnnxStylizer(path, input_range=(-1.0, 1.0))
    assert stylizer.contract.value_range == (-1.0, 1.0)
    assert max_diff(stylizer(frame), OnnxStylizer(path)(frame)) > 10


def test_cyclegan_metadata_without_contract_is_read(tmp_path, zoo_model):
    path, _ = zoo_model
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "nst_family", "cyclegan"
    onnx.save(model, str(tmp_path / "g.onnx"))
    assert OnnxStylizer(tmp_path / "g.onnx").contract.value_range == (-1.0, 1.0)


def test_wrong_rank_or_channels_is_rejected(tmp_path):
    with pytest.raises(UserError, match="rank 3"):
        OnnxStylizer(tiny_onnx(tmp_path / "rank.onnx", [1, 224, 224]))
    with pytest.raises(UserError, match="1 channels"):
        OnnxStylizer(tiny_onnx(tmp_path / "gray.onnx", [1, 1, 64, 64]))


def test_corrupt_model_files_are_one_line_errors(tmp_path, exported):
    for kind in ("onnx", "pt", "pth"):
        broken = tmp_path / f"broken.{kind}"
        broken.write_bytes(exported[kind].read_bytes()[:3000])
        with pytest.raises(UserError, match="corrupt|truncated") as info:
            OnnxStylizer(broken) if kind == "onnx" else TorchStylizer(broken)
        assert "\n" not in str(info.value)
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    with pytest.raises(UserError, match="not a loadable ONNX"):
        OnnxStylizer(tmp_path / "junk.onnx")
    with pytest.raises(UserError, match="no such model file"):
        OnnxStylizer(tmp_path / "missing.onnx")


def test_provider_choice_and_fallback(exported, caplog):
    assert choose_providers(None, ["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, available) == available
    assert choose_providers("cuda", available) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("trt", available) == available  # TensorRT, then CUDA for what it cannot run
    assert provider_name("TRT") == "TensorrtExecutionProvider" and provider_name("cpu") == "CPUExecutionProvider"
    with caplog.at_level(logging.WARNING):
        assert choose_providers("tensorrt", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert "not available" in caplog.text


def test_missing_gpu_provider_falls_back_or_refuses(exported, monkeypatch):
    """As on a machine without onnxruntime-gpu (whatever this one has): strict refuses, else the CPU runs it."""
    import realtime.backends.onnx_backend as onnx_backend

    monkeypatch.setattr(onnx_backend.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(UserError, match="CUDAExecutionProvider is not available"):
        OnnxStylizer(exported["onnx"], providers="cuda", strict=True)
    stylizer = OnnxStylizer(exported["onnx"], providers="cuda", threads=1)  # falls back, still runs
    assert stylizer.providers == ["CPUExecutionProvider"]


def test_cuda_provider_is_used_where_onnxruntime_has_it(exported, rng):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu not installed)")
    try:
        stylizer = OnnxStylizer(exported["onnx"], providers="cuda", strict=True)
    except UserError as exc:  # the package is there but no GPU or CUDA runtime
        pytest.skip(f"onnxruntime-gpu is installed but cannot use a GPU here: {exc}")
    assert stylizer.providers[0] == "CUDAExecutionProvider" and stylizer.providers[-1] == "CPUExecutionProvider"
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert max_diff(stylizer(frame), OnnxStylizer(exported["onnx"], providers="cpu")(frame)) <= 1


def test_torch_stylizer_options(exported, caplog):
    with pytest.raises(ValueError, match="IOContract"):
        TorchStylizer(exported["net"])
    with caplog.at_level(logging.WARNING):
        stylizer = TorchStylizer(exported["pth"], device="cpu", half=True)
    assert stylizer.dtype == torch.float32 and "float16" in caplog.text
    assert stylizer.channels_last is False and stylizer.half is False
    with pytest.raises(UserError, match="half-precision TorchScript"):
        TorchStylizer(exported["pt"], half=True)
    with pytest.raises(UserError, match="compile"):
        TorchStylizer(exported["pt"], compile=True)
    assert is_torchscript(exported["pt"]) and not is_torchscript(exported["pth"])


def test_foreign_torchscript_without_contract_assumes_johnson(tmp_path, exported, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(exported["net"], (torch.rand(1, 3, 32, 32),), check_trace=False)
        torch.jit.save(traced, str(tmp_path / "foreign.pt"))
    stylizer = TorchStylizer(tmp_path / "foreign.pt")
    assert stylizer.contract.family == "johnson" and stylizer.name == "foreign"
    frame = rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)
    assert max_diff(stylizer(frame), TorchStylizer(exported["pth"])(frame)) <= 1


def test_torch_stylizer_contract_override(exported, rng):
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    plain = TorchStylizer(exported["pth"])
    overridden = TorchStylizer(exported["pth"], contract=cyclegan_contract(name="as-gan"))
    assert overridden.contract.family == "cyclegan" and overridden.name == "as-gan"
    assert max_diff(plain(frame), overridden(frame)) > 10


def test_compile_failure_falls_back_to_eager(exported, rng, monkeypatch, caplog):
    def broken_compile(module, **kwargs):
        assert kwargs["dynamic"] is False  # one fixed resolution

        def run(x):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    stylizer = TorchStylizer(exported["pth"], compile=True)
    with caplog.at_level(logging.WARNING):
        styled = stylizer(frame)
    assert "torch.compile failed" in caplog.text
    assert max_diff(styled, TorchStylizer(exported["pth"])(frame)) == 0
    caplog.clear()
    stylizer(frame)  # eager from now on, no second warning
    assert "torch.compile failed" not in caplog.text


def _cxx_compiler() -> str | None:
    names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    return next((shutil.which(n) for n in names if n and shutil.which(n)), None)


@pytest.mark.skipif(_cxx_compiler() is None, reason="torch.compile on the CPU needs a C++ compiler (g++/clang++)")
def test_torch_compile_for_real_on_the_cpu_equals_eager(rng, caplog, monkeypatch):
    """A small conv/InstanceNorm net compiled by inductor at 32x32: the frames it returns are eager's.

    Inductor's cache goes to the system's temporary folder (kept between runs: a warm start
    takes seconds, a cold one ~15 s of CPU), not to the user's cache.
    """
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / "nst-tests-inductor"))
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.InstanceNorm2d(4, affine=True),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 3, 1),
    ).eval()
    with torch.no_grad():  # outputs spread over 0..255, so a wrong kernel shows
        net[3].weight.mul_(100.0)
        net[3].bias.add_(128.0)
    contract = johnson_contract(name="tiny")
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    try:
        compiled = TorchStylizer(net, contract, compile=True)
        with caplog.at_level(logging.WARNING):
            got = [compiled(f) for f in frames]
        assert "torch.compile failed" not in caplog.text
        assert compiled.compiled  # still the compiled step: no fallback to eager
    finally:
        torch._dynamo.reset()
    eager = TorchStylizer(net, contract)
    for frame, out in zip(frames, got):
        want = eager(frame)
        assert want.std() > 20 and max_diff(out, want) <= 1
