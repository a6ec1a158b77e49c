"""Johnson training: the loss falls, resume continues exactly, DDP runs, bad input gets one line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realtime.core.checkpoint import load_model
from train import johnson

REPO = Path(__file__).resolve().parents[1]
STYLE = REPO / "samples" / "styles" / "mosaic.jpg"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six generated 'photos': smooth gradients with a few coloured rectangles."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        yy, xx = np.mgrid[0:48, 0:64]
        img = np.stack([xx * 4, yy * 5, np.full_like(xx, 40 * i)], axis=2).astype(np.float64)
        for _ in range(3):
            y, x = rng.integers(0, 36), rng.integers(0, 50)
            img[y : y + 12, x : x + 14] = rng.integers(0, 255, 3)
        sub = folder / ("nested" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(sub / f"p{i}.{'png' if i % 3 else 'jpg'}")
    (folder / "broken.jpg").write_bytes(b"not really a jpeg")
    return folder


def config(photos: Path, out: Path, **overrides) -> johnson.JohnsonConfig:
    base = dict(
        style=str(STYLE),
        output=str(out),
        dataset=str(photos),
        steps=4,
        image_size=32,
        batch_size=2,
        arch="small",
        workers=0,
        style_size=64,
        log_every=1,
        sample_every=0,
        checkpoint_every=0,
        device="cpu",
        seed=3,
    )
    base.update(overrides)
    return johnson.JohnsonConfig(**base)


def read_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_loss_falls_and_outputs_are_written(photos, tmp_path, capsys) -> None:
    torch.set_num_threads(1)
    out = johnson.train(config(photos, tmp_path / "m.pth", steps=30, lr=1e-2), progress=False)
    rows = read_log(tmp_path / "m_log" / "log.csv")
    assert len(rows) == 30
    first, last = np.mean([r["loss"] for r in rows[:5]]), np.mean([r["loss"] for r in rows[-5:]])
    assert last < 0.8 * first, (first, last)
    loaded = load_model(out)
    assert loaded.training["step"] == 30 and loaded.contract.style == "mosaic.jpg"
    assert (tmp_path / "m_log" / "samples_final.png").exists()
    assert "skipped 1 unreadable image" in capsys.readouterr().err


def test_resume_continues_exactly(photos, tmp_path) -> None:
    torch.set_num_threads(1)
    straight = johnson.train(config(photos, tmp_path / "a.pth", steps=4), progress=False)
    johnson.train(config(photos, tmp_path / "b.pth", steps=2), progress=False)
    resumed = johnson.train(config(photos, tmp_path / "b.pth", steps=4, resume=str(tmp_path / "b.pth")), progress=False)
    a, b = load_model(straight), load_model(resumed)
    assert b.training["step"] == 4
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, rtol=0, atol=1e-6)


def test_two_process_gloo_ddp_finishes(photos, tmp_path) -> None:
    out = tmp_path / "ddp.pth"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "train.johnson",
        "--dataset",
        str(photos),
        "--style",
        str(STYLE),
        "-o",
        str(out),
        "--steps",
        "2",
        "--image-size",
        "32",
        "--batch-size",
        "1",
        "--arch",
        "small",
        "--workers",
        "0",
        "--style-size",
        "64",
        "--device",
        "cpu",
        "--sample-every",
        "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_model(out).training["step"] == 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"style": "missing.jpg"}, "no such file"),
        ({"image_size": 30}, "multiple of 4"),
        ({"batch_size": 50}, "fewer than one batch"),
    ],
)
def test_bad_input_is_one_line(photos, tmp_path, capsys, change, message) -> None:
    args = [
        "--dataset",
        str(photos),
        "--style",
        str(STYLE),
        "-o",
        str(tmp_path / "x.pth"),
        "--steps",
        "1",
        "--image-size",
        "32",
        "--arch",
        "small",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    for key, value in change.items():
        flag = "--" + key.replace("_", "-")
        if flag in args:
            args[args.index(flag) + 1] = str(value)
        else:
            args += [flag, str(value)]
    assert johnson.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.pth").exists()


def test_empty_dataset_and_other_arch_resume(photos, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["--style", str(STYLE), "--steps", "1", "--image-size", "32", "--workers", "0", "--device", "cpu"]
    assert johnson.main(["--dataset", str(empty), "-o", str(tmp_path / "e.pth"), *base]) == 2
    assert "no images" in capsys.readouterr().err
    small = johnson.train(config(photos, tmp_path / "s.pth", steps=1), progress=False)
    code = johnson.main(
        ["--dataset", str(photos), "-o", str(tmp_path / "j.pth"), "--arch", "johnson", "--resume", str(small), *base]
    )
    assert code == 2
    assert "--arch johnson" in (err := capsys.readouterr().err) and "differs from" in err
