"""Which network a Johnson run trains, for which styles, and which of its parameters learn.

* one style image: a :class:`TransformerNet` (the paper's one-style net);
* several: one :class:`MultiStyleNet` for all of them (Dumoulin et al. 2017), every style a row of
  its conditional-norm tables;
* ``--init-from`` a trained one-style net: a multi-style run starts with its convolutions and its
  norm parameters in every style's row (``johnson`` width only); a one-style run fine-tunes it;
* ``--init-from`` a trained multi-style net: the style images are *added* as new styles and only
  their norm rows learn (the paper's fast path); the old styles stay bit for bit.

A :class:`StylePlan` says all of that; its :meth:`StylePlan.state` goes into the checkpoint, so
``--resume`` continues the same plan without the ``--init-from`` file.

Slim nets and their output layer: the nets paint 0..255 directly through their last convolution,
which starts with outputs near 0 (a black picture). Each Adam step moves every weight by about the
learning rate, so how fast the output reaches the picture's range grows with that layer's fan-in:
the paper's 9x9 conv from 32 channels (2,592 inputs per output) gets there in a few hundred steps,
the slim multi-style preset's 3x3 conv from 8 channels (72) would take 36 times longer (measured: a
dark, colourless picture after 1,200 steps). So a fresh net starts at mid-grey (output bias 127.5),
and the output conv learns ``2592 / fan_in`` times faster (:meth:`StylePlan.param_groups`): the
paper's own net is unchanged, every slimmer one moves its output as fast as the paper's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from realtime.core.checkpoint import LoadedModel, load_model
from realtime.core.errors import InvalidValue, UserError
from realtime.core.nets.multistyle import MultiStyleNet, add_styles, from_single_style, style_parameters
from realtime.core.nets.transformer import TransformerNet
from realtime.core.onnx_weights import torch_model_from_onnx

log = logging.getLogger(__name__)

REFERENCE_OUTPUT_FAN_IN = 32 * 9 * 9  # the paper's output conv: 32 channels in, 9x9
MID_GREY = 127.5  # a fresh net's output bias: the middle of 0..255


def output_conv(net: nn.Module) -> nn.Conv2d:
    """The convolution that paints RGB (``deconv3.conv2d`` in the Johnson layout, one- and multi-style)."""
    return net.deconv3.conv2d


def output_lr_scale(net: nn.Module) -> float:
    """How much faster than the rest the output conv learns: ``2592 / fan_in``, at least 1 (see the module doc)."""
    conv = output_conv(net)
    fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
    return max(1.0, REFERENCE_OUTPUT_FAN_IN / fan_in)


def start_at_mid_grey(net: nn.Module) -> nn.Module:
    """A fresh net paints mid-grey, not black: the output conv's bias set to 127.5 (returns ``net``)."""
    with torch.no_grad():
        output_conv(net).bias.fill_(MID_GREY)
    return net


@dataclass
class StylePlan:
    """The net of a run and its styles.

    ``names``: the net's styles in the order of its weight vector (one name for a one-style net);
    ``trained``: the net's style index of each style image of this run, in the run's order;
    ``rows_only``: only those styles' norm rows learn (styles added to a trained multi-style net);
    ``images``: style name -> style image file name, for provenance (old styles' come from the
    net the run started from); ``start_meta``: the metadata of the ``--init-from`` checkpoint.
    """

    model: nn.Module
    names: list[str]
    trained: list[int]
    rows_only: bool = False
    images: dict[str, str] = field(default_factory=dict)
    start_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def multi(self) -> bool:
        return isinstance(self.model, MultiStyleNet)

    def parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates: every parameter, or only the norm tables for added styles."""
        if not self.rows_only:
            return list(self.model.parameters())
        tables = style_parameters(self.model)
        keep = {id(p) for p in tables}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in keep)
        return tables

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: :meth:`parameters` at ``lr``, the output conv (when it learns)
        at ``lr * output_lr_scale`` (see the module doc)."""
        learning = self.parameters()
        out = {id(p) for p in output_conv(self.model).parameters()}
        scale = output_lr_scale(self.model)
        rest = [p for p in learning if id(p) not in out]
        head = [p for p in learning if id(p) in out]
        if not head or scale == 1.0:
            return [{"params": learning, "lr": lr}]
        return [{"params": rest, "lr": lr}, {"params": head, "lr": lr * scale}]

    def learning(self) -> tuple[int, int]:
        """``(parameters that learn, all parameters)``: for an added style, its norm rows only."""
        total = sum(p.numel() for p in self.model.parameters())
        if not self.rows_only:
            return total, total
        rows = sum(p.shape[1] for p in style_parameters(self.model)) * len(self.trained)
        return rows, total

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the plan (plain data)."""
        return {"names": list(self.names), "trained": list(self.trained), "rows_only": self.rows_only}


def style_names(paths: Sequence[str]) -> list[str]:
    """Style names from image files: their stems (``samples/styles/the_scream.jpg`` -> ``the_scream``)."""
    names: dict[str, str] = {}
    for path in paths:
        name = Path(path).stem
        if name in names:
            raise InvalidValue(
                "style",
                f"two images are called {name!r} ({names[name]} and {path}); a multi-style net names its "
                "styles by their file names",
            )
        names[name] = str(path)
    return list(names)


def read_net(path: str) -> LoadedModel:
    """A trained net from a checkpoint (``.pth``) or one of this project's ONNX files (``.onnx``)."""
    if Path(path).suffix.lower() == ".onnx":
        return torch_model_from_onnx(path)
    return load_model(path)


def new_plan(arch: str, style_paths: Sequence[str], init_from: str | None = None) -> StylePlan:
    """The plan of a fresh run (see the module docstring)."""
    names = style_names(style_paths)
    images = {n: Path(p).name for n, p in zip(names, style_paths)}
    every = list(range(len(names)))
    if init_from is None:
        if len(names) == 1:
            return StylePlan(start_at_mid_grey(TransformerNet.from_arch(arch)), names, every, images=images)
        fresh = start_at_mid_grey(MultiStyleNet.from_arch(arch, len(names)))
        return StylePlan(fresh, names, every, images=images)
    start = read_net(init_from)
    net = start.model
    if isinstance(net, MultiStyleNet):
        return _added_styles(start, arch, names, images, init_from)
    if not isinstance(net, TransformerNet):
        raise InvalidValue("init_from", f"{init_from} holds a {type(net).__name__}, not a Johnson or multi-style net")
    if len(names) == 1:
        wanted = TransformerNet.from_arch(arch)
        if net.arch_kwargs() != wanted.arch_kwargs():
            raise InvalidValue(
                "arch", f"{arch} {wanted.arch_kwargs()} differs from {init_from}: a TransformerNet {net.arch_kwargs()}"
            )
        return StylePlan(net, names, every, images=images)
    multi = from_single_style(net, len(names))
    wanted = MultiStyleNet.from_arch(arch, len(names))
    if multi.arch_kwargs() != wanted.arch_kwargs():
        raise InvalidValue(
            "init_from",
            f"{init_from} is a one-style TransformerNet {net.arch_kwargs()}; a {arch} multi-style net starts only "
            "from a one-style net of the johnson architecture, or from a multi-style net of its own",
        )
    return StylePlan(multi, names, every, images=images)


def _added_styles(start: LoadedModel, arch: str, names: list[str], images: dict[str, str], path: str) -> StylePlan:
    net: MultiStyleNet = start.model  # type: ignore[assignment]
    wanted = {k: v for k, v in MultiStyleNet.from_arch(arch, 1).arch_kwargs().items() if k != "n_styles"}
    theirs = {k: v for k, v in net.arch_kwargs().items() if k != "n_styles"}
    if theirs != wanted:
        other = next((a for a in ("johnson", "small") if _preset(a) == theirs), "custom")
        raise InvalidValue("arch", f"{arch} differs from {path}: a multi-style net of the {other} architecture")
    old = list(start.contract.styles) or [str(i) for i in range(net.n_styles)]
    clash = [n for n in names if n in old]
    if clash:
        raise InvalidValue(
            "style",
            f"{', '.join(clash)} is already one of the styles of {path} ({', '.join(old)}); list only the new "
            "styles to add, or continue that net's own run with {resume}",
            mentions=("resume",),
        )
    bigger = add_styles(net, len(names))
    known = dict((start.contract.provenance or {}).get("style_images") or {})
    return StylePlan(
        bigger,
        old + names,
        list(range(len(old), len(old) + len(names))),
        rows_only=True,
        images={**{n: known.get(n, "") for n in old}, **images},
        start_meta=dict(start.meta),
    )


def _preset(arch: str) -> dict[str, Any]:
    return {k: v for k, v in MultiStyleNet.from_arch(arch, 1).arch_kwargs().items() if k != "n_styles"}


def resumed_plan(loaded: LoadedModel, style_paths: Sequence[str]) -> StylePlan:
    """The plan of the run stored in ``loaded`` (a resumable checkpoint), with its net."""
    state = (loaded.training or {}).get("styles")
    images = dict((loaded.contract.provenance or {}).get("style_images") or {})
    if state is None:  # a checkpoint from before multi-style training: one style
        names = style_names(style_paths)
        return StylePlan(loaded.model, names, [0], images=images or {names[0]: Path(style_paths[0]).name})
    plan = StylePlan(loaded.model, list(state["names"]), list(state["trained"]), bool(state["rows_only"]), images)
    if len(plan.trained) != len(style_paths):
        raise UserError(f"the run being resumed trains {len(plan.trained)} style(s), this one {len(style_paths)}")
    return plan
