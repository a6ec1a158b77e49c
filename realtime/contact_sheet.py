"""A contact sheet: one photo through every style of a multi-style (or arbitrary-style) model, labelled.

``python -m realtime.still --model multistyle --content photo.jpg --contact-sheet sheet.jpg`` lays
out the photo first, then one tile per style (every named style of the model, or the style specs
given, blends included), each with its name on a dark band below it, in rows of ``columns`` tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from realtime.core.errors import InvalidValue
from realtime.core.styles import require_style_control
from realtime.core.stylizer import Stylizer

PAD = 6
BACKGROUND = 24  # the sheet's dark grey; labels are white on it


def label_tile(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` ``(H, W, 3)`` uint8 with ``text`` centred on a dark band below it.

    The band's height depends on the tile's width only, so every tile of a sheet gets the same;
    a name too long for the width is drawn smaller.
    """
    w = image.shape[1]
    scale = max(0.35, min(0.8, w / 420.0))
    thickness = max(1, round(scale * 2))
    (_, th), base = cv2.getTextSize("Hg", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    band = np.full((th + base + 10, w, 3), BACKGROUND, np.uint8)
    size = scale
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thickness)
    while tw > w - 8 and size > 0.25:
        size *= 0.9
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thickness)
    white = (255, 255, 255)
    cv2.putText(band, text, ((w - tw) // 2, th + 5), cv2.FONT_HERSHEY_SIMPLEX, size, white, thickness, cv2.LINE_AA)
    return np.concatenate([image, band], axis=0)


def tile_grid(tiles: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Equally sized ``(H, W, 3)`` tiles in rows of ``columns``, on the sheet's background."""
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * (h + PAD) + PAD, columns * (w + PAD) + PAD, 3), BACKGROUND, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = PAD + r * (h + PAD), PAD + c * (w + PAD)
        sheet[y : y + h, x : x + w] = tile
    return sheet


def contact_sheet(
    photo: np.ndarray, specs: Sequence[str], render: Callable[[str], np.ndarray], columns: int | None = None
) -> np.ndarray:
    """The sheet for ``photo`` ``(H, W, 3)`` uint8 RGB: the photo, then ``render(spec)`` for each style spec.

    ``render`` returns ``photo`` stylised in that style (the same size); ``columns``: tiles per row
    (default: as square as it gets). The tiles are labelled with their specs.
    """
    if not specs:
        raise InvalidValue("style", "names no styles to show")
    tiles = [label_tile(photo, "photo")] + [label_tile(render(spec), spec) for spec in specs]
    columns = columns or math.ceil(math.sqrt(len(tiles)))
    return tile_grid(tiles, max(1, min(columns, len(tiles))))


def sheet_styles(stylizer: Stylizer, specs: Sequence[str] | None, model: str = "") -> list[str]:
    """The styles a sheet shows: ``specs`` as given, else every style the model names.

    A one-style model raises :class:`InvalidValue` (``style``): it has nothing to lay side by side.
    """
    control = require_style_control(stylizer, model)
    return list(specs) if specs else control.style_names()
