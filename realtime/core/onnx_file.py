"""Write a network as ONNX, with its IO contract in the model's ``metadata_props``.

Exporter: the TorchScript-based one (``torch.onnx.export(..., dynamo=False)``). For these
nets (convs, reflection pads, InstanceNorm, nearest upsampling) it takes ~0.1 s and yields
one self-contained file with symbolic batch/height/width; the ``torch.export``-based
exporter took ~45x longer on the same net, prints progress banners, needs ``Dim``
constraints to express "a multiple of 4", and may write weights to a side file.
When ``onnxscript`` is installed its optimizer folds the pad-order arithmetic the legacy
exporter leaves behind (about 250 -> 60 nodes for the small net); the graph is valid either way.

Metadata keys: ``nst_contract`` (``IOContract.to_json()``, what the runtime reads), plus the
readable ``nst_family``, ``nst_value_range``, ``nst_channel_order``, ``nst_size_multiple``,
``nst_name``, ``nst_style``, ``nst_precision``, ``nst_provenance`` (JSON: the contract's
provenance and the checkpoint's meta, e.g. training arguments) and ``nst_exporter``.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from realtime.core.contract import IOContract
from realtime.core.errors import UserError
from realtime.core.files import atomic_path

log = logging.getLogger(__name__)

CONTRACT_KEY = "nst_contract"
INPUT_NAME, OUTPUT_NAME = "input", "output"
STYLE_INPUT_NAME = "style"  # the second input of a conditioned net: (B, condition_dim) float32
DEFAULT_OPSET = 17


def metadata(contract: IOContract, meta: dict[str, Any] | None, precision: str) -> dict[str, str]:
    """The ``metadata_props`` written into every exported ONNX file (all values strings)."""
    lo, hi = contract.value_range
    provenance = {"contract": contract.provenance, "checkpoint": dict(meta or {})}
    return {
        CONTRACT_KEY: contract.to_json(),
        "nst_family": contract.family,
        "nst_value_range": f"{lo:g}..{hi:g}",
        "nst_channel_order": contract.channel_order,
        "nst_size_multiple": str(contract.size_multiple),
        "nst_fixed_size": "x".join(map(str, contract.fixed_size)) if contract.fixed_size else "dynamic",
        "nst_name": contract.name,
        "nst_style": contract.style,
        "nst_precision": precision,
        "nst_provenance": json.dumps(provenance, sort_keys=True, default=str),
        "nst_exporter": f"realtime-nst export, torch {torch.__version__}, onnx {onnx.__version__}",
    }


def _optimize(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        from onnxscript import optimizer  # noqa: PLC0415 - an optional package
    except ImportError:
        log.info("onnxscript not installed; writing the exporter's graph unoptimised")
        return model
    noisy = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in noisy]
    for logger in noisy:  # they log every folded constant at INFO
        logger.setLevel(logging.WARNING)
    try:
        return optimizer.optimize(model)
    except Exception as exc:  # an optimiser bug must not block an export that is valid without it
        log.warning("onnxscript optimizer failed (%s); writing the unoptimised graph", exc)
        return model
    finally:
        for logger, level in zip(noisy, levels):
            logger.setLevel(level)


def write_onnx(
    module: nn.Module,
    contract: IOContract,
    dest: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    sample_size: tuple[int, int] = (64, 64),
    static: bool = False,
    half_weights: bool = False,
) -> Path:
    """Export ``module`` (float32 ``(B, 3, H, W)`` in, float32 out) to ``dest``.

    ``half_weights`` stores the weights in float16 (half the file) and computes in float32
    (:func:`store_weights_in_half`); ``precision="fp16"`` instead computes in half precision.

    Batch, height and width are symbolic unless ``static``, in which case height and width
    are fixed at ``sample_size`` (the batch stays symbolic). A conditioned net
    (``contract.condition_dim > 0``) gets its style vector as a second input,
    :data:`STYLE_INPUT_NAME` ``(B, condition_dim)``. ``dest`` is written directly;
    callers wrap it in :func:`realtime.core.files.atomic_path`.
    """
    axes = {0: "batch"} if static else {0: "batch", 2: "height", 3: "width"}
    sample = torch.rand(1, 3, *sample_size)
    inputs, names, dynamic = (sample,), [INPUT_NAME], {INPUT_NAME: axes, OUTPUT_NAME: axes}
    if contract.condition_dim:
        inputs += (torch.rand(1, contract.condition_dim),)
        names.append(STYLE_INPUT_NAME)
        dynamic[STYLE_INPUT_NAME] = {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The legacy exporter warns about itself, about Slice folding and about InstanceNorm
        # using instance statistics (which is what these nets do); none of it is actionable.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                inputs,
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
        except (RuntimeError, ValueError, torch.onnx.errors.OnnxExporterError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"ONNX export failed at opset {opset}: {first[:200]}") from None
    model = _optimize(onnx.load_from_string(buffer.getvalue()))
    if half_weights:
        model = store_weights_in_half(model)
    model.doc_string = (
        f"realtime-nst {contract.family} model {contract.name!r}: float32 (B, 3, H, W) "
        f"{contract.channel_order} in {contract.value_range}, same out"
    )
    del model.metadata_props[:]
    props = {**metadata(contract, meta, precision), "nst_weights": "float16" if half_weights else "float32"}
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    return Path(dest)


HALF_SUFFIX = "::float16"  # an initializer stored in half precision, cast back to float32 by the graph


def store_weights_in_half(model: onnx.ModelProto, min_elements: int = 64) -> onnx.ModelProto:
    """Store the float32 weights of ``model`` in float16, each cast back to float32 inside the graph.

    The file is about half the size; the computation stays float32 (ONNX Runtime folds each
    ``Cast`` of a constant when it loads the file, so inference costs nothing extra), with
    every weight rounded to float16 once. Initializers smaller than ``min_elements`` (biases,
    shape constants) are left as they are. The original names are kept as the casts' outputs,
    so :func:`initializer_arrays` still finds each weight under its ``state_dict`` key.
    """
    casts = []
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + HALF_SUFFIX)
        casts.append(onnx.helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        init.CopyFrom(half)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(casts + nodes)
    return model


def initializer_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer as a float32/int array under its original name (half-precision storage undone)."""
    arrays = {}
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        name = init.name
        if name.endswith(HALF_SUFFIX):
            name, array = name[: -len(HALF_SUFFIX)], array.astype(np.float32)
        arrays[name] = array
    return arrays


def read_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict; :class:`UserError` for a file that is not ONNX."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
        raise UserError(f"{path}: not a readable ONNX file ({exc.__class__.__name__})") from None
    return {p.key: p.value for p in model.metadata_props}


def rewrite_metadata(path: str | Path, changes: dict[str, str]) -> None:
    """Replace metadata values of an ONNX file in place (atomically); graph and weights stay byte-identical."""
    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key in changes:
            entry.value = changes[entry.key]
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
