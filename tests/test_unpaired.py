"""Unpaired A/B datasets: loading, bad files, folder errors, named sets and their download, sharding."""

from __future__ import annotations

import functools
import http.server
import random
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from realtime.core.errors import UserError
from train import unpaired
from train.unpaired import (
    EpochBatchSampler,
    PreloadedDomains,
    UnpairedDataset,
    domain_files,
    domain_names,
    load_size_for,
    resolve_dataset,
)


def make_domains(root: Path, n_a: int = 3, n_b: int = 5, size: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for domain, n in (("trainA", n_a), ("trainB", n_b)):
        (root / domain).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(root / domain / f"{i}.png")
    return root


def test_samples_are_crops_in_minus1_1(tmp_path):
    ds = UnpairedDataset(make_domains(tmp_path), crop_size=32)
    assert len(ds) == 5 and ds.load_size == 36  # max(|A|, |B|); 32 * 286 / 256
    item = ds[(0, 0, 4)]
    for key in ("A", "B"):
        assert item[key].shape == (3, 32, 32) and item[key].dtype == torch.float32
        assert -1.0 <= item[key].min() and item[key].max() <= 1.0
    assert item["bad_A"] == -1 and item["bad_B"] == -1
    assert torch.equal(ds[(0, 0, 4)]["A"], item["A"])  # reproducible
    assert not torch.equal(ds[(1, 0, 4)]["A"], item["A"])  # a fresh crop next epoch
    assert load_size_for(256) == 286 and load_size_for(128) == 143


def test_grayscale_becomes_rgb_and_corrupt_files_are_skipped(tmp_path):
    root = make_domains(tmp_path, n_a=2, n_b=2)
    Image.fromarray(np.full((40, 40), 200, np.uint8), mode="L").save(root / "trainA" / "grey.png")
    (root / "trainB" / "broken.png").write_bytes(b"this is not a png")
    ds = UnpairedDataset(root, crop_size=32, flip=False)
    grey, bad = ds._load_readable(ds.files_A, ds.files_A.index(root / "trainA" / "grey.png"), random.Random(0))
    assert bad == -1 and grey.shape == (3, 32, 32)
    assert torch.allclose(grey, torch.full((3, 32, 32), 200 / 127.5 - 1))
    broken = ds.files_B.index(root / "trainB" / "broken.png")
    image, bad = ds._load_readable(ds.files_B, broken, random.Random(0))
    assert bad == broken and image.shape == (3, 32, 32)  # reported, and the next readable image came back
    seen = {ds[(epoch, 0, i)]["bad_B"] for epoch in range(10) for i in range(len(ds))}
    assert seen == {-1, broken}


@pytest.mark.parametrize("layout,needle", [(("trainA",), "trainB/"), (("other",), "trainA/ and no trainB/")])
def test_missing_domain_folder_is_one_line(tmp_path, layout, needle):
    for name in layout:
        (tmp_path / name).mkdir()
    with pytest.raises(UserError) as info:
        domain_files(tmp_path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_empty_domain_is_one_line(tmp_path):
    root = make_domains(tmp_path, n_a=2, n_b=1)
    (root / "trainB" / "0.png").unlink()
    (root / "trainB" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="trainB holds no images"):
        UnpairedDataset(root)


def test_domain_names():
    assert domain_names("horse2zebra") == ("horse", "zebra")
    assert domain_names("summer2winter_yosemite") == ("summer", "winter_yosemite")
    assert domain_names("maps") is None and domain_names("facades") is None


def test_named_dataset_lookup_and_hints(tmp_path):
    make_domains(tmp_path / "cyclegan" / "apple2orange")
    assert resolve_dataset("apple2orange", tmp_path) == tmp_path / "cyclegan" / "apple2orange"
    folder = make_domains(tmp_path / "mine")
    assert resolve_dataset(str(folder), tmp_path) == folder
    with pytest.raises(UserError, match="did you mean 'horse2zebra'"):
        resolve_dataset("horse2zebr", tmp_path)
    with pytest.raises(UserError) as info:
        resolve_dataset("monet2photo", tmp_path)
    assert "with download" in str(info.value) and "monet2photo.zip" in str(info.value)


@pytest.fixture
def zip_server(tmp_path):
    """Serve ``served/<name>.zip`` from 127.0.0.1; yields (url template, served folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{{name}}.zip", served
    server.shutdown()
    server.server_close()


def write_dataset_zip(path: Path, name: str, source: Path) -> None:
    """Zip ``source`` the way the authors do: everything under ``<name>/``."""
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(source.rglob("*")):
            zf.write(file, f"{name}/{file.relative_to(source)}")


def test_download_fetches_and_extracts(tmp_path, zip_server, monkeypatch):
    url, served = zip_server
    write_dataset_zip(served / "horse2zebra.zip", "horse2zebra", make_domains(tmp_path / "src"))
    root = tmp_path / "data"
    monkeypatch.setattr(unpaired, "DATASET_URL", url)
    folder = resolve_dataset("horse2zebra", root, download_missing=True, progress=False)
    assert folder == root / "cyclegan" / "horse2zebra"
    assert len(list((folder / "trainB").glob("*.png"))) == 5
    assert not (root / "cyclegan" / "horse2zebra.zip").exists()  # the archive is removed


def test_download_failure_is_one_line(tmp_path, zip_server):
    url, _ = zip_server
    with pytest.raises(UserError, match="HTTP 404"):
        resolve_dataset("facades", tmp_path, download_missing=True, progress=False, url_template=url)


def test_sampler_shards_cover_the_epoch_and_resume():
    shards = [EpochBatchSampler(5, batch_size=2, seed=3, rank=r, world_size=2) for r in range(2)]
    assert shards[0].batches_per_epoch == 2
    epoch0 = [k for s in shards for batch in _take(s, 2) for k in batch]
    assert {k[0] for k in epoch0} == {0} and {k[2] for k in epoch0} == set(range(5))  # padded to 6
    assert len(epoch0) == 6
    fresh = _take(EpochBatchSampler(7, 3, seed=1), 8)
    resumed = _take(EpochBatchSampler(7, 3, seed=1, start_epoch=1, start_batch=1), 4)
    assert resumed == fresh[4:]
    assert [b[0][0] for b in fresh] == [0, 0, 0, 1, 1, 1, 2, 2] and len(fresh[2]) == 1


def _take(sampler: EpochBatchSampler, n: int) -> list[list[tuple[int, int, int]]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_preloaded_batches_equal_the_loaders_bit_for_bit(tmp_path):
    root = make_domains(tmp_path, n_a=3, n_b=4)
    (root / "trainB" / "1a_broken.png").write_bytes(b"not an image")  # sorts between 1.png and 2.png
    ds = UnpairedDataset(root, crop_size=32, seed=5)
    pre = PreloadedDomains(ds, torch.device("cpu"), threads=2)
    broken = ds.files_B.index(root / "trainB" / "1a_broken.png")
    assert pre.unreadable == {"A": [], "B": [broken]} and pre.nbytes == (3 + 5) * 3 * 36 * 36
    loader = DataLoader(ds, batch_sampler=EpochBatchSampler(len(ds), 2, seed=5), num_workers=0)
    sampler, seen_bad = iter(EpochBatchSampler(len(ds), 2, seed=5)), set()
    for _, expected in zip(range(12), loader):  # four epochs, the short last batch included
        got = pre.batch(next(sampler))
        assert got.keys() == expected.keys()
        for key in expected:
            assert torch.equal(got[key], expected[key]), key
        seen_bad |= set(got["bad_B"].tolist())
    assert seen_bad == {-1, broken}  # the unreadable file came up and was replaced as the loader does
