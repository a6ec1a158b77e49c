"""Write a :class:`MultiStyleNet` as ONNX with two inputs: ``image`` and ``style_weights``.

Inputs: ``image`` float32 ``(batch, 3, height, width)`` RGB 0..255 (height and width multiples
of 4) and ``style_weights`` float32 ``(N,)``, one blend for the whole batch, applied as given
(one-hot selects a style; the runtime normalises blends if it wants convex ones). Output
``output``: ``(batch, 3, height, width)`` RGB, roughly 0..255, unclamped.

Why ``(N,)`` and not ``(B, N)``: a video or camera stream runs one blend at a time, the peer's
26-style file uses the same convention, and with one blend per batch each conditional norm
exports as a single ``InstanceNormalization`` whose scale and bias are ``style_weights @ table``
(two tiny MatMuls), instead of a parameter-free norm followed by per-image ``Mul``/``Add`` over the
whole activation. Per-image styles in one batch remain available in PyTorch (``(B, N)`` weights).

Same exporter as :mod:`export.onnx_writer` (legacy TorchScript exporter, ``dynamo=False``;
onnxscript's optimizer when installed) and the same metadata keys, plus ``nst_multistyle``
(JSON: input name, style count, style names, architecture).
"""
from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch

from export.onnx_writer import DEFAULT_OPSET, OUTPUT_NAME, _optimize, metadata
from realtime.core.nets.multistyle import MultiStyleNet
from train.nets.contract import johnson_contract

IMAGE_NAME, STYLE_NAME = "image", "style_weights"
MULTISTYLE_KEY = "nst_multistyle"


def to_onnx_model(net: MultiStyleNet, *, opset: int = DEFAULT_OPSET,
                  sample_size: tuple[int, int] = (64, 64)) -> onnx.ModelProto:
    """The exported (and, with onnxscript, optimised) graph, without metadata; batch, height and width symbolic."""
    axes = {0: "batch", 2: "height", 3: "width"}
    sample = (torch.rand(1, 3, *sample_size) * 255, torch.eye(net.n_styles)[0])
    buffer = io.BytesIO()
    was_training = net.training
    net.eval()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's self-warnings; none actionable
            torch.onnx.export(net, sample, buffer, dynamo=False, opset_version=opset,
                              input_names=[IMAGE_NAME, STYLE_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={IMAGE_NAME: axes, OUTPUT_NAME: axes}, do_constant_folding=True)
    finally:
        net.train(was_training)
    return _optimize(onnx.load_from_string(buffer.getvalue()))


def write_multistyle_onnx(net: MultiStyleNet, dest: str | Path, *, name: str = "",
                          style_names: Sequence[str] | None = None, meta: dict[str, Any] | None = None,
                          opset: int = DEFAULT_OPSET, sample_size: tuple[int, int] = (64, 64)) -> Path:
    """Export ``net`` to ``dest`` (see the module docstring for the inputs); returns ``dest``."""
    names = list(style_names) if style_names is not None else [f"style{i}" for i in range(net.n_styles)]
    if len(names) != net.n_styles:
        raise ValueError(f"{len(names)} style names for a net with {net.n_styles} styles")
    model = to_onnx_model(net, opset=opset, sample_size=sample_size)
    contract = johnson_contract(name=name or Path(dest).stem, style=", ".join(names))
    model.doc_string = (f"realtime-nst multi-style model {contract.name!r}: float32 {IMAGE_NAME} (B, 3, H, W) RGB "
                        f"0..255 and {STYLE_NAME} ({net.n_styles},) -> (B, 3, H, W) RGB 0..255")
    del model.metadata_props[:]
    props = metadata(contract, meta, "fp32")
    props[MULTISTYLE_KEY] = json.dumps({"style_input": STYLE_NAME, "image_input": IMAGE_NAME,
                                        "n_styles": net.n_styles, "styles": names,
                                        "arch": net.arch_kwargs()}, sort_keys=True)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    return Path(dest)
