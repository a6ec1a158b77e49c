"""nst-cam --live: a video file played as a camera (paced, newest frame wins), and the window kept alive."""

from __future__ import annotations

import numpy as np
from fakes import ListSink
from video_clips import SlowIdentity, install_fake_models, make_clip

from realtime.cli.cam import main
from realtime.io.sinks import TeeSink, WindowSink
from realtime.io.sources import CaptureSource
from realtime.pipeline import run


def test_paced_live_file_drops_late_frames_like_a_camera(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", width=64, height=36, frames=20, fps=20, audio=None)
    with CaptureSource(str(src), live=True, pace=True) as source:
        assert source.live and source.frame_size == (64, 36)
        sink = ListSink()
        stats = run(source, SlowIdentity(delay=0.15), sink, live=True, queue_size=1)  # 3 frame intervals a frame
        dropped = source.dropped
    assert 0 < stats.frames < 20 and dropped > 0
    assert stats.frames + dropped <= 20  # every frame of the file was either shown or dropped, none twice
    stamps = [info.meta.seconds for info in sink.infos]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_cam_live_prints_capture_to_display_latency(tmp_path, monkeypatch, capsys):
    install_fake_models(monkeypatch)
    src = make_clip(tmp_path / "clip.mp4", width=64, height=36, frames=10, fps=25, audio=None)
    assert main(["--model", "x", "--source", str(src), "--live", "--no-display", "--max-frames", "5"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "capture-to-display latency" in line and "frame interval 40 ms" in line and "skipped" in line


class IdleCounter(ListSink):
    def __init__(self):
        super().__init__()
        self.idles = 0

    def idle(self):
        self.idles += 1


def test_sink_idles_while_the_model_is_busy(rng):
    """A window's event loop runs while a model compiles (here: a slow model)."""
    sink = IdleCounter()
    frames = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(2)]
    run(frames, SlowIdentity(delay=0.3), TeeSink(sink))
    assert len(sink.frames) == 2 and sink.idles >= 2
    WindowSink().idle()  # never opened: nothing to pump, no window created
