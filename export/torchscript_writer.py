"""Write a network as TorchScript (``torch.jit.trace``), with its IO contract in ``_extra_files``.

Tracing is exact for these nets: no data-dependent control flow, and the sizes inside
(pads, nearest upsampling by 2, transposed convs) are computed from the input's shape, so
one traced file runs at every resolution (the export's parity check runs it at two sizes
other than the traced one).

Extra files: ``nst_contract.json`` (``IOContract.to_json()``) and ``nst_meta.json``
(precision, the checkpoint's meta and provenance).
"""
from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from train.errors import UserError
from train.nets.contract import IOContract

log = logging.getLogger(__name__)

CONTRACT_FILE = "nst_contract.json"
META_FILE = "nst_meta.json"


def write_torchscript(module: nn.Module, contract: IOContract, dest: str | Path, *,
                      meta: dict[str, Any] | None = None, precision: str = "fp32",
                      sample_size: tuple[int, int] = (64, 64)) -> Path:
    """Trace ``module`` (float32 ``(B, 3, H, W)`` in and out) at ``sample_size`` and save it to ``dest``.

    Tracing's own self-check is off: :func:`export.verify.verify_export` runs the saved file at
    two other sizes against eager, which is the check that matters (and costs one run, not four).
    """
    sample = torch.rand(1, 3, *sample_size)
    with quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(module, (sample,), check_trace=False)
        info = {"precision": precision, "meta": dict(meta or {}),
                "exporter": f"realtime-nst export, torch {torch.__version__}"}
        extra = {CONTRACT_FILE: contract.to_json(), META_FILE: json.dumps(info, sort_keys=True, default=str)}
        torch.jit.save(traced, str(dest), _extra_files=extra)
    return Path(dest)


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence TorchScript's tracer warnings and its deprecation notices (torch >= 2.10).

    TorchScript still works and is what C++/libtorch deployments load; the notices would
    only tell the user something they cannot act on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def load_torchscript(path: str | Path, device: torch.device | str = "cpu"
                     ) -> tuple[torch.jit.ScriptModule, IOContract | None, dict[str, Any]]:
    """Load a TorchScript file; returns ``(module, contract or None, info)``.

    ``contract`` is None for TorchScript files not written by this project. A corrupt,
    truncated or non-TorchScript file raises :class:`UserError`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such model file: {path}")
    extra = {CONTRACT_FILE: "", META_FILE: ""}
    try:
        with quiet_jit():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable TorchScript model (corrupt, truncated, or a checkpoint "
                        f"saved with torch.save? name checkpoints .pth): {first[:160]}") from None
    contract = None
    if extra[CONTRACT_FILE]:
        try:
            contract = IOContract.from_json(_text(extra[CONTRACT_FILE]))
        except (ValueError, TypeError) as exc:
            raise UserError(f"{path}: unreadable {CONTRACT_FILE} ({exc})") from None
    info: dict[str, Any] = {}
    if extra[META_FILE]:
        try:
            info = json.loads(_text(extra[META_FILE]))
        except ValueError:
            log.warning("%s: ignoring an unreadable %s", path, META_FILE)
    return module.eval(), contract, info


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
