"""The model-family registry: the one place that says what each family is and how it is handled.

A family (``johnson``, ``cyclegan``, …) bundles: its networks and the names they carry in
checkpoints, the IO contract of its runtime net, the published foreign checkpoint layouts it
recognises (and how to infer their shapes), whether it exports to ONNX/TorchScript, and the
inputs its runtime net takes. Code elsewhere asks the registry (:func:`family`,
:func:`family_of`, :func:`detect_foreign`) instead of comparing family names.

Adding a family: a module in ``realtime/core/nets/``, one :class:`Family` in :data:`FAMILIES`,
a trainer in ``train/`` (see ``docs/adding-a-family.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from realtime.core.arbitrary_styles import arbitrary_styles
from realtime.core.contract import (
    IOContract,
    arbitrary_contract,
    cyclegan_contract,
    johnson_contract,
    multistyle_contract,
)
from realtime.core.errors import InvalidValue
from realtime.core.nets.arbitrary import ArbitraryTransformNet
from realtime.core.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from realtime.core.nets.multistyle import MultiStyleNet
from realtime.core.nets.transformer import TransformerNet
from realtime.core.styles import NamedStyles

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ForeignLayout:
    """A published checkpoint layout (a bare state dict) that a family's runtime net loads as is.

    ``marker`` is a key only this layout has; ``infer_kwargs`` reads the net's constructor
    arguments from the state dict's shapes.
    """

    source: str
    marker: str
    infer_kwargs: Callable[[StateDict], dict[str, Any]]


@dataclass(frozen=True)
class Family:
    """Everything the project knows about one model family.

    ``runtime_net``: the network the runtime runs (``(B, 3, H, W)`` in the contract's range);
    ``checkpoint_names``: every network class of the family by the name stored in checkpoints
    (training-only nets such as a discriminator included); ``contract``: builds the runtime
    net's :class:`IOContract`; ``runtime_inputs``: the runtime net's inputs in order (an
    image, plus conditioning inputs for conditional families); ``style_resolver``: for
    conditioned families, builds the object that names the styles and turns a style spec into
    the net's style vector (default: one weight per name in ``contract.styles``).
    """

    name: str
    summary: str
    runtime_net: type[nn.Module]
    checkpoint_names: Mapping[str, type[nn.Module]]
    contract: Callable[..., IOContract]
    foreign_layouts: tuple[ForeignLayout, ...] = ()
    exportable: bool = True
    runtime_inputs: tuple[str, ...] = ("image",)
    style_resolver: Callable[[IOContract], Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def named_styles(contract: IOContract) -> NamedStyles:
    """One weight per style named in ``contract.styles`` (numbered ``0 … D-1`` when a file names none)."""
    return NamedStyles(contract.styles or tuple(map(str, range(contract.condition_dim))))


def _transformer_kwargs(state: StateDict) -> dict[str, Any]:
    """Width and residual-block count of a TransformerNet state dict (pytorch/examples layout)."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^res(\d+)\.", k))}
    return {"width": state["conv1.conv2d.weight"].shape[0] / 32.0, "num_residual": max(blocks, default=0)}


def _generator_kwargs(state: StateDict) -> dict[str, Any]:
    """``ngf`` and block count of a ResnetGenerator state dict (the CycleGAN authors' layout)."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^model\.(\d+)\.conv_block\.", k))}
    stem = state["model.1.weight"]
    return {"ngf": int(stem.shape[0]), "n_blocks": len(blocks), "in_channels": int(stem.shape[1]), "out_channels": 3}


def _multistyle_kwargs(state: StateDict) -> dict[str, Any]:
    """A MultiStyleNet's constructor arguments from its weights' shapes (an exported file's initializers).

    Zero padding (an ablation variant) leaves no trace in the weights; a rebuild checks its output.
    """
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^res(\d+)\.", k))}
    n_styles, c1 = (int(v) for v in state["in1.weight"].shape)
    up = [int(state[f"in{i}.weight"].shape[1]) for i in (4, 5)]
    return {
        "n_styles": n_styles,
        "channels": [c1, int(state["in2.weight"].shape[1]), int(state["in3.weight"].shape[1])],
        "num_residual": len(blocks),
        "up_channels": up,
        "stem_kernel": int(state["conv1.conv2d.weight"].shape[-1]),
        "out_kernel": int(state["deconv3.conv2d.weight"].shape[-1]),
        "residual": "separable" if "res1.conv1.depthwise.weight" in state else "conv",
        "upsample": "shuffle" if state["deconv1.conv2d.weight"].shape[0] == 4 * up[0] else "resize",
    }


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="johnson",
            summary="Johnson et al. (2016) feed-forward transform net, one style per net",
            runtime_net=TransformerNet,
            checkpoint_names={"transformer_net": TransformerNet},
            contract=johnson_contract,
            foreign_layouts=(
                ForeignLayout("pytorch/examples fast_neural_style", "conv1.conv2d.weight", _transformer_kwargs),
            ),
        ),
        Family(
            name="cyclegan",
            summary="CycleGAN (Zhu et al. 2017) ResNet generator, one direction per net",
            runtime_net=ResnetGenerator,
            checkpoint_names={"resnet_generator": ResnetGenerator, "patch_discriminator": PatchDiscriminator},
            contract=cyclegan_contract,
            foreign_layouts=(ForeignLayout("CycleGAN authors'", "model.1.weight", _generator_kwargs),),
        ),
        Family(
            name="multistyle",
            summary="Dumoulin et al. (2017) conditional-instance-norm transform net: N styles in one net, "
            "chosen or blended by a weight per style",
            runtime_net=MultiStyleNet,
            checkpoint_names={"multistyle_net": MultiStyleNet},
            contract=multistyle_contract,
            # Our own exports only (no multi-style net is published as a bare state dict): the family's
            # .onnx files are rebuilt as the PyTorch net for the GPU. Johnson's marker is found first in
            # a bare pytorch/examples file, whose "in1.weight" is 1-D.
            foreign_layouts=(ForeignLayout("this project's multi-style export", "in1.weight", _multistyle_kwargs),),
            runtime_inputs=("image", "style"),
            style_resolver=named_styles,
        ),
        Family(
            name="arbitrary",
            summary="Ghiasi et al. (2017) arbitrary-style transform net: any picture is the style, "
            "through the style vector its predictor computes (Magenta's published weights)",
            runtime_net=ArbitraryTransformNet,
            checkpoint_names={"arbitrary_transform_net": ArbitraryTransformNet},
            contract=arbitrary_contract,
            runtime_inputs=("image", "style"),
            style_resolver=arbitrary_styles,
        ),
    )
}


def family(name: str) -> Family:
    """The family called ``name``; :class:`InvalidValue` (setting ``family``) for an unknown one."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise InvalidValue("family", f"{name!r} is not a model family; known: {', '.join(FAMILIES)}") from None


def architectures() -> dict[str, type[nn.Module]]:
    """Every network class of every family, by the name stored in checkpoints."""
    return {name: cls for f in FAMILIES.values() for name, cls in f.checkpoint_names.items()}


def arch_name(model: nn.Module) -> str:
    """The checkpoint name of ``model``'s class (``KeyError`` for a class no family owns)."""
    for name, cls in architectures().items():
        if type(model) is cls:
            return name
    raise KeyError(f"{type(model).__name__} is not a registered architecture")


def build(arch: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Instantiate a registered architecture from its stored constructor arguments."""
    return architectures()[arch](**kwargs)


def family_of(model: nn.Module) -> Family | None:
    """The family whose runtime net ``model`` is, else ``None`` (a discriminator, a foreign module)."""
    for f in FAMILIES.values():
        if type(model) is f.runtime_net:
            return f
    return None


def style_resolver(contract: IOContract) -> Any:
    """The style resolver of a conditioned model (``contract.condition_dim > 0``): its family's, else
    one weight per name in ``contract.styles`` (foreign multi-style files)."""
    owner = FAMILIES.get(contract.family)
    if owner is not None and owner.style_resolver is not None:
        return owner.style_resolver(contract)
    return named_styles(contract)


def detect_foreign(state: StateDict) -> tuple[Family, ForeignLayout] | None:
    """The family and published layout a bare state dict is in, by its marker key; ``None`` if unknown."""
    for f in FAMILIES.values():
        for layout in f.foreign_layouts:
            if layout.marker in state:
                return f, layout
    return None
