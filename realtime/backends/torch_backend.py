"""The PyTorch backend: an eager network, a checkpoint (.pth), one of our .onnx files, or a TorchScript file (.pt).

On CUDA the defaults are the fastest setting measured (:data:`CUDA_SETTINGS`): ``torch.compile``
with CUDA graphs (``mode="reduce-overhead"``), one graph per frame size, warmed up before the
first frame of a size is returned, the whole uint8 -> model -> uint8 step in one compiled
function (pre/post-processing fused into the first and last layers), in float16 and
channels_last; ``compile=False`` (``--no-compile``) runs eager float32, because eager float16
*loses* to float32 on these nets (instance norm and reflection pads; H200, Johnson 1080p:
fp32 19.1 ms, fp16 23.0 ms, fp16 channels_last 27.5 ms, compiled fp16 7.8 ms;
``python -m bench gpu`` re-measures every choice). Compiled code is cached on disk
(:mod:`realtime.core.compile_cache`), so a second start reaches its first frame in seconds. On
the CPU nothing is compiled unless asked for, in float32. Frames go up through a reused pinned
buffer with ``non_blocking`` copies, so only uint8 crosses the bus; ``keep_on_device`` hands
the stylised frames back as CUDA tensors for stages and sinks that work on the GPU
(:mod:`realtime.stages.stabilize_torch`, the video writer's YUV conversion).
"""

from __future__ import annotations

import logging
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realtime.core.checkpoint import load_model
from realtime.core.compile_cache import use_compile_cache
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
from realtime.core.onnx_weights import torch_model_from_onnx
from realtime.core.torchscript_file import load_torchscript

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The CUDA defaults, (precision, channels_last) by whether the net is compiled: the H200
# measurements (Johnson 1080p, uint8 frame in and out). Eager: fp32 19.1 ms beats fp16 23.0 and
# fp16 channels_last 27.5. Compiled with CUDA graphs: fp16 channels_last 7.8 ms.
CUDA_SETTINGS = {True: ("fp16", True), False: ("fp32", False)}
WARMUP_CALLS = 3  # compile, record the CUDA graph, replay once


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (it holds compiled ``code/``), False for a ``torch.save`` checkpoint."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_torch_model(path: str | os.PathLike, device: torch.device) -> tuple[nn.Module, IOContract, bool]:
    """Load a TorchScript file, a checkpoint or one of our ONNX files: ``(module, contract, scripted)``.

    ``.onnx`` files are rebuilt as their PyTorch net (:func:`realtime.core.onnx_weights.torch_model_from_onnx`;
    :class:`~realtime.core.onnx_weights.NotRebuildable` for foreign files).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such model file: {path}")
    if path.suffix.lower() == ".onnx":
        loaded = torch_model_from_onnx(path)
        return loaded.model.to(device), loaded.contract, False
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
    so a net still being trained can be previewed live) or a path to a ``.pth`` checkpoint, one
    of our ``.onnx`` files or a ``.pt`` TorchScript file (``contract`` then overrides the file's).
    Not thread-safe: one inference thread per stylizer (the pinned buffers are reused).
    ``device``: a resolved ``torch.device`` (or its string). ``compile``: None compiles on CUDA
    only. ``precision`` (``fp32``/``fp16``/``bf16``; ``half=True`` is ``fp16``) and
    ``channels_last``: None picks :data:`CUDA_SETTINGS` on CUDA, fp32 contiguous elsewhere.
    ``keep_on_device``: on CUDA, return ``(H, W, 3)`` uint8 CUDA tensors instead of NumPy arrays.
    """

    def __init__(
        self,
        model: nn.Module | str | os.PathLike,
        contract: IOContract | None = None,
        device: torch.device | str = "cpu",
        half: bool | None = None,
        channels_last: bool | None = None,
        compile: bool | None = None,
        name: str | None = None,
        *,
        precision: str | None = None,
        keep_on_device: bool = False,
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
        if compile and scripted:
            raise InvalidValue("compile", "needs a checkpoint (.pth) or an .onnx file, not a TorchScript file")
        self.compiled = bool(cuda and not scripted) if compile is None else bool(compile)
        default_precision, default_layout = CUDA_SETTINGS[self.compiled] if cuda else ("fp32", False)
        if precision is None and half is not None:
            precision = "fp16" if half else "fp32"
        if precision is not None and precision not in PRECISIONS:
            raise InvalidValue("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if scripted and precision not in (None, "fp32"):
            raise InvalidValue("half", "needs a checkpoint (.pth); export a half-precision TorchScript file instead")
        # a TorchScript file keeps the precision it was exported with
        precision = precision or ("fp32" if scripted else default_precision)
        if precision != "fp32" and not cuda:
            log.warning("%s on %s is slow or unsupported; using float32", str(PRECISIONS[precision])[6:], self.device)
            precision = "fp32"
        self.precision = precision
        self.half = precision == "fp16"
        self.channels_last = (default_layout if cuda else False) if channels_last is None else bool(channels_last)
        self.dtype = PRECISIONS[precision]
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.keep_on_device = bool(keep_on_device)
        module = module.to(self.device).eval()
        if not scripted:
            module = module.to(dtype=self.dtype, memory_format=self.memory_format)
        self.module = module
        self._step: Callable[[torch.Tensor], torch.Tensor] = self._eager_step
        self._warm: set[tuple[int, tuple[int, ...]]] = set()
        if self.compiled:
            self._step = self._compiled_step()
        self._pinned_in: torch.Tensor | None = None
        self._pinned_out: torch.Tensor | None = None
        self.condition: np.ndarray | None = None  # the style vector of a conditioned net, (D,) float32

    # -- the step: (B, H, W, 3) uint8 on the device -> (B, H, W, 3) uint8 on the device --------
    def _eager_step(self, batch: torch.Tensor, *condition: torch.Tensor) -> torch.Tensor:
        x, crop = to_model_tensor(batch, self.contract, self.dtype, self.memory_format)
        return from_model_tensor(self.module(x, *condition), self.contract, crop)

    def _compiled_step(self) -> Callable[[torch.Tensor], torch.Tensor]:
        use_compile_cache()
        cuda = self.device.type == "cuda"
        compiled = torch.compile(self._eager_step, mode="reduce-overhead" if cuda else "default", dynamic=False)

        def step(batch: torch.Tensor, *condition: torch.Tensor) -> torch.Tensor:
            try:
                if cuda:  # each call is a new step: the previous outputs were already copied out
                    torch.compiler.cudagraph_mark_step_begin()
                return compiled(batch, *condition)
            except Exception as exc:  # missing compiler/triton: keep running, eagerly
                log.warning("torch.compile failed (%s); running eagerly", str(exc).splitlines()[0][:160])
                self._step, self.compiled = self._eager_step, False
                return self._eager_step(batch, *condition)

        return step

    def warm_up(self, height: int, width: int, batch: int = 1) -> None:
        """Compile (or load from the disk cache) and run the step for ``(batch, height, width)`` frames now.

        Called before the first timed frame; :meth:`stylize_batch` does it itself for a new size.
        """
        shape = (int(batch), int(height), int(width), 3)
        key = (threading.get_ident(), shape)  # CUDA graphs are recorded per thread (the pipeline's own)
        if key in self._warm:
            return
        self._warm.add(key)
        if not self.compiled or self.contract.fixed_size or self.contract.layout != "NCHW":
            return
        if self.contract.condition_dim and self.condition is None:
            self._warm.discard(key)  # a conditioned net warms up with its first style vector
            return
        log.info("compiling %s for %dx%d frames (cached on disk for the next start)", self.name, width, height)
        zeros = torch.zeros(shape, dtype=torch.uint8, device=self.device)
        with torch.inference_mode():
            for _ in range(WARMUP_CALLS):
                self._step(zeros, *self._conditions(shape[0]))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

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
            y = self.module(*self._inputs(torch.from_numpy(x).to(self.device, self.dtype)))
            return from_model_output(y.float().cpu().numpy(), self.contract, crop)
        check_frames(frames)
        cuda = self.device.type == "cuda"
        shape = (len(frames), *frames[0].shape)
        self.warm_up(shape[1], shape[2], shape[0])  # once per size and thread
        if cuda:
            host = self._pinned("_pinned_in", shape)
            np.stack(frames, out=host.numpy())
            batch = host.to(self.device, non_blocking=True)
        else:
            batch = torch.from_numpy(np.stack(frames))
        styled = self._step(batch, *self._conditions(len(frames)))
        if cuda and self.keep_on_device:
            return list(styled.clone())  # the CUDA graph reuses its output memory on the next call
        if cuda:
            result = self._pinned("_pinned_out", tuple(styled.shape))
            result.copy_(styled, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return [f.numpy().copy() for f in result]
        return [f.numpy() for f in styled]

    def _inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The net's inputs for a batch ``x``: the images, plus the style vector ``(B, D)`` of a conditioned net."""
        return (x, *self._conditions(x.shape[0]))

    def _conditions(self, batch: int) -> tuple[torch.Tensor, ...]:
        """``()``, or the style vector ``(batch, D)`` on the device for a conditioned net."""
        if not self.contract.condition_dim:
            return ()
        condition = self.condition
        if condition is None:
            raise InvalidValue("style", f"model {self.name!r} needs a style vector before it can run")
        vector = torch.from_numpy(np.asarray(condition, dtype=np.float32)).to(self.device, self.dtype)
        return (vector.reshape(1, -1).expand(batch, -1),)

    def __repr__(self) -> str:
        return (
            f"TorchStylizer({self.name!r}, device={self.device}, precision={self.precision}, "
            f"channels_last={self.channels_last}, compiled={self.compiled})"
        )
