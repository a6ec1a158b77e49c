"""The IO contract: what a model expects and returns, stated once and carried with it.

Checkpoints, ONNX metadata and TorchScript extra files all store a contract, so the
runtime does pre- and post-processing without knowing where a model came from.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

JOHNSON = "johnson"
CYCLEGAN = "cyclegan"
ARBITRARY = "arbitrary"
MULTISTYLE = "multistyle"

RANGE_0_255 = (0.0, 255.0)
RANGE_MINUS1_1 = (-1.0, 1.0)
RANGE_0_1 = (0.0, 1.0)


@dataclass(frozen=True)
class IOContract:
    """How frames enter and leave a model.

    Tensors are ``float32``, layout ``NCHW``, ``channel_order`` channels, values in
    ``value_range`` (``(0, 255)`` for Johnson nets, ``(-1, 1)`` for CycleGAN).
    Height and width must be multiples of ``size_multiple``; ``fixed_size`` is
    ``(H, W)`` for models that only accept one size (foreign ONNX files).

    Conditioned models (multi-style, arbitrary-style) take a second input, a style vector of
    ``condition_dim`` floats (:mod:`realtime.core.styles`); ``styles`` names the styles a
    multi-style net was trained on, in the order of its weight vector.
    """

    family: str = JOHNSON
    value_range: tuple[float, float] = RANGE_0_255
    channel_order: str = "RGB"
    layout: str = "NCHW"
    size_multiple: int = 4
    fixed_size: tuple[int, int] | None = None
    name: str = ""
    style: str = ""  # style image (Johnson) or "A->B" domains (CycleGAN)
    styles: tuple[str, ...] = ()
    condition_dim: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["value_range"] = list(self.value_range)
        data["fixed_size"] = list(self.fixed_size) if self.fixed_size else None
        data["styles"] = list(self.styles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IOContract:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "value_range" in kwargs:
            kwargs["value_range"] = tuple(float(v) for v in kwargs["value_range"])
        if kwargs.get("fixed_size"):
            kwargs["fixed_size"] = tuple(int(v) for v in kwargs["fixed_size"])
        kwargs["provenance"] = dict(kwargs.get("provenance") or {})
        kwargs["styles"] = tuple(str(s) for s in kwargs.get("styles") or ())
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IOContract:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> IOContract:
        return dataclasses.replace(self, **changes)


def johnson_contract(**extra: Any) -> IOContract:
    """Contract of a Johnson transform net: RGB in 0..255, output RGB 0..255 (unclamped)."""
    return IOContract(family=JOHNSON, value_range=RANGE_0_255, **extra)


def cyclegan_contract(**extra: Any) -> IOContract:
    """Contract of a CycleGAN generator: RGB in -1..1, output tanh -1..1."""
    return IOContract(family=CYCLEGAN, value_range=RANGE_MINUS1_1, **extra)


def multistyle_contract(**extra: Any) -> IOContract:
    """Contract of a multi-style transform net: RGB in 0..255 plus a weight per style (``styles``), RGB 0..255 out.

    ``condition_dim`` is the number of styles (``len(styles)`` unless given).
    """
    extra.setdefault("condition_dim", len(extra.get("styles") or ()))
    return IOContract(family=MULTISTYLE, value_range=RANGE_0_255, **extra)


def arbitrary_contract(**extra: Any) -> IOContract:
    """Contract of an arbitrary-style transform net: RGB in 0..1 plus a 100-number style vector, sigmoid out 0..1.

    The net takes any frame size (it crops its own output back), so frames are not padded.
    """
    extra.setdefault("condition_dim", 100)
    extra.setdefault("size_multiple", 1)
    return IOContract(family=ARBITRARY, value_range=RANGE_0_1, **extra)
