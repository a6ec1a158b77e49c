"""Our .onnx files rebuilt as PyTorch nets, and the backend choice that uses them (backend auto)."""

from __future__ import annotations

import logging
import sys

import numpy as np
import onnx
import pytest
import torch
from conftest import REPO
from onnx import helper

from realtime.backends import OnnxStylizer, TorchStylizer, loader, onnx_backend
from realtime.backends.loader import load_for_pipeline, load_stylizer
from realtime.core.contract import johnson_contract
from realtime.core.errors import UserError
from realtime.core.nets import TransformerNet
from realtime.core.nets.cyclegan import ResnetGenerator
from realtime.core.onnx_weights import NotRebuildable, torch_model_from_onnx

WEIGHTS = REPO / "weights"


def levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture
def frame(rng) -> np.ndarray:
    return rng.integers(0, 256, (45, 62, 3), dtype=np.uint8)  # odd sizes: padded and cropped


@pytest.mark.parametrize(
    ("name", "cls", "kwargs"),
    [
        ("mosaic_small", TransformerNet, {"width": 0.5, "num_residual": 3}),
        ("horse2zebra", ResnetGenerator, {"ngf": 16, "n_blocks": 6, "in_channels": 3, "out_channels": 3}),
    ],
)
def test_shipped_onnx_rebuilds_as_the_registered_net(name, cls, kwargs, frame, one_torch_thread):
    loaded = torch_model_from_onnx(WEIGHTS / f"{name}.onnx")
    assert type(loaded.model) is cls and loaded.model.arch_kwargs() == kwargs
    assert loaded.contract.name == name and not loaded.model.training
    on_torch = load_stylizer(WEIGHTS / f"{name}.onnx", backend="torch", device="cpu")
    assert isinstance(on_torch, TorchStylizer) and on_torch.contract == loaded.contract
    on_ort = load_stylizer(WEIGHTS / f"{name}.onnx", backend="onnx", device="cpu")
    assert levels(on_torch(frame), on_ort(frame)) <= 1


def _edited(tmp_path, source: str, edit) -> str:
    model = onnx.load(str(WEIGHTS / source))
    edit(model)
    path = tmp_path / f"edited_{source}"
    onnx.save(model, str(path))
    return str(path)


def test_files_it_cannot_rebuild_say_why(tmp_path):
    def no_metadata(model):
        del model.metadata_props[:]

    def other_family(model):
        for entry in model.metadata_props:
            if entry.key == "nst_contract":
                entry.value = entry.value.replace('"johnson"', '"cyclegan"')

    def doubled_output(model):  # same weights, one more node: the graph is no longer the net
        graph = model.graph
        last = graph.node[-1]
        last.output[0] = "before_double"
        graph.initializer.append(helper.make_tensor("two", onnx.TensorProto.FLOAT, [], [2.0]))
        graph.node.append(helper.make_node("Mul", ["before_double", "two"], [graph.output[0].name]))

    with pytest.raises(NotRebuildable, match="no nst_contract"):
        torch_model_from_onnx(_edited(tmp_path, "mosaic_small.onnx", no_metadata))
    with pytest.raises(NotRebuildable, match="not a cyclegan network's weights"):
        torch_model_from_onnx(_edited(tmp_path, "mosaic_small.onnx", other_family))
    with pytest.raises(NotRebuildable, match="differs from the file's graph"):
        torch_model_from_onnx(_edited(tmp_path, "mosaic_small.onnx", doubled_output))
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(NotRebuildable, match="not a readable ONNX file"):
        torch_model_from_onnx(tmp_path / "junk.onnx")
    with pytest.raises(UserError, match="is ONNX: .*no nst_contract"):
        load_stylizer(_edited(tmp_path, "mosaic_small.onnx", no_metadata), backend="torch", device="cpu")


def test_parity_check_runs_without_onnx_runtime(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails: ONNX's reference evaluator checks
    assert type(torch_model_from_onnx(WEIGHTS / "horse2zebra.onnx").model) is ResnetGenerator


def test_auto_backend_on_a_cuda_machine(monkeypatch, tmp_path, caplog):
    """Decided as on a CUDA box (the stylizer itself built on the CPU): ours on torch, foreign on ORT + a hint."""
    monkeypatch.setattr(loader, "_wants_cuda", lambda device: True)
    monkeypatch.setattr(loader, "_ort_has_gpu", lambda: False)
    ours = load_stylizer(WEIGHTS / "mosaic_small.onnx", device="cpu")
    assert isinstance(ours, TorchStylizer)
    assert isinstance(
        load_for_pipeline(str(WEIGHTS / "mosaic_small.onnx"), device="cpu", backend="auto"), TorchStylizer
    )
    assert isinstance(load_stylizer(WEIGHTS / "mosaic_small.onnx", device="cpu", backend="onnx"), OnnxStylizer)
    foreign = _edited(tmp_path, "mosaic_small.onnx", lambda m: m.metadata_props.__delitem__(slice(None)))
    with caplog.at_level(logging.WARNING):
        fallback = load_stylizer(foreign, device="auto")
    assert isinstance(fallback, OnnxStylizer) and fallback.providers == ["CPUExecutionProvider"]
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "onnxruntime-gpu" in warning[0] and "[gpu]" in warning[0]


def test_auto_backend_on_the_cpu_keeps_onnx_runtime():
    assert isinstance(load_stylizer(WEIGHTS / "mosaic_small.onnx", device="cpu"), OnnxStylizer)
    stylizer = load_stylizer(WEIGHTS / "mosaic_small.onnx", device="cpu", backend="torch")
    assert (stylizer.compiled, stylizer.precision, stylizer.channels_last) == (False, "fp32", False)


def test_without_onnx_runtime_our_files_run_on_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(onnx_backend, "ort", None)
    assert isinstance(load_stylizer(WEIGHTS / "mosaic_small.onnx", device="cpu"), TorchStylizer)
    foreign = _edited(tmp_path, "mosaic_small.onnx", lambda m: m.metadata_props.__delitem__(slice(None)))
    with pytest.raises(UserError, match=r"needs ONNX Runtime: .*onnxruntime-gpu"):
        load_stylizer(foreign, device="cpu")


def test_cuda_defaults_follow_the_measurements():
    """Eager fp16 lost to fp32 on the GPU: never the default. Compiled: fp16 channels_last."""
    from realtime.backends.torch_backend import CUDA_SETTINGS

    assert CUDA_SETTINGS[False] == ("fp32", False)
    assert CUDA_SETTINGS[True] == ("fp16", True)


def test_precision_choices_on_the_cpu(caplog):
    net = TransformerNet(width=0.25, num_residual=1)
    with caplog.at_level(logging.WARNING):
        stylizer = TorchStylizer(net, johnson_contract(), device="cpu", precision="bf16")
    assert stylizer.dtype == torch.float32 and "bfloat16" in caplog.text
    with pytest.raises(UserError, match="precision must be one of fp32, fp16, bf16"):
        TorchStylizer(net, johnson_contract(), device="cpu", precision="fp8")


def test_warm_up_compiles_once_per_size(monkeypatch, rng):
    """The step is compiled for a size before that size's first frame; a new size warms up again."""
    calls = []

    def counting_compile(fn, **kwargs):
        assert kwargs == {"mode": "default", "dynamic": False}

        def run(batch):
            calls.append(tuple(batch.shape))
            return fn(batch)

        return run

    monkeypatch.setattr(torch, "compile", counting_compile)
    stylizer = TorchStylizer(WEIGHTS / "mosaic_small.onnx", device="cpu", compile=True)
    stylizer.warm_up(36, 52)
    assert calls == [(1, 36, 52, 3)] * 3
    stylizer(rng.integers(0, 256, (36, 52, 3), dtype=np.uint8))
    assert len(calls) == 4
    stylizer(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    assert calls[4:] == [(1, 20, 24, 3)] * 4
