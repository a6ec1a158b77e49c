"""The PyTorch backend: an eager network, a checkpoint (.pth) or a TorchScript file (.pt).

On CUDA, eager nets run in float16 by default (the TorchScript files of ``python -m export``
keep the precision they were exported with), frames go up through a reused pinned buffer
with ``non_blocking`` copies, and pre/post-processing runs on the GPU
(:func:`realtime.core.frames.to_model_tensor`), so only uint8 crosses the bus. ``channels_last``
defaults to on only with ``compile``: ATen's ``instance_norm`` makes its input contiguous,
so in eager mode NHWC buys a transpose around every norm layer, whereas the compiler fuses
the norm and keeps NHWC. ``compile`` uses ``torch.compile`` for one fixed resolution
(CUDA graphs on CUDA) and falls back to eager if compilation fails.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realtime.core.checkpoint import load_model
from realtime.core.contract import IOContract, johnson_contract
from realtime.core.errors import InvalidValue, UserError
from realtime.core.frames import (
    check_frames,
    from_model_output,
    from_model_tensor,
    size_groups,
    to_model_input,
    to_model_tensor,
)
from realtime.core.torchscript_file import load_torchscript

log = logging.getLogger(__name__)


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (it holds compiled ``code/``), False for a ``torch.save`` checkpoint."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_torch_model(path: str | os.PathLike, device: torch.device) -> tuple[nn.Module, IOContract, bool]:
    """Load a TorchScript file or a checkpoint: ``(module, contract, scripted)``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such model file: {path}")
    if is_torchscript(path) or (path.suffix.lower() == ".pt" and not zipfile.is_zipfile(path)):
        module, contract, _ = load_torchscript(path, device)
        if contract is None:
            contract = johnson_contract(name=path.stem, provenance={"source": "TorchScript without nst contract"})
            log.warning("%s carries no IO contract; assuming a Johnson net (RGB 0..255)", path.name)
        return module, contract, True
    loaded = load_model(path)
    return loaded.model.to(device), loaded.contract, False


class TorchStylizer:
    """Stylise frames with a PyTorch network (implements ``Stylizer``).

    ``model``: an ``nn.Module`` (then ``contract`` is required; it is moved and cast in place,
    so a net still being trained can be previewed live) or a path to a ``.pth`` checkpoint or
    a ``.pt`` TorchScript file (``contract`` then overrides the file's). Not thread-safe: one
    inference thread per stylizer (the pinned buffers are reused between calls).
    ``device``: a resolved ``torch.device`` (or its string). ``half``/``channels_last``:
    None picks the defaults described in the module docstring.
    """

    def __init__(
        self,
        model: nn.Module | str | os.PathLike,
        contract: IOContract | None = None,
        device: torch.device | str = "cpu",
        half: bool | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        name: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if isinstance(model, nn.Module):
            if contract is None:
                raise ValueError("TorchStylizer(nn.Module) needs the model's IOContract")
            module, file_contract, scripted = model, contract, isinstance(model, torch.jit.ScriptModule)
        else:
            module, file_contract, scripted = load_torch_model(model, self.device)
        self.contract = contract or file_contract
        self.name = name or self.contract.name or (Path(model).stem if not isinstance(model, nn.Module) else "model")
        self.half = bool(cuda and not scripted) if half is None else bool(half)
        if self.half and scripted:
            raise InvalidValue("half", "needs a checkpoint (.pth); export a half-precision TorchScript file instead")
        if self.half and not cuda:
            log.warning("float16 on %s is slow or unsupported; using float32", self.device)
            self.half = False
        self.channels_last = bool(cuda and compile) if channels_last is None else bool(channels_last)
        self.dtype = torch.float16 if self.half else torch.float32
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        module = module.to(self.device).eval()
        if not scripted:
            module = module.to(dtype=self.dtype, memory_format=self.memory_format)
        self.module = module
        self._forward: Callable[[torch.Tensor], torch.Tensor] = module
        if compile:
            if scripted:
                raise InvalidValue("compile", "needs a checkpoint (.pth), not a TorchScript file")
            self._forward = self._compiled(module)
        self._pinned_in: torch.Tensor | None = None
        self._pinned_out: torch.Tensor | None = None
        self.condition: np.ndarray | None = None  # the style vector of a conditioned net, (D,) float32

    def _compiled(self, module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        mode = "reduce-overhead" if self.device.type == "cuda" else "default"
        compiled = torch.compile(module, mode=mode, dynamic=False, fullgraph=True)

        def forward(*inputs: torch.Tensor) -> torch.Tensor:
            try:
                return compiled(*inputs)
            except Exception as exc:  # missing compiler/triton: keep running, eagerly
                log.warning("torch.compile failed (%s); running eagerly", str(exc).splitlines()[0][:160])
                self._forward = module
                return module(*inputs)

        return forward

    def _pinned(self, attr: str, shape: tuple[int, ...]) -> torch.Tensor:
        buffer = getattr(self, attr)
        if buffer is None or tuple(buffer.shape) != shape:
            buffer = torch.empty(shape, dtype=torch.uint8, pin_memory=self.device.type == "cuda")
            setattr(self, attr, buffer)
        return buffer

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(H, W, 3)`` uint8 RGB."""
        return self.stylize_batch([frame])[0]

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Frames of one size in one forward pass; mixed sizes are grouped."""
        frames = list(frames)
        out: list[np.ndarray | None] = [None] * len(frames)
        with torch.inference_mode():
            for group in size_groups(frames):
                for i, styled in zip(group, self._run([frames[i] for i in group])):
                    out[i] = styled
        return out  # type: ignore[return-value]

    def _run(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        if self.contract.fixed_size or self.contract.layout != "NCHW":
            x, crop = to_model_input(frames, self.contract)
            y = self._forward(*self._inputs(torch.from_numpy(x).to(self.device, self.dtype)))
            return from_model_output(y.float().cpu().numpy(), self.contract, crop)
        check_frames(frames)
        if self.device.type == "cuda":
            host = self._pinned("_pinned_in", (len(frames), *frames[0].shape))
            np.stack(frames, out=host.numpy())
            batch = host.to(self.device, non_blocking=True)
        else:
            batch = torch.from_numpy(np.stack(frames))
        x, crop = to_model_tensor(batch, self.contract, self.dtype, self.memory_format)
        styled = from_model_tensor(self._forward(*self._inputs(x)), self.contract, crop)
        if self.device.type == "cuda":
            result = self._pinned("_pinned_out", tuple(styled.shape))
            result.copy_(styled, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return [f.numpy().copy() for f in result]
        return [f.numpy() for f in styled]

    def _inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The net's inputs for a batch ``x``: the images, plus the style vector ``(B, D)`` of a conditioned net."""
        if not self.contract.condition_dim:
            return (x,)
        condition = self.condition
        if condition is None:
            raise InvalidValue("style", f"model {self.name!r} needs a style vector before it can run")
        vector = torch.from_numpy(np.asarray(condition, dtype=np.float32)).to(self.device, self.dtype)
        return x, vector.reshape(1, -1).expand(x.shape[0], -1)

    def __repr__(self) -> str:
        return (
            f"TorchStylizer({self.name!r}, device={self.device}, dtype={self.dtype}, "
            f"channels_last={self.channels_last})"
        )
