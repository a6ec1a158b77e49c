"""Resolve a device name once, at the command line; library code receives a ``torch.device``."""

from __future__ import annotations

import torch

from realtime.core.errors import InvalidValue


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a usable ``torch.device``.

    ``auto`` picks CUDA when available, else CPU. Asking for CUDA where there is none,
    or for an unknown device, raises :class:`InvalidValue`.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidValue("device", f"{name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidValue("device", f"{name}: no CUDA GPU is available here; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidValue("device", f"{name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type not in ("cpu", "mps"):
        raise InvalidValue("device", f"{name!r} is not a device; use auto, cpu, cuda or cuda:N")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions and matrix products natively (faster than float32).

    CUDA GPUs that support bf16 (Ampere and later); x86 CPUs with AVX512-BF16 or AMX, where oneDNN
    runs bf16 convolutions about twice as fast as float32. Elsewhere bf16 would be emulated: slower.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)
    return False
