"""What a training run leaves to look at: a CSV log always, TensorBoard when installed, image grids."""

from __future__ import annotations

import csv
import logging
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from realtime.core.errors import UserError
from realtime.core.files import os_error_line
from realtime.core.images import write_image

log = logging.getLogger(__name__)


def recorded_command(module: str, argv: Sequence[str], root: Path | None = None) -> str:
    """The command line of a run as provenance records it, free of this machine's paths.

    ``python -m <module>`` and the arguments; a path inside ``root`` (default: the current folder,
    the repository for the README's commands) is written relative to it, any other absolute path
    as ``<its last component>``: ``--dataset /data/coco/train2017`` -> ``--dataset <train2017>``.
    """
    root = (root or Path.cwd()).resolve()
    words = []
    for arg in argv:
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        words.append(flag + eq + _portable(value, root) if eq else _portable(arg, root))
    return shlex.join(["python", "-m", module, *words])


def portable_path(path: str, root: Path | None = None) -> str:
    """``path`` as provenance records it: relative to ``root`` (default: the current folder), else ``<name>``."""
    return _portable(path, (root or Path.cwd()).resolve()) if Path(path).is_absolute() else path


def _portable(word: str, root: Path) -> str:
    if not word.startswith(("/", "~")):
        return word
    path = Path(word).expanduser()
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return f"<{path.name or word}>"


class RunLog:
    """Append scalar rows to ``log_dir/log.csv`` (header from the first row) and to TensorBoard if present."""

    def __init__(self, log_dir: str | Path, resume: bool = False) -> None:
        self.dir = Path(log_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "log.csv"
        self._fields: list[str] | None = None
        if resume and self.csv_path.exists():
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            self._fields = header
        elif self.csv_path.exists():
            self.csv_path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - optional (tensorboard package)

            self._tb = SummaryWriter(str(self.dir))
        except Exception:  # noqa: BLE001 - TensorBoard is optional
            self._tb = None

    def write(self, step: int, values: Mapping[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        if self._fields is None:
            self._fields = list(row)
        try:
            with open(self.csv_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
                if f.tell() == 0:
                    writer.writeheader()
                writer.writerow(row)
        except OSError as exc:  # a full disk surfaces when the buffer is flushed, without a file name
            raise UserError(os_error_line(exc, self.csv_path, "cannot write")) from None
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def to_uint8_images(batch: torch.Tensor, value_range: tuple[float, float]) -> list[np.ndarray]:
    """``(B, 3, H, W)`` in ``value_range`` -> list of RGB uint8 ``(H, W, 3)``."""
    lo, hi = value_range
    scaled = ((batch.detach().float().cpu() - lo) / (hi - lo) * 255.0).clamp(0, 255).round().to(torch.uint8)
    return [img.permute(1, 2, 0).numpy() for img in scaled]


def save_grid(rows: Sequence[Sequence[np.ndarray]], path: str | Path, pad: int = 4) -> Path:
    """Tile equally sized RGB uint8 images: ``rows[r][c]`` goes to row r, column c; white padding."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y : y + h, x : x + w] = img[:h, :w]
    return write_image(path, grid)
