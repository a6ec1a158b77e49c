"""``python -m bench stabilize``: flicker score and fps of the temporal stabiliser, side by side.

For each clip (the bundled sample, a generated clip with a static textured background and a
moving object, and optionally extra clips) it runs the stylizer per frame and, on the same
frames in the same run, the stylizer followed by :class:`~realtime.stages.stabilize.TemporalStabilizer`
(prepare and apply synchronously: the worst case; the pipeline overlaps ``prepare`` with the
model). It prints the flicker score (:mod:`realtime.stages.flicker`) of the input (the floor), of the
per-frame output and of the stabilised output, their ratio, the frames-per-second cost, and
the change of the VGG Gram distance to the style (the style image where known, else the mean
Gram of the per-frame outputs), so the stabiliser is seen to keep the per-frame look.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from realtime.cli.common import cli_entry, parse_size
from realtime.core.errors import UserError
from realtime.io.video_files import frames_of
from realtime.stages.flicker import flicker_scores
from realtime.stages.stabilize import DEFAULT_STRENGTH, TemporalStabilizer, check_stabilize

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CLIP = REPO / "samples" / "video" / "cockatoo.mp4"
STYLES = REPO / "samples" / "styles"
WALK = "shared/data/video/person_walk_5s_768x432.mp4"  # a real walking clip beside the repository, if present
EXTRA_CLIPS = tuple(dict.fromkeys([REPO.parent / WALK, REPO.parents[1] / WALK]))  # the first found is used


# -- stylizers ------------------------------------------------------------------------------
class TorchStylizer:
    """Minimal eager-torch stylizer for the benchmark: a Johnson (0..255) or CycleGAN (-1..1) net on CPU."""

    def __init__(
        self, net: torch.nn.Module, name: str, value_range: tuple[float, float] = (0.0, 255.0), calibrate: bool = False
    ) -> None:
        self.net, self.name, self.value_range = net.eval(), name, value_range
        self.calibrate = calibrate  # random weights: map the output to 0..255 with stats fixed at frame 1
        self._affine: tuple[torch.Tensor, torch.Tensor] | None = None
        from realtime.core.contract import johnson_contract

        self.contract = johnson_contract(name=name)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        lo, hi = self.value_range
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() * ((hi - lo) / 255.0) + lo
        ph, pw = -h % 4, -w % 4
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
        with torch.inference_mode():
            y = self.net(x)[..., :h, :w]
        if self.calibrate:
            if self._affine is None:
                self._affine = (y.mean((0, 2, 3), keepdim=True), y.std((0, 2, 3), keepdim=True) / 60.0)
            y = (y - self._affine[0]) / self._affine[1] + 128.0
        else:
            y = (y - lo) * (255.0 / (hi - lo))
        return y.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self(f) for f in frames]


def random_stylizer() -> TorchStylizer:
    """Random-weights ``TransformerNet.from_arch("small")`` (seed 0): a flicker-prone stand-in."""
    from realtime.core.nets.transformer import TransformerNet

    torch.manual_seed(0)
    return TorchStylizer(TransformerNet.from_arch("small"), "random-small (stand-in)", calibrate=True)


def load_stylizer(model: str | None) -> tuple[Any, str]:
    """The stylizer to measure and a line saying which it is.

    ``model`` goes to ``realtime.backends.loader.load_stylizer`` (CPU); without ``--model`` the
    default ``mosaic`` is tried and, where it cannot be loaded here (no weights, offline),
    the random-weights stand-in is used instead.
    """
    try:
        from realtime.backends.loader import load_stylizer as load
    except ImportError:  # the model registry is optional for this benchmark
        load = None
    name = model or "mosaic"
    if load is not None:
        try:
            return load(name, device="cpu", progress=False), f"{name} (realtime.core.model_zoo, CPU)"
        except UserError as exc:
            if model is not None:
                raise
            why = str(exc)
    elif Path(name).suffix in (".pth", ".pt") and Path(name).is_file():
        from realtime.core.checkpoint import load_model

        loaded = load_model(name)
        return TorchStylizer(loaded.model, Path(name).stem, loaded.contract.value_range), f"{name} (eager torch, CPU)"
    else:
        why = "realtime.core.model_zoo is not available"
        if model is not None:
            raise UserError(f"cannot load model {model!r}: {why}")
    return random_stylizer(), (
        "random-weights TransformerNet small, eager torch fp32 (a flicker-prone stand-in; "
        f"mosaic is not loadable here: {why.split(';')[0]})"
    )


def style_image_for(stylizer: Any, style: str | None) -> np.ndarray | None:
    """The style image (RGB) for the Gram check: ``--style``, else ``samples/styles/<contract style or name>``."""
    candidates = [Path(style)] if style else []
    contract = getattr(stylizer, "contract", None)
    for key in (getattr(contract, "style", ""), getattr(stylizer, "name", "")):
        if key:
            stem = Path(str(key)).stem.replace("_", "-")
            candidates += [
                STYLES / Path(str(key)).name,
                *STYLES.glob(f"{stem}.*"),
                *STYLES.glob(f"{Path(str(key)).stem}.*"),
            ]
    for path in candidates:
        if path.is_file():
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if style:
        raise UserError(f"cannot read style image {style}")
    return None


# -- clips ----------------------------------------------------------------------------------
def generated_clip(frames: int = 40, size: tuple[int, int] = (360, 640), seed: int = 0) -> list[np.ndarray]:
    """A static textured background, a textured disc crossing it, and mild sensor noise (sigma 2)."""
    rng = np.random.default_rng(seed)
    h, w = size

    def texture(hh: int, ww: int) -> np.ndarray:
        out = np.zeros((hh, ww, 3), np.float32)
        for cell, amp in ((4, 30), (16, 50), (64, 60)):
            small = rng.random(((hh + cell - 1) // cell, (ww + cell - 1) // cell, 3), np.float32)
            out += amp * cv2.resize(small, (ww, hh), interpolation=cv2.INTER_CUBIC)
        return out

    radius = h // 5
    background, disc = texture(h, w), texture(2 * radius, 2 * radius) * 1.3
    yy, xx = np.mgrid[0 : 2 * radius, 0 : 2 * radius]
    inside = (xx - radius + 0.5) ** 2 + (yy - radius + 0.5) ** 2 < radius**2
    clip = []
    for t in range(frames):  # the disc crosses the frame left to right, bobbing up and down
        x0 = round((w - 2 * radius) * t / max(1, frames - 1))
        y0 = round(h / 2 - radius + h / 6 * np.sin(t / 6.0))
        frame = background.copy()
        frame[y0 : y0 + 2 * radius, x0 : x0 + 2 * radius][inside] = disc[inside]
        frame += rng.normal(0, 2.0, frame.shape).astype(np.float32)
        clip.append(np.clip(frame, 0, 255).astype(np.uint8))
    return clip


CLIP_KINDS = ("sample", "generated", "extra")


def clips(
    max_frames: int, kinds: Sequence[str], extra: Sequence[str], size: tuple[int, int] | None = None
) -> list[tuple[str, list[np.ndarray]]]:
    """``(name, frames)`` of the chosen clips: the bundled sample, the generated one, extra videos if present.

    ``size`` ``(width, height)`` resizes every frame (area filter), as ``nst-video --size`` does.
    """
    walk = next((p for p in EXTRA_CLIPS if p.is_file()), None)
    paths = ([SAMPLE_CLIP] if "sample" in kinds else []) + ([walk] if "extra" in kinds and walk else [])
    out = []
    for path in [*paths, *map(Path, extra)]:
        if not path.is_file():
            if str(path) in extra:
                raise UserError(f"clip {path} does not exist")
            continue
        frames = list(itertools.islice(frames_of(path), max_frames))
        if size is not None:
            frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        shape = f"{frames[0].shape[1]}x{frames[0].shape[0]}"
        out.append((path.stem if shape in path.stem else f"{path.stem.split('_')[0]} {shape}", frames))
    if "generated" in kinds:
        w, h = size or (640, 360)
        out.append((f"generated {w}x{h}", generated_clip(min(max_frames, 40), (h, w))))
    if not out:
        raise UserError("no clip to measure")
    return out


# -- measurements ---------------------------------------------------------------------------
@dataclass
class ClipResult:
    name: str
    frames: int
    floor: float
    per_frame: float
    stabilised: dict[float, float] = field(default_factory=dict)
    model_s: float = 0.0  # stylizer alone, median seconds per frame
    with_stab_s: float = 0.0  # stylizer + stabiliser, median seconds per frame
    prepare_s: float = 0.0
    apply_s: float = 0.0
    gram: dict[float, tuple[float | None, float]] = field(default_factory=dict)


def run_clip(
    name: str,
    frames: list[np.ndarray],
    stylizer: Any,
    strengths: Sequence[float],
    vgg: Any,
    style: np.ndarray | None,
    gram_frames: int,
) -> ClipResult:
    """Side by side on the same frames: stylizer alone, then stylizer + stabiliser (timed alternately)."""
    timed = TemporalStabilizer(strength=strengths[0])
    per_frame: list[np.ndarray] = []
    t_model, t_both, t_prep, t_apply = [], [], [], []
    stylizer(frames[0])  # warm-up
    for frame in frames:  # alternate per frame, so load changes hit both sides alike
        t0 = time.perf_counter()
        stylizer(frame)
        t1 = time.perf_counter()
        styled = stylizer(frame)
        t2 = time.perf_counter()
        motion = timed.prepare(frame)
        t3 = time.perf_counter()
        timed(frame, styled, motion)
        t4 = time.perf_counter()
        per_frame.append(styled)
        t_model.append(t1 - t0)
        t_both.append(t4 - t1)
        t_prep.append(t3 - t2)
        t_apply.append(t4 - t3)
    outputs = {}
    for s in strengths:  # the stabiliser is deterministic: replay it per strength on the same outputs
        stab = TemporalStabilizer(strength=s)
        outputs[s] = [stab(f, y, stab.prepare(f)) for f, y in zip(frames, per_frame)]
    scores = flicker_scores(frames, frames, per_frame, *outputs.values())
    result = ClipResult(
        name,
        len(frames),
        scores[0],
        scores[1],
        dict(zip(strengths, scores[2:])),
        *(float(np.median(t)) for t in (t_model, t_both, t_prep, t_apply)),
    )
    if vgg is not None:
        result.gram = gram_changes(vgg, per_frame, outputs, style, gram_frames)
    return result


def gram_changes(
    vgg: Any, per_frame: list[np.ndarray], outputs: dict[float, list[np.ndarray]], style: np.ndarray | None, count: int
) -> dict[float, tuple[float | None, float]]:
    """Per strength: (relative change of the mean Gram distance to the style image, or None without
    one; mean Gram distance of the stabilised frames to their own per-frame outputs).

    Both are relative figures (:func:`realtime.core.losses.gram_distance`); frames are taken evenly
    after the first few (the stabiliser's history needs a few frames to build up).
    """
    from realtime.core.losses import GATYS_STYLE_LAYERS, gram
    from realtime.core.metrics import gram_distance

    def features(image: np.ndarray) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return vgg(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float(), GATYS_STYLE_LAYERS)

    def grams(image: np.ndarray) -> dict[str, torch.Tensor]:
        return {k: gram(v) for k, v in features(image).items()}

    n = len(per_frame)
    index = np.linspace(min(n - 1, 5), n - 1, min(count, n)).round().astype(int)
    pf_feats = {i: features(per_frame[i]) for i in index}
    pf_grams = {i: {k: gram(v) for k, v in f.items()} for i, f in pf_feats.items()}
    style_grams = None
    if style is not None:
        h, w = per_frame[0].shape[:2]
        scale = max(h, w) / max(style.shape[:2])  # the style image at the frames' scale
        style_grams = grams(cv2.resize(style, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        base = float(np.mean([gram_distance(pf_feats[i], style_grams) for i in index]))
    out: dict[float, tuple[float | None, float]] = {}
    for s, frames in outputs.items():
        feats = {i: features(frames[i]) for i in index}
        own = float(np.mean([gram_distance(feats[i], pf_grams[i]) for i in index]))
        change = None
        if style_grams is not None:
            change = float(np.mean([gram_distance(feats[i], style_grams) for i in index])) / base - 1.0
        out[s] = (change, own)
    return out


def report(results: list[ClipResult], strengths: Sequence[float], has_style: bool) -> list[str]:
    """Print the side-by-side tables; return the targets missed (empty: all met)."""
    missed = []
    print(
        f"\n{'clip':<26}{'frames':>7}{'input floor':>12}{'per-frame':>11}{'strength':>9}{'stabilised':>11}"
        f"{'ratio':>7}{'>floor':>8}{'gram vs style':>14}{'gram vs pf':>11}"
    )
    for r in results:
        for s in strengths:
            stab = r.stabilised[s]
            ratio = stab / r.per_frame
            above = (stab - r.floor) / max(r.per_frame - r.floor, 1e-12)
            change, own = r.gram.get(s, (None, None))
            style_text = f"{100 * change:+.1f}%" if change is not None else "-"
            own_text = f"{100 * own:.1f}%" if own is not None else "-"
            print(
                f"{r.name:<26}{r.frames:>7}{r.floor:>12.6f}{r.per_frame:>11.6f}{s:>9.2f}{stab:>11.6f}"
                f"{ratio:>6.2f}x{above:>7.2f}x{style_text:>14}{own_text:>11}"
            )
            if s == strengths[0]:
                if ratio > 0.5:
                    missed.append(f"{r.name}: flicker {ratio:.2f}x > 0.5x")
                gram = change if change is not None else own
                if gram is not None and abs(gram) >= 0.05:
                    missed.append(f"{r.name}: Gram {100 * gram:+.1f}%")
    print(
        f"\n{'clip':<26}{'model fps':>10}{'+stabiliser':>12}{'cost':>7}{'prepare':>9}{'apply':>8}{'raw cost':>10}"
        f"   (strength {strengths[0]:.2f}, medians per frame)"
    )
    for r in results:
        stab = r.prepare_s + r.apply_s
        fps_a, fps_b = 1 / r.model_s, 1 / (r.model_s + stab)
        cost, raw = stab / (r.model_s + stab), 1 - r.model_s / r.with_stab_s
        if cost > 0.15:
            missed.append(f"{r.name}: fps cost {100 * cost:.1f}%")
        print(
            f"{r.name:<26}{fps_a:>10.2f}{fps_b:>12.2f}{100 * cost:>6.1f}%{1000 * r.prepare_s:>7.1f}ms"
            f"{1000 * r.apply_s:>6.1f}ms{100 * raw:>9.1f}%"
        )
    print(
        "\nratio: stabilised / per-frame flicker (target <= 0.5); >floor: the same for the parts above the "
        "input floor.\ngram vs style: change of the mean VGG Gram distance to the style image, stabilised vs "
        "per-frame (target |change| < 5%);\ngram vs pf: Gram distance of the stabilised frames to their own "
        "per-frame outputs"
        + ("." if has_style else " (the target, < 5%, without a style image).")
        + "\ncost: share of the frame time taken by prepare + apply run synchronously after the model (target "
        "<= 15%;\nthe pipeline overlaps prepare with the model); raw cost: the same from the two loops' median "
        "frame times (noisy on a busy machine)."
    )
    return missed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench stabilize",
        description="Flicker score, Gram change and fps cost of the temporal stabiliser: input floor, "
        "per-frame and stabilised output side by side.",
    )
    p.add_argument("--model", help="model name or path (default: mosaic, else a random-weights stand-in)")
    p.add_argument(
        "--strength",
        type=float,
        nargs="+",
        default=[DEFAULT_STRENGTH],
        help=f"stabiliser strength(s) to compare (default {DEFAULT_STRENGTH}); fps is timed with the first",
    )
    p.add_argument("--frames", type=int, default=60, help="frames per clip (default 60)")
    p.add_argument(
        "--clips",
        default=",".join(CLIP_KINDS),
        help="which built-in clips: a comma list of sample, generated, extra (default: all; "
        "extra clips are used only where present)",
    )
    p.add_argument("--clip", action="append", default=[], help="another video to measure (repeatable)")
    p.add_argument("--size", metavar="WxH", help="resize every clip's frames to this (as nst-video --size does)")
    p.add_argument("--style", help="style image for the Gram check (default: the model's, if in samples/styles)")
    p.add_argument("--gram-frames", type=int, default=5, help="frames per clip for the Gram check (0: skip)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    strengths = [check_stabilize(s) for s in args.strength]
    if args.frames < 2:
        raise UserError("--frames must be at least 2")
    kinds = [k.strip() for k in args.clips.split(",") if k.strip()]
    unknown = set(kinds) - set(CLIP_KINDS)
    if unknown:
        raise UserError(f"--clips: unknown {', '.join(sorted(unknown))}; choose from {', '.join(CLIP_KINDS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)  # the stabiliser runs beside the model; keep OpenCV to one core
    stylizer, which = load_stylizer(args.model)
    style = style_image_for(stylizer, args.style)
    vgg = None
    if args.gram_frames > 0:
        from realtime.core.nets.vgg import VGG19Features

        vgg = VGG19Features.caffe()
    print(f"stylizer: {which}; CPU, torch threads {torch.get_num_threads()}, OpenCV threads 1")
    results = []
    size = parse_size(args.size) if args.size else None
    for name, frames in clips(args.frames, kinds, args.clip, size):
        print(f"  {name}: {len(frames)} frames ...", flush=True)
        results.append(run_clip(name, frames, stylizer, strengths, vgg, style, args.gram_frames))
    missed = report(results, strengths, style is not None)
    print("\nall targets met" if not missed else "\ntargets missed: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
