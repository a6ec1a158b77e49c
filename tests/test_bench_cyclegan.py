"""``python -m bench cyclegan`` runs every row and the profile end to end (tiny nets, one step each)."""

from __future__ import annotations

from bench import cyclegan_train


def test_every_row_and_the_profile_run(capsys, one_torch_thread):
    argv = ["--device", "cpu", "--config", "32:4:1", "--steps", "1", "--warmup", "0", "--rounds", "1"]
    assert cyclegan_train.main([*argv, "--batch", "2", "--workers", "1", "--profile", "--top", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "images/s per domain" in line and line.startswith("  ")]
    assert len(rows) == 7 and rows[0].rstrip().endswith("1.00x")
    assert out.count("aten ops/step") == 2  # plain and tuned, batch 2


def test_a_bad_config_is_one_line(capsys):
    assert cyclegan_train.main(["--device", "cpu", "--config", "15:4:1"]) == 2
    assert "multiple of 4" in capsys.readouterr().err
