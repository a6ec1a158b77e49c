"""Unpaired image sets for CycleGAN: a folder with ``trainA/`` and ``trainB/``, the authors' named sets, sharding.

A sample is ``{"A": (3, S, S), "B": (3, S, S)}`` float32 RGB in -1..1, prepared as the authors'
``resize_and_crop``: squash to ``load_size`` square (bicubic), random ``S`` crop, random
horizontal flip. As in their ``UnalignedDataset`` an epoch has ``max(|A|, |B|)`` samples: item
``i`` pairs ``A[i % |A|]`` with a random B.

Randomness is a pure function of ``(seed, epoch, index)``, and :class:`EpochBatchSampler` hands
the epoch to the dataset with each index, so worker processes, ``--resume`` and several ranks
all see the same, reproducible stream. An unreadable file never stops training: the next readable
one is used and the bad file's index reported in ``bad_A`` / ``bad_B`` (-1 when none).
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import random
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from realtime.core.download import download, extract_zip
from realtime.core.errors import InvalidValue, UserError
from realtime.core.images import list_images, pil_to_rgb
from train.data import DATA_ROOT_ENV, epoch_permutation, first_readable

log = logging.getLogger(__name__)

# The authors' datasets (pytorch-CycleGAN-and-pix2pix, datasets/download_cyclegan_dataset.sh).
DATASETS = (
    "horse2zebra",
    "monet2photo",
    "summer2winter_yosemite",
    "apple2orange",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "facades",
    "iphone2dslr_flower",
)
DATASET_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"


def domain_names(name: str) -> tuple[str, str] | None:
    """``"horse2zebra"`` -> ``("horse", "zebra")``; ``None`` when the name is not of the form X2Y."""
    match = re.fullmatch(r"([A-Za-z][\w-]*?)2([A-Za-z][\w-]*)", name)
    return (match.group(1), match.group(2)) if match else None


def _has_domains(folder: Path) -> bool:
    return (folder / "trainA").is_dir() and (folder / "trainB").is_dir()


def resolve_dataset(
    dataset: str,
    data_root: Path,
    download_missing: bool = False,
    progress: bool = True,
    url_template: str | None = None,
) -> Path:
    """The folder holding ``trainA/`` and ``trainB/`` for ``dataset`` (a folder or one of :data:`DATASETS`).

    A named set is looked up under ``data_root/cyclegan/<name>``; if absent it is downloaded and
    extracted there when ``download_missing``, else a :class:`UserError` says how to get it.
    ``url_template`` (default :data:`DATASET_URL`) has a ``{name}`` field.
    """
    path = Path(dataset).expanduser()
    if path.is_dir():
        return path
    if dataset not in DATASETS:
        hint = difflib.get_close_matches(dataset, DATASETS, n=1)
        raise InvalidValue(
            "dataset",
            f"{dataset!r} is neither a folder nor a known dataset"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
            + f" (known: {', '.join(DATASETS)}; or give a folder with trainA/ and trainB/)",
        )
    folder = data_root / "cyclegan" / dataset
    if _has_domains(folder):
        return folder
    url = (url_template or DATASET_URL).format(name=dataset)
    if not download_missing:
        raise InvalidValue(
            "dataset",
            f"{dataset} is not under {folder}; fetch {url} with {{download}}, unzip it "
            f"into {folder.parent} yourself, or point {{data_root}} or ${DATA_ROOT_ENV} elsewhere",
            mentions=("download", "data_root"),
        )
    archive = download(url, data_root / "cyclegan" / f"{dataset}.zip", progress=progress)
    extract_zip(archive, data_root / "cyclegan", progress=progress)
    archive.unlink()
    if not _has_domains(folder):
        raise UserError(f"{archive.name} extracted, but {folder} has no trainA/ and trainB/ folders")
    return folder


def domain_files(root: Path, split: str = "train") -> tuple[list[Path], list[Path]]:
    """The image files of ``root/<split>A`` and ``root/<split>B``; a missing or empty domain is a UserError."""
    missing = [f"{split}{d}/" for d in "AB" if not (root / f"{split}{d}").is_dir()]
    if missing:
        present = sorted(p.name + "/" for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        shown = ", ".join(present[:6]) + (f", … ({len(present)} folders)" if len(present) > 6 else "")
        raise UserError(
            f"{root} has no {' and no '.join(missing)} folder; an unpaired dataset needs {split}A/ "
            f"and {split}B/ (found: {shown or 'nothing'})"
        )
    files = []
    for d in "AB":
        found = list_images(root / f"{split}{d}")
        if not found:
            raise UserError(f"{root / (split + d)} holds no images (jpg, png, webp, bmp)")
        files.append(found)
    return files[0], files[1]


class UnpairedDataset(Dataset):
    """Unpaired samples from two domains; indexed by ``(epoch, index)`` tuples (see :class:`EpochBatchSampler`).

    Returns ``{"A", "B"}`` ``(3, crop, crop)`` float32 in -1..1 plus ``epoch``, ``batch`` (position of
    the batch in its epoch, passed through from the sampler), ``bad_A``/``bad_B`` (index of a skipped
    unreadable file or -1).
    """

    def __init__(
        self,
        root: str | Path,
        crop_size: int = 256,
        load_size: int | None = None,
        flip: bool = True,
        seed: int = 0,
        split: str = "train",
    ) -> None:
        self.root = Path(root)
        self.files_A, self.files_B = domain_files(self.root, split)
        self.crop_size = int(crop_size)
        self.load_size = int(load_size) if load_size else load_size_for(self.crop_size)
        if self.load_size < self.crop_size:
            raise UserError(f"load size {self.load_size} is smaller than the crop {self.crop_size}")
        self.flip, self.seed = flip, int(seed)

    def __len__(self) -> int:
        return max(len(self.files_A), len(self.files_B))

    def decode(self, path: Path) -> np.ndarray:
        """The image at ``path`` squashed to ``(load_size, load_size, 3)`` uint8 RGB (bicubic); raises if unreadable."""
        with Image.open(path) as img:
            img.draft("RGB", (self.load_size, self.load_size))  # fast JPEG downscale, never below load size
            img = Image.fromarray(pil_to_rgb(img))
        return np.array(img.resize((self.load_size, self.load_size), Image.BICUBIC))

    def draw_crop(self, rng: random.Random) -> tuple[int, int, bool]:
        """``(x0, y0, flip)`` of one sample's random crop, drawn from ``rng`` in the loader's order."""
        x0 = rng.randint(0, self.load_size - self.crop_size)
        y0 = rng.randint(0, self.load_size - self.crop_size)
        return x0, y0, bool(self.flip and rng.random() < 0.5)

    def _load(self, path: Path, rng: random.Random) -> torch.Tensor:
        squashed = self.decode(path)
        x0, y0, flip = self.draw_crop(rng)
        crop = squashed[y0 : y0 + self.crop_size, x0 : x0 + self.crop_size]
        if flip:
            crop = crop[:, ::-1]
        arr = np.asarray(crop, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def _load_readable(self, files: list[Path], index: int, rng: random.Random) -> tuple[torch.Tensor, int]:
        return first_readable(len(files), index, lambda i: self._load(files[i], rng), files[0].parent)

    def __getitem__(self, key: tuple[int, int, int] | int) -> dict[str, Any]:
        epoch, batch, index = key if isinstance(key, tuple) else (0, 0, key)
        rng = random.Random(hash((self.seed, epoch, index)))  # hash of ints: stable across processes
        index_B = rng.randrange(len(self.files_B))
        image_A, bad_A = self._load_readable(self.files_A, index % len(self.files_A), rng)
        image_B, bad_B = self._load_readable(self.files_B, index_B, rng)
        return {"A": image_A, "B": image_B, "epoch": epoch, "batch": batch, "bad_A": bad_A, "bad_B": bad_B}


class PreloadedDomains:
    """Both domains of an :class:`UnpairedDataset` decoded once and kept on ``device``; batches cut there.

    Every image is squashed to the load size once and stored as uint8 ``(N, 3, L, L)`` on ``device``
    (``(|A| + |B|) * 3 * L**2`` bytes: 590 MB for horse2zebra at 256 px). :meth:`batch` then draws
    the same crops and flips as the loader (the same ``(seed, epoch, index)`` random stream, the
    same substitute for an unreadable file) and returns the same tensors, bit for bit, with no
    decoding, no worker processes and no host-to-device copy per step.
    """

    def __init__(self, dataset: UnpairedDataset, device: torch.device, threads: int | None = None) -> None:
        self.dataset, self.device = dataset, device
        needed = (len(dataset.files_A) + len(dataset.files_B)) * 3 * dataset.load_size**2
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if needed > free / 2:
                raise InvalidValue(
                    "preload",
                    f"needs {needed / 1e9:.1f} GB of GPU memory for the images, more than half of the "
                    f"{free / 1e9:.1f} GB free; train without it (the loader reads them from disk)",
                )
        self.images: dict[str, torch.Tensor] = {}
        self.substitute: dict[str, list[int]] = {}  # index -> index of the image that stands in for it
        self.unreadable: dict[str, list[int]] = {}
        for side, files in (("A", dataset.files_A), ("B", dataset.files_B)):
            self.images[side], ok = self._decode_all(files, threads)
            if not any(ok):
                raise UserError(f"none of the {len(files)} images under {files[0].parent} could be read")
            self.unreadable[side] = [i for i, good in enumerate(ok) if not good]
            n = len(ok)
            self.substitute[side] = [next(j % n for j in range(i, i + n) if ok[j % n]) for i in range(n)]

    def _decode_all(self, files: list[Path], threads: int | None) -> tuple[torch.Tensor, list[bool]]:
        size = self.dataset.load_size
        out = torch.zeros((len(files), 3, size, size), dtype=torch.uint8, device=self.device)
        ok = [False] * len(files)

        def decode(i: int) -> tuple[int, np.ndarray | None]:
            try:
                return i, self.dataset.decode(files[i])
            except Exception:  # noqa: BLE001 - any decoder failure means "skip this file", as the loader does
                return i, None

        # PIL decodes and resizes without the GIL, so threads scale; copies to the device stay in this thread.
        with ThreadPoolExecutor(max_workers=max(1, threads or os.cpu_count() or 1)) as pool:
            for i, rgb in pool.map(decode, range(len(files))):
                if rgb is not None:
                    out[i] = torch.from_numpy(rgb).permute(2, 0, 1).to(self.device)
                    ok[i] = True
        return out, ok

    @property
    def nbytes(self) -> int:
        return sum(t.numel() for t in self.images.values())

    def batch(self, keys: Sequence[tuple[int, int, int]]) -> dict[str, torch.Tensor]:
        """What the loader yields for these ``(epoch, batch, index)`` keys: ``A``, ``B`` ``(n, 3, S, S)`` -1..1 on
        the device; ``epoch``, ``batch``, ``bad_A``, ``bad_B`` ``(n,)`` int64 on the CPU."""
        ds, s = self.dataset, self.dataset.crop_size
        crops: dict[str, list[torch.Tensor]] = {"A": [], "B": []}
        bad: dict[str, list[int]] = {"A": [], "B": []}
        for epoch, _, index in keys:
            rng = random.Random(hash((ds.seed, epoch, index)))  # the stream UnpairedDataset.__getitem__ draws
            picks = {"B": rng.randrange(len(ds.files_B)), "A": index % len(ds.files_A)}
            for side in ("A", "B"):
                wanted = picks[side]
                used = self.substitute[side][wanted]
                x0, y0, flip = ds.draw_crop(rng)
                crop = self.images[side][used, :, y0 : y0 + s, x0 : x0 + s]
                crops[side].append(crop.flip(-1) if flip else crop)
                bad[side].append(-1 if used == wanted else wanted)
        out = {side: torch.stack(c).float() / 127.5 - 1.0 for side, c in crops.items()}
        meta = {
            "epoch": [k[0] for k in keys],
            "batch": [k[1] for k in keys],
            "bad_A": bad["A"],
            "bad_B": bad["B"],
        }
        return {**out, **{k: torch.tensor(v, dtype=torch.int64) for k, v in meta.items()}}


def load_size_for(crop_size: int) -> int:
    """The authors' load size for a crop: 286 for 256, scaled alike (``crop * 286 / 256``)."""
    return int(round(crop_size * 286 / 256))


class EpochBatchSampler(Sampler):
    """Endless batches of ``(epoch, batch, index)`` keys: each epoch a fresh seeded shuffle, sharded over ranks.

    Like ``DistributedSampler``, the permutation of ``n`` items is padded to a multiple of
    ``world_size`` and rank ``r`` takes every ``world_size``-th index from ``r``; its share is cut
    into batches of ``batch_size`` (the last one may be short). Iteration starts at
    ``start_epoch``, batch ``start_batch``, so a resumed run sees exactly what it would have.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_epoch: int = 0,
        start_batch: int = 0,
    ) -> None:
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.start_epoch, self.start_batch = int(start_epoch), int(start_batch)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(math.ceil(self.n / self.world_size) / self.batch_size)

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``."""
        order = epoch_permutation(self.n, epoch, self.seed)
        total = math.ceil(self.n / self.world_size) * self.world_size
        order += order[: total - self.n]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        epoch, first = self.start_epoch, self.start_batch
        while True:
            share = self.epoch_indices(epoch)
            for b in range(first, self.batches_per_epoch):
                yield [(epoch, b, i) for i in share[b * self.batch_size : (b + 1) * self.batch_size]]
            epoch, first = epoch + 1, 0

    def __len__(self) -> int:  # one epoch; the sampler itself never ends
        return self.batches_per_epoch
