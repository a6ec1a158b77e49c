"""The frame pipeline: decode, inference and encode overlapped in three threads.

::

    source ─► [decode + stage.prepare] ─q_in─► [stylizer] ─q_out─► [stages + sink.write]
              thread "nst-decode"               thread "nst-infer"  the calling thread

The queues are small and bounded (``queue_size``), so memory stays flat and a slow stage
throttles the others. Frames stay in order. The sink runs on the *calling* thread because
GUI toolkits (OpenCV's Qt window) must be driven from the main thread, and because that is
where Ctrl-C arrives. Inference runs on a worker thread; torch, ONNX Runtime and PyAV all
release the GIL in their kernels, so the three stages really run at once.

Frames are ``(H, W, 3)`` uint8 RGB NumPy arrays all the way; moving them to a device is the
stylizer backend's business. A source yields arrays or :class:`Frame` objects (an array plus
``meta`` the sink gets back untouched, such as timestamps).

Ending a run:

* the source is exhausted: every frame is written, the sink is closed, :class:`RunStats` returned;
* a sink raises :class:`StopRun` (the ``q`` key): like the end of the source;
* any thread raises: the others stop, the sink is closed (or, if the sink itself failed,
  aborted with ``sink.abort()`` where it has one), and the *original* exception is re-raised
  in the caller;
* Ctrl-C (``KeyboardInterrupt`` in the caller, or raised by the stylizer or source): reading
  stops, frames already stylised are written, the sink's optional ``stopped_early()`` is called
  (a video writer then copies no audio past the last frame), the sink is closed normally (a
  video file is finalised and playable) and :class:`Interrupted` (a ``KeyboardInterrupt``) is
  raised with the statistics attached.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from realtime.core.stylizer import Stage, Stylizer

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 10.0  # a worker stuck in a C call (a network read) is abandoned after this
_POLL_S = 0.05  # queue waits wake this often to notice a stop request
_END = object()  # end-of-stream marker on the queues


@dataclass
class Frame:
    """A frame entering the pipeline: the image plus what the sink should get back.

    ``image``: ``(H, W, 3)`` uint8 RGB. ``meta``: anything (the video reader passes the
    timestamp); handed to the sink untouched. ``t_captured``: ``time.perf_counter()`` at
    capture (cameras); latency is measured from it, else from when the frame was read.
    """

    image: np.ndarray
    meta: Any = None
    t_captured: float | None = None


@dataclass
class FrameInfo:
    """What the sink receives with each stylised frame."""

    index: int  # 0-based position in the stream
    source: np.ndarray  # the input frame (H, W, 3) uint8 RGB, e.g. for side-by-side
    meta: Any  # the source's Frame.meta
    t_start: float  # perf_counter() when captured/read
    prepared: list[Any] = field(default_factory=list)
    styled: np.ndarray | None = None


class Sink(Protocol):
    """Where stylised frames go. ``close()`` finalises; ``abort()`` (optional) discards quickly."""

    def write(self, frame: np.ndarray, info: FrameInfo) -> None: ...

    def close(self) -> None: ...


class StopRun(Exception):
    """Raised by a sink or stage to end the run early and normally (the user pressed ``q``)."""


@dataclass
class RunStats:
    """Counts and busy time per stage, in seconds (summed over frames)."""

    frames: int = 0
    seconds: float = 0.0  # wall time of the whole run
    decode: float = 0.0
    prepare: float = 0.0  # Stage.prepare on the decode thread
    infer: float = 0.0
    post: float = 0.0  # Stage.__call__ on the calling thread
    encode: float = 0.0  # sink.write
    latency: float = 0.0  # summed capture/read -> written
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def mean_latency(self) -> float:
        return self.latency / self.frames if self.frames else 0.0

    def per_frame_ms(self) -> dict[str, float]:
        n = max(1, self.frames)
        parts = {
            "decode": self.decode,
            "prepare": self.prepare,
            "infer": self.infer,
            "post": self.post,
            "encode": self.encode,
        }
        return {k: 1000.0 * v / n for k, v in parts.items() if k != "prepare" or v > 5e-5 * n}

    def summary(self) -> str:
        """One line: frames, seconds, frames/s and the busy time per frame of each stage."""
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.per_frame_ms().items())
        return f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} frames/s); ms per frame: {stages}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run`, raised after the sink was finalised; ``stats`` says how far it got."""

    def __init__(self, stats: RunStats) -> None:
        super().__init__("interrupted")
        self.stats = stats


def _check_image(image: Any, index: int) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}".strip()
        raise TypeError(f"frame {index}: the source must yield (H, W, 3) uint8 RGB arrays, got {desc}")
    return image


def _as_sink(sink: Any) -> Any:
    if isinstance(sink, list):
        target = sink

        class _Appender:
            def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
                target.append(frame)

            def close(self) -> None:
                pass

        return _Appender()
    if not hasattr(sink, "write"):
        raise TypeError(f"sink must have write(frame, info), got {type(sink).__name__}")
    return sink


class _Run:
    """The state shared by the three threads of one :func:`run`."""

    def __init__(
        self, stylizer: Stylizer, stages: Sequence[Stage], queue_size: int, batch_size: int, live: bool = False
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self.stylizer = stylizer
        self.stages = list(stages)
        self.batch_size = batch_size
        self.q_in: queue.Queue = queue.Queue(maxsize=queue_size)
        self.q_out: queue.Queue = queue.Queue(maxsize=max(queue_size, batch_size))
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.stats = RunStats()
        self.live = live
        self.taken = threading.Event()  # live mode: the model took the last frame handed over

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def put(self, q: queue.Queue, item: Any) -> bool:
        """Block until ``item`` is queued (True) or the run is stopping (False)."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue, on_wait: Callable[[], None] | None = None) -> Any:
        """Block until an item arrives, or return ``_END`` when the run is stopping.

        ``on_wait`` is called every poll interval while nothing arrives (a window's event loop).
        """
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                if on_wait is not None:
                    on_wait()
                continue
        return _END

    # -- thread bodies -----------------------------------------------------------------------
    def decode(self, source: Iterable[Any]) -> None:
        iterator = iter(source)
        try:
            index = 0
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                frame = item if isinstance(item, Frame) else Frame(item)
                image = _check_image(frame.image, index)
                prepared = [stage.prepare(image) for stage in self.stages]
                t2 = time.perf_counter()
                self.stats.decode += t1 - t0
                self.stats.prepare += t2 - t1
                info = FrameInfo(index, image, frame.meta, frame.t_captured or t0, prepared)
                if not self.put(self.q_in, info):
                    return
                index += 1
                if self.live:  # grab the next frame only when the model starts on this one: fresher
                    while not self.taken.wait(_POLL_S):
                        if self.stop.is_set():
                            return
                    self.taken.clear()
            self.put(self.q_in, _END)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.fail(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    log.debug("closing the source failed", exc_info=True)

    def infer(self) -> None:
        try:
            while True:
                info = self.get(self.q_in)
                self.taken.set()
                if info is _END:
                    break
                batch, ended = [info], False
                while len(batch) < self.batch_size:
                    try:
                        more = self.q_in.get_nowait()
                    except queue.Empty:
                        break
                    if more is _END:
                        ended = True
                        break
                    batch.append(more)
                t0 = time.perf_counter()
                outs = self._stylize(batch)
                self.stats.infer += time.perf_counter() - t0
                for item, out in zip(batch, outs):
                    item.styled = out
                    if not self.put(self.q_out, item):
                        return
                if ended:
                    break
            self.put(self.q_out, _END)
        except BaseException as exc:  # noqa: BLE001
            self.fail(exc)

    def _stylize(self, batch: list[FrameInfo]) -> list[np.ndarray]:
        if len(batch) == 1:
            return [self.stylizer(batch[0].source)]
        if len({b.source.shape for b in batch}) == 1:
            return list(self.stylizer.stylize_batch([b.source for b in batch]))
        return [self.stylizer(b.source) for b in batch]

    def write(self, sink: Any, info: FrameInfo, progress: Callable[[RunStats], None] | None) -> None:
        """Post-stages and sink for one frame (calling thread)."""
        t0 = time.perf_counter()
        styled = info.styled
        for stage, prepared in zip(self.stages, info.prepared):
            styled = stage(info.source, styled, prepared)
        t1 = time.perf_counter()
        try:
            sink.write(styled, info)
        except StopRun:  # the frame was shown; then the user quit
            self._count(t0, t1, info, None)
            raise
        self._count(t0, t1, info, progress)

    def _count(self, t0: float, t1: float, info: FrameInfo, progress: Callable[[RunStats], None] | None) -> None:
        t2 = time.perf_counter()
        stats = self.stats
        stats.post += t1 - t0
        stats.encode += t2 - t1
        stats.latency += t2 - info.t_start
        stats.frames += 1
        if progress is not None:
            progress(stats)


def run(
    source: Iterable[Any],
    stylizer: Stylizer,
    sink: Any,
    stages: Sequence[Stage] = (),
    *,
    queue_size: int = 4,
    batch_size: int = 1,
    live: bool = False,
    progress: Callable[[RunStats], None] | None = None,
) -> RunStats:
    """Stylise every frame of ``source`` into ``sink``, with decode, inference and encode overlapped.

    ``source``: an iterable of ``(H, W, 3)`` uint8 RGB arrays or :class:`Frame` objects; its
    iterator's ``close()`` is called at the end. ``stylizer``: a :class:`Stylizer`.
    ``sink``: has ``write(frame, info)`` and ``close()`` (a plain ``list`` also works); the run
    closes it; its optional ``idle()`` is called on the calling thread while no frame is ready.
    ``stages``: applied in order after the model (``prepare`` on the decode thread).
    ``live``: for cameras that hand over their newest frame: read the next frame only when the
    model starts on the previous one, so it is at most one inference old (nothing waits queued).
    ``batch_size`` > 1 stylises up to that many frames already waiting with one
    ``stylize_batch`` call (GPU throughput; latency grows). ``progress(stats)`` is called on
    the calling thread after each written frame.
    """
    sink = _as_sink(sink)
    state = _Run(stylizer, stages, queue_size, batch_size, live)
    stats = state.stats
    threads = [
        threading.Thread(target=state.decode, args=(source,), name="nst-decode", daemon=True),
        threading.Thread(target=state.infer, name="nst-infer", daemon=True),
    ]
    t_begin = time.perf_counter()
    interrupted = sink_failed = False
    interrupt: KeyboardInterrupt | None = None  # the original Ctrl-C (or a stop signal), kept as the cause
    for thread in threads:
        thread.start()
    try:
        try:
            idle = getattr(sink, "idle", None)  # e.g. a window kept responsive while a model compiles
            while True:
                info = state.get(state.q_out, idle)
                if info is _END:
                    break
                state.write(sink, info, progress)
        except StopRun:
            pass
        except KeyboardInterrupt as exc:
            interrupted, interrupt = True, exc
        except BaseException as exc:  # noqa: BLE001 - sink or stage failed; re-raised below
            sink_failed = True
            state.fail(exc)
        state.stop.set()
        _join(threads)
        if state.errors and isinstance(state.errors[0], KeyboardInterrupt):
            interrupted = True  # Ctrl-C raised inside the stylizer or the source
            state.errors.pop(0)
        if interrupted and not state.errors:
            _drain(state, sink)
    except KeyboardInterrupt as exc:  # a second Ctrl-C while stopping: still finalise below
        interrupted, interrupt = True, interrupt or exc
        state.stop.set()
    finally:
        stats.seconds = time.perf_counter() - t_begin
        if interrupted and not sink_failed:
            _tell_stopped_early(sink)
        close_error = _finish_sink(sink, failed=sink_failed, quiet=bool(state.errors))
    if state.errors:
        raise state.errors[0]
    if close_error is not None:
        raise close_error
    if interrupted:
        stats.interrupted = True
        raise Interrupted(stats) from interrupt
    return stats


def _join(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("thread %s did not stop within %.0f s; leaving it", thread.name, JOIN_TIMEOUT_S)


def _drain(state: _Run, sink: Any) -> None:
    """After Ctrl-C: write the frames that were already stylised, in order."""
    while True:
        try:
            info = state.q_out.get_nowait()
        except queue.Empty:
            return
        if info is _END:
            return
        try:
            state.write(sink, info, None)
        except (StopRun, KeyboardInterrupt):
            return
        except BaseException as exc:  # noqa: BLE001 - e.g. the disk filled up; re-raised by run()
            state.fail(exc)
            return


def _tell_stopped_early(sink: Any) -> None:
    """Ctrl-C: let a sink that can (``stopped_early()``) end its file at the last frame written."""
    notice = getattr(sink, "stopped_early", None)
    if notice is None:
        return
    try:
        notice()
    except Exception:  # noqa: BLE001 - the file is still closed normally below
        log.debug("stopped_early() failed", exc_info=True)


def _finish_sink(sink: Any, failed: bool, quiet: bool) -> BaseException | None:
    """Close (finalise) the sink, or abort it if writing failed; return what closing raised.

    After a failure elsewhere (the source, the model) the sink is still closed normally, so a
    recording keeps every frame written before the camera vanished.
    """
    closer = getattr(sink, "abort", None) if failed else None
    closer = closer or getattr(sink, "close", None)
    if closer is None:
        return None
    try:
        closer()
    except BaseException as exc:  # noqa: BLE001 - the caller decides which error wins
        if quiet:
            log.debug("closing the sink after an error failed too", exc_info=True)
            return None
        return exc
    return None
