"""The YUV colour matrices this project writes, and how a stream says which one it used.

BT.709 for HD frames (width >= 1280 or height >= 720), BT.601 for SD (:func:`matrix_for`),
limited range (Y 16..235, Cb/Cr 16..240). ``TAGS`` are FFmpeg's AVColorSpace /
AVColorPrimaries / AVColorTransferCharacteristic values (the same number for each of these two
standards); ``LIMITED_RANGE`` is AVCOL_RANGE_MPEG.
"""

from __future__ import annotations

MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}  # (Kr, Kb); Kg = 1 - Kr - Kb
TAGS = {"bt709": 1, "bt601": 6}  # BT709; SMPTE170M (BT.601)
LIMITED_RANGE = 1


def matrix_for(width: int, height: int) -> str:
    """``"bt709"`` for HD frames (width >= 1280 or height >= 720), else ``"bt601"``."""
    return "bt709" if width >= 1280 or height >= 720 else "bt601"
