"""What one GPU run leaves: ONNX exports, a summary of every job, and a bundle for a lent machine's results channel.

:func:`export_all` exports each trained checkpoint with ``python -m export`` (checked against PyTorch);
:func:`job_figures` reads a job's ``log.csv``; :func:`write_summary` writes ``summary.md`` / ``.json``;
:func:`bundle` packs what a lent machine can send back (at most :data:`BUNDLE_FILES` files of
:data:`BUNDLE_PART` bytes, :data:`BUNDLE_TOTAL` in all): ``summary.md`` and ``gpu_run.tar.NN`` parts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from realtime.core.download import sha256_of
from realtime.core.errors import UserError
from train.gpu_plan import CYCLEGAN_NAME, REPO, Job
from train.runlog import recorded_command

log = logging.getLogger(__name__)

MAX_ONNX_BYTES = 16 * 10**6
# What a lent machine's results channel takes back (bytes): files, each file, all together.
BUNDLE_FILES, BUNDLE_PART, BUNDLE_TOTAL = 8, 15 * 2**20, 60 * 2**20


@dataclass
class Outcome:
    """What became of one job."""

    job: Job
    status: str = "not started"  # finished, stopped at its time share, failed (rc N), killed, not started
    seconds: float = 0.0
    started_at: float = 0.0  # time.time() of its start, and of the end of its share (Ctrl-C then)
    stop_at: float = 0.0
    onnx: dict[str, Path] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def export_all(outcomes: list[Outcome], out: Path, parallel: int = 4) -> None:
    """Export every checkpoint the jobs left to ``out/onnx/<name>.onnx`` with ``python -m export`` (checked
    against PyTorch), ``parallel`` at a time; a failed export is recorded with its one-line error."""
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    tasks = [(o, name, ckpt) for o in outcomes for name, ckpt in o.job.outputs.items() if ckpt.is_file()]

    def export(task: tuple[Outcome, str, Path]) -> None:
        outcome, name, checkpoint = task
        dest = out / "onnx" / f"{name}.onnx"
        dest.unlink(missing_ok=True)
        command = [sys.executable, "-m", "export", str(checkpoint), "-o", str(dest), "--name", name, "--half-weights"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0 or not dest.is_file():
            last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            outcome.errors.append(f"export {name}: {last[:300]}")
            return
        if dest.stat().st_size > MAX_ONNX_BYTES:
            outcome.errors.append(f"{dest.name} is {dest.stat().st_size / 1e6:.1f} MB, over 16 MB")
        outcome.onnx[name] = dest
        log.info("exported %s (%.1f MB)", dest.name, dest.stat().st_size / 1e6)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(export, tasks))


def _log_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def job_figures(outcome: Outcome) -> dict[str, object]:
    """Steps, images seen, rate and last losses of a job, read from its log.csv."""
    job = outcome.job
    rows = _log_rows((job.log_dir or Path()) / "log.csv")
    last = rows[-1] if rows else {}
    steps = int(float(last.get("step", 0) or 0))
    if job.module == "train.cyclegan":
        batch = int(job.argv[job.argv.index("--batch-size") + 1]) if "--batch-size" in job.argv else 1
        rate = float(last.get("images_per_s", 0) or 0)
        losses = {k: float(last[k]) for k in ("cycle_A", "cycle_B", "G_A", "G_B", "D_A", "D_B") if k in last}
    else:
        batch = int(job.argv[job.argv.index("--batch-size") + 1])
        rate = float(last.get("images_per_s", 0) or 0)
        losses = {k: float(last[k]) for k in ("loss", "content", "style") if k in last}
    return {
        "name": job.name,
        "status": outcome.status,
        "wall_s": round(outcome.seconds, 1),
        "steps": steps,
        "images_seen": steps * batch,
        "images_per_s": round(rate, 1),
        "last_losses": {k: round(v, 4) for k, v in losses.items()},
        "command": recorded_command(job.module, job.argv, REPO),
        "onnx": {
            name: {"file": path.name, "mb": round(path.stat().st_size / 1e6, 1), "sha256": sha256_of(path)}
            for name, path in outcome.onnx.items()
        },
        "errors": outcome.errors,
    }


def environment() -> dict[str, str]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "host": platform.machine(),
    }


def write_summary(out: Path, figures: list[dict], env: dict[str, str], wall: float) -> Path:
    """``out/summary.md`` (a table to read) and ``out/summary.json`` (everything)."""
    (out / "summary.json").write_text(
        json.dumps({"environment": env, "wall_s": round(wall, 1), "jobs": figures}, indent=2)
    )
    lines = [
        f"# GPU training run: {env['gpu']}, torch {env['torch']}, {wall / 60:.1f} min wall",
        "",
        "| model | status | steps | images seen | images/s | wall s | last losses | ONNX | MB | SHA-256 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        losses = ", ".join(f"{k} {v:g}" for k, v in f["last_losses"].items())
        files = f["onnx"] or {f["name"]: {"file": "-", "mb": "", "sha256": ""}}
        for i, o in enumerate(files.values()):
            head = [f["name"], f["status"], f["steps"], f["images_seen"], f["images_per_s"], f["wall_s"], losses]
            cells = head if i == 0 else ["", "", "", "", "", "", ""]
            lines.append("| " + " | ".join(str(c) for c in [*cells, o["file"], o["mb"], f"`{o['sha256']}`"]) + " |")
    lines += ["", "Commands:", ""] + [f"- `{f['name']}`: `{f['command']}`" for f in figures]
    problems = [f"- {f['name']}: {e}" for f in figures for e in f["errors"]]
    if problems:
        lines += ["", "Problems:", "", *problems]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def bundle(out: Path, dest: Path) -> list[Path]:
    """Pack the run for a results channel of :data:`BUNDLE_FILES` files: ``summary.md`` and tar parts.

    In the tar, by priority: ``onnx/``, the summaries and logs (CSV), the last sample grid of each
    job, the CycleGAN ``state.pth``; whatever would take the whole past :data:`BUNDLE_TOTAL` is
    left out (and listed in ``bundle.txt`` inside).
    """
    dest.mkdir(parents=True, exist_ok=True)
    wanted: list[Path] = sorted((out / "onnx").glob("*.onnx"))
    wanted += [out / "summary.md", out / "summary.json", *sorted(out.glob("logs/**/*.csv"))]
    wanted += [*sorted(out.glob(f"{CYCLEGAN_NAME}/logs/*.csv")), *sorted(out.glob("logs/*.out"))]
    grids = sorted(out.glob("logs/*/samples_*.png")) + sorted(out.glob(f"{CYCLEGAN_NAME}/samples/*.png"))
    last_grids = {}
    for grid in grids:
        last_grids[grid.parent] = grid
    wanted += list(last_grids.values())
    wanted.append(out / CYCLEGAN_NAME / "state.pth")
    room = BUNDLE_TOTAL - 2 * 2**20
    kept, left_out = [], []
    for path in wanted:
        if not path.is_file():
            continue
        size = path.stat().st_size + 1024
        if size <= room:
            kept.append(path)
            room -= size
        else:
            left_out.append(path)
    note = "left out (over the results channel's size):\n" + "".join(f"  {p.relative_to(out)}\n" for p in left_out)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in kept:
            tar.add(path, arcname=str(Path("gpu_run") / path.relative_to(out)))
        data = note.encode()
        info = tarfile.TarInfo("gpu_run/bundle.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    parts = [blob[i : i + BUNDLE_PART] for i in range(0, len(blob), BUNDLE_PART)]
    if len(parts) > BUNDLE_FILES - 1:
        raise UserError(f"the bundle needs {len(parts)} parts; at most {BUNDLE_FILES - 1} fit")
    written = []
    for old in dest.glob("gpu_run.tar.*"):
        old.unlink()
    for i, part in enumerate(parts):
        path = dest / f"gpu_run.tar.{i:02d}"
        path.write_bytes(part)
        written.append(path)
    summary = dest / "summary.md"
    summary.write_bytes((out / "summary.md").read_bytes() if (out / "summary.md").is_file() else b"")
    return [summary, *written]
