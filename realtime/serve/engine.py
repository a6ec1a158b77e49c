"""The inference engine: one thread runs the models for every connection, batching where it pays.

Each connection has a :class:`Slot` holding at most one frame, its newest: a frame arriving
while the previous one waits replaces it (counted in ``dropped``), so a connection never
builds a queue and one slow connection cannot delay the others. Each round the engine takes
the waiting frame of *every* connection (so none starves; who goes first rotates), groups them by model, style vector
and frame size, and runs each group through the model: as one batch, as single frames, or in
batches of at most ``max_batch`` (:class:`BatchPolicy`). Results go back through
:meth:`Client.deliver` on the engine thread; the client hands them to its own event loop.

Work that must not overlap inference on the same model (thumbnails: backends are not
thread-safe) runs on the engine thread too, between rounds (:meth:`Engine.call`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

BATCH_MODES = ("auto", "on", "off")
TRIALS = 3  # rounds of each way (batched, one by one) "auto" times before it decides


@dataclass(frozen=True)
class Route:
    """Where a connection's next frame goes: the stylizer, its catalogue id and the style vector (or None)."""

    stylizer: Any
    model: str
    style: np.ndarray | None = None


@dataclass
class Pending:
    """A frame waiting for the model. ``load()`` returns it as ``(H, W, 3)`` uint8 RGB (called on the engine thread).

    ``arrival``, ``capture``: ``time.monotonic()`` seconds when it arrived and its estimated capture time;
    ``pts``: its timestamp as received (90 kHz ticks).
    """

    load: Callable[[], np.ndarray]
    arrival: float
    capture: float
    pts: int | None = None


@dataclass
class Result:
    """A stylised frame: ``source``/``styled`` ``(H, W, 3)`` uint8 RGB, with its timings (seconds)."""

    source: np.ndarray
    styled: np.ndarray
    pending: Pending
    route: Route
    picked: float  # monotonic time the engine took the frame
    model_seconds: float  # the model call that produced it (shared by its batch)
    batch: int  # frames in that call


class Client(Protocol):
    """A connection as the engine sees it (methods are called on the engine thread)."""

    def route(self) -> Route | None:
        """The model and style for the next frame, or None to skip it (no model loaded yet)."""
        ...

    def deliver(self, result: Result) -> None: ...

    def failed(self, error: BaseException) -> None: ...


@dataclass
class Slot:
    """One connection's place in the engine: its newest waiting frame and counters."""

    client: Client
    pending: Pending | None = None
    received: int = 0
    dropped: int = 0  # frames replaced by a newer one before the model got to them
    processed: int = 0


class BatchPolicy:
    """Decides how a group of frames (same model, style and size) goes through the model.

    ``"on"``: batches of up to ``max_batch``; ``"off"``: one frame per call; ``"auto"``: for
    each model and frame size, the first ``2 * TRIALS`` groups of two or more frames alternate
    between the two ways, timing each, and the one with the lower median time per frame wins
    from then on (batching helps on GPUs and rarely on CPUs).
    """

    def __init__(self, mode: str = "auto", max_batch: int = 8) -> None:
        if mode not in BATCH_MODES:
            raise ValueError(f"batch mode must be one of {BATCH_MODES}, got {mode!r}")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.mode, self.max_batch = mode, int(max_batch)
        self._times: dict[Any, dict[bool, list[float]]] = {}
        self.decided: dict[Any, bool] = {}

    def _batched(self, key: Any) -> bool:
        if self.mode != "auto":
            return self.mode == "on"
        if key in self.decided:
            return self.decided[key]
        times = self._times.setdefault(key, {True: [], False: []})
        return len(times[True]) <= len(times[False])

    def plan(self, key: Any, count: int) -> tuple[bool, list[int]]:
        """``(batched, chunk sizes)`` for ``count`` frames of group ``key``."""
        if count <= 1 or self.max_batch == 1:
            return False, [1] * count
        if not self._batched(key):
            return False, [1] * count
        full, rest = divmod(count, self.max_batch)
        return True, [self.max_batch] * full + ([rest] if rest else [])

    def record(self, key: Any, batched: bool, frames: int, seconds: float) -> None:
        """Report that a group of ``frames`` (>= 2) took ``seconds`` the way ``plan`` said."""
        if self.mode != "auto" or frames < 2 or key in self.decided:
            return
        times = self._times.setdefault(key, {True: [], False: []})
        times[batched].append(seconds / frames)
        if len(times[True]) >= TRIALS and len(times[False]) >= TRIALS:
            batch, single = statistics.median(times[True]), statistics.median(times[False])
            self.decided[key] = batch < single
            log.info(
                "batching %s for %s: %.1f ms/frame batched vs %.1f ms one by one",
                "on" if batch < single else "off",
                key,
                batch * 1000,
                single * 1000,
            )


@dataclass
class EngineStats:
    rounds: int = 0
    frames: int = 0
    calls: int = 0  # model calls (a batch is one)
    busy: float = 0.0  # seconds spent in model calls
    started: float = field(default_factory=time.monotonic)


class Engine:
    """The inference thread. ``attach`` a client to get its :class:`Slot`; ``offer`` frames to it."""

    def __init__(self, policy: BatchPolicy | None = None, *, name: str = "nst-serve-engine", loaders: int = 4) -> None:
        self.policy = policy or BatchPolicy()
        # frames of a round are converted (YUV -> RGB, scaled) in parallel: at 720p that is ~3 ms each
        self._loaders = concurrent.futures.ThreadPoolExecutor(max(1, loaders), thread_name_prefix=f"{name}-frames")
        self.stats = EngineStats()
        self._cond = threading.Condition()
        self._slots: list[Slot] = []
        self._jobs: list[tuple[Callable[[], Any], concurrent.futures.Future]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- any thread ---------------------------------------------------------------------------
    def attach(self, client: Client) -> Slot:
        slot = Slot(client)
        with self._cond:
            self._slots.append(slot)
        return slot

    def detach(self, slot: Slot) -> None:
        """Forget ``slot``; a frame of it already in the model is still delivered (clients ignore it)."""
        with self._cond:
            if slot in self._slots:
                self._slots.remove(slot)
            slot.pending = None

    @property
    def clients(self) -> int:
        with self._cond:
            return len(self._slots)

    def offer(self, slot: Slot, pending: Pending) -> None:
        """Make ``pending`` the slot's waiting frame, replacing (dropping) an older one."""
        with self._cond:
            slot.received += 1
            if slot.pending is not None:
                slot.dropped += 1
            slot.pending = pending
            self._cond.notify()

    def call(self, function: Callable[[], Any]) -> concurrent.futures.Future:
        """Run ``function()`` on the engine thread between rounds; its result or error in the future."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the engine has stopped")
            self._jobs.append((function, future))
            self._cond.notify()
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current round, fail queued jobs and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self._loaders.shutdown(wait=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the engine thread --------------------------------------------------------------------
    def _take(self) -> tuple[list[tuple[Callable[[], Any], concurrent.futures.Future]], list[tuple[Slot, Pending]]]:
        with self._cond:
            while not self._stopping and not self._jobs and not any(s.pending for s in self._slots):
                self._cond.wait()
            jobs, self._jobs = self._jobs, []
            if self._stopping:
                for _, future in jobs:
                    future.set_exception(RuntimeError("the engine has stopped"))
                return [], []
            picked = [(s, s.pending) for s in self._slots if s.pending is not None]
            for slot, _ in picked:
                slot.pending = None
            if len(self._slots) > 1:  # who goes first (and waits least) takes turns
                self._slots.append(self._slots.pop(0))
            return jobs, picked  # type: ignore[return-value]

    def _run(self) -> None:
        while True:
            jobs, picked = self._take()
            if self._stopping:
                return
            for function, future in jobs:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(function())
                    except BaseException as exc:  # handed to the caller
                        future.set_exception(exc)
            if picked:
                self._round(picked)

    def _round(self, picked: Sequence[tuple[Slot, Pending]]) -> None:
        now = time.monotonic()
        routed = []
        for slot, pending in picked:
            try:
                route = slot.client.route()
            except Exception as exc:  # a broken client must not stop the others
                log.warning("dropping a frame: %s", exc)
                continue
            if route is not None:
                routed.append((slot, pending, route))
        loads = [self._loaders.submit(pending.load) for _, pending, _ in routed] if len(routed) > 1 else None
        groups: dict[tuple, list[tuple[Slot, Pending, np.ndarray, Route]]] = {}
        for i, (slot, pending, route) in enumerate(routed):
            try:
                image = loads[i].result() if loads else pending.load()
            except Exception as exc:  # a broken frame must not stop the others
                log.warning("dropping a frame: %s", exc)
                continue
            style = None if route.style is None else route.style.tobytes()
            groups.setdefault((route.model, id(route.stylizer), style, image.shape), []).append(
                (slot, pending, image, route)
            )
        self.stats.rounds += 1
        for (model, _, _, shape), items in groups.items():
            route = items[0][3]
            key = (model, shape)
            batched, chunks = self.policy.plan(key, len(items))
            start, spent = 0, 0.0
            for size in chunks:
                chunk = items[start : start + size]
                start += size
                try:
                    t0 = time.perf_counter()
                    if route.style is not None:
                        route.stylizer.set_style(route.style)
                    styled = route.stylizer.stylize_batch([image for _, _, image, _ in chunk])
                    seconds = time.perf_counter() - t0
                except Exception as exc:  # the model failed: tell the clients, keep serving
                    log.exception("model %s failed", model)
                    for slot, *_ in chunk:
                        slot.client.failed(exc)
                    continue
                spent += seconds
                self.stats.calls += 1
                self.stats.busy += seconds
                for (slot, pending, image, _), out in zip(chunk, styled):
                    slot.processed += 1
                    self.stats.frames += 1
                    slot.client.deliver(Result(image, out, pending, route, now, seconds, size))
            if len(items) >= 2:
                self.policy.record(key, batched, len(items), spent)
