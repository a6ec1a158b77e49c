"""The project's one checkpoint format, plus loading of the published foreign layouts.

A checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads::

    {"format": "realtime-nst", "version": 1,
     "arch": "transformer_net", "arch_kwargs": {...}, "state_dict": {...},
     "contract": IOContract.to_dict(), "meta": {style, training arguments, provenance},
     "training": {...} or absent}          # optimizer/step/RNG, only in resumable files

:func:`load_model` also accepts the bare state dicts published by pytorch/examples
``fast_neural_style`` and by the CycleGAN authors, inferring their shapes from the keys.
Legacy InstanceNorm ``running_mean``/``running_var`` keys are dropped in one place:
:func:`drop_legacy_norm_keys`.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from realtime.core.contract import IOContract
from realtime.core.errors import UserError
from realtime.core.files import atomic_path
from realtime.core.nets.families import FAMILIES, arch_name, architectures, build, detect_foreign

FORMAT = "realtime-nst"
VERSION = 1


@dataclass
class LoadedModel:
    """A model rebuilt from a file: the module (eval mode, CPU), its contract and metadata."""

    model: nn.Module
    contract: IOContract
    meta: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None


def json_safe(data: Any) -> Any:
    """``data`` as plain JSON types (tuples become lists, paths and other objects strings), for metadata."""
    return json.loads(json.dumps(data, default=str))


def drop_legacy_norm_keys(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove running-stat keys that old PyTorch versions saved for InstanceNorm layers without them.

    pytorch/examples' published ``mosaic.pth`` etc. carry ``in1.running_mean``…; the CycleGAN
    authors' generators may carry ``model.2.running_mean`` and ``num_batches_tracked``.
    """
    norm_prefixes = {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.InstanceNorm2d) and not module.track_running_stats
    }
    pattern = re.compile(r"^(.*)\.(running_mean|running_var|num_batches_tracked)$")
    cleaned = {}
    for key, value in state_dict.items():
        match = pattern.match(key)
        if match and match.group(1) in norm_prefixes:
            continue
        cleaned[key] = value
    return cleaned


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``model`` exactly, with one clear line on any mismatch."""
    state_dict = drop_legacy_norm_keys(model, state_dict)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape (e.g. {wrong[0]})")
        raise UserError(
            f"{source} does not fit a {type(model).__name__}"
            f"({', '.join(f'{k}={v}' for k, v in model_kwargs(model).items())}): {'; '.join(parts)}"
        )
    model.load_state_dict(state_dict)


def model_kwargs(model: nn.Module) -> dict[str, Any]:
    return model.arch_kwargs() if hasattr(model, "arch_kwargs") else {}


def checkpoint_dict(
    model: nn.Module, contract: IOContract, meta: dict[str, Any] | None = None, training: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Assemble the checkpoint dict for ``model`` (weights moved to CPU)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    data = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch_name(model),
        "arch_kwargs": model_kwargs(model),
        "state_dict": state,
        "contract": contract.to_dict(),
        "meta": dict(meta or {}),
    }
    if training is not None:
        data["training"] = training
    return data


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    contract: IOContract,
    meta: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file, then rename).

    The checkpoint is serialised in memory first: ``torch.save`` onto a full disk raises an
    opaque ``RuntimeError`` (and ``torch.jit.save`` aborts the process), while a plain write
    raises an ``OSError`` that says what happened.
    """
    buffer = io.BytesIO()
    torch.save(checkpoint_dict(model, contract, meta, training), buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def read_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with one clear line for missing, corrupt or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such model file: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if "Weights only load failed" in first:  # torch's long explanation of weights_only, not the cause
            first = "not a state dict or checkpoint that loads safely with weights_only=True"
        raise UserError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated?): {first[:160]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a state dict or checkpoint (found {type(data).__name__})")
    return data


def _from_bare_state_dict(data: dict[str, Any], path: Path) -> LoadedModel:
    """A published bare state dict (pytorch/examples, the CycleGAN authors), recognised by the family registry."""
    state = data.get("state_dict", data) if isinstance(data.get("state_dict"), dict) else data
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    found = detect_foreign(state)
    if found is None:
        layouts = ", ".join(layout.source for f in FAMILIES.values() for layout in f.foreign_layouts)
        raise UserError(f"{path}: unknown checkpoint layout (neither this project's format nor one of: {layouts})")
    family, layout = found
    model = family.runtime_net(**layout.infer_kwargs(state))
    contract = family.contract(name=path.stem, provenance={"source": f"{layout.source} layout"})
    load_state_dict_strict(model, state, str(path))
    return LoadedModel(model.eval(), contract, {"source_file": path.name})


def load_model(path: str | Path, expect_arch: str | None = None) -> LoadedModel:
    """Rebuild the model stored in ``path`` (ours or a published foreign layout), on CPU, in eval mode.

    ``expect_arch`` (a registry name) turns "a checkpoint of another architecture" into a UserError.
    """
    path = Path(path)
    data = read_checkpoint_file(path)
    if data.get("format") != FORMAT:
        loaded = _from_bare_state_dict(data, path)
    else:
        arch = data.get("arch")
        if arch not in architectures():
            raise UserError(f"{path}: unknown architecture {arch!r}; known: {', '.join(architectures())}")
        try:
            model = build(arch, dict(data.get("arch_kwargs") or {}))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}: bad architecture arguments for {arch}: {exc}") from None
        load_state_dict_strict(model, data["state_dict"], str(path))
        contract = IOContract.from_dict(data.get("contract") or {})
        loaded = LoadedModel(model.eval(), contract, dict(data.get("meta") or {}), data.get("training"))
    if expect_arch is not None and arch_name(loaded.model) != expect_arch:
        raise UserError(f"{path} holds a {arch_name(loaded.model)}, not a {expect_arch}")
    return loaded
