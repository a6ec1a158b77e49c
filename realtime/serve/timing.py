"""Clocks for the latency figure: when a frame was captured, and how output frames are stamped.

The browser stamps each camera frame with an RTP timestamp on its capture clock (90 kHz); the
server's receiver hands frames over with ``pts`` counted from the first one. So the capture
time of frame ``k`` is ``capture_0 + pts_k / 90000``, and only ``capture_0`` is unknown.
:class:`CaptureClock` estimates it as the smallest ``arrival_k - pts_k / 90000`` seen: the
arrival of the frame that travelled fastest. The estimate is late by that frame's one-way time
(browser encode, network, server decode: a few milliseconds on a LAN), so latencies computed
from it are *lower* than the truth by that much, never higher.

Output frames carry ``pts`` = the server's monotonic clock in 90 kHz ticks when the frame is
handed to the encoder (:func:`out_pts`); the sender adds a random offset to make the RTP
timestamp, which the page learns by matching (see ``assets/app.js``).
"""

from __future__ import annotations

import time

CLOCK_RATE = 90_000  # RTP video clock, ticks per second
RESTART_S = 2.0  # pts going back by more than this is a new stream (a restarted sender)


class CaptureClock:
    """Capture-time estimates for the frames of one incoming track, in server ``time.monotonic()`` seconds."""

    def __init__(self) -> None:
        self._anchor: float | None = None  # estimated capture time of pts 0
        self._last_pts: int | None = None

    def observe(self, pts: int | None, arrival: float) -> float:
        """The estimated capture time of a frame with ``pts`` (90 kHz ticks) that arrived at ``arrival``."""
        if pts is None:
            return arrival
        seconds = pts / CLOCK_RATE
        if self._last_pts is not None and pts < self._last_pts - RESTART_S * CLOCK_RATE:
            self._anchor = None  # the sender restarted its timeline
        self._last_pts = pts
        candidate = arrival - seconds
        if self._anchor is None or candidate < self._anchor:
            self._anchor = candidate
        return self._anchor + seconds


def out_pts(previous: int | None, now: float | None = None) -> int:
    """The ``pts`` (90 kHz ticks of ``time.monotonic()``) for an output frame handed over at ``now``.

    Strictly increasing: at least ``previous + 1``.
    """
    ticks = round((time.monotonic() if now is None else now) * CLOCK_RATE)
    return ticks if previous is None or ticks > previous else previous + 1
