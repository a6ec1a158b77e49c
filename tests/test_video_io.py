"""realtime.io.video_files: probing, reading with timestamps, writing with rotation and remuxed audio."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
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


def test_read_frames_window_counts_from_the_first_frame(tmp_path):
    """A stream whose timestamps start at 2 s: --start 0.25 means 0.25 s after its first frame."""
    path = make_clip(tmp_path / "late.mkv", frames=12, audio=None, first_ms=2000)
    info = probe(path)
    assert info.start_time == pytest.approx(2.0)
    got = list(read_frames(info, start=0.25, duration=0.2))
    assert [round(f.meta.seconds, 2) for f in got] == [2.25, 2.3, 2.35, 2.4]
    assert np.abs(got[0].image.astype(int) - frame_image(5, 160, 90)).mean() < 6


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


def audio_packets(path) -> list[tuple[float, int, bytes]]:
    """``(seconds, duration, payload)`` of every audio packet of the first audio stream, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [
            (float(p.pts * p.time_base), int(p.duration or 0), bytes(p))
            for p in container.demux(stream)
            if p.dts is not None and p.size
        ]


def audio_frames(path) -> list[tuple[float, np.ndarray]]:
    """The decoded audio: ``(seconds, (channels, samples) float32)`` per frame."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(float(f.pts * f.time_base), f.to_ndarray()) for f in container.decode(stream)]


def restyle(source, out, *, start=0.0, duration=None):
    """Copy ``source`` through a VideoWriter as nst-video does (inverted frames, audio remuxed)."""
    info = probe(source)
    with VideoWriter(out, info, start=start, duration=duration) as writer:
        for f in read_frames(info, start=start, duration=duration):
            writer.write(255 - f.image, FrameInfo(0, f.image, f.meta, 0.0))
    return out


def test_audio_is_remuxed_packet_for_packet(tmp_path, clip):
    """Every input packet arrives once, at its own time, byte for byte; so the decoded sound is the input's."""
    out = restyle(clip, tmp_path / "out.mp4")
    before, after = audio_packets(clip), audio_packets(out)
    assert len(before) > 40
    assert [p[0] for p in after] == pytest.approx([p[0] for p in before], abs=1e-9)
    assert after == before
    decoded_in, decoded_out = audio_frames(clip), audio_frames(out)
    assert len(decoded_out) == len(decoded_in)
    for (t_in, a), (t_out, b) in zip(decoded_in, decoded_out):
        assert t_out == pytest.approx(t_in) and np.array_equal(a, b)


def test_audio_with_start_is_shifted_with_the_video(tmp_path):
    """--start 0.5 --duration 1: the packets of input 0.5..1.5 s, each moved 0.5 s earlier, and nothing else.

    MP4 stores where a track starts in milliseconds (the edit list), so times match to 1 ms.
    """
    source = make_clip(tmp_path / "long.mp4", frames=40)
    out = restyle(source, tmp_path / "cut.mp4", start=0.5, duration=1.0)
    want = [(t - 0.5, d, data) for t, d, data in audio_packets(source) if 0.5 <= t < 1.5]
    got = audio_packets(out)
    assert len(got) == len(want) > 40
    assert [p[0] for p in got] == pytest.approx([p[0] for p in want], abs=1e-3)
    assert [p[1:] for p in got] == [p[1:] for p in want]
    assert 0 <= got[0][0] < 0.025  # the sound starts with the picture (within one AAC packet)
    assert read_video(out).times[0] == pytest.approx(0.0)
    # decoded: the output's frames are the input's from 0.5 s on (after the decoder's first frames)
    source_frames = [(t, samples) for t, samples in audio_frames(source) if t >= 0.5 - 1e-6]
    shifted = audio_frames(out)
    assert len(shifted) == len(want)
    for (t_in, a), (t_out, b) in list(zip(source_frames, shifted))[2:]:
        assert t_out == pytest.approx(t_in - 0.5, abs=1e-3) and np.array_equal(a, b)


def test_keep_size_upscale_matches_an_independent_resize(tmp_path):
    """Small frames written at the input size: bicubic 2x, channels in place (checked lossless)."""
    source = make_clip(tmp_path / "in.mp4", frames=3, audio=None)
    y, x = np.mgrid[0:45, 0:80]
    small = np.stack([40 + 2.5 * x, 60 + 3.0 * y, 20 + 0 * x], axis=2) + 20 * np.sin(x / 5.0)[..., None]
    small = np.clip(small, 0, 255).astype(np.uint8)  # red and green ramps, little blue: a swap shows
    out = tmp_path / "up.mkv"
    with VideoWriter(out, probe(source), EncodeOptions(codec="libx264rgb", crf=0, audio=False)) as writer:
        for _ in range(2):
            writer.write(small)
    got = read_video(out)
    assert (got.width, got.height) == (160, 90)
    want = cv2.resize(small, (160, 90), interpolation=cv2.INTER_CUBIC)
    for frame in got.frames:
        assert np.abs(frame.astype(int) - want).max() <= 2
