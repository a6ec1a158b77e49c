"""Turn ``--model`` into a running :class:`~realtime.core.stylizer.Stylizer` on the right backend.

:func:`load_stylizer` is the one entry point of the still, video and camera commands: it
resolves the name or path (:func:`realtime.core.model_zoo.resolve_model`) and picks ONNX Runtime
or PyTorch for the file. :func:`load_for_pipeline` adds the choice that is fastest for a
pipeline on this machine.

``backend="auto"`` (the default): on a CUDA machine every model of ours runs on PyTorch, compiled
(this project's ``.onnx`` files are rebuilt as their PyTorch net, so the shipped weights get the
GPU without ``onnxruntime-gpu``); foreign ``.onnx`` files run on ONNX Runtime. On the CPU,
``.onnx`` files run on ONNX Runtime and checkpoints on PyTorch (:func:`load_for_pipeline`
sends them through ONNX Runtime too, which was faster per core).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from realtime.backends import onnx_backend
from realtime.backends.conditioned import ConditionedStylizer, PictureStylizer
from realtime.backends.onnx_backend import OnnxStylizer, ort_missing
from realtime.backends.torch_backend import TorchStylizer, is_torchscript
from realtime.core.checkpoint import load_model
from realtime.core.devices import resolve_device
from realtime.core.download import cache_dir, sha256_of
from realtime.core.errors import InvalidValue, UserError
from realtime.core.files import atomic_path
from realtime.core.frames import parse_input_range
from realtime.core.model_zoo import PublishedModel, resolve_model
from realtime.core.nets.families import style_resolver
from realtime.core.onnx_file import write_onnx
from realtime.core.onnx_weights import NotRebuildable
from realtime.core.stylizer import Stylizer

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _onnx_from_checkpoint(path: Path) -> Path:
    """An ONNX copy of checkpoint ``path``, written once and cached by the checkpoint's digest."""
    target = cache_dir("onnx") / f"{path.stem}-{sha256_of(path)[:16]}.onnx"
    if not target.is_file():
        log.info("converting %s to ONNX once (cached as %s)", path.name, target)
        loaded = load_model(path)
        with atomic_path(target) as tmp:
            write_onnx(loaded.model.float().eval(), loaded.contract, tmp, meta={"source_file": path.name})
    return target


def _wants_cuda(device: str | os.PathLike) -> bool:
    """Whether ``device`` (``auto``, ``cpu``, ``cuda[:N]``) means a CUDA GPU that is present."""
    name = str(device or "auto").strip().lower()
    return (name == "auto" or name.startswith("cuda")) and torch.cuda.is_available()


def _ort_has_gpu() -> bool:
    return onnx_backend.ort is not None and any(p in GPU_PROVIDERS for p in onnx_backend.ort.get_available_providers())


def load_stylizer(
    model: str | os.PathLike,
    *,
    device: str = "auto",
    provider: str | None = None,
    input_range: str | None = None,
    backend: str | None = None,
    strict_provider: bool | None = None,
    half: bool | None = None,
    compile: bool | None = None,
    precision: str | None = None,
    progress: bool = True,
    registry: Mapping[str, PublishedModel] | None = None,
    weights_dirs: Sequence[Path] | None = None,
    cache: Path | None = None,
) -> Stylizer:
    """The stylizer for ``--model`` (a path or a name; see :func:`resolve_model`).

    ``backend`` ``auto``/None: see the module docstring. ``"onnx"``: ONNX Runtime, a checkpoint
    exported once and cached; ``provider`` names an execution provider (missing: UserError,
    unless ``strict_provider=False``), ``device`` cpu/cuda picks the CPU/CUDA one (missing: a
    warning and the automatic choice). ``"torch"``: PyTorch at ``device`` for checkpoints,
    TorchScript files and this project's ``.onnx`` files. ``compile``, ``precision`` and
    ``half`` go to :class:`TorchStylizer` (None: its measured defaults).
    ``input_range`` (``"0-255"`` or ``"-1-1"``) overrides the model's value range.
    """
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise InvalidValue("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    value_range = parse_input_range(input_range) if input_range else None
    path = resolve_model(model, registry=registry, weights_dirs=weights_dirs, cache=cache, progress=progress)
    is_onnx = path.suffix.lower() == ".onnx"
    if backend == "onnx" and not is_onnx:
        if is_torchscript(path):
            raise InvalidValue("backend", f"onnx needs an .onnx file or a .pth checkpoint; {path.name} is TorchScript")
        path, is_onnx = _onnx_from_checkpoint(path), True
    torch_options = dict(half=half, compile=compile, precision=precision)
    if is_onnx and backend != "onnx" and provider is None:
        if backend == "torch" or _wants_cuda(device) or ort_missing():
            try:
                return _torch(path, device, value_range, torch_options)
            except NotRebuildable as exc:
                if backend == "torch":
                    raise InvalidValue(
                        "backend", f"torch runs .pth, .pt and this project's .onnx files; {path.name} is ONNX: {exc}"
                    ) from None
                if _wants_cuda(device) and not _ort_has_gpu():
                    log.warning(
                        "%s is a foreign ONNX file and this ONNX Runtime has no CUDA provider, so it runs on the "
                        "CPU; for the GPU install onnxruntime-gpu instead of onnxruntime (pip install "
                        "'realtime-nst[gpu]')",
                        path.name,
                    )
    if is_onnx:
        strict = provider is not None if strict_provider is None else strict_provider
        if provider is None and device.strip().lower() != "auto":  # --device cpu/cuda picks the provider
            provider = "cpu" if device.strip().lower() == "cpu" else "cuda"
        return conditioned(OnnxStylizer(path, providers=provider, input_range=value_range, strict=strict))
    if provider is not None:
        log.warning("provider %s applies to ONNX models only; %s runs on PyTorch", provider, path.name)
    return _torch(path, device, value_range, torch_options)


def _torch(path: Path, device: str, value_range: tuple[float, float] | None, options: dict) -> Stylizer:
    stylizer = TorchStylizer(path, device=resolve_device(device), **options)
    if value_range is not None:
        stylizer.contract = stylizer.contract.replace(value_range=value_range)
    return conditioned(stylizer)


def conditioned(stylizer: Stylizer) -> Stylizer:
    """A backend stylizer as it is, or wrapped with its family's style resolver when its net takes a style vector
    (a :class:`PictureStylizer` when the resolver's styles are pictures)."""
    if not stylizer.contract.condition_dim:
        return stylizer
    resolver = style_resolver(stylizer.contract)
    if callable(getattr(resolver, "picture_vector", None)):
        return PictureStylizer(stylizer, resolver)
    return ConditionedStylizer(stylizer, resolver)


def load_for_pipeline(
    model: str,
    *,
    device: str,
    provider: str | None = None,
    input_range: str | None = None,
    backend: str | None = None,
    compile: bool | None = None,
) -> Stylizer:
    """Load ``--model`` for ``nst-video``/``nst-cam``; ``backend`` None/``auto`` picks the fastest here.

    On the CPU a ``.pth`` checkpoint runs through ONNX Runtime (exported once and cached by the
    loader): per core it ran ~1.6x faster than eager PyTorch in ``python -m bench
    video``. Elsewhere :func:`load_stylizer` decides (on CUDA: PyTorch, compiled unless
    ``compile`` is False). A checkpoint that fails to export falls back to PyTorch with a warning.
    """
    backend = None if backend == "auto" else backend
    if backend is None and device == "cpu" and provider is None and not ort_missing():
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
                return load_stylizer(path, device=device, input_range=input_range, backend="torch", compile=compile)
        model = str(path)
    return load_stylizer(
        model, device=device, provider=provider, input_range=input_range, backend=backend, compile=compile
    )
