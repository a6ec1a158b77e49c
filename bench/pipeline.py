"""``python -m bench pipeline``: how much of the source, model and sink time the three threads hide.

A source, a model and a sink that each take ``--delay`` seconds a frame (sleeping, so they
release the GIL as PyAV, ONNX Runtime and torch do) run through :func:`realtime.pipeline.run`
and, as the reference, one after the other in a plain loop. The two alternate for
``--rounds`` rounds; the medians and their ratio are printed. Ideal: 1/3 of the serial time
(plus one frame through each stage to fill the pipeline). This is the measurement that the
test suite leaves out (tests check that the three run at once, not how fast).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator, Sequence

import numpy as np

from realtime.pipeline import run


def _frames(n: int, delay: float) -> Iterator[np.ndarray]:
    for i in range(n):
        time.sleep(delay)
        yield np.full((8, 8, 3), i % 256, np.uint8)


class _SlowModel:
    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return frame

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self(f) for f in frames]


class _SlowSink:
    def __init__(self, delay: float) -> None:
        self.delay, self.count = delay, 0

    def write(self, frame: np.ndarray, info: object = None) -> None:
        time.sleep(self.delay)
        self.count += 1

    def close(self) -> None:
        pass


def overlapped(n: int, delay: float) -> float:
    t0 = time.perf_counter()
    run(_frames(n, delay), _SlowModel(delay), _SlowSink(delay))
    return time.perf_counter() - t0


def serial(n: int, delay: float) -> float:
    model, sink = _SlowModel(delay), _SlowSink(delay)
    t0 = time.perf_counter()
    for frame in _frames(n, delay):
        sink.write(model(frame))
    return time.perf_counter() - t0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=30, help="frames per run (default %(default)s)")
    p.add_argument("--delay", type=float, default=0.02, help="seconds per frame in each stage (default %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    times: dict[str, list[float]] = {"serial": [], "pipeline": []}
    for _ in range(max(1, args.rounds)):
        times["serial"].append(serial(args.frames, args.delay))
        times["pipeline"].append(overlapped(args.frames, args.delay))
    serial_s, pipeline_s = (statistics.median(times[k]) for k in ("serial", "pipeline"))
    ideal = (args.frames + 2) / (3 * args.frames)
    print(f"{args.frames} frames, {1000 * args.delay:g} ms per stage, median of {len(times['serial'])} rounds")
    print(f"  serial loop   {serial_s:6.2f} s")
    print(f"  pipeline      {pipeline_s:6.2f} s   = {pipeline_s / serial_s:.2f}x the serial time (ideal {ideal:.2f}x)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
