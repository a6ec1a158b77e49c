"""Multi-style training in train.johnson: one net for several styles, adding styles to a trained net
(only their norm rows learn), and --resume that restores the run's own settings."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realtime.core.checkpoint import load_model, read_checkpoint_file, save_checkpoint
from realtime.core.contract import johnson_contract
from realtime.core.nets import TransformerNet
from realtime.core.nets.multistyle import MultiStyleNet, style_parameters
from realtime.core.onnx_file import write_onnx
from train import johnson
from train.runlog import recorded_command
from train.style_nets import new_plan

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STYLES = Path(__file__).resolve().parents[1] / "samples" / "styles"
MOSAIC, CANDY, UDNIE = (str(STYLES / f"{n}.jpg") for n in ("mosaic", "candy", "udnie"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six generated 'photos': gradients with coloured rectangles."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for i in range(6):
        yy, xx = np.mgrid[0:40, 0:48]
        img = np.stack([xx * 5, yy * 6, np.full_like(xx, 40 * i)], axis=2).astype(np.float64)
        y, x = rng.integers(0, 28, 2)
        img[y : y + 12, x : x + 12] = rng.integers(0, 255, 3)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def args(photos: Path, out: Path, *styles: str, steps: int = 6, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        *("--dataset", str(photos), "--style", *styles, "-o", str(out), "--steps", str(steps)),
        *("--image-size", "32", "--batch-size", "2", "--arch", "small", "--style-size", "48", "--workers", "0"),
        *("--device", "cpu", "--sample-every", "0", "--log-every", "2", "--lr", "0.01", "--seed", "5"),
        *extra,
    ]


def outputs(net: MultiStyleNet, styles: int) -> list[torch.Tensor]:
    x = torch.linspace(0, 255, 3 * 24 * 32).reshape(1, 3, 24, 32)
    with torch.no_grad():
        return [net.eval()(x, torch.eye(styles)[k]) for k in range(styles)]


@pytest.fixture(scope="module")
def two_styles(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two") / "two.pth"
    assert johnson.main(args(photos, out, MOSAIC, CANDY, steps=8)) == 0
    return out


def test_several_styles_train_one_net_one_style_per_batch(two_styles) -> None:
    loaded = load_model(two_styles)
    assert isinstance(loaded.model, MultiStyleNet) and loaded.model.n_styles == 2
    assert loaded.contract.family == "multistyle" and loaded.contract.styles == ("mosaic", "candy")
    assert loaded.contract.provenance["style_images"] == {"mosaic": "mosaic.jpg", "candy": "candy.jpg"}
    assert loaded.meta["style_stats"]["mosaic"]["steps"] == 4 and loaded.meta["style_stats"]["candy"]["steps"] == 4
    with open(two_styles.with_name("two_log") / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(float(r["style:mosaic"]) > 0 and float(r["style:candy"]) > 0 for r in rows)
    first, second = outputs(loaded.model, 2)  # the two styles' rows started equal and learnt apart
    assert all(not torch.equal(t[0], t[1]) for t in style_parameters(loaded.model))
    assert (first - second).abs().mean() > 2.0  # levels of 255: visibly different pictures


def test_random_order_is_reproducible_and_visits_every_style() -> None:
    drawn = [johnson.style_at(s, 3, "random", 7) for s in range(60)]
    assert drawn == [johnson.style_at(s, 3, "random", 7) for s in range(60)] and set(drawn) == {0, 1, 2}
    assert [johnson.style_at(s, 3, "cycle", 7) for s in range(4)] == [0, 1, 2, 0]


def test_adding_a_style_trains_only_its_rows_and_resumes_exactly(two_styles, tmp_path, capsys) -> None:
    before = load_model(two_styles).model
    added = tmp_path / "three.pth"
    photos = Path(load_model(two_styles).meta["dataset"])
    assert johnson.main(args(photos, added, UDNIE, steps=4, extra=("--init-from", str(two_styles)))) == 0
    assert "added 1 style(s), norm rows only: steps udnie 4" in capsys.readouterr().out
    after = load_model(added)
    assert after.contract.styles == ("mosaic", "candy", "udnie") and after.meta["added_styles"] == ["udnie"]
    old, new = outputs(before, 2), outputs(after.model, 3)
    assert torch.equal(old[0], new[0]) and torch.equal(old[1], new[1])  # old styles bit for bit
    for key, value in before.state_dict().items():
        if value.dim() == 2:  # a norm table: the old rows kept, the new row learnt away from the mean
            assert torch.equal(after.model.state_dict()[key][:2], value), key
        else:
            assert torch.equal(after.model.state_dict()[key], value), key
    moved = [not torch.allclose(t[2], t[:2].mean(0)) for t in style_parameters(after.model)]
    assert sum(moved) >= len(moved) // 2
    # resume of the add-run: the same plan (rows only) without the --init-from file
    straight = tmp_path / "straight.pth"
    johnson.main(args(photos, straight, UDNIE, steps=6, extra=("--init-from", str(two_styles))))
    assert johnson.main(["--resume", str(added), "--steps", "6", "--threads", "1"]) == 0
    a, b = load_model(straight).model.state_dict(), load_model(added).model.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)


def test_styles_already_in_the_net_or_another_arch_are_refused(two_styles, photos, tmp_path, capsys) -> None:
    out = tmp_path / "x.pth"
    assert johnson.main(args(photos, out, CANDY, extra=("--init-from", str(two_styles)))) == 2
    assert "--style candy is already one of the styles of" in capsys.readouterr().err
    code = johnson.main(args(photos, out, UDNIE, extra=("--init-from", str(two_styles), "--arch", "johnson")))
    assert code == 2 and "--arch johnson differs from" in capsys.readouterr().err
    assert johnson.main(args(photos, out, MOSAIC, MOSAIC)) == 2
    assert "two images are called 'mosaic'" in capsys.readouterr().err
    assert not out.exists()


def test_resume_restores_the_run_and_refuses_another_recipe(two_styles, tmp_path, capsys) -> None:
    run = tmp_path / "run.pth"
    run.write_bytes(two_styles.read_bytes())
    assert johnson.main(["--resume", str(run), "--steps", "10", "--image-size", "48"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"error: --image-size 48 differs from 32 in the run being resumed ({run}); leave it out to continue "
        "that run, or start a new run with another output"
    )
    assert johnson.main(["--resume", str(run), "--style", CANDY, MOSAIC]) == 2
    assert "--style " in capsys.readouterr().err
    # the settings come back from the checkpoint; --workers, --steps and logging may change
    assert (
        johnson.main(["--resume", str(run), "--steps", "10", "--workers", "0", "--log-every", "5", "--threads", "1"])
        == 0
    )
    meta = read_checkpoint_file(run)["meta"]
    assert meta["steps_done"] == 10 and meta["config"]["image_size"] == 32 and meta["config"]["log_every"] == 5
    assert meta["command"].startswith("python -m train.johnson --dataset") and "--style" in meta["command"]
    again = ["--resume", str(run), "--steps", "10", "--workers", "0", "--log-every", "5", "--threads", "1"]
    assert meta["resumed_with"] == [recorded_command("train.johnson", again)]


def test_a_multi_style_johnson_net_starts_from_a_one_style_onnx_file(tmp_path) -> None:
    torch.manual_seed(0)
    single = TransformerNet.from_arch("johnson").eval()
    with torch.no_grad():  # trained-looking norms (the exporter merges identical fresh ones)
        for p in single.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
        single.deconv3.conv2d.weight.mul_(100.0)
    path = write_onnx(single, johnson_contract(name="one"), tmp_path / "one.onnx")
    plan = new_plan("johnson", [MOSAIC, CANDY], init_from=str(path))
    x = torch.rand(1, 3, 24, 28) * 255
    with torch.no_grad():
        ref = single(x)
        for k in range(2):
            torch.testing.assert_close(plan.model.eval()(x, torch.eye(2)[k]), ref, rtol=1e-4, atol=1e-2)
    save_checkpoint(tmp_path / "one.pth", TransformerNet.from_arch("small"), johnson_contract(name="s"))
    with pytest.raises(johnson.InvalidValue, match="starts only from a one-style net of the johnson architecture"):
        new_plan("small", [MOSAIC, CANDY], init_from=str(tmp_path / "one.pth"))


def test_slim_nets_start_at_mid_grey_and_their_output_conv_learns_in_proportion_to_its_fan_in(photos) -> None:
    """A fresh slim net paints grey, not black, and its 72-input output conv learns 36x faster than the rest
    (the paper's net, 2,592 inputs, keeps one learning rate); the rule is what makes the slim preset learn
    its colours in a few hundred steps."""
    slim = new_plan("small", [MOSAIC, CANDY])
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        assert abs(float(slim.model(x, torch.eye(2)[0]).mean()) - 127.5) < 20
    groups = slim.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(36e-3)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in slim.model.deconv3.conv2d.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(slim.model.parameters()))
    paper = new_plan("johnson", [MOSAIC])
    assert [g["lr"] for g in paper.param_groups(1e-3)] == [1e-3]
    with torch.no_grad():
        assert abs(float(paper.model(x).mean()) - 127.5) < 20


def test_a_run_begun_with_one_learning_rate_resumes_with_one(photos, tmp_path) -> None:
    """Checkpoints from before the output-conv rule hold one optimizer group; resuming keeps it."""
    run = tmp_path / "old.pth"
    assert johnson.main(args(photos, run, MOSAIC, CANDY, steps=2)) == 0
    saved = read_checkpoint_file(run)
    optimizer = saved["training"]["optimizer"]
    assert len(optimizer["param_groups"]) == 2
    every = [i for g in optimizer["param_groups"] for i in g["params"]]
    optimizer["param_groups"] = [{**optimizer["param_groups"][0], "params": every}]
    torch.save(saved, run)
    assert johnson.main(["--resume", str(run), "--steps", "4", "--threads", "1"]) == 0
    assert len(read_checkpoint_file(run)["training"]["optimizer"]["param_groups"]) == 1
