"""What the nst-serve tests share: fake stylizers (one with run-time styles) and an in-process server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence

import numpy as np
from aiohttp import web
from fakes import IdentityStylizer

from realtime.core.styles import StyleTerm
from realtime.serve.app import ServeConfig, Server, make_app
from realtime.serve.catalog import Catalogue, Entry
from realtime.serve.engine import BatchPolicy, Engine
from realtime.serve.settings import Settings

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class Invert(IdentityStylizer):
    """255 - frame; records the size of every batch it is given."""

    name = "invert"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.batches.append(len(frames))
        self.threads.add(threading.current_thread().name)
        return [255 - f for f in frames]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.stylize_batch([frame])[0]


class SlowInvert(Invert):
    """Invert at about 10 frames a second."""

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        time.sleep(0.1)
        return super().stylize_batch(frames)


class Palette(IdentityStylizer):
    """A fake net with run-time styles (implements StyleControl): paints the frame in its style vector's colour.

    Styles ``red``, ``green``, ``blue``; the vector is the blend weights, so ``red:0.5,blue:0.5``
    paints (128, 0, 128).
    """

    name = "palette"

    def __init__(self) -> None:
        super().__init__()
        self._vector = np.array([1.0, 0.0, 0.0], np.float32)
        self.batches: list[tuple[int, tuple[float, ...]]] = []

    def style_names(self) -> list[str]:
        return list(COLOURS)

    def style_vector(self, terms: Sequence[StyleTerm]) -> np.ndarray:
        vector = np.zeros(3, np.float32)
        for term in terms:
            vector[list(COLOURS).index(term.key)] += term.weight
        return vector / vector.sum()

    def set_style(self, vector: np.ndarray) -> None:
        self._vector = np.asarray(vector, np.float32).copy()

    def current_style(self) -> np.ndarray:
        return self._vector.copy()

    def stylize_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.batches.append((len(frames), tuple(float(v) for v in self._vector)))
        colour = np.clip(np.rint(self._vector @ np.array(list(COLOURS.values()), np.float32)), 0, 255)
        return [np.broadcast_to(colour.astype(np.uint8), f.shape).copy() for f in frames]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.stylize_batch([frame])[0]


class Loader:
    """``load(source)`` for a Catalogue: builds fakes by name and counts loads."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.built: dict[str, list] = {}
        self.extra: dict[str, object] = {}  # more names: a factory each

    def __call__(self, source: str):
        self.loads.append(source)
        if source == "broken":
            raise RuntimeError("this model file is damaged")
        factories = {"invert": Invert, "palette": Palette, "slow": SlowInvert, "identity": IdentityStylizer}
        stylizer = {**factories, **self.extra}[source]()
        self.built.setdefault(source, []).append(stylizer)
        return stylizer


def entries(*names: str, pinned: Sequence[str] = ("invert", "slow")) -> list[Entry]:
    return [Entry(f"m{i}", name, name, pinned=name in pinned) for i, name in enumerate(names)]


@contextlib.asynccontextmanager
async def running_server(
    names: Sequence[str] = ("invert", "palette"),
    *,
    token: str | None = None,
    max_clients: int = 4,
    batch: str = "on",
    idle_timeout: float = 10.0,
    size: tuple[int, int] | None = None,
    loader: Loader | None = None,
):
    """An nst-serve application on a free loopback port: yields ``(url, server, loader)``."""
    loader = loader or Loader()
    engine = Engine(BatchPolicy(batch, 8))
    catalogue = Catalogue(entries(*names), loader, engine)
    for entry in catalogue.entries.values():
        if entry.pinned:
            await catalogue.pin(entry.id)
    config = ServeConfig(
        default=Settings(model="m0"),
        token=token,
        max_clients=max_clients,
        size=size,
        idle_timeout=idle_timeout,
    )
    server = Server(config, catalogue, engine)
    runner = web.AppRunner(make_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/", server, loader
    finally:
        await runner.cleanup()


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Wait until ``predicate()`` is true; AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def solid(colour: tuple[int, int, int], width: int = 96, height: int = 64) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()
