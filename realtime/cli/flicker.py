"""``nst-flicker INPUT OUTPUT``: the flicker score of a stylised video, with the input's floor.

The score is :func:`realtime.stages.flicker.flicker_scores` (warping error, Lai et al. 2018);
INPUT and OUTPUT are video files or folders of frames (sorted by name).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tqdm import tqdm

from realtime.cli.common import OneLineParser, cli_entry
from realtime.io.video_files import frames_of
from realtime.stages.flicker import SCORE_PRESET, flicker_scores


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nst-flicker",
        description="Flicker score (warping error, Lai et al. 2018) of OUTPUT along the motion of INPUT, "
        "with INPUT's own score as the floor. Lower is steadier.",
    )
    parser.add_argument("input", help="the source video (file or folder of frames)")
    parser.add_argument("output", help="the processed video, same frame count and size")
    return parser


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    frames = tqdm(frames_of(args.input), unit="frame", desc="flicker", leave=False, disable=not sys.stderr.isatty())
    output_score, floor = flicker_scores(frames, frames_of(args.output), frames_of(args.input))
    print(f"flicker score  {output_score:.6f}   (warping error, RGB 0..1, DIS {SCORE_PRESET}; lower is steadier)")
    print(f"input floor    {floor:.6f}   (the same measure with the input as the output)")
    if floor > 0:
        print(f"ratio          {output_score / floor:.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
