"""Every example in every command's --help parses as written, and names only files the repository ships.

An example is a line of the ``--help`` epilog that starts with the command; ``\\`` continues it.
Placeholders for the user's own files (``clip.mp4``, ``photo.jpg``, ``checkpoints/x.pth``) are
fine; a path into ``weights/`` or ``samples/`` must exist, and a ``--model NAME`` must be a
shipped file's name or a published model's.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from export.__main__ import build_parser as export_parser
from realtime.cli.cam import build_parser as cam_parser
from realtime.cli.common import attach_dash_values
from realtime.cli.flicker import build_parser as flicker_parser
from realtime.cli.still import build_parser as still_parser
from realtime.cli.video import build_parser as video_parser
from realtime.core.model_zoo import REGISTRY, local_weights, lookup
from train.cyclegan import build_parser as cyclegan_parser
from train.johnson import build_parser as johnson_parser

REPO = Path(__file__).resolve().parents[1]
COMMANDS: dict[str, Callable] = {
    "nst-video": video_parser,
    "nst-cam": cam_parser,
    "nst-flicker": flicker_parser,
    "realtime.still": still_parser,
    "export": export_parser,
    "train.johnson": johnson_parser,
    "train.cyclegan": cyclegan_parser,
}
OUTPUT_FLAGS = ("-o", "--output")


def examples(epilog: str, command: str) -> list[list[str]]:
    """The argument lists of the epilog's example lines for ``command`` (the command words removed)."""
    joined = epilog.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if not line.strip().startswith(("nst-", "python -m ", "torchrun ")):
            continue  # prose
        words = shlex.split(line.split(" # ")[0].split("  #")[0])
        if command in words:
            found.append(words[words.index(command) + 1 :])
        elif words and words[0] == command:
            found.append(words[1:])
    return found


def all_examples() -> list[tuple[str, list[str]]]:
    cases = []
    for command, parser in COMMANDS.items():
        for argv in examples(parser().epilog or "", command):
            cases.append((command, argv))
    return cases


CASES = all_examples()


def test_every_command_with_an_epilog_has_examples():
    with_examples = {command for command, _ in CASES}
    assert with_examples >= {"nst-video", "nst-cam", "realtime.still", "export", "train.johnson", "train.cyclegan"}


@pytest.mark.parametrize("command, argv", CASES, ids=[f"{c}:{' '.join(a)[:60]}" for c, a in CASES])
def test_example_parses_and_names_shipped_files(command, argv):
    COMMANDS[command]().parse_args(attach_dash_values(argv))  # a renamed or misspelt flag fails here
    outputs = {argv[i + 1] for i, word in enumerate(argv[:-1]) if word in OUTPUT_FLAGS}
    shipped = {p.stem for p in local_weights([REPO / "weights"])}
    for i, word in enumerate(argv):
        if word in outputs:
            continue
        if word.startswith(("weights/", "samples/")):  # a shell pattern must match something
            found = any(REPO.glob(word)) if any(c in word for c in "*?[") else (REPO / word).exists()
            assert found, f"{command} example names {word}, which the repository does not ship"
        if i and argv[i - 1] in ("--model", "-m") and not Path(word).suffix and "/" not in word:
            name = word.removeprefix("published:")
            assert name in shipped or lookup(name, REGISTRY), f"--model {word} is neither shipped nor published"
