"""Export trained networks to ONNX or TorchScript, with the IO contract inside, checked against PyTorch.

:func:`export_model` is the library entry point (``python -m export`` is its CLI):
load a checkpoint (this project's, or the published pytorch/examples and CycleGAN files),
write the file atomically, run it at two sizes against eager PyTorch, and keep it only if
it matches. ``fp16`` files compute in half precision with float32 inputs and outputs; their
InstanceNorm layers stay float32 (see :class:`HalfPrecision`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from export.torchscript_writer import write_torchscript
from export.verify import TOLERANCE_LEVELS, Check, verify_export
from realtime.core.checkpoint import LoadedModel, json_safe, load_model
from realtime.core.contract import IOContract
from realtime.core.errors import InvalidValue, UserError
from realtime.core.files import check_output, ensure_not_an_input, output_file
from realtime.core.nets.families import FAMILIES, family_of
from realtime.core.onnx_file import DEFAULT_OPSET, write_onnx

log = logging.getLogger(__name__)

FORMATS = {".onnx": "onnx", ".pt": "torchscript"}
EXPORTABLE = tuple(f.runtime_net for f in FAMILIES.values() if f.exportable)
VERIFY_SHAPES = ((2, 64, 96), (1, 100, 76))  # (batch, height, width): two sizes, both multiples of 4


class _Fp32Norm(nn.Module):
    """Runs an InstanceNorm in float32 inside a half-precision net.

    Johnson nets see 0..255 inputs, so early activations reach the hundreds and their
    variance can pass fp16's 65504; normalising in float32 costs two casts per layer.
    """

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float()).to(x.dtype)


class HalfPrecision(nn.Module):
    """``(B, 3, H, W)`` float32 in (and a conditioned net's style vector) -> the net in float16 -> float32 out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()
        for parent in list(self.model.modules()):
            for child_name, child in parent.named_children():
                if isinstance(child, nn.InstanceNorm2d):
                    setattr(parent, child_name, _Fp32Norm(child))

    def forward(self, x: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor:
        return self.model(x.half(), *(c.half() for c in conditions)).float()


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and how well it matched eager PyTorch."""

    path: Path
    format: str  # "onnx" | "torchscript"
    precision: str  # "fp32" | "fp16"
    contract: IOContract
    checks: list[Check] = field(default_factory=list)
    tolerance_levels: float = 0.0

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def export_contract(
    loaded: LoadedModel, source_name: str, name: str | None, static: tuple[int, int] | None
) -> IOContract:
    """The contract written into the file: the checkpoint's, named, with training provenance added."""
    contract = loaded.contract
    provenance = dict(contract.provenance)
    provenance.setdefault("source_file", source_name)
    training = {k: v for k, v in loaded.meta.items() if k != "source_file"}
    if training:
        provenance["training"] = json_safe(training)
    return contract.replace(
        name=name or contract.name or Path(source_name).stem,
        fixed_size=tuple(static) if static else contract.fixed_size,
        provenance=provenance,
    )


def _check_static(static: tuple[int, int] | None, multiple: int) -> None:
    if static is None:
        return
    h, w = static
    if h < 16 or w < 16 or h % multiple or w % multiple:
        raise UserError(f"--static {h} {w}: height and width must be multiples of {multiple} and at least 16")


def export_model(
    source: str | Path | LoadedModel,
    dest: str | Path,
    *,
    fp16: bool = False,
    half_weights: bool = False,
    opset: int = DEFAULT_OPSET,
    static: tuple[int, int] | None = None,
    name: str | None = None,
    tolerance_levels: float | None = None,
    verify: bool = True,
    force: bool = False,
) -> ExportResult:
    """Export ``source`` (a checkpoint path or a loaded model) to ``dest`` (``.onnx`` or ``.pt``).

    The file appears only after it ran at two sizes (or twice at the ``static`` size) within
    ``tolerance_levels`` levels of 255 of eager float32 PyTorch (defaults:
    :data:`export.verify.TOLERANCE_LEVELS`). ``fp16`` computes in half precision;
    ``half_weights`` (ONNX only) stores the weights in half precision and computes in float32.
    An existing ``dest`` is replaced only with ``force`` (else
    :class:`~realtime.core.files.OutputExists`, before any work).
    """
    dest = Path(dest)
    fmt = FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise UserError(f"output {dest.name} must end in .onnx (ONNX) or .pt (TorchScript)")
    check_output(dest, force=force)
    if isinstance(source, LoadedModel):
        loaded, source_name = source, str(source.meta.get("source_file", "model"))
    else:
        source = Path(source)
        if source.suffix.lower() == ".onnx":
            raise UserError(f"{source} is already an ONNX model; export reads checkpoints (.pth)")
        ensure_not_an_input(dest, [source])
        loaded, source_name = load_model(source), source.name
    owner = family_of(loaded.model)
    if owner is None or not owner.exportable:
        kinds = ", ".join(f.runtime_net.__name__ for f in FAMILIES.values() if f.exportable)
        raise UserError(f"{source_name} holds a {type(loaded.model).__name__}; export handles {kinds}")
    if half_weights and fmt != "onnx":
        raise InvalidValue("half_weights", "applies to ONNX files only")
    if static is not None and fmt != "onnx":
        raise UserError("--static applies to ONNX only; TorchScript files run at any size")
    _check_static(static, loaded.contract.size_multiple)
    if not 9 <= opset <= 20:
        raise UserError(f"--opset must be between 9 and 20, got {opset}")
    precision = "fp16" if fp16 else "fp32"
    storage = "fp16-weights" if half_weights and not fp16 else precision
    tolerance = TOLERANCE_LEVELS[storage] if tolerance_levels is None else float(tolerance_levels)
    contract = export_contract(loaded, source_name, name, static)
    reference = loaded.model.float().eval().cpu()
    module = HalfPrecision(reference).eval() if fp16 else reference
    meta = json_safe(loaded.meta)
    shapes = [(2, *static), (1, *static)] if static else list(VERIFY_SHAPES)
    with output_file(dest, force=force) as pending:
        tmp = pending.tmp
        if fmt == "onnx":
            write_onnx(
                module,
                contract,
                tmp,
                meta=meta,
                precision=precision,
                opset=opset,
                sample_size=tuple(static) if static else (64, 64),
                static=static is not None,
                half_weights=half_weights,
            )
        else:
            write_torchscript(module, contract, tmp, meta=meta, precision=precision)
        checks = verify_export(tmp, reference, contract, shapes, tolerance) if verify else []
    log.info("wrote %s (%s, %s)", dest, fmt, precision)
    return ExportResult(dest, fmt, precision, contract, checks, tolerance)


__all__ = ["EXPORTABLE", "FORMATS", "ExportResult", "HalfPrecision", "export_contract", "export_model"]
