"""Parity check of an exported file against the PyTorch model it came from.

The exported file (ONNX through onnxruntime on CPU, TorchScript through ``torch.jit.load``)
and the eager float32 model both run on the same random inputs, drawn uniformly from the
contract's value range (noise is a harder case than photographs: larger activations), plus a
style vector for a conditioned net: for a net with named styles (multi-style) one style per
sample at the first size and a random blend (weights summing to 1) at the others, else a random
vector in 0..1 (an embedding). Both outputs are clamped to the value
range, as the runtime does, and compared. Errors are reported in output units and in levels
of 255 (one level = one step of an 8-bit pixel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realtime.core.contract import IOContract
from realtime.core.errors import UserError
from realtime.core.torchscript_file import load_torchscript

log = logging.getLogger(__name__)

# Max abs difference allowed, in levels of 255. fp32 files differ from eager only by kernel
# summation order (~1e-3 levels on real weights); fp16 files round every activation.
TOLERANCE_LEVELS = {"fp32": 0.5, "fp16-weights": 1.0, "fp16": 8.0}


@dataclass(frozen=True)
class Check:
    """One parity run: ``batch`` frames of ``height x width``."""

    batch: int
    height: int
    width: int
    max_abs: float  # in the model's output units (0..255 or -1..1)
    max_levels: float  # the same in levels of 255

    def describe(self) -> str:
        return (
            f"{self.batch}x{self.height}x{self.width}: max abs error {self.max_abs:.3g} "
            f"(= {self.max_levels:.3g} levels of 255)"
        )


def _runner(path: Path) -> Callable[..., np.ndarray]:
    """A function running the exported file on float32 ``(B, 3, H, W)`` (plus a ``(B, D)`` style vector
    for a conditioned net) on the CPU."""
    if path.suffix.lower() == ".onnx":
        try:  # the [cpu] or [gpu] extra installs it (one of onnxruntime / onnxruntime-gpu, never both)
            import onnxruntime as ort  # noqa: PLC0415 - optional package; only .onnx exports need it
        except ImportError:
            raise UserError(
                f"checking {path.name} needs ONNX Runtime: pip install onnxruntime (or onnxruntime-gpu on NVIDIA)"
            ) from None
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"onnxruntime cannot load the exported {path.name}: {str(exc)[:200]}") from None
        names = [i.name for i in session.get_inputs()]
        return lambda *inputs: session.run(None, dict(zip(names, inputs)))[0]

    module = load_torchscript(path, "cpu")[0]

    def run(*inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(*(torch.from_numpy(a) for a in inputs)).numpy()

    return run


def _style_vectors(contract: IOContract, batch: int, first: bool, generator: torch.Generator) -> torch.Tensor:
    """``(batch, D)`` style vectors: single styles (``first``) or convex blends for named styles, else noise."""
    dim = contract.condition_dim
    if not contract.styles:
        return torch.rand(batch, dim, generator=generator)
    if first:  # one style each: 0, 1, …
        return torch.eye(dim)[[i % dim for i in range(batch)]]
    weights = torch.rand(batch, dim, generator=generator) + 1e-3
    return weights / weights.sum(dim=1, keepdim=True)


def verify_export(
    path: str | Path,
    reference: nn.Module,
    contract: IOContract,
    shapes: Sequence[tuple[int, int, int]],
    tolerance_levels: float,
    seed: int = 0,
) -> list[Check]:
    """Run ``path`` and ``reference`` (eager, float32, CPU) on random ``(B, H, W)`` inputs and compare.

    Raises :class:`UserError` when any max abs error exceeds ``tolerance_levels`` (in levels
    of 255); the caller's ``atomic_path`` then removes the file.
    """
    path = Path(path)
    run = _runner(path)
    lo, hi = contract.value_range
    levels_per_unit = 255.0 / (hi - lo)
    generator = torch.Generator().manual_seed(seed)
    reference = reference.float().eval()
    checks = []
    for batch, height, width in shapes:
        x = torch.rand(batch, 3, height, width, generator=generator) * (hi - lo) + lo
        inputs = (x,)
        if contract.condition_dim:  # a conditioned net: a style vector per sample
            inputs += (_style_vectors(contract, batch, first=not checks, generator=generator),)
        with torch.inference_mode():
            expected = reference(*inputs).clamp(lo, hi).numpy()
        try:
            got = run(*(a.numpy() for a in inputs))
        except Exception as exc:
            raise UserError(
                f"the exported {path.name} fails at {batch}x3x{height}x{width}: "
                f"{str(exc).strip().splitlines()[0][:200]}"
            ) from None
        if got.shape != expected.shape:
            raise UserError(
                f"the exported {path.name} returns shape {got.shape} at {batch}x3x{height}x{width}, "
                f"expected {expected.shape}"
            )
        max_abs = float(np.abs(np.clip(got, lo, hi) - expected).max())
        check = Check(batch, height, width, max_abs, max_abs * levels_per_unit)
        log.info("parity %s", check.describe())
        checks.append(check)
        if not np.isfinite(max_abs) or check.max_levels > tolerance_levels:
            raise UserError(
                f"the exported {path.name} does not match PyTorch at {batch}x{height}x{width}: "
                f"max abs error {check.max_levels:.3g} levels of 255 > tolerance {tolerance_levels:g}; "
                "nothing was written"
            )
    return checks
