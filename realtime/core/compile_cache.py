"""Where ``torch.compile`` keeps what it built, so a second start of the same model and size is fast.

Inductor's FX-graph and AOT caches and Triton's kernel cache go under the project's cache folder
(:func:`realtime.core.download.cache_dir` ``/ "torch-compile"``) instead of ``/tmp``, which is
often wiped at boot. Variables the user set (``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR``)
win. Call :func:`use_compile_cache` before the first compilation of the process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from realtime.core.download import cache_dir

log = logging.getLogger(__name__)


def use_compile_cache() -> Path:
    """Point the compile caches at the project's cache folder (unless already set); returns Inductor's folder."""
    root = cache_dir("torch-compile")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
    # On by default in current PyTorch; said explicitly so an older default cannot turn the disk cache off.
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    folder = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    log.debug("torch.compile caches in %s", folder)
    return folder
