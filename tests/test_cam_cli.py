"""nst-cam without a window or camera: key handling, controls, sources, and headless runs."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import IdentityStylizer, InterruptingStylizer, ListSink
from video_clips import Invert, install_fake_models, make_clip, read_video

from realtime.cli.cam import CamState, Controls, ModelCycle, check_display, handle_key, main
from realtime.core.errors import UserError
from realtime.io import sources
from realtime.io.sinks import WindowSink
from realtime.io.sources import CaptureSource
from realtime.pipeline import StopRun, run
from realtime.stages import PreserveColor, StrengthBlend, Toggle


# -- keys --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key,change",
    [
        ("n", {"model": 1}),
        ("p", {"model": 2}),
        ("+", {"strength": 0.6}),
        ("=", {"strength": 0.6}),
        ("-", {"strength": 0.4}),
        ("c", {"preserve_color": True}),
        ("t", {"stabilize": True}),
        (" ", {"side_by_side": True}),
        ("s", {"snapshots": 1}),
        ("q", {"quit": True}),
        (27, {"quit": True}),
        ("x", {}),
        (-1, {}),
    ],
)
def test_handle_key(key, change):
    state = CamState(models=3, strength=0.5)
    code = ord(key) if isinstance(key, str) else key
    assert handle_key(state, code) == dataclasses.replace(state, **change)


def test_handle_key_wraps_and_clamps():
    s = CamState(models=2, model=1, strength=1.0)
    assert handle_key(s, ord("n")).model == 0
    assert handle_key(s, ord("+")).strength == 1.0
    s = CamState(strength=0.0)
    assert handle_key(s, ord("-")).strength == 0.0
    for _ in range(3):
        s = handle_key(s, ord("+"))
    assert s.strength == pytest.approx(0.3)
    assert handle_key(handle_key(s, ord("c")), ord("c")) == s


class Counter:
    def __init__(self):
        self.resets = self.prepares = self.calls = 0

    def prepare(self, source):
        self.prepares += 1
        return "flow"

    def __call__(self, source, styled, prepared=None):
        self.calls += 1
        return styled

    def reset(self):
        self.resets += 1


def test_controls_apply_keys_to_models_and_stages(tmp_path):
    models = ModelCycle([IdentityStylizer(), Invert()])
    blend, color, stab = StrengthBlend(1.0), PreserveColor(False), Toggle(Counter(), enabled=False)
    controls = Controls(CamState(models=2), models, blend, color, stab, tmp_path)
    for key in "n-cts":
        if key == "s":
            controls.window = type("W", (), {"last_frame": np.zeros((8, 8, 3), np.uint8)})()
        controls.on_key(ord(key))
    assert models.index == 1 and models.name == "invert"
    assert blend.strength == pytest.approx(0.9) and color.enabled and stab.enabled
    assert stab.stage.resets >= 1  # switching models resets the stabiliser
    assert len(list(tmp_path.glob("nst-cam_invert_*.png"))) == 1
    assert "invert" in controls.status()[0]
    with pytest.raises(StopRun):
        controls.on_key(ord("q"))


def test_toggle_skips_work_while_off_and_resets_when_back_on():
    inner = Counter()
    stage = Toggle(inner, enabled=False)
    frame = np.zeros((4, 4, 3), np.uint8)
    p = stage.prepare(frame)
    assert stage(frame, frame, p) is frame and inner.prepares == inner.calls == 0
    stage.enabled = True
    p = stage.prepare(frame)
    stage(frame, frame, p)
    assert inner.resets == 1 and inner.prepares == inner.calls == 1


# -- window sink with a stand-in OpenCV GUI ------------------------------------------------------
def test_window_sink_overlays_and_routes_keys(monkeypatch):
    shown, keys = [], [ord("n"), -1, ord("q")]
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "imshow", lambda title, img: shown.append(img))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: keys.pop(0) if keys else -1)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    sizes = []
    monkeypatch.setattr(cv2, "resizeWindow", lambda title, w, h: sizes.append((w, h)))
    monkeypatch.setattr(cv2, "getWindowImageRect", lambda title: (0, 0, *sizes[-1]))
    pressed = []

    def on_key(key):
        pressed.append(key)
        if key == ord("q"):
            raise StopRun()

    sink = WindowSink(on_key=on_key, side_by_side=lambda: True, status=lambda: ["model"], screen=(1920, 1080))
    frames = [np.full((40, 64, 3), 100, np.uint8) for _ in range(10)]
    stats = run(frames, Invert(), sink)
    assert stats.frames == 3 and pressed == [ord("n"), ord("q")]
    assert shown[0].shape == (40, 128, 3) and sizes == [(128, 40)]  # side by side, at its own size
    assert np.array_equal(sink.last_frame, 255 - frames[0])
    plain = cv2.cvtColor(np.hstack([frames[0], 255 - frames[0]]), cv2.COLOR_RGB2BGR)
    assert not np.array_equal(shown[0], plain)  # the fps/latency text is drawn


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check applies to Linux")
def test_check_display():
    check_display({"DISPLAY": ":0"})
    with pytest.raises(UserError, match="--no-display"):
        check_display({})
    if (Path(cv2.__file__).parent / "qt" / "plugins" / "platforms").is_dir():  # OpenCV's Qt build
        with pytest.raises(UserError, match="--no-display"):
            check_display({"QT_QPA_PLATFORM": "no-such-platform"})


# -- sources with a stand-in camera --------------------------------------------------------------
class FakeCamera:
    """cv2.VideoCapture stand-in: ``frames`` pictures at ``fps``, then read() fails (unplugged)."""

    def __init__(self, frames=1000, fps=100.0, opened=True):
        self.frames, self.delay, self.opened = frames, 1.0 / fps, opened
        self.n, self.props = 0, {}

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        time.sleep(self.delay)
        if self.n >= self.frames:
            return False, None
        self.n += 1
        img = np.zeros((48, 64, 3), np.uint8)
        img[..., 0] = self.n % 256  # BGR: blue carries the sequence number
        return True, img

    def release(self):
        pass


def fake_camera(monkeypatch, **kwargs):
    cams = []

    def factory(target, *args):
        cams.append(FakeCamera(**kwargs))
        return cams[-1]

    monkeypatch.setattr(sources.cv2, "VideoCapture", factory)
    return cams


def test_live_source_hands_over_newest_frame_and_converts_to_rgb(monkeypatch):
    cams = fake_camera(monkeypatch, fps=200)
    with CaptureSource(0) as source:
        assert cams[0].props[cv2.CAP_PROP_BUFFERSIZE] == 1
        seen = []
        for frame in source:
            seen.append(int(frame.image[0, 0, 2]))  # RGB now: the counter is in the blue (last)
            target = cams[0].n + 3
            while cams[0].n < target:  # a slow model: the camera reads 3 more frames meanwhile
                time.sleep(0.002)
            if len(seen) == 6:
                break
    assert seen == sorted(seen) and len(set(seen)) == 6
    assert source.dropped >= 5 and seen[-1] - seen[0] >= 10  # each hand-over skipped at least one stale frame


def test_missing_camera_one_line(monkeypatch, capsys):
    install_fake_models(monkeypatch)
    fake_camera(monkeypatch, opened=False)
    assert main(["--model", "x", "--no-display", "--max-frames", "3"]) == 2
    err = capsys.readouterr().err
    assert "cannot open camera 0" in err and "--source" in err and len(err.strip().splitlines()) == 1


def test_camera_lost_mid_run_keeps_recording(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch)
    fake_camera(monkeypatch, frames=12, fps=50)
    monkeypatch.setattr(sources, "LOST_AFTER_S", 0.2)
    out = tmp_path / "rec.mp4"
    assert main(["--model", "x", "--no-display", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "camera 0 stopped delivering frames" in err and str(out) in err
    clip = read_video(out)
    assert 1 <= len(clip.frames) <= 12 and (clip.width, clip.height) == (64, 48)


# -- headless runs on a file -----------------------------------------------------------------------
def test_headless_file_source_writes_n_frames(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch, lambda m: Invert())
    src = make_clip(tmp_path / "in.mp4", frames=30)
    out = tmp_path / "cam.mp4"
    assert main(["--model", "x", "--source", str(src), "--no-display", "--output", str(out), "--max-frames", "12"]) == 0
    clip = read_video(out)
    assert len(clip.frames) == 12 and (clip.width, clip.height) == (160, 90)
    assert clip.times == pytest.approx([i * 0.05 for i in range(12)])
    first = read_video(src).frames[0]
    assert np.abs(clip.frames[0].astype(int) - (255 - first.astype(int))).mean() < 6
    assert "12 frames" in capsys.readouterr().out


def test_headless_file_source_drops_nothing(tmp_path, monkeypatch):
    install_fake_models(monkeypatch)
    src = make_clip(tmp_path / "in.mp4", frames=25, audio=None)
    out = tmp_path / "all.mp4"
    assert (
        main(
            [
                "--model",
                "x",
                "--source",
                str(src),
                "--no-display",
                "-o",
                str(out),
                "--size",
                "80x46",
                "--model",
                "y",
                "--stabilize",
                "--strength",
                "0.5",
                "--preserve-color",
            ]
        )
        == 0
    )
    clip = read_video(out)
    assert len(clip.frames) == 25 and (clip.width, clip.height) == (80, 46)


def test_cam_refuses_overwrite_and_missing_file(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch)
    src = make_clip(tmp_path / "in.mp4", frames=3, audio=None)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep")
    assert main(["--model", "x", "--source", str(src), "--no-display", "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep"
    assert main(["--model", "x", "--source", str(tmp_path / "nope.mp4"), "--no-display"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_pipeline_with_capture_source_on_file(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=10, audio=None)
    sink = ListSink()
    with CaptureSource(str(src)) as source:
        run(source, IdentityStylizer(), sink)
    assert len(sink.frames) == 10 and sink.frames[0].shape == (90, 160, 3)


def test_ctrl_c_keeps_the_recording(tmp_path, monkeypatch, capsys):
    stylizer = InterruptingStylizer(at=7)
    install_fake_models(monkeypatch, lambda m: stylizer)
    src = make_clip(tmp_path / "in.mp4", frames=20, audio=None)
    out = tmp_path / "rec.mp4"
    assert main(["--model", "x", "--source", str(src), "--no-display", "-o", str(out)]) == 130
    assert "recording so far" in capsys.readouterr().err
    assert len(read_video(out).frames) == 6
