"""Hardware video encoders: which one this PyAV build has and this machine can open.

PyAV's wheels are built with NVIDIA's NVENC (``h264_nvenc``, ``hevc_nvenc``) among others, but
an encoder in the build may still fail to open (no NVIDIA driver, or a GPU without NVENC such
as the H100/H200). :func:`hardware_encoder` tries each candidate on a tiny frame size and
returns the first that opens; callers fall back to the software encoder otherwise.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av

log = logging.getLogger(__name__)

# software codec -> hardware encoders of the same format, best first
HARDWARE = {"libx264": ("h264_nvenc",), "libx265": ("hevc_nvenc",)}
# Constant quality close to x264's crf 18 at preset veryfast: VBR driven by cq, no bitrate cap.
NVENC_QUALITY = {"preset": "p4", "rc": "vbr", "cq": "19"}


def opens(codec: str, width: int = 256, height: int = 144) -> bool:
    """Whether encoder ``codec`` opens here for a ``yuv420p`` stream of that size (no frame is encoded)."""
    try:
        context = av.CodecContext.create(codec, "w")
        context.width, context.height, context.pix_fmt = width, height, "yuv420p"
        context.time_base = Fraction(1, 25)
        context.open()
    except Exception as exc:  # noqa: BLE001 - FFmpeg reports a missing driver/device in many ways
        log.debug("encoder %s does not open here: %s", codec, exc)
        return False
    return True


def hardware_encoder(codec: str) -> tuple[str | None, list[str]]:
    """``(the first hardware encoder for codec that opens, or None; the candidates this build has)``."""
    built = [name for name in HARDWARE.get(codec, ()) if name in av.codecs_available]
    for name in built:
        if opens(name):
            return name, built
    return None, built


def is_hardware(codec: str) -> bool:
    return any(codec in names for names in HARDWARE.values())
