"""Shared test fixtures: small generated images, and a headless Qt for OpenCV."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """The whole run uses its own model cache: nothing from the user's cache leaks in, nothing is left there."""
    before = os.environ.get("NST_CACHE")
    os.environ["NST_CACHE"] = str(tmp_path_factory.mktemp("nst-cache"))
    yield
    if before is None:
        os.environ.pop("NST_CACHE", None)
    else:
        os.environ["NST_CACHE"] = before


REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: thread hand-offs would cost more than the work on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def samples() -> Path:
    return SAMPLES
