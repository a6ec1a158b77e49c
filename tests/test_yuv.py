"""RGB -> YUV 4:2:0 on the model's device: FFmpeg's numbers, the writer's tensor path, the encoder choice."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from conftest import SAMPLES
from video_clips import frame_image, make_clip

from realtime.core.images import read_image
from realtime.io import encoders
from realtime.io.colorspace import matrix_for
from realtime.io.video_files import EncodeOptions, VideoWriter, probe
from realtime.io.yuv import rgb_to_i420

FFMPEG_NAMES = {"bt709": "ITU709", "bt601": "ITU601"}


def ffmpeg_i420(rgb: np.ndarray, matrix: str) -> np.ndarray:
    """FFmpeg's own rgb24 -> yuv420p (swscale, limited range, box chroma filter) as (H * 3 / 2, W)."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace=FFMPEG_NAMES[matrix], interpolation="AREA").to_ndarray()


@pytest.mark.parametrize("matrix", ["bt709", "bt601"])
def test_conversion_matches_ffmpeg_within_one_level(matrix, rng):
    photo = read_image(SAMPLES / "content" / "chicago.jpg")[:200, :300]
    noise = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)  # every edge there is, and both extremes
    for rgb in (np.ascontiguousarray(photo), noise):
        ours = rgb_to_i420(torch.from_numpy(rgb), matrix).numpy()
        theirs = ffmpeg_i420(rgb, matrix)
        assert ours.shape == theirs.shape == (rgb.shape[0] * 3 // 2, rgb.shape[1])
        assert np.abs(ours.astype(int) - theirs).max() <= 1
    grey = np.full((4, 4, 3), 255, np.uint8)
    planes = rgb_to_i420(torch.from_numpy(grey), matrix).numpy()
    assert planes[:4].min() == 235 and np.all(planes[4:] == 128)  # limited range white, no chroma


def test_hd_is_bt709_sd_is_bt601():
    assert matrix_for(1920, 1080) == matrix_for(1280, 720) == matrix_for(1280, 536) == "bt709"
    assert matrix_for(640, 360) == matrix_for(720, 576) == "bt601"
    with pytest.raises(ValueError, match="even sides"):
        rgb_to_i420(torch.zeros(3, 4, 3, dtype=torch.uint8), "bt601")


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (34, 20), (33, 19)])
def test_writer_takes_device_frames(tmp_path, width, height):
    """Tensor frames (CPU tensors here, CUDA ones on a GPU) take the converter; the file is tagged and right."""
    src = make_clip(tmp_path / "src.mp4", width=width, height=height, frames=3, audio=None)
    info = probe(src)
    frames = [frame_image(i, width, height) for i in range(3)]
    pix_fmt = "yuv420p" if width % 2 else None  # odd: padded by a pixel instead of 4:4:4
    results = {}
    for kind in ("tensor", "numpy"):
        out = tmp_path / f"{kind}.mp4"
        options = EncodeOptions(crf=0, preset="ultrafast", audio=False, pix_fmt=pix_fmt, device_frames=kind == "tensor")
        with VideoWriter(out, info, options) as writer:
            for f in frames:
                writer.write(torch.from_numpy(f) if kind == "tensor" else f)
        with av.open(str(out)) as container:
            stream = container.streams.video[0]
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            results[kind] = (decoded, stream.codec_context.colorspace)
    expected = 1 if width >= 1280 else 6  # BT709 / SMPTE170M (BT.601)
    assert results["tensor"][1] == expected and results["numpy"][1] == 6

    def error(decoded, original):
        assert decoded.shape[:2] == (height + height % 2, width + width % 2)
        return np.abs(decoded[:height, :width].astype(int) - original).mean()

    for ours, ffmpegs, original in zip(results["tensor"][0], results["numpy"][0], frames):
        # lossless 4:2:0 of a sharp test pattern: only chroma subsampling differs, as in FFmpeg's conversion
        assert error(ours, original) <= error(ffmpegs, original) + 1.0


def test_hardware_encoder_falls_back_when_none_opens(monkeypatch):
    assert not encoders.opens("no_such_encoder") and encoders.opens("libx264")
    monkeypatch.setattr(encoders, "opens", lambda codec, width=256, height=144: False)
    chosen, built = encoders.hardware_encoder("libx264")
    assert chosen is None and built == [c for c in ("h264_nvenc",) if c in av.codecs_available]
    monkeypatch.setattr(encoders, "opens", lambda codec, width=256, height=144: True)
    if built:
        assert encoders.hardware_encoder("libx264")[0] == "h264_nvenc"
    assert encoders.hardware_encoder("ffv1") == (None, [])
