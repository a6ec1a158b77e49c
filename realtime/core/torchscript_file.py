"""Reading TorchScript model files (``torch.jit`` archives) with this project's IO contract.

``python -m export`` writes the contract into the archive's extra files (``nst_contract.json``:
``IOContract.to_json()``; ``nst_meta.json``: precision, the checkpoint's meta and provenance);
:func:`load_torchscript` reads them back. Foreign TorchScript files load with no contract.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from realtime.core.contract import IOContract
from realtime.core.errors import UserError

log = logging.getLogger(__name__)

CONTRACT_FILE = "nst_contract.json"
META_FILE = "nst_meta.json"


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


def load_torchscript(
    path: str | Path, device: torch.device | str = "cpu"
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
        raise UserError(
            f"{path} is not a readable TorchScript model (corrupt, truncated, or a checkpoint "
            f"saved with torch.save? name checkpoints .pth): {first[:160]}"
        ) from None
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
