"""CycleGAN training end to end on two tiny generated domains: red squares (A) and blue discs (B)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from two_ranks import assert_same_weights, run_two_ranks

from realtime.core.checkpoint import load_model
from realtime.core.errors import InvalidValue
from train import cyclegan
from train.cyclegan import CycleGANConfig, main, train
from train.cyclegan_model import output_names

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
TINY = dict(
    image_size=32,
    ngf=8,
    ndf=8,
    n_blocks=1,
    workers=0,
    device="cpu",
    progress=False,
    sample_every=1000,
    checkpoint_every=1000,
)


def make_domains(root: Path, n: int = 6) -> Path:
    """``root/trainA``: red squares on pale backgrounds; ``root/trainB``: blue discs; 40x40 px."""
    rng = np.random.default_rng(0)
    for domain, fill in (("trainA", (220, 20, 20)), ("trainB", (20, 20, 220))):
        (root / domain).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = Image.new("RGB", (40, 40), tuple(int(v) for v in rng.integers(170, 256, 3)))
            x, y = (int(v) for v in rng.integers(4, 20, 2))
            draw = ImageDraw.Draw(img)
            (draw.rectangle if domain == "trainA" else draw.ellipse)([x, y, x + 14, y + 14], fill=fill)
            img.save(root / domain / f"{i}.png")
    return root


@pytest.fixture
def domains(tmp_path) -> Path:
    return make_domains(tmp_path / "reds2blues")


def read_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_training_lowers_cycle_loss_and_writes_named_generators(domains, tmp_path):
    out = tmp_path / "run"
    result = train(
        CycleGANConfig(
            dataset=str(domains),
            output=str(out),
            steps=30,
            log_every=5,
            command="pytest",
            **{**TINY, "sample_every": 30},
        )
    )
    rows = read_log(out / "logs" / "log.csv")
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    cycle = [r["cycle_A"] + r["cycle_B"] for r in rows]
    assert cycle[-1] < 0.75 * cycle[0], cycle
    assert set(result.outputs) == {"reds2blues", "blues2reds", "state"}
    loaded = load_model(out / "reds2blues.pth", expect_arch="resnet_generator")
    assert loaded.contract.family == "cyclegan" and loaded.contract.style == "reds->blues"
    assert loaded.contract.provenance["steps"] == 30 and loaded.contract.provenance["command"] == "pytest"
    assert loaded.model.n_blocks == 1 and loaded.meta["config"]["image_size"] == 32
    assert load_model(out / "blues2reds.pth").contract.style == "blues->reds"
    with torch.no_grad():
        fake = loaded.model(torch.zeros(1, 3, 32, 32))
    assert fake.shape == (1, 3, 32, 32) and fake.abs().max() <= 1
    state = torch.load(out / "state.pth", weights_only=True)
    assert state["training"]["step"] == 30 and set(state["training"]["nets"]) == {"G_B", "D_A", "D_B"}
    assert (out / "samples" / "step_0000030.png").is_file()


def test_output_names():
    assert output_names("horse2zebra") == ("horse2zebra", "zebra2horse", ("horse", "zebra"))
    assert output_names("/data/day2night/")[:2] == ("day2night", "night2day")
    assert output_names("/data/photos")[:2] == ("a2b", "b2a")


def _all_weights(result) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v for n in ("G_A", "G_B", "D_A", "D_B") for k, v in result.model.raw(n).state_dict().items()}


def test_resume_continues_exactly(domains, tmp_path):
    cfg = dict(dataset=str(domains), pool_size=2, log_every=2, epochs=1, epochs_decay=2, **TINY)
    straight = train(CycleGANConfig(output=str(tmp_path / "a"), steps=8, **cfg))
    train(CycleGANConfig(output=str(tmp_path / "b"), steps=4, **cfg))
    resumed = train(
        CycleGANConfig(output=str(tmp_path / "b"), steps=8, resume=str(tmp_path / "b" / "state.pth"), **cfg)
    )
    assert resumed.model.lr == straight.model.lr < 2e-4  # the schedule continued into the decay
    a, b = _all_weights(straight), _all_weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0, msg=key)
    assert all(torch.equal(x, y) for x, y in zip(straight.model.pool_B.images, resumed.model.pool_B.images))
    log_a, log_b = (read_log(tmp_path / d / "logs" / "log.csv") for d in "ab")
    assert [r["step"] for r in log_b] == [2, 4, 6, 8]  # the resumed run appended to the same CSV
    for row_a, row_b in zip(log_a, log_b):
        timings = ("it_per_s", "images_per_s")
        assert {k: v for k, v in row_a.items() if k not in timings} == {
            k: v for k, v in row_b.items() if k not in timings
        }


def test_preloaded_data_and_compiled_nets_train_the_same_weights(domains, tmp_path):
    cfg = dict(dataset=str(domains), pool_size=2, log_every=2, steps=4, **TINY)
    plain = train(CycleGANConfig(output=str(tmp_path / "a"), **cfg))
    fast = train(CycleGANConfig(output=str(tmp_path / "b"), preload=True, compile=True, compile_backend="eager", **cfg))
    a, b = _all_weights(plain), _all_weights(fast)
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0, msg=key)
    assert read_log(tmp_path / "b" / "logs" / "log.csv")[-1]["images_per_s"] > 0


def test_lr_scaling_for_larger_batches():
    assert CycleGANConfig(dataset="x", batch_size=4).effective_lr == pytest.approx(2e-4)
    assert CycleGANConfig(dataset="x", batch_size=4, lr_scaling="sqrt").effective_lr == pytest.approx(4e-4)
    assert CycleGANConfig(dataset="x", batch_size=4, lr_scaling="linear").effective_lr == pytest.approx(8e-4)
    with pytest.raises(InvalidValue, match="lr_scaling"):
        CycleGANConfig(dataset="x", lr_scaling="cubic").check()


def test_time_limit_stops_saves_and_resumes(domains, tmp_path, monkeypatch):
    clock = iter(float(t) for t in range(10_000))  # each reading of the clock: one second later
    monkeypatch.setattr(cyclegan.time, "perf_counter", lambda: next(clock))
    out = tmp_path / "o"
    cfg = dict(dataset=str(domains), output=str(out), log_every=100, **TINY)
    first = train(CycleGANConfig(steps=50, time_limit=3.5, **cfg))
    assert first.out_of_time and 1 <= first.steps < 10
    assert torch.load(out / "state.pth", weights_only=True)["training"]["step"] == first.steps
    assert read_log(out / "logs" / "log.csv")[-1]["step"] == first.steps  # the last partial window is logged
    assert (out / "samples" / f"step_{first.steps:07d}.png").is_file()
    second = train(CycleGANConfig(steps=first.steps + 2, resume=str(out / "state.pth"), **cfg))
    assert second.steps == first.steps + 2 and not second.out_of_time


def test_resume_remembers_the_run_and_refuses_a_changed_recipe(domains, tmp_path, capsys):
    out = tmp_path / "out"
    first = ["--dataset", str(domains), "-o", str(out), "--device", "cpu", "--no-progress", "--image-size", "32"]
    first += ["--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--batch-size", "2", "--lr", "3e-4", "--steps", "2"]
    assert main(first + ["--workers", "0", "--seed", "7"]) == 0
    capsys.readouterr()
    # Only the output folder and the new length: everything else comes from the state file.
    assert main(["-o", str(out), "--resume", "--steps", "3", "--workers", "0", "--no-progress"]) == 0
    state = torch.load(out / "state.pth", weights_only=True)
    config = state["meta"]["config"]
    assert state["training"]["step"] == 3 and config["batch_size"] == 2 and config["seed"] == 7
    assert config["lr"] == 3e-4 and config["ngf"] == 4 and config["image_size"] == 32
    provenance = state["contract"]["provenance"]
    assert "--batch-size 2" in provenance["command"] and "--seed 7" in provenance["command"]
    assert provenance["resumed_with"] == [
        "python -m train.cyclegan -o " + _shown(out) + " --resume --steps 3 --workers 0 --no-progress"
    ]
    capsys.readouterr()
    code, err = _cli(["-o", str(out), "--resume", "--steps", "4", "--batch-size", "1", "--workers", "0"], capsys)
    assert code == 2 and len(err) == 1 and "--batch-size 1 differs from 2" in err[0], err
    assert torch.load(out / "state.pth", weights_only=True)["training"]["step"] == 3  # nothing written
    # Repeating a setting with the run's value is fine, and so is the state file's own path.
    assert main(["--resume", str(out / "state.pth"), "--steps", "4", "--ngf", "4", "--no-progress"]) == 0


def _shown(path: Path) -> str:
    from train.runlog import recorded_command

    return recorded_command("m", [str(path)]).split()[-1]


def test_bf16_channels_last_and_batches(domains, tmp_path):
    result = train(
        CycleGANConfig(
            dataset=str(domains),
            output=str(tmp_path / "o"),
            steps=2,
            log_every=1,
            amp="bf16",
            channels_last=True,
            batch_size=2,
            **TINY,
        )
    )
    assert result.steps == 2 and all(np.isfinite(v) for v in result.losses.values())


def test_unreadable_files_are_skipped_warned_once_and_counted(domains, tmp_path, caplog):
    (domains / "trainB" / "zz_broken.jpg").write_bytes(b"\xff\xd8 truncated")
    caplog.set_level("WARNING")
    result = train(
        CycleGANConfig(
            dataset=str(domains), output=str(tmp_path / "o"), steps=21, log_every=7, lambda_identity=0, **TINY
        )
    )
    assert result.bad_files == 1
    per_file = [r for r in caplog.records if "zz_broken.jpg" in r.getMessage() and "skipping" in r.getMessage()]
    assert len(per_file) == 1
    assert any("skipped 1 unreadable" in r.getMessage() for r in caplog.records)


def _cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("case", ["no_trainB", "empty_domain", "unknown_name", "missing_named", "fp16_cpu"])
def test_bad_input_is_one_line(case, tmp_path, capsys):
    folder = make_domains(tmp_path / "set")
    argv = [
        "--dataset",
        str(folder),
        "-o",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        "--no-progress",
        "--image-size",
        "32",
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--n-blocks",
        "1",
        "--steps",
        "1",
        "--workers",
        "0",
        "--data-root",
        str(tmp_path / "root"),
    ]
    if case == "no_trainB":
        for f in (folder / "trainB").iterdir():
            f.unlink()
        (folder / "trainB").rmdir()
    elif case == "empty_domain":
        for f in (folder / "trainA").iterdir():
            f.unlink()
    elif case in ("unknown_name", "missing_named"):
        argv[1] = "zebra2horse" if case == "unknown_name" else "horse2zebra"
    else:
        argv += ["--amp", "fp16"]
    code, err = _cli(argv, capsys)
    expected = {
        "no_trainB": "no trainB/",
        "empty_domain": "holds no images",
        "unknown_name": "neither a folder",
        "missing_named": "--download",
        "fp16_cpu": "fp16 needs a CUDA",
    }[case]
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and expected in err[0], err


def test_resume_with_other_blocks_or_without_flag_is_one_line(domains, tmp_path, capsys):
    base = [
        "--dataset",
        str(domains),
        "-o",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        "--no-progress",
        "--image-size",
        "32",
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--steps",
        "1",
        "--workers",
        "0",
    ]
    assert main(base + ["--n-blocks", "2"]) == 0
    capsys.readouterr()
    code, err = _cli(base + ["--n-blocks", "1", "--steps", "2", "--resume"], capsys)
    assert code == 2 and len(err) == 1 and "--n-blocks 1 differs from 2" in err[0], err
    code, err = _cli(base + ["--n-blocks", "2", "--steps", "2"], capsys)
    assert code == 2 and len(err) == 1 and "--resume" in err[0], err
    code, err = _cli(base + ["--n-blocks", "2", "--resume", str(tmp_path / "nothing.pth")], capsys)
    assert code == 2 and len(err) == 1 and "nothing to resume" in err[0], err
    assert main(base + ["--n-blocks", "2", "--steps", "2", "--resume"]) == 0


def test_ctrl_c_saves_state_and_generators(domains, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "train.cyclegan",
        "--dataset",
        str(domains),
        "-o",
        str(out),
        "--device",
        "cpu",
        "--image-size",
        "32",
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--n-blocks",
        "1",
        "--steps",
        "100000",
        "--workers",
        "1",
        "--log-every",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not _has_rows(out / "logs" / "log.csv", 3):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "continue with --resume" in err
    step = torch.load(out / "state.pth", weights_only=True)["training"]["step"]
    assert step >= 3
    assert load_model(out / "reds2blues.pth").contract.provenance["steps"] == step
    assert (out / "blues2reds.pth").is_file()


def _has_rows(path: Path, n: int) -> bool:
    return path.exists() and len(path.read_text().splitlines()) > n


CYCLEGAN_RANK = """
import torch
from test_cyclegan_train import TINY, _all_weights
from train.cyclegan import CycleGANConfig, train

torch.set_num_threads(1)
result = train(CycleGANConfig(dataset=sys.argv[2], output=sys.argv[3], steps=3, log_every=1, batch_size=1, **TINY))
weights = {k: v.clone() for k, v in _all_weights(result).items()}
torch.save(weights | {"steps": torch.tensor(result.steps)}, f"{sys.argv[1]}/rank{RANK}.pth")
"""


def test_two_process_gloo_ddp(domains, tmp_path):
    result = run_two_ranks(CYCLEGAN_RANK, tmp_path, [str(tmp_path), str(domains), str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr[-2000:]
    weights = assert_same_weights(tmp_path)  # DDP kept the four networks of both replicas identical
    assert int(weights["steps"]) == 3
    rows = read_log(tmp_path / "out" / "logs" / "log.csv")
    assert [r["step"] for r in rows] == [1, 2, 3]  # written once, by rank 0
    assert (tmp_path / "out" / "reds2blues.pth").is_file()
