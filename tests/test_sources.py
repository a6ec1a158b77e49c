"""realtime.io.sources.CaptureSource in live mode on a real cv2.VideoCapture (a generated file, no camera)."""

from __future__ import annotations

import numpy as np
from video_clips import frame_image, make_clip

from realtime.io.sources import CaptureSource

FRAMES = 24


def frame_number(rgb: np.ndarray) -> int:
    """Which of the clip's frames this RGB picture is (the closest of the generated patterns)."""
    return min(range(FRAMES), key=lambda i: np.abs(rgb.astype(int) - frame_image(i, 160, 90)).mean())


def test_live_grabber_hands_over_the_newest_frame_as_rgb(tmp_path):
    """Take one frame, let the grabber read the whole file, take the next: it is the last, the rest dropped."""
    path = make_clip(tmp_path / "cam.mp4", frames=FRAMES, audio=None)
    with CaptureSource(str(path), live=True) as source:
        assert source.live and source.kind == "file"
        frames = iter(source)
        first = next(frames)
        source._grabber.join(timeout=30)  # the grabber thread ends when the file does
        assert not source._grabber.is_alive()
        rest = list(frames)
    seen = [frame_number(f.image) for f in [first, *rest]]
    assert seen == sorted(set(seen)) and seen[-1] == FRAMES - 1  # in order, newest last
    # after the file ended only its newest frame was left to hand over (none, if the grabber had
    # already read the whole file before the first hand-over: then the first frame is the last)
    assert len(rest) == 1 or (rest == [] and seen == [FRAMES - 1])
    assert source.dropped == FRAMES - len(seen)  # every frame either handed over or counted as dropped
    last = (rest or [first])[-1].image
    assert last.shape == (90, 160, 3) and last.dtype == np.uint8
    want = frame_image(FRAMES - 1, 160, 90)
    assert np.abs(last.astype(int) - want).mean() < 6  # RGB, not OpenCV's BGR
    assert [f.meta.seconds for f in [first, *rest]] == sorted(f.meta.seconds for f in [first, *rest])
