"""This project's own ONNX files back into their PyTorch network (for the fast torch path on a GPU).

A file written by ``python -m export`` carries its :class:`~realtime.core.contract.IOContract`
(metadata ``nst_contract``, which names the family) and keeps the network's ``state_dict`` keys
as initializer names (``conv1.conv2d.weight`` …, ``model.1.weight`` …). :func:`torch_model_from_onnx`
rebuilds the family's runtime net from them: the constructor arguments come from the weights'
shapes (the family's :class:`~realtime.core.nets.families.ForeignLayout` reader, the same one
that reads published checkpoints), the weights are loaded strictly, and the rebuilt net is run
next to the file itself on a small input (ONNX Runtime, or ONNX's reference evaluator where
ONNX Runtime is not installed) before it is trusted. Anything else (a foreign file, a graph the
net does not reproduce) raises :class:`NotRebuildable`, and the caller runs the file as ONNX.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import torch

from realtime.core.checkpoint import LoadedModel
from realtime.core.contract import IOContract
from realtime.core.errors import UserError
from realtime.core.nets.families import FAMILIES
from realtime.core.onnx_file import CONTRACT_KEY, INPUT_NAME, initializer_arrays

log = logging.getLogger(__name__)

CHECK_SIZE = (20, 28)  # (H, W) of the parity check: multiples of 4, above the nets' own reflection pads
TOLERANCE_LEVELS = {"fp32": 0.5, "fp16": 8.0}  # max error in levels of 255, as the exporter's own check


class NotRebuildable(UserError):
    """The ONNX file is not one of ours, or its graph is not the registered network with these weights."""


def _check_input(contract: IOContract) -> np.ndarray:
    lo, hi = contract.value_range
    rng = np.random.default_rng(0)
    return rng.uniform(lo, hi, (1, 3, *CHECK_SIZE)).astype(np.float32)


def _check_style(contract: IOContract) -> np.ndarray | None:
    """A conditioned net's style vector for the check, ``(1, D)``: a blend of every style, else None."""
    if not contract.condition_dim:
        return None
    return np.full((1, contract.condition_dim), 1.0 / contract.condition_dim, np.float32)


def _run_file(model: onnx.ModelProto, *inputs: np.ndarray) -> np.ndarray:
    """The file's own output: ONNX Runtime on the CPU, else ONNX's (slow, pure) reference evaluator."""
    names = [i.name for i in model.graph.input] or [INPUT_NAME]
    try:
        import onnxruntime as ort  # noqa: PLC0415 - optional: a GPU-only install may run without it
    except ImportError:
        from onnx.reference import ReferenceEvaluator  # noqa: PLC0415 - only without ONNX Runtime

        return np.asarray(ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))[0], dtype=np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {
        arg.name: value.astype(np.float16 if arg.type == "tensor(float16)" else np.float32)
        for arg, value in zip(session.get_inputs(), inputs)
    }
    return np.asarray(session.run(None, feeds)[0], dtype=np.float32)


def torch_model_from_onnx(path: str | os.PathLike, *, check: bool = True) -> LoadedModel:
    """The PyTorch network of one of our ``.onnx`` files: float32, eval mode, on the CPU.

    ``check`` runs the rebuilt net and the file on one ``(1, 3, 20, 28)`` input (and, for a
    conditioned net such as a multi-style one, an even blend of its styles) and requires them to
    agree within the export tolerance (0.5 levels of 255; 8 for fp16 files). Raises
    :class:`NotRebuildable` with the reason for any file it cannot rebuild exactly.
    """
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
        raise NotRebuildable(f"{path}: not a readable ONNX file ({exc.__class__.__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if CONTRACT_KEY not in meta:
        raise NotRebuildable(f"{path.name} carries no {CONTRACT_KEY} metadata (not written by python -m export)")
    try:
        contract = IOContract.from_json(meta[CONTRACT_KEY])
    except (ValueError, TypeError) as exc:
        raise NotRebuildable(f"{path.name}: unreadable {CONTRACT_KEY} metadata ({exc})") from None
    owner = FAMILIES.get(contract.family)
    if owner is None:
        raise NotRebuildable(f"{path.name}: family {contract.family!r} is not one this version knows")
    if len(model.graph.input) != 1 + bool(contract.condition_dim) or (
        contract.condition_dim and not owner.foreign_layouts
    ):
        raise NotRebuildable(f"{path.name} takes more than an image (a style vector); it runs as ONNX")
    state = {name: torch.from_numpy(array.copy()) for name, array in initializer_arrays(model).items()}
    layout = next((lay for lay in owner.foreign_layouts if lay.marker in state), None)
    if layout is None:
        raise NotRebuildable(f"{path.name}: its initializers are not a {owner.name} network's weights")
    try:
        net = owner.runtime_net(**layout.infer_kwargs(state))
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise NotRebuildable(f"{path.name}: cannot read the {owner.name} network's shape ({exc})") from None
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        what = f"{len(missing)} weights missing (e.g. {missing[0]})" if missing else f"{wrong[0]} has another shape"
        raise NotRebuildable(f"{path.name}: not the {owner.name} network: {what}")
    net.load_state_dict({k: state[k].float() for k in expected})
    net.eval()
    if check:
        inputs = [a for a in (_check_input(contract), _check_style(contract)) if a is not None]
        with torch.inference_mode():
            ours = net(*map(torch.from_numpy, inputs)).numpy()
        theirs = _run_file(model, *inputs)
        lo, hi = contract.value_range
        error = float(np.abs(ours - theirs).max()) * 255.0 / (hi - lo) if ours.shape == theirs.shape else np.inf
        tolerance = TOLERANCE_LEVELS.get(meta.get("nst_precision", "fp32"), TOLERANCE_LEVELS["fp16"])
        if not error <= tolerance:
            raise NotRebuildable(
                f"{path.name}: the rebuilt {owner.name} network differs from the file's graph "
                f"(max error {error:.2f} levels of 255)"
            )
        log.info("%s rebuilt as %s (max error %.3f levels)", path.name, type(net).__name__, error)
    return LoadedModel(net, contract, {"source_file": path.name, "rebuilt_from": "onnx"})
