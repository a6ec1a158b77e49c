"""The ONNX Runtime backend: any ONNX style model, on TensorRT, CUDA or the CPU.

Models written by ``python -m export`` carry their IO contract in the metadata key
``nst_contract``. Foreign files (the ONNX Model Zoo's ``mosaic-9.onnx``: one input
``input1`` fixed at ``1x3x224x224``, RGB 0..255) get the Johnson contract, with
``fixed_size`` and the batch size read from the input's shape; ``input_range`` overrides
the assumed range. Pre/post-processing is :mod:`realtime.core.frames`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

try:  # one of the extras [cpu] / [gpu] installs it; this project's own .onnx files also run on PyTorch
    import onnxruntime as ort
except ImportError:  # pragma: no cover - exercised by monkeypatching ort to None
    ort = None

from realtime.core.contract import IOContract
from realtime.core.download import cache_dir
from realtime.core.errors import InvalidValue, UserError
from realtime.core.frames import from_model_output, size_groups, to_model_input
from realtime.core.nets.families import FAMILIES
from realtime.core.onnx_file import CONTRACT_KEY

log = logging.getLogger(__name__)

AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}


def provider_name(name: str) -> str:
    """``"cuda"``, ``"CUDA"`` or ``"CUDAExecutionProvider"`` -> ``"CUDAExecutionProvider"``."""
    key = name.strip()
    if key.endswith("ExecutionProvider"):
        return key
    return PROVIDER_ALIASES.get(key.lower(), key + "ExecutionProvider")


def choose_providers(
    requested: str | Sequence[str] | None, available: Sequence[str], strict: bool = False
) -> list[str]:
    """Execution providers to try, best first; the CPU always ends the list.

    ``None``: TensorRT, CUDA, CPU, as far as ``available``. A requested provider that is
    missing logs a warning and falls back to the automatic order, or raises
    :class:`UserError` when ``strict``.
    """
    if requested is None:
        return [p for p in AUTO_ORDER if p in available]
    names = [requested] if isinstance(requested, str) else list(requested)
    chosen = []
    for name in map(provider_name, names):
        if name in available:
            chosen.append(name)
            continue
        message = f"ONNX Runtime provider {name} is not available here (available: {', '.join(available)})"
        if strict:
            raise InvalidValue(
                "provider", f"{name}: {message}; install onnxruntime-gpu for CUDA/TensorRT, or choose another provider"
            )
        log.warning("%s; falling back to %s", message, ", ".join(p for p in AUTO_ORDER if p in available))
    if not chosen:
        return [p for p in AUTO_ORDER if p in available]
    if chosen[-1] == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in available:
        chosen.append("CUDAExecutionProvider")  # runs what TensorRT cannot, still on the GPU
    return list(dict.fromkeys(chosen + ["CPUExecutionProvider"]))


def _provider_options(name: str) -> dict[str, str]:
    if name == "TensorrtExecutionProvider":
        options = {"trt_fp16_enable": "True"}
        cache = cache_dir("tensorrt")
        try:  # engines take minutes to build: keep them per model and input shape across runs
            cache.mkdir(parents=True, exist_ok=True)
            options.update(trt_engine_cache_enable="True", trt_engine_cache_path=str(cache))
        except OSError as exc:
            log.warning("cannot create the TensorRT engine cache %s (%s); engines will be rebuilt", cache, exc)
        return options
    return {}


ORT_MISSING = (
    "ONNX Runtime is not installed; pip install onnxruntime (CPU) or onnxruntime-gpu (NVIDIA), "
    "or reinstall with the extra [cpu] or [gpu]"
)


def ort_missing() -> bool:
    """True when no ONNX Runtime package is installed (a base install without the [cpu]/[gpu] extra)."""
    return ort is None


def cpu_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxStylizer:
    """Stylise frames with an ONNX model through ONNX Runtime (implements ``Stylizer``).

    ``providers``: None for automatic (TensorRT, CUDA, CPU), or a name / list of names
    (``"cuda"``, ``"CPUExecutionProvider"``…). ``threads``: intra-op threads (default: the
    cores available). ``input_range``: ``(lo, hi)`` overriding the contract's value range.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        *,
        input_range: tuple[float, float] | None = None,
        strict: bool = False,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"no such model file: {self.path}")
        if ort is None:
            raise UserError(f"{self.path.name} needs ONNX Runtime: {ORT_MISSING}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads) if threads else cpu_cores()
        options.log_severity_level = 3  # errors only; ORT's warnings about unused initializers are noise
        # Idle worker threads sleep instead of spinning: the pipeline's decode and encode threads
        # share the cores, and spinning cost ~20% fps on 2 busy cores (measured by the video helper).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        chosen = choose_providers(providers, ort.get_available_providers(), strict)
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=options,
                providers=chosen,
                provider_options=[_provider_options(p) for p in chosen],
            )
        except Exception as exc:  # InvalidProtobuf, Fail, InvalidGraph, NoSuchFile … are not exported types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"{self.path} is not a loadable ONNX model (corrupt or truncated?): {first[:200]}"
            ) from None
        self.providers = self.session.get_providers()
        dropped = [p for p in chosen if p not in self.providers]
        if dropped:  # e.g. onnxruntime-gpu without the CUDA/cuDNN libraries it was built for
            message = f"{', '.join(dropped)} failed to start (missing GPU libraries?)"
            if strict and providers is not None:
                raise UserError(
                    f"{self.path.name}: {message}; running on {', '.join(self.providers)} instead was not allowed"
                )
            log.warning("%s: %s; running on %s", self.path.name, message, ", ".join(self.providers))
        log.info("%s runs on %s", self.path.name, ", ".join(self.providers))
        self._input, self._output = self._check_io()
        self.batch_size = _dim(self._input.shape[0])  # None: any batch
        self._dtype = np.float16 if self._input.type == "tensor(float16)" else np.float32
        self.contract = self._read_contract(input_range)
        self.name = name or self.contract.name or self.path.stem
        self.condition: np.ndarray | None = None  # the style vector of a conditioned net, (D,) float32

    def _check_io(self) -> tuple[ort.NodeArg, ort.NodeArg]:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) not in (1, 2) or not outputs:
            raise UserError(
                f"{self.path.name}: expected an image input (and optionally a style vector) and an output, "
                f"found {len(inputs)} inputs and {len(outputs)} outputs"
            )
        self._condition_input = inputs[1] if len(inputs) == 2 else None
        if self._condition_input is not None and len(self._condition_input.shape) not in (1, 2, 4):
            raise UserError(
                f"{self.path.name}: second input {self._condition_input.name!r} has shape "
                f"{self._condition_input.shape}; a style vector is (D,), (N, D) or (N, 1, 1, D)"
            )
        arg = inputs[0]
        if len(arg.shape) != 4:
            raise UserError(
                f"{self.path.name}: input {arg.name!r} has rank {len(arg.shape)} {arg.shape}; "
                "a style model takes a 4-D (N, 3, H, W) image batch"
            )
        if arg.type not in ("tensor(float)", "tensor(float16)"):
            raise UserError(f"{self.path.name}: input {arg.name!r} is {arg.type}; expected float32 or float16")
        return arg, outputs[0]

    def _read_contract(self, input_range: tuple[float, float] | None) -> IOContract:
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONTRACT_KEY in meta:
            try:
                contract = IOContract.from_json(meta[CONTRACT_KEY])
            except (ValueError, TypeError) as exc:
                raise UserError(f"{self.path.name}: unreadable {CONTRACT_KEY} metadata ({exc})") from None
        else:
            owner = FAMILIES.get(meta.get("nst_family", ""), FAMILIES["johnson"])
            contract = owner.contract(name=self.path.stem, provenance={"source": "ONNX file without nst metadata"})
        layout = contract.layout
        channels = self._input.shape[1] if layout == "NCHW" else self._input.shape[3]
        if isinstance(channels, int) and channels != 3:
            raise UserError(
                f"{self.path.name}: input {self._input.name!r} has {channels} channels "
                f"{self._input.shape}; a style model takes 3 (RGB)"
            )
        hw = self._input.shape[2:4] if layout == "NCHW" else self._input.shape[1:3]
        if _dim(hw[0]) and _dim(hw[1]):
            contract = contract.replace(fixed_size=(int(hw[0]), int(hw[1])))
        if input_range is not None:
            contract = contract.replace(value_range=tuple(float(v) for v in input_range))
        if self._condition_input is not None and not contract.condition_dim:
            size = _dim(self._condition_input.shape[-1])
            if not size:
                raise UserError(f"{self.path.name}: the style vector input has no fixed length")
            contract = contract.replace(condition_dim=size, styles=contract.styles or tuple(map(str, range(size))))
        return contract

    def _feeds(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The session's inputs for a batch ``x``: the images, plus the style vector of a conditioned net."""
        feeds = {self._input.name: x.astype(self._dtype, copy=False)}
        arg = self._condition_input
        if arg is None:
            return feeds
        if self.condition is None:
            raise InvalidValue("style", f"model {self.name!r} needs a style vector before it can run")
        vector = np.asarray(self.condition, dtype=np.float16 if arg.type == "tensor(float16)" else np.float32)
        rank, batch = len(arg.shape), x.shape[0]
        if rank == 1:
            feeds[arg.name] = vector
        else:
            rows = batch if _dim(arg.shape[0]) in (None, batch) else 1
            feeds[arg.name] = np.broadcast_to(vector, (rows, *([1, 1] if rank == 4 else []), vector.size)).copy()
        return feeds

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(H, W, 3)`` uint8 RGB."""
        return self.stylize_batch([frame])[0]

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Frames of one size in one run (or in runs of the model's fixed batch size); mixed sizes are grouped."""
        frames = list(frames)
        out: list[np.ndarray | None] = [None] * len(frames)
        for group in size_groups(frames):
            step = self.batch_size or len(group)
            for start in range(0, len(group), step):
                idx = group[start : start + step]
                chunk = [frames[i] for i in idx]
                if self.batch_size:  # a fixed-batch model: fill the last run with copies
                    chunk += [chunk[-1]] * (step - len(chunk))
                x, crop = to_model_input(chunk, self.contract)
                y = self.session.run([self._output.name], self._feeds(x))[0]
                for i, styled in zip(idx, from_model_output(y, self.contract, crop)):
                    out[i] = styled
        return out  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"OnnxStylizer({self.path.name!r}, providers={self.providers})"
