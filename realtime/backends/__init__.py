"""Stylizer backends: ONNX Runtime (:class:`OnnxStylizer`) and PyTorch (:class:`TorchStylizer`).

Both implement :class:`realtime.core.stylizer.Stylizer` and share :mod:`realtime.core.frames` for
pre/post-processing. Pick one through :func:`realtime.backends.loader.load_stylizer`.
"""

from __future__ import annotations

from realtime.backends.onnx_backend import OnnxStylizer, choose_providers, provider_name
from realtime.backends.torch_backend import TorchStylizer, is_torchscript, load_torch_model

__all__ = ["OnnxStylizer", "TorchStylizer", "choose_providers", "is_torchscript", "load_torch_model", "provider_name"]
