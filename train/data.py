"""Training images: a recursive folder of photos with augmentation, and the MS-COCO lookup/download.

Samples are ``(3, S, S)`` float32 RGB in 0..255. An unreadable file never stops training:
the sample is replaced by the next readable one and its index reported, so the training
loop can warn once per file and count them at the end (this works across worker processes).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from realtime.core.download import cache_dir, download, extract_zip
from realtime.core.errors import InvalidValue, UserError
from realtime.core.images import list_images, pil_to_rgb

log = logging.getLogger(__name__)
T = TypeVar("T")

DATA_ROOT_ENV = "NST_DATA_ROOT"


def default_data_root() -> Path:
    """``$NST_DATA_ROOT`` or the user cache's ``data`` folder."""
    return Path(os.environ[DATA_ROOT_ENV]) if os.environ.get(DATA_ROOT_ENV) else cache_dir("data")


@dataclass(frozen=True)
class Augment:
    """Random crop with scale jitter and horizontal flips, to stretch a small photo set.

    A crop covering ``scale`` (area fraction, drawn from ``scale_range``) of the shorter-side
    square is taken and resized to ``size``; ``flip`` mirrors half the samples.
    """

    size: int = 256
    scale_range: tuple[float, float] = (0.35, 1.0)
    flip: bool = True

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        side = min(w, h)
        crop = max(8, int(round(side * rng.uniform(*self.scale_range) ** 0.5)))
        x0, y0 = rng.randint(0, w - crop), rng.randint(0, h - crop)
        img = img.resize((self.size, self.size), Image.BILINEAR, box=(x0, y0, x0 + crop, y0 + crop))
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return img


class ImageFolder(Dataset):
    """Every photo under ``root`` (recursive; jpg/png/webp/bmp), augmented to ``(3, S, S)`` RGB 0..255.

    ``__getitem__`` takes an index, or an ``(epoch, index)`` key (the augmentation draw of that
    epoch, for loaders whose workers outlive an epoch), and returns ``(image, bad_index)`` where
    ``bad_index`` is -1, or the index of an unreadable file that was replaced by the next readable one.
    """

    def __init__(self, root: str | Path, augment: Augment, seed: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"dataset folder {self.root} does not exist")
        self.files = list_images(self.root)
        if not self.files:
            raise UserError(f"no images (jpg, png, webp, bmp) found under {self.root}")
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw per epoch, reproducibly."""
        self.epoch = epoch

    def _load(self, index: int, epoch: int | None = None) -> torch.Tensor:
        rng = random.Random(hash((self.seed, self.epoch if epoch is None else epoch, index)))
        with Image.open(self.files[index]) as img:
            img.draft("RGB", (self.augment.size * 2, self.augment.size * 2))  # fast JPEG downscale
            img = Image.fromarray(pil_to_rgb(img))
        arr = np.asarray(self.augment(img, rng), dtype=np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (None, key)
        return first_readable(len(self.files), index, lambda i: self._load(i, epoch), self.root)


def first_readable(count: int, index: int, load: Callable[[int], T], where: Path) -> tuple[T, int]:
    """``(load(i), bad)`` for the first ``i`` from ``index`` on (cyclically) whose file decodes.

    ``bad`` is -1, or the index of the first file that failed (reported once by the training
    loop). An unreadable file never stops training; :class:`UserError` only if none decodes.
    """
    bad = -1
    for attempt in range(count):
        i = (index + attempt) % count
        try:
            return load(i), bad
        except Exception:  # noqa: BLE001 - any decoder failure means "skip this file"
            if bad == -1:
                bad = i
    raise UserError(f"none of the {count} images under {where} could be read")


def epoch_permutation(n: int, epoch: int, seed: int) -> list[int]:
    """The sample order of one epoch: a permutation fixed by ``(seed, epoch)``, so ``--resume`` replays it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


# ----------------------------------------------------------------------------- MS-COCO
COCO_ARCHIVES = {
    # split: (url, size in bytes)
    "train2014": ("http://images.cocodataset.org/zips/train2014.zip", 13510573713),
    "train2017": ("http://images.cocodataset.org/zips/train2017.zip", 19336861798),
}


def find_coco(data_root: Path) -> Path | None:
    """The first COCO train folder present under ``data_root/coco`` (train2017, then train2014)."""
    for split in ("train2017", "train2014"):
        folder = data_root / "coco" / split
        if folder.is_dir() and any(folder.iterdir()):
            return folder
    return None


def resolve_coco(data_root: Path, download_missing: bool, split: str = "train2017", progress: bool = True) -> Path:
    """Locate the MS-COCO training images, downloading and extracting the official archive if asked."""
    found = find_coco(data_root)
    if found is not None:
        return found
    url, size = COCO_ARCHIVES[split]
    if not download_missing:
        raise InvalidValue(
            "dataset",
            f"coco: the MS-COCO training images are not under {data_root / 'coco'}; "
            f"fetch {url} (~{size / 1e9:.0f} GB) with {{download}}, unzip it there yourself, point "
            f"{{data_root}} or ${DATA_ROOT_ENV} elsewhere, or give any folder of photos",
            mentions=("download", "data_root"),
        )
    archive = download(url, data_root / "coco" / f"{split}.zip", expected_size=size, progress=progress)
    extract_zip(archive, data_root / "coco", progress=progress)
    archive.unlink()
    found = find_coco(data_root)
    if found is None:
        raise UserError(f"{archive.name} extracted, but no {split}/ folder appeared under {data_root / 'coco'}")
    return found
