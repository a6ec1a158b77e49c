"""Memory estimates and budgets for stylising large frames (no torch import: the CLIs read it at once).

Measured peak inference memory through ONNX Runtime on the CPU (``python -m bench`` not needed:
``resource.getrusage`` around one call at 800x600 and 1600x1200, linear in the pixel count):
``mosaic`` about 870 bytes per pixel, ``mosaic_small`` 470, ``horse2zebra`` 430; a 4000x3000
still with ``mosaic`` peaks at 10-11 GB. :data:`BYTES_PER_PIXEL` rounds the largest up.
"""

from __future__ import annotations

import os
import re

from realtime.core.errors import InvalidValue

BYTES_PER_PIXEL = 1000  # peak inference memory of a style net per input pixel (see above)
GATYS_BYTES_PER_PIXEL = 4000  # VGG19 activations and their gradients to relu5_1, roughly
BUDGET_SHARE = 4  # default budget: a quarter of the machine's memory


def physical_memory() -> int | None:
    """Bytes of RAM in this machine, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def default_budget() -> int:
    """The default memory budget for one still: a quarter of the RAM (4 GiB where unknown)."""
    total = physical_memory()
    return total // BUDGET_SHARE if total else 4 << 30


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GB"``, ``"2000000"`` -> bytes (powers of 1024 for K/M/G/T)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not match:
        raise InvalidValue("max_memory", f"takes a size such as 4G or 512M, got {text!r}")
    value = float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ")
    if value < 64 << 20:
        raise InvalidValue("max_memory", f"must be at least 64M, got {text}")
    return int(value)


def format_bytes(count: float) -> str:
    """``11.4 GB`` (powers of 1024, one decimal)."""
    for unit in ("B", "KB", "MB"):
        if count < 1024:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} GB"


def whole_frame_bytes(height: int, width: int) -> int:
    """Estimated peak memory of a style net on one ``height`` x ``width`` frame."""
    return BYTES_PER_PIXEL * height * width
