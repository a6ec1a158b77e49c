"""The models a page can pick: loaded on demand, shared by the connections using them, with thumbnails.

Entries are the models named on the command line (loaded at start and kept: *pinned*) and
every other local model (``weights/``, ``$NST_WEIGHTS_DIR`` and the download cache), loaded
when a connection picks one and dropped when none uses it, so memory (GPU memory included)
goes back. Clients refer to entries by id (``m0``, ``m1``…), never by file name.

:meth:`Catalogue.scan` loads each entry once at start-up to learn the styles of models with
run-time styles (:class:`~realtime.core.styles.StyleControl`: multi-style and arbitrary-style
nets) and to render a thumbnail of each model and style on a sample picture shipped with the
package; thumbnails stay in memory. Rendering runs on the engine thread, because backends are
not safe to call from two threads at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import cv2
import numpy as np

from realtime.core.errors import UserError, one_line
from realtime.core.images import resize
from realtime.core.styles import StyleTerm, has_style_control
from realtime.serve.engine import Engine

log = logging.getLogger(__name__)

THUMB_SIZE = (160, 90)  # width, height
MAX_STYLES = 64  # styles listed (and thumbnailed) per model


def sample_picture(size: tuple[int, int] = THUMB_SIZE) -> np.ndarray:
    """The package's sample photo (``assets/sample.jpg``) at ``size`` (width, height), ``(H, W, 3)`` uint8 RGB."""
    data = resources.files("realtime.serve").joinpath("assets/sample.jpg").read_bytes()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size[1], size[0], "high")


def jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


@dataclass
class Entry:
    """A model in the catalogue. ``source``: what the loader gets (a name or a path); ``styles``: run-time styles."""

    id: str
    name: str
    source: str
    pinned: bool = False
    family: str = ""
    styles: list[str] = field(default_factory=list)
    error: str | None = None
    scanned: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "family": self.family,
            "styles": self.styles,
            "error": self.error,
            "pinned": self.pinned,
        }


@dataclass
class _Loaded:
    task: asyncio.Future
    refs: int = 0


def render_thumbnails(stylizer: Any, picture: np.ndarray, styles: Sequence[str]) -> list[bytes]:
    """JPEGs of ``picture`` through ``stylizer``: its default style, then each of ``styles`` (engine thread)."""
    thumbs = [jpeg(stylizer(picture))]
    if styles:
        saved = np.asarray(stylizer.current_style()).copy()
        try:
            for name in styles:
                stylizer.set_style(stylizer.style_vector([StyleTerm(name)]))
                thumbs.append(jpeg(stylizer(picture)))
        finally:
            stylizer.set_style(saved)
    return thumbs


class Catalogue:
    """Entries by id, the loaded stylizers with reference counts, and thumbnails.

    ``load(source)`` builds a stylizer (runs on a loader thread); ``engine`` runs thumbnails.
    ``on_unload`` runs after a model is dropped (e.g. to return cached GPU memory).
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        load: Callable[[str], Any],
        engine: Engine,
        *,
        picture: np.ndarray | None = None,
        on_unload: Callable[[], None] | None = None,
    ) -> None:
        self.entries = {e.id: e for e in entries}
        self._load = load
        self._engine = engine
        self._picture = picture
        self._on_unload = on_unload
        self._loaded: dict[str, _Loaded] = {}
        self._thumbs: dict[str, list[bytes]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nst-serve-load")
        self._scan: asyncio.Task | None = None

    @property
    def ids(self) -> list[str]:
        return list(self.entries)

    def loaded(self) -> list[str]:
        """Ids of the models in memory now."""
        return [i for i, s in self._loaded.items() if s.task.done() and not s.task.exception()]

    def refs(self, entry_id: str) -> int:
        state = self._loaded.get(entry_id)
        return state.refs if state else 0

    async def acquire(self, entry_id: str) -> Any:
        """The stylizer of ``entry_id``, loading it if needed; pair with :meth:`release`."""
        entry = self.entries[entry_id]
        if entry.error and entry.scanned:
            raise UserError(f"model {entry.name} cannot be loaded: {entry.error}")
        state = self._loaded.get(entry_id)
        if state is None:
            loop = asyncio.get_running_loop()
            state = _Loaded(asyncio.ensure_future(loop.run_in_executor(self._pool, self._load, entry.source)))
            self._loaded[entry_id] = state
        state.refs += 1
        try:
            return await asyncio.shield(state.task)
        except BaseException:
            self.release(entry_id)
            raise

    def release(self, entry_id: str) -> None:
        """Drop one reference; an unpinned model nobody uses leaves memory."""
        state = self._loaded.get(entry_id)
        if state is None:
            return
        state.refs -= 1
        if state.refs <= 0:  # pinned models keep the reference pin() took
            del self._loaded[entry_id]
            if not state.task.done():
                state.task.add_done_callback(lambda _: self._unloaded())
            else:
                self._unloaded()

    def _unloaded(self) -> None:
        gc.collect()
        if self._on_unload is not None:
            self._on_unload()

    async def pin(self, entry_id: str) -> Any:
        """Load ``entry_id`` now and keep it (models named on the command line)."""
        self.entries[entry_id].pinned = True
        return await self.acquire(entry_id)

    # -- styles and thumbnails --------------------------------------------------------------------
    def start_scan(self) -> asyncio.Task:
        if self._scan is None:
            self._scan = asyncio.ensure_future(self._scan_all())
        return self._scan

    async def scan(self) -> None:
        """Wait until every entry's styles and thumbnails are known (starting the scan if needed)."""
        await asyncio.shield(self.start_scan())

    async def _scan_all(self) -> None:
        for entry in list(self.entries.values()):
            await self._scan_one(entry)

    async def _scan_one(self, entry: Entry) -> None:
        try:
            stylizer = await self.acquire(entry.id)
        except (UserError, ImportError, RuntimeError, OSError, ValueError) as exc:
            entry.error, entry.scanned = one_line(exc), True
            log.warning("model %s cannot be loaded: %s", entry.name, entry.error)
            return
        try:
            entry.family = getattr(getattr(stylizer, "contract", None), "family", "") or ""
            if has_style_control(stylizer):
                entry.styles = list(stylizer.style_names())[:MAX_STYLES]
            picture = self._picture if self._picture is not None else sample_picture()
            render = lambda: render_thumbnails(stylizer, picture, entry.styles)  # noqa: E731
            self._thumbs[entry.id] = await asyncio.wrap_future(self._engine.call(render))
        except Exception as exc:  # a model that loads but cannot run a picture
            entry.error = one_line(exc)
            log.warning("model %s failed on the sample picture: %s", entry.name, entry.error)
        finally:
            entry.scanned = True
            self.release(entry.id)

    def thumbnail(self, entry_id: str, style: int | None = None) -> bytes | None:
        """The JPEG of an entry (``style`` None) or of one of its styles; None if there is none."""
        thumbs = self._thumbs.get(entry_id)
        index = 0 if style is None else style + 1
        if thumbs is None or not 0 <= index < len(thumbs):
            return None
        return thumbs[index]

    def listing(self) -> list[dict[str, Any]]:
        return [e.as_json() for e in self.entries.values()]

    async def close(self) -> None:
        if self._scan is not None and not self._scan.done():
            self._scan.cancel()
            await asyncio.gather(self._scan, return_exceptions=True)
        self._loaded.clear()
        self._pool.shutdown(wait=True)
        self._unloaded()


def build_entries(given: Sequence[str], local: Sequence[tuple[str, str]]) -> list[Entry]:
    """Catalogue entries: the models ``given`` on the command line (pinned, first), then ``local`` ones.

    ``local``: ``(name, source)`` pairs of models on disk; one already given (same name or
    source) is not listed twice.
    """
    entries: list[Entry] = []
    seen: set[str] = set()
    for source in given:
        name = _name_of(source)
        entries.append(Entry(f"m{len(entries)}", name, source, pinned=True))
        seen.update({name.lower(), source})
    for name, source in local:
        if name.lower() in seen or source in seen:
            continue
        seen.update({name.lower(), source})
        entries.append(Entry(f"m{len(entries)}", name, source))
    return entries


def _name_of(source: str) -> str:
    tail = source.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".onnx", ".pth", ".pt"):
        if tail.lower().endswith(suffix):
            return tail[: -len(suffix)]
    return tail


def free_cuda_cache() -> None:
    """Give cached CUDA memory back to the driver, if PyTorch has touched the GPU."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
