"""Flicker score: the warping error of Lai et al. (2018, "Learning Blind Video Temporal Consistency").

For each consecutive pair of *input* frames ``(t, t+1)`` the forward and backward optical flow
are computed (OpenCV DIS, preset ``medium``, full resolution, on grey images); pixels that are
occluded (forward-backward check), on a motion boundary, or that flow out of the frame are
excluded (see :mod:`realtime.flow`). *Output* frame ``t+1`` is warped back onto frame ``t`` with
the forward flow, and the mean squared RGB difference (values in 0..1) over the remaining
pixels is that pair's error; the score is the mean over pairs. Lower is steadier.

The flow comes from the input, so the score measures how far the output's changes stray from
the input's motion. Computing the same measure with the input as the output gives the
*floor*: what interpolation, noise and lighting changes alone cost. A pair with no reliable
pixel contributes 0 (as in Lai et al.'s evaluation code).

``python -m realtime.flicker INPUT OUTPUT`` prints the output's score and the input's floor;
INPUT and OUTPUT are video files or folders of frames (sorted by name).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from realtime.flow import DisFlow, to_grey, unreliable_mask, warp
from train.errors import UserError, cli_entry

SCORE_PRESET = "medium"  # fixed so scores are comparable between runs and machines
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def pair_error(reference: np.ndarray, following: np.ndarray, flow: np.ndarray, unreliable: np.ndarray) -> float:
    """Masked MSE (RGB 0..1) between ``reference`` (frame t) and ``following`` (t+1) warped onto it."""
    keep = ~unreliable
    count = int(keep.sum())
    if count == 0:
        return 0.0
    warped = warp(following, flow)
    diff = warped[keep].astype(np.float32) - reference[keep].astype(np.float32)
    return float(np.mean(np.square(diff / 255.0)))


def flicker_scores(input_frames: Iterable[np.ndarray], *outputs: Iterable[np.ndarray],
                   preset: str = SCORE_PRESET) -> list[float]:
    """Warping error of each of ``outputs`` against the motion of ``input_frames``; one flow pass for all.

    Frames are ``(H, W, 3)`` uint8 RGB; every sequence must have the input's length and frame
    size (checked while streaming, so long videos need not fit in memory). Raises
    :class:`UserError` on a mismatch or fewer than two frames.
    """
    dis = DisFlow(preset)
    iters: list[Iterator[np.ndarray]] = [iter(input_frames)] + [iter(o) for o in outputs]
    totals = [0.0] * len(outputs)
    prev_grey = None
    prev_outs: list[np.ndarray] = []
    pairs = 0
    index = 0
    while True:
        frames = [next(it, None) for it in iters]
        ended = [f is None for f in frames]
        if all(ended):
            break
        if any(ended):
            which = "the input" if ended[0] else f"output {ended.index(True)}"
            raise UserError(f"frame count mismatch: {which} ends after {index} frames while the other "
                            "video goes on; the flicker score needs the same number of frames")
        source, outs = frames[0], frames[1:]
        for k, out in enumerate(outs):
            if out.shape != source.shape:
                raise UserError(f"frame size mismatch at frame {index}: the input is "
                                f"{source.shape[1]}x{source.shape[0]} but output {k + 1} is "
                                f"{out.shape[1]}x{out.shape[0]}; resize one to match first")
        grey = to_grey(source)
        if prev_grey is not None:
            forward, backward = dis(prev_grey, grey), dis(grey, prev_grey)
            unreliable = unreliable_mask(forward, backward)
            for k, out in enumerate(outs):
                totals[k] += pair_error(prev_outs[k], out, forward, unreliable)
            pairs += 1
        prev_grey, prev_outs = grey, outs
        index += 1
    if pairs == 0:
        raise UserError(f"the flicker score needs at least 2 frames, got {index}")
    return [t / pairs for t in totals]


def flicker_score(input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray],
                  preset: str = SCORE_PRESET) -> float:
    """Warping error of ``output_frames`` along the motion of ``input_frames`` (lower is steadier)."""
    return flicker_scores(input_frames, output_frames, preset=preset)[0]


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield ``(H, W, 3)`` uint8 RGB frames of a video file or of a folder of images (sorted by name)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        return _read_folder(path)
    return _read_video(path)


def _read_folder(path: Path) -> Iterator[np.ndarray]:
    import cv2
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")

    def frames() -> Iterator[np.ndarray]:
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise UserError(f"cannot read image {file}")
            yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return frames()


def _read_video(path: Path) -> Iterator[np.ndarray]:
    import av
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise UserError(f"cannot open {path} as a video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path} has no video stream")

    def frames() -> Iterator[np.ndarray]:
        with container:
            try:
                for frame in container.decode(video=0):
                    yield frame.to_ndarray(format="rgb24")
            except av.error.FFmpegError as exc:
                raise UserError(f"cannot decode {path}: {exc}") from None
    return frames()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m realtime.flicker",
        description="Flicker score (warping error, Lai et al. 2018) of OUTPUT along the motion of INPUT, "
                    "with INPUT's own score as the floor. Lower is steadier.")
    parser.add_argument("input", help="the source video (file or folder of frames)")
    parser.add_argument("output", help="the processed video, same frame count and size")
    return parser


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm
    frames = tqdm(read_frames(args.input), unit="frame", desc="flicker", leave=False,
                  disable=not sys.stderr.isatty())
    output_score, floor = flicker_scores(frames, read_frames(args.output), read_frames(args.input))
    print(f"flicker score  {output_score:.6f}   (warping error, RGB 0..1, DIS {SCORE_PRESET}; lower is steadier)")
    print(f"input floor    {floor:.6f}   (the same measure with the input as the output)")
    if floor > 0:
        print(f"ratio          {output_score / floor:.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
