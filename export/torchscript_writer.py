"""Write a network as TorchScript (``torch.jit.trace``), with its IO contract in ``_extra_files``.

Tracing is exact for these nets: no data-dependent control flow, and the sizes inside
(pads, nearest upsampling by 2, transposed convs) are computed from the input's shape, so
one traced file runs at every resolution (the export's parity check runs it at two sizes
other than the traced one). The extra files are those :mod:`realtime.core.torchscript_file` reads.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from realtime.core.contract import IOContract
from realtime.core.torchscript_file import CONTRACT_FILE, META_FILE, quiet_jit


def write_torchscript(
    module: nn.Module,
    contract: IOContract,
    dest: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    precision: str = "fp32",
    sample_size: tuple[int, int] = (64, 64),
) -> Path:
    """Trace ``module`` (float32 ``(B, 3, H, W)`` in and out, plus ``(B, D)`` for a conditioned net) and save it.

    Tracing's own self-check is off: :func:`export.verify.verify_export` runs the saved file at
    two other sizes against eager, which is the check that matters (and costs one run, not four).
    """
    sample = (torch.rand(1, 3, *sample_size),)
    if contract.condition_dim:  # a conditioned net: the style vector is the second input
        sample += (torch.rand(1, contract.condition_dim),)
    with quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(module, sample, check_trace=False)
        info = {
            "precision": precision,
            "meta": dict(meta or {}),
            "exporter": f"realtime-nst export, torch {torch.__version__}",
        }
        extra = {CONTRACT_FILE: contract.to_json(), META_FILE: json.dumps(info, sort_keys=True, default=str)}
        buffer = io.BytesIO()  # torch.jit.save straight onto a full disk aborts the process
        torch.jit.save(traced, buffer, _extra_files=extra)
    Path(dest).write_bytes(buffer.getbuffer())
    return Path(dest)
