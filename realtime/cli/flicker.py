"""``nst-flicker INPUT OUTPUT``: the flicker score of a stylised video, with the input's floor.

The score is :func:`realtime.stages.flicker.flicker_scores` (warping error, Lai et al. 2018);
INPUT and OUTPUT are video files or folders of frames (sorted by name).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from realtime.cli.common import OneLineParser, cli_entry
from realtime.core.images import resize
from realtime.io.video_files import frames_of
from realtime.stages.flicker import SCORE_PRESET, flicker_scores


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nst-flicker",
        description="Flicker score (warping error, Lai et al. 2018) of OUTPUT along the motion of INPUT, "
        "with INPUT's own score as the floor. Lower is steadier.",
    )
    parser.add_argument("input", help="the source video (file or folder of frames)")
    parser.add_argument(
        "output", help="the processed video, same frame count (another size: the input is resized to match)"
    )
    return parser


def matched_to(frames: Iterator[np.ndarray], size: tuple[int, int]) -> Iterator[np.ndarray]:
    """``frames`` resized to ``size`` ``(width, height)`` (area filter when shrinking)."""
    width, height = size
    for frame in frames:
        yield resize(frame, height, width, "fast")


def _peek(frames: Iterator[np.ndarray]) -> tuple[np.ndarray | None, Iterator[np.ndarray]]:
    first = next(frames, None)
    return first, (frames if first is None else itertools.chain([first], frames))


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    first_in, inputs = _peek(iter(frames_of(args.input)))
    first_out, outputs = _peek(iter(frames_of(args.output)))
    floor_inputs = frames_of(args.input)
    if first_in is not None and first_out is not None and first_in.shape != first_out.shape:
        size = (first_out.shape[1], first_out.shape[0])
        shrink = first_out.shape[0] * first_out.shape[1] < first_in.shape[0] * first_in.shape[1]
        print(
            f"note: the output is {size[0]}x{size[1]}, the input {first_in.shape[1]}x{first_in.shape[0]}; "
            f"the input is resized to match ({'area' if shrink else 'bilinear'} filter) for the flow and the floor",
            file=sys.stderr,
        )
        inputs, floor_inputs = matched_to(inputs, size), matched_to(iter(floor_inputs), size)
    frames = tqdm(inputs, unit="frame", desc="flicker", leave=False, disable=not sys.stderr.isatty())
    output_score, floor = flicker_scores(frames, outputs, floor_inputs)
    print(f"flicker score  {output_score:.6f}   (warping error, RGB 0..1, DIS {SCORE_PRESET}; lower is steadier)")
    print(f"input floor    {floor:.6f}   (the same measure with the input as the output)")
    if floor > 0:
        print(f"ratio          {output_score / floor:.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
