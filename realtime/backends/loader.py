"""Turn ``--model`` into a running :class:`~realtime.core.stylizer.Stylizer` on the right backend.

:func:`load_stylizer` is the one entry point of the still, video and camera commands: it
resolves the name or path (:func:`realtime.core.model_zoo.resolve_model`) and picks ONNX Runtime
or PyTorch for the file. :func:`load_for_pipeline` adds the choice that is fastest for a
pipeline on this machine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from realtime.backends.onnx_backend import OnnxStylizer
from realtime.backends.torch_backend import TorchStylizer, is_torchscript
from realtime.core.checkpoint import load_model
from realtime.core.devices import resolve_device
from realtime.core.download import cache_dir, sha256_of
from realtime.core.errors import InvalidValue, UserError
from realtime.core.files import atomic_path
from realtime.core.frames import parse_input_range
from realtime.core.model_zoo import PublishedModel, resolve_model
from realtime.core.onnx_file import write_onnx
from realtime.core.stylizer import Stylizer

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "torch")


def _onnx_from_checkpoint(path: Path) -> Path:
    """An ONNX copy of checkpoint ``path``, written once and cached by the checkpoint's digest."""
    target = cache_dir("onnx") / f"{path.stem}-{sha256_of(path)[:16]}.onnx"
    if not target.is_file():
        log.info("converting %s to ONNX once (cached as %s)", path.name, target)
        loaded = load_model(path)
        with atomic_path(target) as tmp:
            write_onnx(loaded.model.float().eval(), loaded.contract, tmp, meta={"source_file": path.name})
    return target


def load_stylizer(
    model: str | os.PathLike,
    *,
    device: str = "auto",
    provider: str | None = None,
    input_range: str | None = None,
    backend: str | None = None,
    strict_provider: bool | None = None,
    half: bool | None = None,
    compile: bool = False,
    progress: bool = True,
    registry: Mapping[str, PublishedModel] | None = None,
    weights_dirs: Sequence[Path] | None = None,
    cache: Path | None = None,
) -> Stylizer:
    """The stylizer for ``--model`` (a path or a name; see :func:`resolve_model`).

    ``.onnx`` files run on ONNX Runtime: ``provider`` names an execution provider (missing:
    UserError, unless ``strict_provider=False``), ``device`` cpu/cuda picks the CPU/CUDA one
    (missing: a warning and the automatic choice); ``.pth`` checkpoints and ``.pt`` TorchScript files on
    PyTorch at ``device`` (``auto`` resolved here). ``backend="onnx"`` runs a checkpoint
    through ONNX Runtime (exported once, cached); ``"torch"`` refuses ONNX files.
    ``input_range`` (``"0-255"`` or ``"-1-1"``) overrides the model's value range.
    """
    if backend is not None and backend not in BACKENDS:
        raise InvalidValue("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    value_range = parse_input_range(input_range) if input_range else None
    path = resolve_model(model, registry=registry, weights_dirs=weights_dirs, cache=cache, progress=progress)
    is_onnx = path.suffix.lower() == ".onnx"
    if is_onnx and backend == "torch":
        raise InvalidValue("backend", f"torch runs .pth checkpoints and .pt TorchScript files; {path.name} is ONNX")
    if backend == "onnx" and not is_onnx:
        if is_torchscript(path):
            raise InvalidValue("backend", f"onnx needs an .onnx file or a .pth checkpoint; {path.name} is TorchScript")
        path, is_onnx = _onnx_from_checkpoint(path), True
    if is_onnx:
        strict = provider is not None if strict_provider is None else strict_provider
        if provider is None and device.strip().lower() != "auto":  # --device cpu/cuda picks the provider
            provider = "cpu" if device.strip().lower() == "cpu" else "cuda"
        return OnnxStylizer(path, providers=provider, input_range=value_range, strict=strict)
    if provider is not None:
        log.warning("provider %s applies to ONNX models only; %s runs on PyTorch", provider, path.name)
    stylizer = TorchStylizer(path, device=resolve_device(device), half=half, compile=compile)
    if value_range is not None:
        stylizer.contract = stylizer.contract.replace(value_range=value_range)
    return stylizer


def load_for_pipeline(
    model: str, *, device: str, provider: str | None = None, input_range: str | None = None, backend: str | None = None
) -> Stylizer:
    """Load ``--model`` for ``nst-video``/``nst-cam``; ``backend`` None picks the fastest here.

    On the CPU a ``.pth`` checkpoint runs through ONNX Runtime (exported once and cached by the
    loader): per core it ran ~1.6x faster than eager PyTorch in ``python -m bench
    video``. Elsewhere, and for ``.onnx``/TorchScript files, :func:`realtime.backends.loader.load_stylizer`
    decides. A checkpoint that fails to export falls back to PyTorch with a warning.
    """
    if backend is None and device == "cpu" and provider is None:
        path = resolve_model(model)
        if path.suffix.lower() == ".pth":
            load_model(path)  # a bad file is one error here, not a failed export and then the same error
            try:
                return load_stylizer(path, device=device, input_range=input_range, backend="onnx")
            except (UserError, ImportError, RuntimeError) as exc:
                log.warning(
                    "ONNX Runtime path unavailable for %s (%s); using PyTorch",
                    path.name,
                    " ".join(str(exc).split())[:160],
                )
                return load_stylizer(path, device=device, input_range=input_range, backend="torch")
        model = str(path)
    return load_stylizer(model, device=device, provider=provider, input_range=input_range, backend=backend)
