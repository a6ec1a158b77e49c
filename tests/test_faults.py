"""The fault matrix: every command, driven into an unwritable folder and onto a full disk, says one line.

The full disk is a small tmpfs filled to the brim where the test may mount one (root), else
writes are sent to ``/dev/full`` (the real ``ENOSPC`` of a write, through the real writers).
The unwritable folder is a read-only tmpfs (root) or a folder without write permission.
Also here: a still image given to ``nst-video`` (it used to crash the interpreter), stop
signals, two runs writing the same output, and partial videos whose audio ends with the video.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from video_clips import install_fake_models, make_clip, read_video

import realtime.core.files
from realtime.core.checkpoint import save_checkpoint
from realtime.core.files import TEMP_MARK
from realtime.core.nets.families import family
from realtime.core.nets.transformer import TransformerNet

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
STYLE = REPO / "samples" / "styles" / "mosaic.jpg"


# -- places that refuse writes ------------------------------------------------------------------
def _mount_tmpfs(folder: Path, options: str) -> bool:
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def full_disk(tmp_path, monkeypatch) -> Iterator[Path]:
    """A folder whose writes fail with ENOSPC (a full tmpfs, else every output written to /dev/full)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if _mount_tmpfs(folder, "size=256k"):
        _fill(folder)
        yield folder
        _umount(folder)
        return
    if not os.path.exists("/dev/full"):
        pytest.skip("no tmpfs can be mounted here and there is no /dev/full")
    real = realtime.core.files._temp_beside

    def to_dev_full(final: Path, suffix: str | None) -> Path:
        tmp = real(final, suffix)
        if final.parent == folder:
            tmp.unlink()
            tmp.symlink_to("/dev/full")  # opening it for writing works; every write fails with ENOSPC
        return tmp

    monkeypatch.setattr(realtime.core.files, "_temp_beside", to_dev_full)
    yield folder


@pytest.fixture
def locked(tmp_path) -> Iterator[Path]:
    """A folder nobody may write into: a read-only tmpfs (root), else one without write permission."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if _mount_tmpfs(folder, "ro,size=64k"):
        yield folder
        _umount(folder)
        return
    if os.name != "posix" or os.geteuid() == 0:
        pytest.skip("root ignores folder permissions and no read-only tmpfs can be mounted")
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


# -- the commands --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    photos = root / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    for domain in ("trainA", "trainB"):
        (root / "domains" / domain).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(
                root / "domains" / domain / f"{i}.png"
            )
    ckpt = root / "tiny.pth"
    net = TransformerNet.from_arch("small").eval()
    save_checkpoint(ckpt, net, family("johnson").contract(name="tiny"))
    return {"clip": make_clip(root / "clip.mp4", frames=6), "photo": photos / "0.png", "photos": photos,
            "domains": root / "domains", "ckpt": ckpt}  # fmt: skip


def run_video(inputs, folder, monkeypatch):
    from realtime.cli import video

    install_fake_models(monkeypatch)
    return video.main([str(inputs["clip"]), "-m", "x", "-o", str(folder / "out.mp4"), "--no-progress"])


def run_cam(inputs, folder, monkeypatch):
    from realtime.cli import cam

    install_fake_models(monkeypatch)
    argv = ["-m", "x", "--source", str(inputs["clip"]), "--no-display", "-o", str(folder / "rec.mp4")]
    return cam.main([*argv, "--max-frames", "3"])


def run_still(inputs, folder, monkeypatch):
    import realtime.model_still
    from realtime.cli import still

    monkeypatch.setattr(realtime.model_still, "stylize_image", lambda content, model, **kw: 255 - content)
    return still.main(["--model", "x", "--content", str(inputs["photo"]), "-o", str(folder / "out.png")])


def run_export(inputs, folder, monkeypatch):
    from export.__main__ import main

    return main([str(inputs["ckpt"]), "-o", str(folder / "tiny.pt")])  # TorchScript: torch.jit.save once aborted


def run_johnson(inputs, folder, monkeypatch):
    from train import johnson

    argv = ["--dataset", str(inputs["photos"]), "--style", str(STYLE), "-o", str(folder / "m.pth"), "--steps", "1"]
    small = ["--image-size", "32", "--batch-size", "1", "--arch", "small", "--style-size", "32", "--workers", "0"]
    return johnson.main([*argv, *small, "--sample-every", "0", "--device", "cpu", "--threads", "1"])


def run_cyclegan(inputs, folder, monkeypatch):
    from train import cyclegan

    argv = [str(inputs["domains"]), "-o", str(folder / "run"), "--steps", "1", "--image-size", "32", "--ngf", "4"]
    small = ["--ndf", "4", "--n-blocks", "1", "--workers", "0", "--device", "cpu", "--no-progress"]
    return cyclegan.main(["--dataset", *argv, *small])


COMMANDS: dict[str, Callable] = {
    "nst-video": run_video,
    "nst-cam": run_cam,
    "still": run_still,
    "export": run_export,
    "train.johnson": run_johnson,
    "train.cyclegan": run_cyclegan,
}


def assert_one_line(code: int, err: str, folder: Path) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert "Traceback" not in err and len(errors) == 1, err
    assert str(folder) in errors[0], errors[0]
    return errors[0]


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name]


@pytest.mark.parametrize("command", COMMANDS)
def test_full_disk_is_one_line_and_leaves_nothing(command, inputs, full_disk, monkeypatch, capsys):
    code = COMMANDS[command](inputs, full_disk, monkeypatch)
    line = assert_one_line(code, capsys.readouterr().err, full_disk)
    assert "no space left" in line, line
    assert temp_files(full_disk) == []
    models = [p for p in full_disk.rglob("*") if p.suffix in (".mp4", ".png", ".pt", ".pth") and p.stat().st_size]
    assert models == []  # nothing half-written under a final name


@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_folder_is_one_line_before_any_work(command, inputs, locked, monkeypatch, capsys):
    code = COMMANDS[command](inputs, locked / "sub", monkeypatch)
    line = assert_one_line(code, capsys.readouterr().err, locked)
    assert "read-only" in line or "permission" in line or "not writable" in line, line
    assert list(locked.iterdir()) == []


# -- a still image given as a video -----------------------------------------------------------------
def test_png_as_video_is_one_line_not_a_crash(tmp_path):
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png, icc_profile=b"\0" * 128)
    misnamed = tmp_path / "x.mp4"
    misnamed.write_bytes(png.read_bytes())
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for target in (png, misnamed):
        done = subprocess.run(
            [sys.executable, "-m", "realtime.cli.video", str(target), "-m", "mosaic_small"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, (done.returncode, done.stderr)  # was -11 (segmentation fault)
        assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "still image" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4", "x.png"]  # no hidden temp file


def test_pyav_objects_end_in_a_safe_order(tmp_path):
    """A PNG frame with an ICC profile: reading its rotation, closing, collecting; once crashed at gc."""
    png = tmp_path / "icc.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(png, icc_profile=b"\0" * 128)
    code = f"""
import gc, av
from realtime.io.video_files import _display_matrix, _first_frame
container = av.open({str(png)!r})
frame = _first_frame(container, container.streams.video[0])
assert _display_matrix(frame) is None
container.close()
del frame
gc.collect()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr)


# -- stop signals, --force over a finished file, audio cut at the last frame --------------------------
SLOW_MAIN = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from video_clips import SlowIdentity, fake_models_module
marker = Path({marker!r})

class Slow(SlowIdentity):
    n = 0
    def __call__(self, frame):
        Slow.n += 1
        if Slow.n == 8:
            marker.write_text("started")
        return super().__call__(frame)

sys.modules["realtime.backends.loader"] = fake_models_module(lambda m: Slow({delay}))
from realtime.cli.video import main
sys.exit(main(sys.argv[1:]))
"""


def start_video(tmp_path: Path, argv: list[str], marker: Path, delay: float = 0.05) -> subprocess.Popen:
    code = SLOW_MAIN.format(tests=str(TESTS), marker=str(marker), delay=delay)
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--no-progress"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(marker: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), proc.communicate()[1]


def durations(path: Path) -> tuple[float, float, float]:
    """(container, video, audio) durations in seconds, as a player sees them."""
    with av.open(str(path)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        return (
            c.duration / av.time_base,
            float(video.duration * video.time_base),
            float(audio.duration * audio.time_base),
        )


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])  # SIGINT: test_video_cli
def test_stop_signal_keeps_the_finished_file_and_a_consistent_partial(tmp_path, sig):
    src = make_clip(tmp_path / "long.mp4", width=64, height=48, frames=250, fps=25)  # 10 s with audio
    out = tmp_path / "out.mp4"
    out.write_bytes(b"a finished result")
    marker = tmp_path / "started"
    proc = start_video(tmp_path, [str(src), "-m", "slow", "-o", str(out), "--force"], marker)
    wait_for(marker, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert out.read_bytes() == b"a finished result"  # --force never lets a partial replace a file
    partial = tmp_path / "out.partial.mp4"
    assert f"in {partial}" in err and "unchanged" in err
    frames = len(read_video(partial).frames)
    assert 5 <= frames < 250
    container, video, audio = durations(partial)
    assert video == pytest.approx(frames / 25, abs=1e-3)
    assert container == pytest.approx(video, abs=0.03) and video - 0.03 <= audio <= video + 1e-3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX processes")
def test_two_runs_to_one_output_never_replace_each_other(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", width=64, height=48, frames=30, fps=25)
    out = tmp_path / "out.mp4"
    procs = [start_video(tmp_path, [str(src), "-m", "slow", "-o", str(out)], tmp_path / f"m{i}", 0.02) for i in (0, 1)]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "exists" in loser and loser.count("error:") == 1, loser
    assert len(read_video(out).frames) == 30
    if "meanwhile" in loser:  # both ran at once: the second result is kept beside, not lost
        assert len(read_video(tmp_path / "out.new.mp4").frames) == 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_interrupt_without_an_existing_file_keeps_the_partial_under_the_name(tmp_path, monkeypatch, capsys):
    from fakes import InterruptingStylizer

    from realtime.cli import video

    stylizer = InterruptingStylizer(at=12)
    install_fake_models(monkeypatch, lambda model: stylizer)
    src = make_clip(tmp_path / "long.mp4", frames=40, fps=20)
    out = tmp_path / "out.mp4"
    assert video.main([str(src), "-m", "x", "-o", str(out), "--no-progress"]) == 130
    assert f"in {out} (playable, partial)" in capsys.readouterr().err
    container, vid, audio = durations(out)
    assert vid == pytest.approx(11 / 20, abs=1e-3) and container == pytest.approx(vid, abs=0.03)
    assert vid - 0.03 <= audio <= vid + 1e-3  # was: all 2 s of audio under 0.55 s of video


# -- bad input: one line, blamed on the right thing ------------------------------------------------
@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--size", "99999x99999"], "--size 99999x99999: each side must be at most 16384 pixels"),
        (["--crf", "99"], "--crf must be between 0 and 51 for libx264, got 99"),
        (["--codec", "libvpx-vp9", "--crf", "70"], "--crf must be between 0 and 63 for libvpx-vp9"),
        (["--scale", "2000"], "--scale 2000 makes 320000x180000 frames; the limit is 16384 a side"),
    ],
)
def test_video_settings_out_of_range_are_blamed(extra, expected, inputs, tmp_path, monkeypatch, capsys):
    from realtime.cli import video

    install_fake_models(monkeypatch)
    code = video.main([str(inputs["clip"]), "-m", "x", "-o", str(tmp_path / "o.mp4"), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and expected in err, err
    assert "corrupt" not in err and not (tmp_path / "o.mp4").exists()


def test_frames_larger_than_the_machine_are_refused_before_the_run(inputs, tmp_path, monkeypatch, capsys):
    import realtime.core.memory
    from realtime.cli import common, video

    install_fake_models(monkeypatch)
    for module in (common, realtime.core.memory):
        monkeypatch.setattr(module, "physical_memory", lambda: 1 << 30)  # a 1 GB machine
    argv = [str(inputs["clip"]), "-m", "x", "-o", str(tmp_path / "o.mp4"), "--size", "1600x1200", "--no-progress"]
    assert video.main(argv) == 2
    err = capsys.readouterr().err
    assert "would need about 1.8 GB each in the model, more than this machine's 1.0 GB" in err
    argv[-2] = "800x600"  # 0.45 GB: over a quarter of the memory, runs with a warning
    assert video.main(argv) == 0 and "warning: frames of 800x600 need about" in capsys.readouterr().err


def test_a_bad_checkpoint_is_one_line(inputs, tmp_path, capsys):
    from realtime.cli import video

    bad = tmp_path / "bad.pth"
    bad.write_bytes(inputs["ckpt"].read_bytes()[:4000])
    code = video.main([str(inputs["clip"]), "-m", str(bad), "--device", "cpu", "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "not a readable PyTorch checkpoint" in err, err


@pytest.mark.parametrize("camera", [False, True])
def test_no_display_says_whether_the_camera_is_missing_too(camera, monkeypatch, capsys):
    import realtime.io.sources
    from realtime.cli import cam

    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(realtime.io.sources, "camera_opens", lambda index: camera)
    assert cam.main(["-m", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    if camera:
        assert err == "error: no display found; run with --no-display (and --output FILE to record)"
    else:
        assert err.startswith("error: no camera and no display: camera 0 cannot be opened") and "--source" in err


# -- existing outputs and names ------------------------------------------------------------------
def test_still_and_export_refuse_an_existing_output_without_force(inputs, tmp_path, monkeypatch, capsys):
    import realtime.model_still
    from export.__main__ import main as export_main
    from realtime.cli import still

    monkeypatch.setattr(realtime.model_still, "stylize_image", lambda content, model, **kw: 255 - content)
    png, pt = tmp_path / "out.png", tmp_path / "tiny.pt"
    for path in (png, pt):
        path.write_bytes(b"keep me")
    assert still.main(["--model", "x", "--content", str(inputs["photo"]), "-o", str(png)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {png} already exists; use --force to overwrite it"
    assert export_main([str(inputs["ckpt"]), "-o", str(pt)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {pt} already exists; use --force to overwrite it"
    assert png.read_bytes() == pt.read_bytes() == b"keep me"
    assert still.main(["--model", "x", "--content", str(inputs["photo"]), "-o", str(png), "--force"]) == 0
    assert export_main([str(inputs["ckpt"]), "-o", str(pt), "--force"]) == 0
    assert png.read_bytes() != b"keep me" and pt.read_bytes() != b"keep me"


def test_export_of_a_shadowed_name_points_to_published(tmp_path, capsys):
    from export.__main__ import main as export_main

    assert export_main(["horse2zebra", "-o", str(tmp_path / "h.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "already ONNX" in err and "published:horse2zebra exports the published checkpoint" in err


def test_a_big_still_is_announced_and_tiled(tmp_path, monkeypatch, capsys):
    import realtime.model_still
    from realtime.cli import still

    seen = {}

    def stylize_image(content, model, *, max_memory, progress, **kwargs):
        seen["budget"] = max_memory
        progress(3, 6)
        return 255 - content

    monkeypatch.setattr(realtime.model_still, "stylize_image", stylize_image)
    photo = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(photo)
    argv = ["--model", "x", "--content", str(photo), "-o", str(tmp_path / "o.png"), "--max-memory", "64M"]
    assert still.main(argv) == 0
    err = capsys.readouterr().err
    assert "note: 400x300 needs about 114.4 MB in one piece, over the 64.0 MB budget" in err and "tiles" in err
    assert seen["budget"] == 64 << 20
    assert still.main([*argv[:-1], "lots"]) == 2
    assert "--max-memory takes a size such as 4G or 512M" in capsys.readouterr().err
