"""realtime.io.video_files: probing, reading with timestamps, writing with rotation and remuxed audio."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from video_clips import frame_image, make_clip, read_video

from realtime.core.errors import UserError
from realtime.io.video_files import EncodeOptions, FrameTime, VideoWriter, choose_pix_fmt, probe, read_frames
from realtime.pipeline import FrameInfo


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", rotation=90)


def test_probe(clip):
    info = probe(clip)
    assert (info.width, info.height) == (160, 90)
    assert info.rate == 20 and info.frames == 20
    assert info.rotation == 90 and info.display_matrix is not None and info.display_size == (90, 160)
    assert info.audio_streams == 1 and info.duration == pytest.approx(1.0, abs=0.06)


def test_read_frames_keeps_timestamps(tmp_path):
    path = make_clip(tmp_path / "vfr.mkv", durations_ms=[30, 80, 50], audio="libopus", frames=9)
    info = probe(path)
    got = list(read_frames(info))
    assert len(got) == 9
    times = [f.meta.seconds for f in got]
    assert times == pytest.approx([0, 0.03, 0.11, 0.16, 0.19, 0.27, 0.32, 0.35, 0.43])
    assert all(f.image.shape == (90, 160, 3) and f.image.dtype == np.uint8 for f in got)


def test_read_frames_window_and_size(clip):
    info = probe(clip)
    got = list(read_frames(info, start=0.25, duration=0.5, size=(80, 46)))
    assert [round(f.meta.seconds, 2) for f in got] == [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
    assert got[0].image.shape == (46, 80, 3)


def test_read_frames_past_the_end(clip):
    with pytest.raises(UserError, match="no video frames after 30 s"):
        list(read_frames(probe(clip), start=30))


@pytest.mark.parametrize(
    "codec,size,want,pad",
    [
        ("libx264", (334, 200), "yuv420p", (0, 0)),
        ("libx264", (333, 199), "yuv444p", (0, 0)),  # odd: exact size in 4:4:4
        ("mpeg4", (333, 199), "yuv420p", (1, 1)),  # no 4:4:4: pad one pixel
        ("libx264rgb", (333, 199), "rgb24", (0, 0)),
    ],
)
def test_choose_pix_fmt(codec, size, want, pad):
    assert choose_pix_fmt(codec, *size) == (want, pad)


def test_choose_pix_fmt_forced_yuv420p_pads_and_bad_names_fail():
    assert choose_pix_fmt("libx264", 333, 199, "yuv420p") == ("yuv420p", (1, 1))
    with pytest.raises(UserError, match="codec libx264 takes"):
        choose_pix_fmt("libx264", 64, 64, "rgb48le")
    with pytest.raises(UserError, match="unknown video codec"):
        choose_pix_fmt("no-such-codec", 64, 64)


def test_writer_copies_timing_rotation_and_audio(tmp_path, clip):
    info = probe(clip)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info) as writer:
        for f in read_frames(info):
            writer.write(255 - f.image, FrameInfo(0, f.image, f.meta, 0.0))
    a, b = read_video(clip), read_video(out)
    assert len(b.frames) == len(a.frames) and b.times == pytest.approx(a.times)
    assert b.rotation == 90 and b.rate == a.rate
    assert b.audio_codecs == ["aac"] and b.audio_seconds == pytest.approx(a.audio_seconds, abs=1e-3)
    assert np.abs(b.frames[3].astype(int) - (255 - a.frames[3].astype(int))).mean() < 4


def test_writer_scales_small_frames_up_and_numbers_frames_without_meta(tmp_path, clip):
    info = probe(clip)
    out = tmp_path / "up.mp4"
    writer = VideoWriter(out, info, EncodeOptions(audio=False))
    for i in range(5):
        writer.write(frame_image(i, 80, 46))
    writer.close()
    writer.close()  # idempotent
    b = read_video(out)
    assert (b.width, b.height) == (160, 90) and b.times == pytest.approx([0, 0.05, 0.1, 0.15, 0.2])
    assert b.audio_seconds == []


def test_writer_odd_size_lossless(tmp_path):
    src = make_clip(tmp_path / "odd.mp4", width=33, height=19, frames=4, audio=None)
    info = probe(src)
    out = tmp_path / "odd_out.mp4"
    frames = [frame_image(i, 33, 19) for i in range(4)]
    with VideoWriter(out, info, EncodeOptions(codec="libx264rgb", crf=0)) as writer:
        for i, f in enumerate(frames):
            writer.write(f, FrameInfo(i, f, FrameTime(i * 50, Fraction(1, 1000)), 0.0))
    b = read_video(out)
    assert (b.width, b.height) == (33, 19)
    assert all(np.array_equal(x, y) for x, y in zip(frames, b.frames))


def test_writer_refuses_crf_for_codecs_without_it(tmp_path, clip):
    with pytest.raises(UserError, match="crf does not apply"):
        VideoWriter(tmp_path / "x.mkv", probe(clip), EncodeOptions(codec="ffv1", crf=10))


def test_probe_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(UserError, match="folder"):
        probe(tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError, match="not a readable video"):
        probe(junk)
    audio_only = tmp_path / "sound.m4a"
    with av.open(str(audio_only), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(UserError, match="no video stream"):
        probe(audio_only)
    for name in ("empty.mp4", "empty.mkv"):  # a video track without a single frame
        empty = tmp_path / name
        with av.open(str(empty), "w") as out:
            vs = out.add_stream("libx264", rate=20)
            vs.width, vs.height = 64, 48
            out.start_encoding()
        with pytest.raises(UserError, match="no video stream|no frames|empty or truncated"):
            probe(empty)
    truncated = tmp_path / "truncated.mp4"
    data = make_clip(tmp_path / "whole.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated|empty or truncated"):
        probe(truncated)
