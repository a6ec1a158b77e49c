"""A Python WebRTC client for ``nst-serve``: send frames, get stylised frames back, change settings.

It is what the load test (``python -m bench serve``) and the tests run instead of a browser,
and an example of connecting without the page::

    client = await Client.connect("http://127.0.0.1:8080/", FrameSource(frames, fps=30))
    await client.settings(strength=0.5)
    ...
    await client.close()

:class:`FrameSource` plays ``(H, W, 3)`` uint8 RGB frames at a steady rate like a camera and
remembers when it sent each one; :class:`Client` matches every stylised frame it receives to
the camera frame it came from (through the server's ``frame`` messages, see
:mod:`realtime.serve.session`), so latency is measured exactly, capture to receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from realtime.serve.timing import CLOCK_RATE

MOD = 2**32
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)


class PtsMatcher:
    """Matches timestamps of one stream seen in two numberings that differ by an unknown constant (mod 2**32).

    ``known(pts, value)`` records a frame under one numbering (the server's ``frame`` message);
    ``match(observed)`` returns the value of the frame ``observed`` (the other numbering) is,
    once the offset is learnt: every observed frame votes for the offsets that would match it
    to a known one, and the offset with ``votes`` votes (counting ±1 tick) wins.
    """

    def __init__(self, keep: int = 300, votes: int = 3, tolerance: int = 2) -> None:
        self.keep, self.votes, self.tolerance = keep, votes, tolerance
        self._known: OrderedDict[int, Any] = OrderedDict()
        self._votes: Counter[int] = Counter()
        self.offset: int | None = None
        self._misses = 0

    def known(self, pts: int, value: Any) -> None:
        self._known[pts % MOD] = value
        while len(self._known) > self.keep:
            self._known.popitem(last=False)

    def match(self, observed: int) -> Any | None:
        observed %= MOD
        if self.offset is None:
            for pts in self._known:
                self._votes[(observed - pts) % MOD] += 1
            best, count = None, 0
            for offset, n in self._votes.items():
                total = n + self._votes.get((offset - 1) % MOD, 0) + self._votes.get((offset + 1) % MOD, 0)
                if total > count:
                    best, count = offset, total
            if count >= self.votes:
                self.offset, self._votes = best, Counter()
            elif len(self._votes) > 50_000:
                self._votes.clear()
            return None
        base = (observed - self.offset) % MOD
        for delta in sorted(range(-self.tolerance, self.tolerance + 1), key=abs):
            value = self._known.get((base + delta) % MOD)
            if value is not None:
                self._misses = 0
                return value
        self._misses += 1
        if self._misses > 30:  # lost: learn the offset again
            self.offset, self._misses = None, 0
        return None


class FrameSource(MediaStreamTrack):
    """A camera stand-in: ``frames`` (``(H, W, 3)`` uint8 RGB, looped) at ``fps``, each stamped and timed.

    ``sent`` maps each frame's ``pts`` (90 kHz ticks of ``time.monotonic()``) to when it was handed over.
    """

    kind = "video"

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 30.0) -> None:
        super().__init__()
        if not frames:
            raise ValueError("need at least one frame")
        self._planes = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2YUV_I420) for f in frames]
        self.fps = float(fps)  # the camera's own rate
        self.interval = 1.0 / fps
        self.sent: OrderedDict[int, float] = OrderedDict()
        self._start: float | None = None
        self._count = 0  # frames since the pacing (re)started
        self._index = 0  # frames sent

    def set_fps(self, fps: float) -> None:
        """Send ``fps`` frames a second from now on (a browser capping its sender)."""
        if abs(1.0 / self.interval - fps) >= 1.0:
            self.interval, self._start, self._count = 1.0 / fps, None, 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count * self.interval
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 2 * self.interval:  # fell behind (a busy machine): skip, as a camera would
            self._start, self._count = now, 0
        frame = av.VideoFrame.from_ndarray(self._planes[self._index % len(self._planes)], format="yuv420p")
        self._count += 1
        self._index += 1
        sent = time.monotonic()
        frame.pts, frame.time_base = round(sent * CLOCK_RATE), TIME_BASE
        self.sent[frame.pts] = sent
        while len(self.sent) > 1000:
            self.sent.popitem(last=False)
        return frame


@dataclass
class Received:
    """One stylised frame as it arrived: when (monotonic s), its picture and the server's figures."""

    time: float
    image: np.ndarray | None
    latency: float | None = None  # capture (send) to receipt, seconds: exact
    estimated_latency: float | None = None  # from the server's capture estimate (what the page shows)
    model_ms: float | None = None
    server_ms: float | None = None  # the server's time from arrival to sending
    batch: int | None = None


@dataclass
class ClientStats:
    received: list[Received] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    state: dict | None = None


class Client:
    """One connection to ``nst-serve``. Build with :meth:`connect`; always :meth:`close`."""

    def __init__(self, pc: RTCPeerConnection, source: FrameSource, keep_images: int, follow_rate: bool) -> None:
        self.pc = pc
        self.follow_rate = follow_rate  # cap the source's rate to the server's suggestion, as the page does
        self.source = source
        self.stats = ClientStats()
        self.session = ""
        self.keep_images = keep_images
        self.channel = pc.createDataChannel("control")
        self.channel.on("message", self._message)
        self._out = PtsMatcher()  # the server's frame pts -> its message
        self._in = PtsMatcher()  # our pts -> the server's pts of the same camera frame
        self._synced = 0  # our newest pts the matcher knows
        self._state_seen = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.closed_reason: str | None = None
        pc.on("track", self._track)

    @classmethod
    async def connect(
        cls,
        url: str,
        source: FrameSource,
        *,
        token: str | None = None,
        settings: dict | None = None,
        keep_images: int = 3,
        follow_rate: bool = True,
        timeout: float = 20.0,
    ) -> Client:
        """Offer ``source`` to the server at ``url``; raises ``ConnectionError`` with the server's message."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        client = cls(pc, source, keep_images, follow_rate)
        pc.addTrack(source)
        try:
            await pc.setLocalDescription(await pc.createOffer())
            body: dict[str, Any] = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
            if settings:
                body["settings"] = settings
            headers = {"X-NST-Token": token} if token else {}
            async with aiohttp.ClientSession() as http:
                async with http.post(url.rstrip("/") + "/offer", json=body, headers=headers, timeout=timeout) as r:
                    answer = await r.json(content_type=None)
                    if r.status != 200:
                        raise ConnectionError(f"{r.status}: {answer.get('error', answer)}")
            client.session = answer["session"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        except BaseException:
            await pc.close()
            raise
        return client

    def _track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._receive(track)))

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            received = Received(now, None)
            message = self._out.match(frame.pts)
            if message is not None:
                received.model_ms, received.batch = message["model_ms"], message["batch"]
                received.server_ms = message["server_ms"]
                received.estimated_latency = now - message["cap"] / 1000.0
                ours = self._in.match(message["in_pts"])
                if ours is not None:
                    received.latency = now - ours
            received.image = frame.to_ndarray(format="rgb24") if self.keep_images else None
            self.stats.received.append(received)
            if self.keep_images and len(self.stats.received) > self.keep_images:
                self.stats.received[-self.keep_images - 1].image = None  # keep memory flat

    def _message(self, data: Any) -> None:
        message = json.loads(data)
        kind = message.get("type")
        if kind == "frame":
            self._out.known(message["pts"], message)
            for pts, sent in reversed(self.source.sent.items()):  # the frames sent since the last message
                if pts <= self._synced:
                    break
                self._in.known(pts, sent)
            self._synced = max(self._synced, next(reversed(self.source.sent), 0))
        elif kind == "state":
            self.stats.state = message
            self._state_seen.set()
        elif kind == "error":
            self.stats.errors.append(message)
        elif kind == "rate" and self.follow_rate:
            self.source.set_fps(min(self.source.fps, float(message["suggested_fps"])))
        elif kind == "closed":
            self.closed_reason = message.get("reason", "")

    async def settings(self, timeout: float = 10.0, **changes: Any) -> dict:
        """Send a settings message and wait for the server's ``state`` reply (the applied settings)."""
        await self.wait_open(timeout)
        self._state_seen.clear()
        self.channel.send(json.dumps({"type": "settings", **changes}))
        await asyncio.wait_for(self._state_seen.wait(), timeout)
        return self.stats.state["settings"]

    async def wait_open(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.channel.readyState != "open":
            if time.monotonic() > deadline:
                raise TimeoutError("the data channel did not open")
            await asyncio.sleep(0.02)

    async def wait_frames(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Wait until ``count`` frames have arrived in all; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.stats.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.stats.received)} of {count} frames arrived in {timeout:g} s")
            await asyncio.sleep(0.02)
        return self.stats.received

    def latest_image(self) -> np.ndarray | None:
        for received in reversed(self.stats.received):
            if received.image is not None:
                return received.image
        return None

    async def close(self, say_bye: bool = True) -> None:
        if say_bye and self.channel.readyState == "open":
            self.channel.send(json.dumps({"type": "bye"}))
            await asyncio.sleep(0.05)
        self.source.stop()
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
