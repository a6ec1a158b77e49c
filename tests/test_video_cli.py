"""nst-video end to end on tiny generated clips (with audio), with stand-in models."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import InterruptingStylizer
from video_clips import Invert, install_fake_models, make_clip, read_video

from realtime.cli.video import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def identity(monkeypatch):
    return install_fake_models(monkeypatch)


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", frames=20, fps=20)


def leftovers(folder: Path) -> list[str]:
    """Temporary files atomic_path would leave behind on a bug."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_default_output_keeps_frames_rate_and_audio(tmp_path, clip, identity, capsys):
    assert main([str(clip), "--model", "weights/candy.pth", "--no-progress"]) == 0
    out = tmp_path / "clip_candy.mp4"
    a, b = read_video(clip), read_video(out)
    assert len(b.frames) == len(a.frames) == 20
    assert b.rate == a.rate == 20 and b.times == pytest.approx(a.times)
    assert b.audio_codecs == ["aac"] and b.audio_seconds == pytest.approx(a.audio_seconds, abs=1e-3)
    assert "20 frames" in capsys.readouterr().out
    assert identity.calls[0]["model"] == "weights/candy.pth"
    assert leftovers(tmp_path) == []


def test_variable_frame_rate_timestamps_kept(tmp_path, identity):
    src = make_clip(tmp_path / "vfr.mkv", durations_ms=[30, 80, 50, 120], audio="libopus", frames=16)
    out = tmp_path / "out.mp4"
    assert main([str(src), "-m", "x", "-o", str(out), "--no-progress"]) == 0
    a, b = read_video(src), read_video(out)
    assert len(b.frames) == 16 and b.times == pytest.approx(a.times, abs=1e-3)
    assert b.audio_seconds == pytest.approx(a.audio_seconds, abs=5e-3)


def test_odd_size_survives(tmp_path, identity, capsys):
    src = make_clip(tmp_path / "odd.mp4", width=333, height=199, frames=6)
    out = tmp_path / "odd_out.mp4"
    assert main([str(src), "-m", "x", "-o", str(out), "--no-progress"]) == 0
    b = read_video(out)
    assert (b.width, b.height) == (333, 199) and len(b.frames) == 6
    assert "yuv444p" in capsys.readouterr().err
    padded = tmp_path / "odd_420.mp4"
    assert main([str(src), "-m", "x", "-o", str(padded), "--pix-fmt", "yuv420p", "--no-progress"]) == 0
    assert (read_video(padded).width, read_video(padded).height) == (334, 200)


def test_strength_zero_lossless_returns_the_input(tmp_path, clip, monkeypatch):
    install_fake_models(monkeypatch, lambda model: Invert())
    out = tmp_path / "same.mp4"
    assert main([str(clip), "-m", "invert", "-o", str(out), "--strength", "0", "--lossless", "--no-progress"]) == 0
    a, b = read_video(clip), read_video(out)
    assert len(a.frames) == len(b.frames)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    styled = tmp_path / "inverted.mp4"
    assert main([str(clip), "-m", "invert", "-o", str(styled), "--lossless", "--no-progress"]) == 0
    assert np.array_equal(read_video(styled).frames[5], 255 - a.frames[5])


def test_rotation_metadata_kept(tmp_path, identity):
    src = make_clip(tmp_path / "phone.mp4", rotation=90, frames=5)
    out = tmp_path / "phone_out.mp4"
    assert main([str(src), "-m", "x", "-o", str(out), "--no-progress"]) == 0
    assert read_video(out).rotation == 90


def test_size_scale_and_keep_size(tmp_path, clip, identity):
    small = tmp_path / "small.mp4"
    assert main([str(clip), "-m", "x", "-o", str(small), "--size", "80x46", "--no-progress"]) == 0
    assert (read_video(small).width, read_video(small).height) == (80, 46)
    kept = tmp_path / "kept.mp4"
    assert main([str(clip), "-m", "x", "-o", str(kept), "--scale", "0.5", "--keep-size", "--no-progress"]) == 0
    assert (read_video(kept).width, read_video(kept).height) == (160, 90)


def test_start_and_duration(tmp_path, identity):
    src = make_clip(tmp_path / "long.mp4", frames=40)
    out = tmp_path / "cut.mp4"
    assert main([str(src), "-m", "x", "-o", str(out), "--start", "0.5", "--duration", "1", "--no-progress"]) == 0
    b = read_video(out)
    assert len(b.frames) == 20 and b.times[0] == pytest.approx(0.0)
    assert b.audio_seconds[0] == pytest.approx(1.0, abs=0.05)


def test_refuses_to_overwrite_without_force(tmp_path, clip, identity, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    assert main([str(clip), "-m", "x", "-o", str(out), "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main([str(clip), "-m", "x", "-o", str(out), "--force", "--no-progress"]) == 0
    assert len(read_video(out).frames) == 20
    assert main([str(clip), "-m", "x", "-o", str(clip), "--force", "--no-progress"]) == 2  # never the input


def test_folder_of_inputs(tmp_path, identity):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=4)
    make_clip(folder / "b.mkv", frames=5, audio="libopus")
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "styled"
    assert main([str(folder), "-m", "weights/mosaic.onnx", "-o", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_mosaic.mp4", "b_mosaic.mp4"]
    assert len(read_video(out / "b_mosaic.mp4").frames) == 5


def test_stabilize_flag_is_wired(tmp_path, clip, identity, monkeypatch):
    import realtime.stages as stages

    made = []
    real = stages.TemporalStabilizer

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "TemporalStabilizer", spy)
    assert main([str(clip), "-m", "x", "-o", str(tmp_path / "s1.mp4"), "--stabilize", "--no-progress"]) == 0
    assert main([str(clip), "-m", "x", "-o", str(tmp_path / "s2.mp4"), "--stabilize", "0.3", "--no-progress"]) == 0
    assert made == [{"strength": stages.DEFAULT_STRENGTH}, {"strength": 0.3}]
    assert len(read_video(tmp_path / "s2.mp4").frames) == 20
    assert main([str(clip), "-m", "x", "-o", str(tmp_path / "s3.mp4"), "--stabilize", "2"]) == 2


@pytest.mark.parametrize("case", ["missing", "junk", "truncated", "audio_only", "no_frames", "folder_empty"])
def test_bad_inputs_exit_2_without_output(tmp_path, identity, capsys, case):
    import av

    path = tmp_path / f"{case}.mp4"
    if case == "junk":
        path.write_bytes(os.urandom(4000))
    elif case == "truncated":
        whole = make_clip(tmp_path / "whole.mp4", frames=20)
        out = tmp_path / "faststart.mp4"  # moov first: the cut falls in the frames
        assert main([str(whole), "-m", "x", "-o", str(out), "--no-progress"]) == 0
        data = out.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif case == "audio_only":
        with av.open(str(path), "w") as c:
            s = c.add_stream("aac", rate=44100)
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate = 44100
            c.mux(s.encode(f))
            c.mux(s.encode())
    elif case == "no_frames":
        path = tmp_path / "no_frames.mkv"
        with av.open(str(path), "w") as c:
            vs = c.add_stream("libx264", rate=20)
            vs.width, vs.height = 64, 48
            c.start_encoding()
    elif case == "folder_empty":
        path = tmp_path / "empty_folder"
        path.mkdir()
    before = set(tmp_path.iterdir())
    capsys.readouterr()
    assert main([str(path), "-m", "x", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert set(tmp_path.iterdir()) == before  # nothing written, no temp file left


def test_read_only_output_folder(tmp_path, clip, identity, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    assert main([str(clip), "-m", "x", "-o", str(locked / "out.mp4"), "--no-progress"]) == 2
    assert "not writable" in capsys.readouterr().err
    assert list(locked.iterdir()) == []


@contextlib.contextmanager
def read_only_folder(folder: Path, monkeypatch) -> Iterator[str]:
    """Make ``folder`` read-only for this process, as for real as the machine allows; yields how.

    Not root: plain permissions (0o555). Root ignores those, so: a tmpfs mounted read-only over
    the folder where ``mount`` is allowed (CI containers as root usually are), else the
    kernel's answer simulated: ``access()`` says no and creating a file fails with EROFS.
    """
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield "permissions 0o555"
        finally:
            folder.chmod(0o755)
        return
    mount = shutil.which("mount")
    mounted = mount is not None and (
        subprocess.run(
            [mount, "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True, timeout=30
        ).returncode
        == 0
    )
    if mounted:
        try:
            yield "read-only tmpfs mount"
        finally:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)
        return
    real_access, real_open = os.access, os.open

    def access(path, mode, *args, **kwargs):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if Path(path).parent == folder and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "open", open_)
    yield "simulated EROFS (mount not permitted here)"


@pytest.mark.skipif(os.name != "posix", reason="read-only folders are set up the POSIX way")
def test_read_only_output_folder_for_real(tmp_path, clip, identity, monkeypatch, capsys):
    locked = tmp_path / "locked"
    with read_only_folder(locked, monkeypatch) as how:
        with pytest.raises(OSError):  # the folder really refuses new files (os.open: what mkstemp uses)
            os.close(os.open(locked / "probe.txt", os.O_CREAT | os.O_WRONLY, 0o644))
        capsys.readouterr()
        assert main([str(clip), "-m", "x", "-o", str(locked / "out.mp4"), "--no-progress"]) == 2, how
        err = capsys.readouterr().err
        assert ("not writable" in err or "read-only file system" in err) and len(err.strip().splitlines()) == 1, (
            how,
            err,
        )
        assert list(locked.iterdir()) == [], how


def test_disk_full_mid_write(tmp_path, clip, identity, monkeypatch, capsys):
    from realtime.io import video_files as video_io

    real_write = video_io.VideoWriter.write

    def write(self, frame, info=None):
        if self.frames == 7:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, frame, info)

    monkeypatch.setattr(video_io.VideoWriter, "write", write)
    out = tmp_path / "full.mp4"
    assert main([str(clip), "-m", "x", "-o", str(out), "--no-progress"]) == 2
    assert "disk full" in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []


def test_ctrl_c_in_process_keeps_a_playable_partial_file(tmp_path, monkeypatch, capsys):
    stylizer = InterruptingStylizer(at=12)
    install_fake_models(monkeypatch, lambda model: stylizer)
    src = make_clip(tmp_path / "long.mp4", frames=40)
    out = tmp_path / "partial.mp4"
    assert main([str(src), "-m", "x", "-o", str(out), "--no-progress"]) == 130
    assert "partial" in capsys.readouterr().err
    b = read_video(out)
    assert len(b.frames) == 11 and b.times == pytest.approx([i * 0.05 for i in range(11)])
    assert leftovers(tmp_path) == []


SLOW_MAIN = """
import signal, sys, time
from pathlib import Path
# Ctrl-C raises KeyboardInterrupt, as in a terminal: a parent started in the background (a CI
# script, `make test &`) hands its children SIGINT ignored, and Python then keeps it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from video_clips import SlowIdentity, fake_models_module
marker = Path({marker!r})

class Slow(SlowIdentity):
    n = 0
    def __call__(self, frame):
        Slow.n += 1
        if Slow.n == 6:  # frames 0-4 are stylised and queued: Ctrl-C from now on keeps at least 5
            marker.write_text("started")
        return super().__call__(frame)

sys.modules["realtime.backends.loader"] = fake_models_module(lambda m: Slow(0.05))
from realtime.cli.video import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_sigint_subprocess_leaves_playable_file(tmp_path):
    src = make_clip(tmp_path / "long.mp4", width=64, height=48, frames=300, fps=25)
    out = tmp_path / "partial.mp4"
    marker = tmp_path / "marker"
    code = SLOW_MAIN.format(tests=str(REPO / "tests"), marker=str(marker))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(src), "-m", "slow", "-o", str(out), "--no-progress"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "partial" in err
    b = read_video(out)
    assert 5 <= len(b.frames) < 300
    assert b.times == pytest.approx([i * 0.04 for i in range(len(b.frames))])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_help_mentions_odd_sizes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "yuv444p" in capsys.readouterr().out


@pytest.mark.parametrize("backend", [None, "torch"])
def test_end_to_end_with_a_real_small_model(tmp_path, monkeypatch, backend):
    """A random TransformerNet checkpoint through the real model loader, nst-video and nst-cam.

    ``None``: the default on the CPU (exported to ONNX once, into a cache inside tmp_path).
    """
    pytest.importorskip("realtime.core.model_zoo")
    monkeypatch.setenv("NST_CACHE", str(tmp_path / "cache"))
    extra = ["--backend", backend] if backend else []
    import torch

    from realtime.core.checkpoint import save_checkpoint
    from realtime.core.contract import johnson_contract
    from realtime.core.nets import TransformerNet

    torch.manual_seed(0)
    model = save_checkpoint(tmp_path / "tiny.pth", TransformerNet.from_arch("small"), johnson_contract(name="tiny"))
    src = make_clip(tmp_path / "clip.mp4", width=64, height=48, frames=6)
    assert main([str(src), "--model", str(model), "--device", "cpu", "--no-progress", *extra]) == 0
    out = read_video(tmp_path / "clip_tiny.mp4")
    assert len(out.frames) == 6 and (out.width, out.height) == (64, 48)
    assert out.audio_seconds == pytest.approx(read_video(src).audio_seconds, abs=1e-3)

    from realtime.cli.cam import main as cam_main

    rec = tmp_path / "cam.mp4"
    assert (
        cam_main(
            [
                "--model",
                str(model),
                "--source",
                str(src),
                "--no-display",
                "-o",
                str(rec),
                "--max-frames",
                "4",
                "--device",
                "cpu",
                *extra,
            ]
        )
        == 0
    )
    assert len(read_video(rec).frames) == 4
