"""One WebRTC connection: camera in, stylised video out, settings on a data channel.

::

    browser camera ─► reader task ─► engine slot (newest only) ─► engine thread (model, batched)
          ▲                                                              │
          └── StyledTrack ◄── compose (stages, side by side; pool) ◄─────┘ (newest only)

Every hand-over keeps only the newest frame, so a slow step drops frames instead of adding
delay. The stages (stabiliser, colour, strength) are this connection's own, applied in order on
a worker pool; the model is shared with every connection using it (:mod:`realtime.serve.catalog`).

Data-channel messages (JSON objects with a ``type``):

* page -> server: ``settings`` (see :mod:`realtime.serve.settings`), ``ping`` ``{"t": page ms}``,
  ``bye``;
* server -> page: ``state`` (the applied settings), ``error`` ``{"setting", "message"}``,
  ``pong`` ``{"t", "now": server ms}``, ``frame`` for every frame sent ``{"pts", "cap", "in_pts",
  "server_ms", "model_ms", "batch", "model"}`` (``pts`` modulo 2**32 as set on the frame, ``cap``
  the estimated capture time in server ms (see :mod:`realtime.serve.timing`), ``in_pts`` the camera
  frame's pts as received, ``server_ms`` arrival to sending), ``rate`` once a second
  ``{"processed_fps", "suggested_fps"}`` (the page caps its camera's sending rate to the suggestion:
  :func:`suggested_fps`), ``closed`` ``{"reason"}``.

A session ends (:meth:`Session.close`) on a ``bye``, a closed data channel, a failed or closed
connection, or no camera frame for ``idle_timeout`` seconds (a closed tab stops sending at
once, while ICE takes much longer to notice); ending it cancels its tasks, closes the peer
connection (its decoder and encoder threads) and releases its model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from realtime.core.errors import InvalidValue, UserError, one_line
from realtime.core.styles import CrossFade, has_style_control
from realtime.core.stylizer import apply_stages
from realtime.io.overlay import side_by_side
from realtime.serve.catalog import Catalogue
from realtime.serve.engine import Engine, Pending, Result, Route
from realtime.serve.settings import Settings, style_terms, updated
from realtime.serve.timing import CLOCK_RATE, CaptureClock, out_pts
from realtime.stages import DEFAULT_STRENGTH, build_stages

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096  # bytes of one data-channel message from a page
FADE_FRAMES = 8  # a style change cross-fades the style vector over this many frames
MIN_SEND_FPS, MAX_SEND_FPS = 5, 30  # the range of the frame rate suggested to senders
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)


def suggested_fps(processed: float) -> int:
    """The camera frame rate worth sending when the model takes ``processed`` frames a second.

    Frames beyond what the model takes are decoded and dropped: sending half as many again as
    are used (plus two) keeps the newest frame fresh and saves the sender's encoder, the network
    and the server's decoder the rest. Between :data:`MIN_SEND_FPS` and :data:`MAX_SEND_FPS`.
    """
    return int(min(MAX_SEND_FPS, max(MIN_SEND_FPS, math.ceil(1.5 * processed + 2))))


def to_rgb(frame: av.VideoFrame, limit: tuple[int, int] | None) -> np.ndarray:
    """A decoded frame as ``(H, W, 3)`` uint8 RGB, scaled down to fit ``limit`` (width, height) if larger.

    The scaled size keeps the aspect ratio and is even on both sides.
    """
    width, height = frame.width, frame.height
    if limit is not None and (width > limit[0] or height > limit[1]):
        scale = min(limit[0] / width, limit[1] / height)
        width, height = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
        return frame.to_ndarray(format="rgb24", width=width, height=height)
    return frame.to_ndarray(format="rgb24")


class StyledTrack(MediaStreamTrack):
    """The outgoing video: hands the encoder the newest composed frame, stamped with :func:`out_pts`.

    ``on_sent(pts, meta)`` is called for each frame as it goes to the encoder.
    """

    kind = "video"

    def __init__(self, on_sent: Callable[[int, Any], None]) -> None:
        super().__init__()
        self._on_sent = on_sent
        self._next: tuple[av.VideoFrame, Any] | None = None
        self._ready = asyncio.Event()
        self._pts: int | None = None
        self.sent = 0
        self.replaced = 0  # composed frames the encoder never took (it was slower)

    def put(self, frame: av.VideoFrame, meta: Any) -> None:
        if self._next is not None:
            self.replaced += 1
        self._next = (frame, meta)
        self._ready.set()

    async def recv(self) -> av.VideoFrame:
        while self._next is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        frame, meta = self._next
        self._next = None
        self._pts = out_pts(self._pts)
        frame.pts, frame.time_base = self._pts, TIME_BASE
        self.sent += 1
        self._on_sent(self._pts, meta)
        return frame

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class SessionStyle:
    """This connection's style vector, in the shape :class:`~realtime.core.styles.CrossFade` drives."""

    def __init__(self, vector: np.ndarray) -> None:
        self._vector = np.asarray(vector, dtype=np.float32).copy()

    def set_style(self, vector: np.ndarray) -> None:
        self._vector = np.asarray(vector, dtype=np.float32).copy()

    def current_style(self) -> np.ndarray:
        return self._vector


@dataclass
class _Model:
    """The model a session runs: catalogue id, stylizer, and its style state for run-time-style models."""

    id: str
    stylizer: Any
    style: SessionStyle | None = None


@dataclass
class SessionContext:
    """What sessions share: the engine, the catalogue, the compose pool and the limits."""

    engine: Engine
    catalogue: Catalogue
    pool: concurrent.futures.Executor
    size_limit: tuple[int, int] | None = None
    idle_timeout: float = 10.0
    connect_timeout: float = 15.0


@dataclass
class _Meta:
    """What travels with a composed frame to the moment it is sent."""

    capture: float
    arrival: float
    pts: int | None
    model_seconds: float
    batch: int
    model: str


@dataclass
class SessionStats:
    created: float = field(default_factory=time.monotonic)
    received: int = 0
    composed: int = 0
    sent: int = 0
    errors: int = 0


class Session:
    """One peer connection: build it with the offer's connection (before its remote description is set),
    :meth:`start` it, and its tasks run until :meth:`close`."""

    def __init__(self, session_id: str, pc: RTCPeerConnection, context: SessionContext, settings: Settings) -> None:
        self.id = session_id
        self.pc = pc
        self.context = context
        self.settings = settings
        self.stats = SessionStats()
        self.closed = False
        self.close_reason = ""
        self.on_closed: Callable[[Session], None] | None = None
        self.clock = CaptureClock()
        self.stages = build_stages(settings.strength, settings.preserve_color, settings.stabilize, True)
        self.track = StyledTrack(self._sent)
        self.channel: Any = None
        self.last_input: float | None = None
        self._camera: MediaStreamTrack | None = None
        self._queued: dict[str, Any] = {}  # settings changes waiting for the one applying task
        self._applier: asyncio.Task | None = None
        self._model: _Model | None = None
        self._fade: CrossFade | None = None
        self._loop = asyncio.get_running_loop()
        self._slot = context.engine.attach(self)
        self._composed: Result | None = None
        self._compose_ready = asyncio.Event()
        self._lock = asyncio.Lock()  # settings changes one at a time, in order
        self._tasks: set[asyncio.Task] = set()
        self._closing: asyncio.Task | None = None
        self._spawn(self._compose_loop())
        self._spawn(self._watchdog())
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    # -- set-up -----------------------------------------------------------------------------------
    def _spawn(self, coroutine: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> None:
        """Load the first model and its stages; :class:`UserError` / :class:`InvalidValue` if they are bad."""
        settings, self.settings = self.settings, Settings(model="")
        await self._apply(settings)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video" or self.closed or self._camera is not None:
            return  # the first video track is the camera; audio and further tracks are not used
        self._camera = track
        self.pc.addTrack(self.track)
        self._spawn(self._read(track))

    @property
    def has_video(self) -> bool:
        """Whether the offer brought a camera (a video track)."""
        return self._camera is not None

    # -- camera frames in -------------------------------------------------------------------------
    async def _read(self, track: MediaStreamTrack) -> None:
        limit = self.context.size_limit
        while not self.closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            now = time.monotonic()
            self.last_input = now
            self.stats.received += 1
            capture = self.clock.observe(frame.pts, now)
            self.context.engine.offer(self._slot, Pending(lambda f=frame: to_rgb(f, limit), now, capture, frame.pts))
        self.close_soon("the camera track ended")

    # -- the engine's side (engine thread) --------------------------------------------------------
    def route(self) -> Route | None:
        model = self._model
        if model is None or self.closed:
            return None
        if model.style is None:
            return Route(model.stylizer, model.id)
        fade = self._fade
        if fade is not None and not fade.step():
            self._fade = None
        return Route(model.stylizer, model.id, model.style.current_style())

    def deliver(self, result: Result) -> None:
        if not self.closed:
            self._loop.call_soon_threadsafe(self._styled, result)

    def failed(self, error: BaseException) -> None:
        if not self.closed:
            self._loop.call_soon_threadsafe(self._report, "model", f"the model failed: {one_line(error)[:200]}")

    # -- stages and the outgoing frame ------------------------------------------------------------
    def _styled(self, result: Result) -> None:
        self._composed = result
        self._compose_ready.set()

    async def _compose_loop(self) -> None:
        while True:
            await self._compose_ready.wait()
            self._compose_ready.clear()
            result, self._composed = self._composed, None
            if result is None:
                continue
            frame = await self._loop.run_in_executor(self.context.pool, self._compose, result, self.settings)
            self.stats.composed += 1
            pending = result.pending
            meta = _Meta(
                pending.capture, pending.arrival, pending.pts, result.model_seconds, result.batch, result.route.model
            )
            self.track.put(frame, meta)

    def _compose(self, result: Result, settings: Settings) -> av.VideoFrame:
        """Stages then side by side, on a pool thread (one frame of a session at a time, in order)."""
        out = apply_stages(self.stages.ordered, result.source, result.styled)
        if settings.side_by_side:
            out = side_by_side(result.source, out)
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24")

    def _sent(self, pts: int, meta: _Meta) -> None:
        self.stats.sent += 1
        now = time.monotonic()
        self.send(
            {
                "type": "frame",
                "pts": pts % 2**32,
                "cap": round(meta.capture * 1000, 2),
                "in_pts": meta.pts,
                "server_ms": round((now - meta.arrival) * 1000, 1),
                "model_ms": round(meta.model_seconds * 1000, 1),
                "batch": meta.batch,
                "model": meta.model,
            }
        )

    # -- settings ---------------------------------------------------------------------------------
    def _on_datachannel(self, channel: Any) -> None:
        if self.channel is not None:  # one control channel per session; others are closed
            channel.close()
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.close_soon("the page closed its data channel"))
        self.send(self.state())

    def send(self, message: dict[str, Any]) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(message, separators=(",", ":")))

    def _report(self, setting: str, message: str) -> None:
        self.stats.errors += 1
        self.send({"type": "error", "setting": setting, "message": message})

    def _on_message(self, data: Any) -> None:
        if not isinstance(data, str) or len(data) > MAX_MESSAGE:
            self._report("message", f"messages must be JSON text of at most {MAX_MESSAGE} bytes")
            return
        try:
            message = json.loads(data)
        except ValueError:
            self._report("message", "not JSON")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            self.send({"type": "pong", "t": message.get("t"), "now": round(time.monotonic() * 1000, 3)})
        elif kind == "settings":
            self.queue_settings({k: v for k, v in message.items() if k != "type"})
        elif kind == "bye":
            self.close_soon("the page said goodbye")
        else:
            self._report("message", "unknown message type; expected settings, ping or bye")

    def queue_settings(self, changes: dict[str, Any]) -> None:
        """Check a settings message now; apply it (merged with any that arrive meanwhile) in order.

        A slider sends many messages a second and a model takes a while to load: messages that
        arrive while one is being applied are merged, so only the latest values are applied.
        """
        try:
            updated(self.settings, changes, self.context.catalogue.ids)
        except InvalidValue as exc:
            self._report(exc.name, one_line(exc))
            self.send(self.state())
            return
        if "model" in changes and "style" not in changes:
            self._queued.pop("style", None)  # a new model starts at its own default style
        self._queued.update(changes)
        if self._applier is None or self._applier.done():
            self._applier = self._spawn(self._apply_queued())

    async def _apply_queued(self) -> None:
        while True:  # at least once: an empty message asks for the state
            changes, self._queued = self._queued, {}
            await self.apply(changes)
            if not self._queued:
                return

    async def apply(self, changes: dict[str, Any]) -> None:
        """Apply a settings message; a bad one is reported on the data channel and changes nothing."""
        try:
            await self._apply(updated(self.settings, changes, self.context.catalogue.ids))
        except UserError as exc:
            name = exc.name if isinstance(exc, InvalidValue) else "model"
            self._report(name, one_line(exc))
        self.send(self.state())

    async def _apply(self, new: Settings) -> None:
        async with self._lock:
            if self.closed:
                return
            old = self.settings
            if new.model != old.model:
                await self._switch_model(new)
            elif new.style != old.style:
                await self._switch_style(new.style)
            stages = self.stages
            stages.strength.strength = new.strength
            stages.color.enabled = new.preserve_color
            if stages.stabilizer is not None:
                stages.stabilizer.enabled = new.stabilize is not None
                stages.stabilizer.stage.strength = DEFAULT_STRENGTH if new.stabilize is None else new.stabilize
            self.settings = new

    async def _style_vector(self, stylizer: Any, spec: str | None) -> np.ndarray:
        engine = self.context.engine
        if spec is None:
            return np.asarray(await asyncio.wrap_future(engine.call(stylizer.current_style)), np.float32).copy()
        terms = style_terms(spec, list(stylizer.style_names()))
        return np.asarray(await asyncio.wrap_future(engine.call(lambda: stylizer.style_vector(terms))), np.float32)

    async def _switch_model(self, new: Settings) -> None:
        catalogue = self.context.catalogue
        stylizer = await catalogue.acquire(new.model)
        try:
            style = None
            if has_style_control(stylizer):
                style = SessionStyle(await self._style_vector(stylizer, new.style))
            elif new.style is not None:
                name = catalogue.entries[new.model].name
                raise InvalidValue("style", f"cannot be set: model {name} has one style")
        except BaseException:
            catalogue.release(new.model)
            raise
        old, self._model, self._fade = self._model, _Model(new.model, stylizer, style), None
        if self.stages.stabilizer is not None:
            self.stages.stabilizer.reset()  # a new model is a scene cut for the stabiliser
        if old is not None:
            catalogue.release(old.id)

    async def _switch_style(self, spec: str | None) -> None:
        model = self._model
        if model is None:
            return
        if model.style is None:
            if spec is not None:
                name = self.context.catalogue.entries[model.id].name
                raise InvalidValue("style", f"cannot be set: model {name} has one style")
            return
        target = await self._style_vector(model.stylizer, spec)
        self._fade = CrossFade(model.style, target, FADE_FRAMES)

    def state(self) -> dict[str, Any]:
        entry = self.context.catalogue.entries.get(self.settings.model)
        return {
            "type": "state",
            "session": self.id,
            "settings": self.settings.as_json(),
            "model_name": entry.name if entry else "",
        }

    def status(self) -> dict[str, Any]:
        """Counters for ``GET /api/status``."""
        slot = self._slot
        return {
            "id": self.id,
            "model": self.settings.model,
            "connection": self.pc.connectionState,
            "seconds": round(time.monotonic() - self.stats.created, 1),
            "received": slot.received,
            "dropped_before_model": slot.dropped,
            "processed": slot.processed,
            "sent": self.track.sent,
            "dropped_after_model": self.track.replaced,
            "errors": self.stats.errors,
        }

    # -- ending -----------------------------------------------------------------------------------
    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.close_soon(f"the connection {self.pc.connectionState}")

    async def _watchdog(self) -> None:
        """End a silent session; once a second, tell the sender how fast its frames are used (``rate``)."""
        ctx = self.context
        last_count, last_time = self._slot.processed, time.monotonic()
        while not self.closed:
            await asyncio.sleep(min(1.0, ctx.idle_timeout / 4))
            now = time.monotonic()
            if self.last_input is None and now - self.stats.created > ctx.connect_timeout:
                self.close_soon(f"no camera frame within {ctx.connect_timeout:g} s")
            elif self.last_input is not None and now - self.last_input > ctx.idle_timeout:
                self.close_soon(f"no camera frame for {ctx.idle_timeout:g} s")
            elif now - last_time >= 0.9:
                processed = self._slot.processed
                rate = (processed - last_count) / (now - last_time)
                last_count, last_time = processed, now
                self.send({"type": "rate", "processed_fps": round(rate, 1), "suggested_fps": suggested_fps(rate)})

    def close_soon(self, reason: str) -> asyncio.Task:
        """Start :meth:`close` from a callback; returns its task (the same one on every call)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.close(reason))
        return self._closing

    async def close(self, reason: str = "closed by the server") -> None:
        """End the session: tasks, peer connection (its threads), model reference. Idempotent."""
        if self.closed:
            return
        self.closed, self.close_reason = True, reason
        log.info("session %s ends: %s", self.id, reason)
        self.send({"type": "closed", "reason": reason})
        self.context.engine.detach(self._slot)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.track.stop()
        await self.pc.close()
        if self._model is not None:
            self.context.catalogue.release(self._model.id)
            self._model = None
        self._fade = None
        if self.on_closed is not None:
            self.on_closed(self)
