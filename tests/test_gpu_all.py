"""The one-call GPU training run, on the CPU with tiny settings: plan, schedule, export, summary, bundle, data."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realtime.backends.loader import load_stylizer
from train import gpu_all, gpu_data, gpu_plan, gpu_report
from train.cyclegan import build_parser as cyclegan_parser
from train.data import Augment, ImageFolder
from train.gpu_plan import Job, RunSettings, cyclegan_epochs, make_plan, parse_style_weights
from train.johnson import build_parser as johnson_parser
from train.unpaired import UnpairedDataset

sys.path.insert(0, str(Path(__file__).parent))
from test_cyclegan_train import make_domains  # noqa: E402


def make_data(root: Path) -> Path:
    (root / "photos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((64, 48), Image.BICUBIC).save(root / "photos" / f"{i}.jpg")
    make_domains(root / "horse2zebra", n=4)
    return root


def test_every_command_line_parses_with_the_trainers_current_flags(tmp_path):
    settings = RunSettings(data=tmp_path, out=tmp_path / "out", style_weights={"candy": 12.0})
    johnson, cyclegan = make_plan(settings, cyclegan_seconds=300)
    assert [j.name for j in johnson][:6] == [n for n, *_ in gpu_plan.SINGLE_STYLE]
    for job in johnson:
        args = johnson_parser().parse_args(job.argv)
        assert (args.image_size, args.batch_size, args.amp, args.channels_last) == (256, 8, "bf16", True)
        assert args.style_weight == (12.0 if job.name == "candy" else 8.0)
        assert Path(args.output) == job.outputs[job.name] and args.name == job.name
    assert johnson[5].name == "mosaic_small" and johnson_parser().parse_args(johnson[5].argv).arch == "small"
    args = cyclegan_parser().parse_args(cyclegan.argv)
    assert (args.image_size, args.ngf, args.n_blocks, args.batch_size, args.lr_scaling) == (128, 32, 6, 4, "sqrt")
    assert args.preload and args.time_limit == 300 and args.epochs >= 1
    assert set(cyclegan.outputs) == {"horse2zebra", "zebra2horse"}
    assert "--style-layer-weights" not in johnson[0].argv  # equal weights unless asked for


def test_the_multi_style_nets_learn_every_bundled_style_and_layer_weights_reach_every_job(tmp_path):
    johnson, _ = make_plan(RunSettings(data=tmp_path, out=tmp_path, style_layer_weights="relu1_1=4"), 100)
    multi = {j.name: j for j in johnson if j.name.startswith("multistyle")}
    assert set(multi) == {"multistyle", "multistyle_small"}
    assert all(johnson_parser().parse_args(j.argv).style_layer_weights == "relu1_1=4" for j in johnson)
    assert all(j.argv[j.argv.index("--style-layer-weights") + 1] == "relu1_1=4" for j in johnson)
    styles = multi["multistyle"].argv[multi["multistyle"].argv.index("--style") + 1 :]
    styles = styles[: styles.index("-o")]
    assert sorted(Path(s).name for s in styles) == sorted(p.name for p in gpu_plan.STYLES.glob("*.jpg"))
    assert multi["multistyle_small"].argv[multi["multistyle_small"].argv.index("--arch") + 1] == "small"


def test_schedule_fits_the_window_and_settings_parse():
    assert cyclegan_epochs(300, 25.0, images=1334, batch=4) == (11, 11)  # 7500 iterations, 334 per epoch
    assert cyclegan_epochs(1, 1.0, images=1000, batch=1) == (1, 1)
    assert parse_style_weights("candy=12, udnie=6.5") == {"candy": 12.0, "udnie": 6.5}
    with pytest.raises(Exception, match="candy=12"):
        parse_style_weights("candy")


def test_runner_stops_a_job_at_its_share_with_ctrl_c(tmp_path, monkeypatch):
    (tmp_path / "forever.py").write_text(
        "import sys, time\n"
        "try:\n    while True: time.sleep(0.05)\n"
        "except KeyboardInterrupt:\n    open(sys.argv[1], 'w').write('saved'); sys.exit(130)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    settings = RunSettings(data=tmp_path, out=tmp_path / "out")
    jobs = [Job(f"j{i}", "forever", [str(tmp_path / f"saved{i}")], {}, share) for i, share in enumerate((1.0, 3.0))]
    start = time.time()
    outcomes = gpu_all.Runner(settings, parallel=1, window_end=start + 4, min_slice=0.5).run(jobs, None)
    assert [o.status for o in outcomes] == ["stopped at its time share"] * 2
    assert [(tmp_path / f"saved{i}").read_text() for i in range(2)] == ["saved", "saved"]
    # one slot: j0 is given a quarter of the window (share 1 of 1 + 3), j1 the rest of it
    first, second = outcomes
    assert first.stop_at - first.started_at == pytest.approx((start + 4 - first.started_at) / 4, abs=0.01)
    assert second.started_at >= first.stop_at and second.stop_at == pytest.approx(start + 4)


def test_tiny_run_trains_exports_summarises_and_bundles(tmp_path):
    data = make_data(tmp_path / "data")
    out, back = tmp_path / "run", tmp_path / "OUT"
    argv = ["--data", str(data), "-o", str(out), "--device", "cpu", "--tiny", "--minutes", "4", "--parallel", "2"]
    assert gpu_all.main([*argv, "--only", "mosaic_small,horse2zebra", "--bundle", str(back)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    exported = {name: o["file"] for job in summary["jobs"] for name, o in job["onnx"].items()}
    assert exported == {
        "mosaic_small": "mosaic_small.onnx",
        "horse2zebra": "horse2zebra.onnx",
        "zebra2horse": "zebra2horse.onnx",
    }
    assert all(job["status"] == "finished" and job["steps"] == 3 for job in summary["jobs"])
    photo = np.zeros((24, 32, 3), np.uint8)
    for name in exported:
        stylizer = load_stylizer(str(out / "onnx" / f"{name}.onnx"), device="cpu")
        assert stylizer.contract.name == name and stylizer(photo).shape == photo.shape
    assert "--resume" not in summary["jobs"][0]["command"] and "<" in summary["jobs"][0]["command"]  # no machine paths
    assert sorted(p.name for p in back.iterdir()) == ["gpu_run.tar.00", "summary.md"]
    with tarfile.open(back / "gpu_run.tar.00") as tar:
        names = tar.getnames()
    assert {"gpu_run/onnx/mosaic_small.onnx", "gpu_run/summary.md", "gpu_run/horse2zebra/state.pth"} <= set(names)
    assert "| mosaic_small | finished | 3 |" in (back / "summary.md").read_text()


def test_bundle_splits_into_parts_and_leaves_out_what_does_not_fit(tmp_path, monkeypatch):
    out = tmp_path / "run"
    (out / "onnx").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (out / "onnx" / f"{name}.onnx").write_bytes(rng.bytes(3000))
    (out / "summary.md").write_text("# run\n")
    (out / "horse2zebra").mkdir()
    (out / "horse2zebra" / "state.pth").write_bytes(rng.bytes(9000))
    monkeypatch.setattr(gpu_report, "BUNDLE_PART", 6000)
    monkeypatch.setattr(gpu_report, "BUNDLE_TOTAL", 12000 + 2 * 2**20)  # room for the ONNX files and summary only
    files = gpu_report.bundle(out, tmp_path / "OUT")
    parts = [f for f in files if f.name.startswith("gpu_run.tar.")]
    assert len(parts) >= 2 and all(p.stat().st_size <= 6000 for p in parts) and len(files) <= gpu_report.BUNDLE_FILES
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        assert (out / "onnx" / "b.onnx").read_bytes() == tar.extractfile("gpu_run/onnx/b.onnx").read()
        assert "horse2zebra/state.pth" in tar.extractfile("gpu_run/bundle.txt").read().decode()
        assert "gpu_run/horse2zebra/state.pth" not in tar.getnames()


def test_data_pack_fills_its_budget_and_the_trainers_read_it(tmp_path):
    src = make_data(tmp_path / "src")
    out = tmp_path / "packed"
    argv = ["--photos", str(src / "photos"), "--unpaired", str(src / "horse2zebra"), "-o", str(out)]
    # about 480 bytes a photo and 180 an unpaired image at these sizes: 1800 bytes take some of each
    assert gpu_data.main([*argv, "--budget-mb", "0.0018", "--photo-side", "32", "--unpaired-size", "36"]) == 0
    assert 0 < sum(p.stat().st_size for p in out.rglob("*.webp")) <= 1800
    photos = list((out / "photos").glob("*.webp"))
    domains = {d: len(list((out / "horse2zebra" / d).glob("*.webp"))) for d in ("trainA", "trainB")}
    assert 1 <= len(photos) < 3 and 1 <= domains["trainA"] < 4 and abs(domains["trainA"] - domains["trainB"]) <= 1
    assert {Image.open(p).size for p in photos} == {(43, 32)}  # the shorter side scaled down to 32
    UnpairedDataset(out / "horse2zebra", crop_size=32)[(0, 0, 0)]
    ImageFolder(out / "photos", Augment(16))[0]
    assert gpu_data.main([*argv, "--budget-mb", "1"]) == 2  # the folder is not empty any more
    assert gpu_data.travelling_bytes() > 1e6  # the repository's own files, as git lists them


def test_the_shell_entry_point_reaches_the_command(tmp_path):
    import os
    import subprocess

    script = Path(gpu_plan.REPO) / "weights" / "train_gpu.sh"
    env = {**os.environ, "PYTHON": sys.executable, "NST_GPU_DATA": str(tmp_path / "nothing")}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: --data") and "photos/" in done.stderr
