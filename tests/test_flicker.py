"""realtime.stages.flicker: the warping-error flicker score and its CLI (generated clips, CPU)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_flow import shifted, texture

from realtime.cli.flicker import main
from realtime.core.errors import UserError
from realtime.io.video_files import frames_of as read_frames
from realtime.stages.flicker import flicker_score, flicker_scores


def moving_clip(frames: int = 10, h: int = 96, w: int = 128) -> list[np.ndarray]:
    """A textured scene panning by (2, 1) px per frame."""
    base = texture(h + 40, w + 40, seed=1)
    return [shifted(base, 2.0 * t, 1.0 * t)[20 : 20 + h, 20 : 20 + w].copy() for t in range(frames)]


def noisy(frames: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def test_output_equal_to_input_scores_the_floor() -> None:
    clip = moving_clip()
    score, floor = flicker_scores(clip, clip, clip)
    assert score == floor > 0
    assert flicker_score(clip, clip) == floor


def test_static_scene_compared_with_itself_scores_zero() -> None:
    still = texture(80, 112)
    clip = [still.copy() for _ in range(6)]
    assert flicker_score(clip, clip) < 1e-10


def test_score_grows_with_per_frame_noise() -> None:
    clip = moving_clip(8)
    floor, *scores = flicker_scores(clip, clip, *(noisy(clip, s) for s in (3.0, 8.0, 20.0)))
    assert floor < scores[0] < scores[1] < scores[2]
    # i.i.d. noise of std sigma adds about 2 sigma^2 (in 0..1 units) to the warping error
    assert scores[2] == pytest.approx(floor + 2 * (20 / 255) ** 2, rel=0.3)


def test_streams_generators() -> None:
    clip = moving_clip(5)
    assert flicker_score(iter(clip), (f for f in clip)) == flicker_score(clip, clip)


def test_mismatches_are_one_clear_error() -> None:
    clip = moving_clip(5)
    with pytest.raises(UserError, match="frame count mismatch"):
        flicker_score(clip, clip[:4])
    with pytest.raises(UserError, match="frame count mismatch"):
        flicker_score(clip[:3], clip)
    with pytest.raises(UserError, match="frame size mismatch"):
        flicker_score(clip, [f[:, :64] for f in clip])
    with pytest.raises(UserError, match="at least 2 frames"):
        flicker_score(clip[:1], clip[:1])


def write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)  # lossless, so frames read back exactly
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "bgr0"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_read_frames_from_a_folder_and_a_video(tmp_path: Path) -> None:
    clip = moving_clip(4, 48, 64)
    folder = list(read_frames(write_folder(tmp_path / "frames", clip)))
    video = list(read_frames(write_video(tmp_path / "clip.mkv", clip)))
    assert len(folder) == len(video) == 4
    np.testing.assert_array_equal(folder[2], clip[2])
    np.testing.assert_array_equal(video[2], clip[2])
    with pytest.raises(UserError, match="no such file"):
        read_frames(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        read_frames(tmp_path / "empty")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(UserError, match="not a readable video"):
        read_frames(tmp_path / "bad.mp4")


def test_cli_prints_score_and_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = moving_clip(6)
    source = write_video(tmp_path / "in.mkv", clip)
    output = write_folder(tmp_path / "out", noisy(clip, 10.0))
    assert main([str(source), str(output)]) == 0
    out = capsys.readouterr().out
    assert "flicker score" in out and "input floor" in out and "x the floor" in out
    score = float(out.split("flicker score")[1].split()[0])
    floor = float(out.split("input floor")[1].split()[0])
    assert score > 3 * floor


def test_cli_mismatch_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = moving_clip(6)
    source = write_folder(tmp_path / "in", clip)
    output = write_folder(tmp_path / "out", clip[:5])
    assert main([str(source), str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: frame count mismatch") and "\n" not in err


def test_cli_scores_an_output_of_another_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`nst-video --size` output: the input is shrunk (area) to match, and the note says so."""
    clip = moving_clip(6)
    source = write_folder(tmp_path / "in", clip)
    small = [cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA) for f in clip]
    same = write_folder(tmp_path / "same", small)
    noisier = write_folder(tmp_path / "noisy", noisy(small, 10.0))
    assert main([str(source), str(same)]) == 0
    captured = capsys.readouterr()
    assert "resized to match (area filter)" in captured.err and "64x48" in captured.err
    assert "ratio          1.00x" in captured.out  # the resized input compared with itself: the floor
    assert main([str(source), str(noisier)]) == 0
    score = float(capsys.readouterr().out.split("flicker score")[1].split()[0])
    assert score > 3 * flicker_score(small, small)
