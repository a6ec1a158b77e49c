"""``python -m bench serve``: nst-serve under load, next to nst-video's frames/s for the same model and size.

Starts ``nst-serve`` as a child process (loopback, a free port), then in alternating rounds:

* **nst-video**: the video pipeline (decode, model, encode) on the sample clip at ``--size``,
  frames/s, in this process while the server idles (the figure ``nst-video`` reaches);
* **serve**: ``--clients`` simulated cameras (aiortc clients of :mod:`realtime.serve.client`
  playing the sample clip at ``--fps``, spread over ``--client-processes`` processes) connected
  at once; after ``--warmup`` seconds, ``--seconds`` are measured: frames/s each client got back,
  latency capture to receipt (exact: the client stamped its frames), the server's estimate of it
  (what the page shows), and the server's throughput.

Medians over ``--rounds`` rounds are printed, with the ratio of the server's total throughput to
nst-video's frames/s. ``--browser`` measures one headless Chromium client instead (fps and
capture-to-display latency as the page shows them; needs ``chromium``). GPU mode: ``--device cuda``
(e.g. ``--clients 8 --size 1280x720 --model mosaic --client-processes 4``).

The clients run on the same machine as the server, and their VP8 encoding and decoding (a
browser's work) takes CPU from it, so on a small CPU the figure is a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import numpy as np

from bench.chromium import Chromium, find_chromium, write_y4m
from bench.serve_process import ServeProcess
from bench.video import SAMPLE_CLIP, end_to_end
from realtime.backends.loader import load_for_pipeline
from realtime.cli.common import cli_entry, parse_size
from realtime.core.errors import UserError
from realtime.io.video_files import probe, read_frames
from realtime.serve.client import Client, FrameSource


def clip_frames(size: tuple[int, int], count: int = 60) -> list[np.ndarray]:
    """The first ``count`` frames of the sample clip at ``size`` (width, height), RGB."""
    frames = []
    for frame in read_frames(probe(SAMPLE_CLIP), size=size):
        frames.append(frame.image)
        if len(frames) == count:
            break
    return frames


def baseline_fps(model: str, device: str, size: tuple[int, int], frames: int) -> tuple[float, float]:
    """nst-video's end-to-end frames/s (decode, model, encode) for ``model`` at ``size``, and CPU seconds a frame."""
    stylizer = load_for_pipeline(model, device=device)
    end_to_end(stylizer, SAMPLE_CLIP, size, 5)  # warm-up
    cpu = time.process_time()
    fps = end_to_end(stylizer, SAMPLE_CLIP, size, frames)
    return fps, (time.process_time() - cpu) / frames


def process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system, all threads) process ``pid`` has used; None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


# -- simulated clients ----------------------------------------------------------------------------
async def _clients(
    url: str,
    token: str | None,
    count: int,
    size: tuple[int, int],
    fps: float,
    warmup: float,
    seconds: float,
    watch: bool = True,
    server_pid: int | None = None,
) -> list[dict]:
    """``count`` clients connected at once; per client, what arrived in the measured window.

    ``watch``: also read the server's engine counters and CPU time over the window (into the first
    result). Each result has ``cpu``: this process's CPU seconds over the window, shared out.
    """
    frames = clip_frames(size)
    clients = []
    try:
        for i in range(count):
            rotated = frames[i * 7 % len(frames) :] + frames[: i * 7 % len(frames)]  # not all in step
            clients.append(await Client.connect(url, FrameSource(rotated, fps), token=token, keep_images=0))
        await asyncio.sleep(warmup)
        before = await server_status(url, token) if watch else None
        server_cpu = process_cpu(server_pid) if watch else None
        cpu = time.process_time()
        start = time.monotonic()
        marks = [len(c.stats.received) for c in clients]
        await asyncio.sleep(seconds)
        end = time.monotonic()
        cpu = time.process_time() - cpu
        server_cpu_end = process_cpu(server_pid) if watch else None
        after = await server_status(url, token) if watch else None
        results = []
        for client, mark in zip(clients, marks):
            window = [r for r in client.stats.received[mark:] if r.time <= end]
            exact = [r.latency for r in window if r.latency is not None]
            estimated = [r.estimated_latency for r in window if r.latency is not None]  # the same frames
            results.append(
                {
                    "fps": len(window) / (end - start),
                    "latency": exact,
                    "estimated": estimated,
                    "batch": [r.batch for r in window if r.batch],
                    "model_ms": [r.model_ms for r in window if r.model_ms is not None],
                    "closed": client.closed_reason,
                    "cpu": cpu / len(clients),
                    "frames": len(window),
                }
            )
        if before and after and results:
            b, a = before["engine"], after["engine"]
            results[0]["engine"] = {
                "fps": (a["frames"] - b["frames"]) / (end - start),
                "busy": (a["busy_seconds"] - b["busy_seconds"]) / (end - start),
                "batching": a["batching"],
                "frames": a["frames"] - b["frames"],
                "cpu": None if server_cpu is None or server_cpu_end is None else server_cpu_end - server_cpu,
            }
        return results
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def _client_process(args: tuple) -> list[dict]:
    return asyncio.run(_clients(*args))


def run_clients(
    url: str,
    token: str | None,
    count: int,
    processes: int,
    size,
    fps: float,
    warmup: float,
    seconds: float,
    server_pid: int | None = None,
) -> list[dict]:
    """``count`` clients in ``processes`` processes (1: in this one); their per-client results."""
    if processes <= 1:
        return asyncio.run(_clients(url, token, count, size, fps, warmup, seconds, True, server_pid))
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    jobs = [
        (url, token, n, size, fps, warmup, seconds, i == 0, server_pid) for i, n in enumerate(n for n in shares if n)
    ]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        return [r for part in pool.map(_client_process, jobs) for r in part]


async def server_status(base: str, token: str | None) -> dict:
    async with aiohttp.ClientSession() as http:
        headers = {"X-NST-Token": token} if token else {}
        async with http.get(base + "api/status", headers=headers) as r:
            return await r.json()


async def wait_ready(base: str, token: str | None) -> None:
    """Until the catalogue scan is done (it loads every model once), so it does not run during a round."""
    async with aiohttp.ClientSession() as http:
        headers = {"X-NST-Token": token} if token else {}
        async with http.get(base + "api/models", headers=headers, timeout=aiohttp.ClientTimeout(300)) as r:
            await r.read()


# -- one browser ----------------------------------------------------------------------------------
async def browser_round(
    url: str, base: str, token: str, size: tuple[int, int], warmup: float, seconds: float, tmp: Path, pid: int | None
) -> dict:
    """One Chromium page for ``warmup`` + ``seconds``: its fps and capture-to-display latency as the page shows them."""
    executable = find_chromium()
    if executable is None:
        raise UserError("--browser needs Chromium (apt-get install chromium)")
    camera = write_y4m(tmp / "camera.y4m", clip_frames(size))
    async with Chromium(executable, camera=camera) as browser:
        tab = await browser.new_tab()
        await tab.navigate(url)
        await tab.wait_for("window.nst && nst.framesMatched >= 5", timeout=60)
        await asyncio.sleep(warmup)
        before, server_cpu = await server_status(base, token), process_cpu(pid)
        shown = await tab.evaluate("nst.framesShown")
        start = time.monotonic()
        await asyncio.sleep(seconds)
        end_shown, latencies, model_ms = await tab.evaluate("[nst.framesShown, nst.latencies, nst.modelMs]")
        elapsed = time.monotonic() - start
        after, server_cpu_end = await server_status(base, token), process_cpu(pid)
    frames = end_shown - shown
    keep = max(1, min(len(latencies), round(frames * 0.9)))  # about the measured window
    recent, model_ms = latencies[-keep:], model_ms[-keep:]
    b, a = before["engine"], after["engine"]
    return {
        "fps": frames / elapsed,
        "latency": [],
        "estimated": [v / 1000 for v in recent],
        "model_ms": model_ms,
        "engine": {
            "fps": (a["frames"] - b["frames"]) / elapsed,
            "busy": (a["busy_seconds"] - b["busy_seconds"]) / elapsed,
            "batching": a["batching"],
            "frames": a["frames"] - b["frames"],
            "cpu": None if server_cpu is None or server_cpu_end is None else server_cpu_end - server_cpu,
        },
    }


# -- the report -----------------------------------------------------------------------------------
def _ms(values: Sequence[float], q: float) -> str:
    return f"{np.quantile(values, q) * 1000:.0f}" if values else "-"


def report(args: argparse.Namespace, rounds: list[dict], baselines: list[float], baseline_cpu: list[float]) -> None:
    size = f"{args.size[0]}x{args.size[1]}"
    who = "1 Chromium page" if args.browser else f"{args.clients} clients at {args.fps:g} fps each"
    print(f"\nnst-serve, {args.model} {size} on {args.device}: {who}, {args.seconds:g} s measured per round")
    per_client = [[r["clients"][i] for r in rounds] for i in range(len(rounds[0]["clients"]))]
    estimate = "page shows p50/p90" if args.browser else "page estimate p50"
    print(f"{'client':<8}{'fps':>7}{'latency ms p50/p90':>21}{estimate:>19}{'model ms p50':>14}{'batch':>7}")
    for i, runs in enumerate(per_client, 1):
        fps = statistics.median(r["fps"] for r in runs)
        latency = [v for r in runs for v in r["latency"]]
        estimated = [v for r in runs for v in r["estimated"]]
        batch = [b for r in runs for b in r.get("batch", [])]
        model = [m / 1000 for r in runs for m in r.get("model_ms", [])]
        print(
            f"{i:<8}{fps:>7.1f}{_ms(latency, 0.5) + '/' + _ms(latency, 0.9):>21}"
            f"{_ms(estimated, 0.5) + ('/' + _ms(estimated, 0.9) if args.browser else ''):>19}{_ms(model, 0.5):>14}"
            f"{(f'{np.mean(batch):.1f}' if batch else '-'):>7}"
        )
    totals = [sum(c["fps"] for c in r["clients"]) for r in rounds]
    total = statistics.median(totals)
    line = f"total   {total:>7.1f} fps (rounds: {', '.join(f'{t:.1f}' for t in totals)})"
    engine = [r["engine"] for r in rounds if r.get("engine")]
    if engine:
        line += f"; server engine {statistics.median(e['fps'] for e in engine):.1f} frames/s"
        line += f", busy {min(1.0, statistics.median(e['busy'] for e in engine)) * 100:.0f}%"
        line += f", batching {engine[-1]['batching'] or 'undecided'}"
    print(line)
    if baselines:
        base = statistics.median(baselines)
        print(
            f"nst-video {args.model} {size}: {base:.1f} fps (rounds: {', '.join(f'{b:.1f}' for b in baselines)})"
            f"  ->  serve total / nst-video = {total / base:.2f}x"
        )
    minimum = min(statistics.median(r["fps"] for r in runs) for runs in per_client)
    print(f"slowest client {minimum:.1f} fps")
    server_cpu = [e["cpu"] / e["frames"] for e in engine if e.get("cpu") is not None and e.get("frames")]
    client_cpu = [
        sum(c["cpu"] for c in r["clients"]) / max(1, sum(c["frames"] for c in r["clients"]))
        for r in rounds
        if all("cpu" in c for c in r["clients"])
    ]
    if server_cpu or baseline_cpu:
        parts = []
        if baseline_cpu:
            parts.append(f"nst-video {statistics.median(baseline_cpu) * 1000:.0f} ms")
        if server_cpu:
            parts.append(f"nst-serve {statistics.median(server_cpu) * 1000:.0f} ms")
        if client_cpu:
            parts.append(f"its simulated clients {statistics.median(client_cpu) * 1000:.0f} ms")
        print("CPU time per stylised frame (all threads): " + ", ".join(parts))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench serve", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mosaic_small", help="model (default mosaic_small)")
    p.add_argument("--size", default="320x180", help="camera size WxH (default 320x180)")
    p.add_argument("--clients", type=int, default=4, help="simulated clients (default 4)")
    p.add_argument("--fps", type=float, default=30.0, help="each simulated camera's frame rate (default 30)")
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per round (default 15)")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds before measuring (default 4)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of both figures (default 2)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--batch", choices=("auto", "on", "off"), default="auto", help="nst-serve --batch")
    p.add_argument("--client-processes", type=int, default=1, help="processes the clients run in (default 1)")
    p.add_argument("--baseline-frames", type=int, default=150, help="frames of each nst-video run (default 150)")
    p.add_argument("--no-baseline", action="store_true", help="skip the nst-video figure")
    p.add_argument("--browser", action="store_true", help="one headless Chromium page instead of aiortc clients")
    p.add_argument("--json", type=Path, help="also write the raw figures here")
    args = p.parse_args(argv)
    args.size = parse_size(args.size)
    return args


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    token = "bench-token-0000"
    server_args = ["--model", args.model, "--size", f"{args.size[0]}x{args.size[1]}", "--no-local-models"]
    server_args += ["--device", args.device, "--batch", args.batch, "--token", token, "--quiet"]
    # A browser closed at the end of a round leaves its session open until the idle timeout; room for
    # every round's clients keeps the next round from being refused as one client too many.
    room = max(args.clients, 1) * max(args.rounds, 1)
    server_args += ["--max-clients", str(room), "--idle-timeout", "30"]
    rounds: list[dict] = []
    baselines: list[float] = []
    baseline_cpu: list[float] = []
    with ServeProcess(server_args) as server, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(wait_ready(server.base, token))
        for i in range(args.rounds):
            if not args.no_baseline:
                fps, cpu = baseline_fps(args.model, args.device, args.size, args.baseline_frames)
                baselines.append(fps)
                baseline_cpu.append(cpu)
                print(f"round {i + 1}: nst-video {fps:.1f} fps", flush=True)
            if args.browser:
                page = browser_round(
                    server.url, server.base, token, args.size, args.warmup, args.seconds, Path(tmp), server.pid
                )
                clients = [asyncio.run(page)]
            else:
                clients = run_clients(
                    server.base,
                    token,
                    args.clients,
                    args.client_processes,
                    args.size,
                    args.fps,
                    args.warmup,
                    args.seconds,
                    server.pid,
                )
            engine = clients[0].pop("engine", None)
            rounds.append({"clients": clients, "engine": engine})
            total = sum(c["fps"] for c in clients)
            print(f"round {i + 1}: serve {total:.1f} fps over {len(clients)} clients", flush=True)
            time.sleep(1.0)  # let the sessions close before the next round
    report(args, rounds, baselines, baseline_cpu)
    if args.json:
        raw = {"rounds": rounds, "baselines": baselines, "baseline_cpu": baseline_cpu}
        args.json.write_text(json.dumps(raw, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
