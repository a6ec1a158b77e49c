"""Reading and writing still images as ``uint8`` arrays of shape ``(H, W, 3)``, RGB.

Every image the project reads passes through :func:`read_image`, so grayscale,
RGBA, palette, 16-bit, CMYK and EXIF-rotated files behave the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from realtime.core.errors import InvalidValue, UserError
from realtime.core.files import output_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any PIL image to an RGB ``uint8`` array ``(H, W, 3)``, honouring EXIF rotation.

    Alpha is composited onto white; 16-bit and 32-bit greys are scaled to 0..255.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)``; optionally resize so the longer side is ``max_side``.

    Raises :class:`UserError` for a missing, unreadable, non-image or zero-sized file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = pil_to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "not an image file" if isinstance(exc, UnidentifiedImageError) else f"cannot read it ({exc})"
        raise UserError(f"{path}: {reason}") from None
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise UserError(f"{path}: the image is empty (zero size)")
    if max_side is not None:
        rgb = resize_longer_side(rgb, max_side)
    return rgb


def resize(rgb: np.ndarray, height: int, width: int, quality: str = "high") -> np.ndarray:
    """Resize ``(H, W, 3)`` uint8 to exactly ``(height, width, 3)``; the one resize of the project.

    ``quality="high"`` (stills): Lanczos, antialiased both ways (Pillow). ``"fast"`` (video
    frames): OpenCV's area filter when shrinking, bilinear when enlarging, several times faster.
    Returns ``rgb`` itself when the size already matches.
    """
    if rgb.shape[:2] == (height, width):
        return rgb
    if quality == "fast":
        import cv2  # noqa: PLC0415 - 0.1 s of start-up that the still (Pillow) paths never need

        shrink = height * width < rgb.shape[0] * rgb.shape[1]
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if quality != "high":
        raise ValueError(f"quality must be 'high' or 'fast', got {quality!r}")
    return np.array(Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), Image.LANCZOS))


def resize_longer_side(rgb: np.ndarray, max_side: int, quality: str = "high") -> np.ndarray:
    """Resize ``(H, W, 3)`` so its longer side equals ``max_side``, keeping the aspect ratio."""
    if max_side <= 0:
        raise InvalidValue("size", f"must be a positive number of pixels, got {max_side}")
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    return resize(rgb, max(1, round(h * scale)), max(1, round(w * scale)), quality)


def _image_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UserError(f"unsupported output image type {suffix or '(none)'}; use one of {', '.join(IMAGE_SUFFIXES)}")
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}[suffix]


def encode_image(file: str | os.PathLike, rgb: np.ndarray, image_format: str) -> None:
    """Write RGB ``uint8`` ``(H, W, 3)`` to ``file`` as it is (no temporary file) in ``image_format`` (PIL's name)."""
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(file, format=image_format, quality=95)


def write_image(path: str | os.PathLike, rgb: np.ndarray, *, force: bool = True) -> Path:
    """Write RGB ``uint8`` ``(H, W, 3)`` atomically; the format follows the suffix (png, jpg, webp, bmp).

    ``force=False`` never replaces an existing file (:class:`~realtime.core.files.OutputExists`).
    """
    path = Path(path)
    fmt = _image_format(path)
    with output_file(path, force=force) as pending:
        encode_image(pending.tmp, rgb, fmt)
    return path


def write_partial_image(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an unfinished result: under ``path`` if that is free, else as ``NAME.partial.EXT``; returns where."""
    path = Path(path)
    fmt = _image_format(path)
    with output_file(path, force=True) as pending:
        pending.partial = True
        encode_image(pending.tmp, rgb, fmt)
    assert pending.published is not None
    return pending.published


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (and its subfolders when ``recursive``), sorted for reproducibility."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
