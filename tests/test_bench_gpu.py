"""bench.gpu on the CPU: the unattended run writes its rows and targets (the code path; no timing asserted)."""

from __future__ import annotations

import json

import pytest

from bench import gpu


def test_cpu_run_writes_rows_ratios_and_targets(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "results" / "bench_gpu.json"
    argv = ["--json", str(out), "--sections", "model,e2e,live", "--nets", "small", "--frames", "1"]
    argv += ["--e2e-frames", "4", "--e2e-runs", "default,pth", "--live-frames", "3", "--cpu"]
    assert gpu.main(argv) == 0
    data = json.loads(out.read_text())
    rows = {(r["section"], r["net"], r["size"], r["setting"]): r for r in data["rows"]}
    ref = rows[("model", "small", "128x72", "bare forward, eager fp32 (reference)")]
    assert ref["x_ref"] == 1.0 and ref["ms"] > 0
    default = rows[("model", "small", "128x72", "eager fp32 (default)")]
    assert default["x_ref"] == ref["ms"] / default["ms"]
    assert not any(r["setting"].startswith("compiled") for r in data["rows"])  # no compiling on the CPU by default
    e2e = [r for r in data["rows"] if r["section"] == "e2e"]
    assert [r["setting"] for r in e2e] == ["default", "same weights as .pth"] and all(r["fps"] > 0 for r in e2e)
    assert all(r["x_ref"] is not None for r in e2e)  # against the plain johnson forward of the same run
    live = next(r for r in data["rows"] if r["section"] == "live")
    assert live["ms"] > 0 and live["bound_ms"] > 0
    assert data["env"]["device"] == "cpu" and len(data["targets"]) == 8
    printed = capsys.readouterr().out
    assert "== targets" in printed and "nst-cam --live latency" in printed and str(out) in printed


def test_unknown_section_is_one_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        gpu.main(["--sections", "model,warp"])
    assert stopped.value.code == 2
    assert "unknown section(s) warp" in capsys.readouterr().err
