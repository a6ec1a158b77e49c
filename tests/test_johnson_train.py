"""Johnson training: the loss falls, resume continues exactly, DDP runs, bad input gets one line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from two_ranks import assert_same_weights, run_two_ranks

from realtime.core.checkpoint import load_model
from realtime.core.nets import TransformerNet
from realtime.core.nets.multistyle import MultiStyleNet, style_parameters
from train import johnson
from train.state import seed_everything

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
    assert last < 0.88 * first, (first, last)  # from mid-grey (train.style_nets): 0.82 measured, 1.0 if stuck
    loaded = load_model(out)
    assert loaded.training["step"] == 30 and loaded.contract.style == "mosaic.jpg"
    assert (tmp_path / "m_log" / "samples_final.png").exists()
    assert "skipped 1 unreadable image(s) under" in (err := capsys.readouterr().err) and "broken.jpg" in err


def test_resume_continues_exactly(photos, tmp_path) -> None:
    torch.set_num_threads(1)
    straight = johnson.train(config(photos, tmp_path / "a.pth", steps=4), progress=False)
    johnson.train(config(photos, tmp_path / "b.pth", steps=2), progress=False)
    resumed = johnson.train(config(photos, tmp_path / "b.pth", steps=4, resume=str(tmp_path / "b.pth")), progress=False)
    a, b = load_model(straight), load_model(resumed)
    assert b.training["step"] == 4
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, rtol=0, atol=1e-6)


JOHNSON_RANK = """
import torch
from train import johnson

replicas = []
real_ddp = johnson.DistributedDataParallel


def wrap(module, *args, **kwargs):  # keep hold of this rank's replica
    replicas.append(module)
    return real_ddp(module, *args, **kwargs)


johnson.DistributedDataParallel = wrap
code = johnson.main(sys.argv[2:])
torch.save({k: v.detach().clone() for k, v in replicas[0].state_dict().items()}, f"{sys.argv[1]}/rank{RANK}.pth")
sys.exit(code)
"""


def test_two_process_gloo_ddp_keeps_replicas_identical(photos, tmp_path) -> None:
    """torchrun, two CPU ranks on different images: after training both hold the weights rank 0 saved."""
    out = tmp_path / "ddp.pth"
    args = [
        str(tmp_path),
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
    result = run_two_ranks(JOHNSON_RANK, tmp_path, args)
    assert result.returncode == 0, result.stderr[-2000:]
    weights = assert_same_weights(tmp_path)
    saved = load_model(out)
    assert saved.training["step"] == 2
    for key, value in saved.model.state_dict().items():
        assert torch.equal(weights[key], value), key
    seed_everything(johnson.JohnsonConfig.seed)  # what both ranks started from: trained away from it
    initial = TransformerNet.from_arch("small").state_dict()
    assert all(not torch.equal(weights[k], initial[k]) for k in ("conv1.conv2d.weight", "deconv3.conv2d.weight"))


def test_two_process_ddp_trains_a_multi_style_net_in_step(photos, tmp_path) -> None:
    """Two ranks, two styles: every step trains the same style on both ranks, the replicas stay identical and
    both styles' norm rows learn (apart from each other)."""
    out = tmp_path / "ddp_multi.pth"
    candy = STYLE.with_name("candy.jpg")
    args = [str(tmp_path), "--dataset", str(photos), "--style", str(STYLE), str(candy), "-o", str(out)]
    args += ["--steps", "4", "--image-size", "32", "--batch-size", "1", "--arch", "small", "--workers", "0"]
    args += ["--style-size", "64", "--device", "cpu", "--sample-every", "0", "--log-every", "1"]
    result = run_two_ranks(JOHNSON_RANK, tmp_path, args)
    assert result.returncode == 0, result.stderr[-2000:]
    weights = assert_same_weights(tmp_path)
    saved = load_model(out)
    assert isinstance(saved.model, MultiStyleNet) and saved.contract.styles == ("mosaic", "candy")
    assert saved.meta["style_stats"]["mosaic"]["steps"] == 2 and saved.meta["style_stats"]["candy"]["steps"] == 2
    for key, value in saved.model.state_dict().items():
        assert torch.equal(weights[key], value), key
    assert all(not torch.equal(rows[0], rows[1]) for rows in style_parameters(saved.model))


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
