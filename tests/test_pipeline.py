"""realtime.pipeline.run on lists of arrays: order, stages, errors, Ctrl-C, overlap."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fakes import IdentityStylizer, ListSink

from realtime.io.sinks import TeeSink
from realtime.pipeline import Frame, Interrupted, RunStats, StopRun, run


def frames(n: int = 40, h: int = 12, w: int = 16) -> list[np.ndarray]:
    return [np.full((h, w, 3), i % 256, np.uint8) for i in range(n)]


def ids(seq) -> list[int]:
    return [int(f[0, 0, 0]) for f in seq]


class Plus1(IdentityStylizer):
    def __call__(self, frame):
        return frame + np.uint8(1)

    def stylize_batch(self, batch):
        return [f + np.uint8(1) for f in batch]


class Recorder:
    """A stage that records which thread and order prepare/__call__ run in."""

    def __init__(self) -> None:
        self.prepared: list[tuple[int, str]] = []
        self.called: list[tuple[int, object, str]] = []
        self.resets = 0

    def prepare(self, source):
        self.prepared.append((int(source[0, 0, 0]), threading.current_thread().name))
        return ("p", int(source[0, 0, 0]))

    def __call__(self, source, styled, prepared=None):
        self.called.append((int(source[0, 0, 0]), prepared, threading.current_thread().name))
        return styled

    def reset(self):
        self.resets += 1


class Boom(Exception):
    pass


def test_identity_keeps_order_and_count():
    src = frames(50)
    out: list[np.ndarray] = []
    stats = run(src, IdentityStylizer(), out)
    assert ids(out) == ids(src)
    assert all(np.array_equal(a, b) for a, b in zip(src, out))
    assert stats.frames == 50 and stats.fps > 0 and not stats.interrupted
    assert "50 frames" in stats.summary() and "infer" in stats.summary()


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batches_keep_order(batch_size):
    sink = ListSink()
    run(frames(23), Plus1(), sink, batch_size=batch_size, queue_size=2)
    assert ids(sink.frames) == [i + 1 for i in range(23)]
    assert sink.closed and not sink.aborted


def test_frame_meta_reaches_the_sink():
    src = [Frame(img, meta={"pts": i * 7}) for i, img in enumerate(frames(10))]
    sink = ListSink()
    run(src, IdentityStylizer(), sink)
    assert [info.meta["pts"] for info in sink.infos] == [i * 7 for i in range(10)]
    assert [info.index for info in sink.infos] == list(range(10))
    assert all(np.array_equal(info.source, f.image) for info, f in zip(sink.infos, src))


def test_stages_prepare_on_decode_thread_and_apply_in_order_on_caller():
    stage = Recorder()
    run(frames(30), Plus1(), ListSink(), [stage])
    assert [i for i, _ in stage.prepared] == list(range(30))
    assert {name for _, name in stage.prepared} == {"nst-decode"}
    assert [i for i, _, _ in stage.called] == list(range(30))
    assert all(p == ("p", i) for i, p, _ in stage.called)
    assert {name for *_, name in stage.called} == {threading.current_thread().name}


def test_error_in_stylizer_propagates_and_threads_stop():
    class Bad(IdentityStylizer):
        def __call__(self, frame):
            if frame[0, 0, 0] == 5:
                raise Boom("model failed")
            return frame

    before = threading.active_count()
    sink = ListSink()
    with pytest.raises(Boom, match="model failed"):
        run(frames(40), Bad(), sink)
    assert ids(sink.frames) == list(range(len(sink.frames))) and len(sink.frames) <= 5
    assert sink.closed  # the sink itself was fine: finalised, not aborted
    assert threading.active_count() == before  # run() joined its threads before raising


def test_error_in_sink_propagates_and_aborts_it():
    class FullDisk(ListSink):
        def write(self, frame, info=None):
            if len(self.frames) == 3:
                raise OSError(28, "No space left on device")
            super().write(frame, info)

    sink = FullDisk()
    with pytest.raises(OSError) as err:
        run(frames(40), IdentityStylizer(), sink)
    assert err.value.errno == 28
    assert sink.aborted and not sink.closed


def test_error_in_source_propagates_and_source_is_closed():
    closed = []

    def gen():
        try:
            for i, f in enumerate(frames(20)):
                if i == 7:
                    raise Boom("truncated")
                yield f
        finally:
            closed.append(True)

    sink = ListSink()
    with pytest.raises(Boom, match="truncated"):
        run(gen(), IdentityStylizer(), sink)
    assert closed == [True]
    assert ids(sink.frames) == list(range(len(sink.frames)))


def test_bad_frame_type_is_a_clear_error():
    with pytest.raises(TypeError, match="uint8"):
        run([np.zeros((4, 4), np.float32)], IdentityStylizer(), [])


def test_keyboard_interrupt_from_stylizer_finalises_sink():
    class CtrlC(IdentityStylizer):
        def __call__(self, frame):
            if frame[0, 0, 0] == 10:
                raise KeyboardInterrupt
            return frame

    sink = ListSink()
    with pytest.raises(KeyboardInterrupt) as err:
        run(frames(40), CtrlC(), sink)
    assert isinstance(err.value, Interrupted)
    assert err.value.stats.interrupted and err.value.stats.frames == len(sink.frames)
    assert ids(sink.frames) == list(range(10))  # every frame stylised before Ctrl-C is written
    assert sink.closed and not sink.aborted


def test_keyboard_interrupt_in_caller_finalises_sink():
    class CtrlCSink(ListSink):
        def write(self, frame, info=None):
            super().write(frame, info)
            if len(self.frames) == 4:
                raise KeyboardInterrupt

    sink = CtrlCSink()
    with pytest.raises(Interrupted):
        run(frames(100), IdentityStylizer(), sink)
    assert sink.closed and ids(sink.frames) == list(range(len(sink.frames)))
    assert 4 <= len(sink.frames) < 100


def test_stop_run_ends_normally():
    class Quit(ListSink):
        def write(self, frame, info=None):
            super().write(frame, info)
            if len(self.frames) == 6:
                raise StopRun()

    sink = Quit()
    stats = run(frames(100), IdentityStylizer(), sink)
    assert stats.frames == 6 and sink.closed and not stats.interrupted


def test_source_model_and_sink_run_at_the_same_time():
    """Source, model and sink each wait at a barrier for the other two, frame after frame.

    Only a pipeline that really runs the three at once gets through (a serial one breaks the
    barrier after its timeout, a deadlock guard, not a measurement). Speed: ``python -m bench pipeline``.
    """
    n = 8
    barrier = threading.Barrier(3, timeout=30)

    def source():
        for i, f in enumerate(frames(n)):
            if i >= 2:
                barrier.wait()  # round i - 2: about to read frame i ...
            yield f

    class Model(IdentityStylizer):
        def __call__(self, frame):
            if 1 <= frame[0, 0, 0] <= n - 2:
                barrier.wait()  # ... while the model works on frame i - 1 ...
            return frame.copy()

    class Sink(ListSink):
        def write(self, frame, info=None):
            if frame[0, 0, 0] <= n - 3:
                barrier.wait()  # ... and the sink writes frame i - 2
            super().write(frame, info)

    sink = Sink()
    stats = run(source(), Model(), sink)
    assert ids(sink.frames) == list(range(n)) and stats.frames == n and not barrier.broken


def test_stages_apply_in_the_given_order():
    class Affine:
        def __init__(self, mul: int, add: int) -> None:
            self.mul, self.add = mul, add

        def prepare(self, source):
            return None

        def __call__(self, source, styled, prepared=None):
            return (styled.astype(int) * self.mul + self.add).astype(np.uint8)

        def reset(self):
            pass

    sink = ListSink()
    run(frames(6), IdentityStylizer(), sink, [Affine(2, 0), Affine(1, 3)])
    assert ids(sink.frames) == [2 * i + 3 for i in range(6)]  # (2 i) + 3, not 2 (i + 3)


def test_tee_sink_writes_all_and_raises_first_close_error():
    a, b = ListSink(), ListSink()
    run(frames(5), IdentityStylizer(), TeeSink(a, None, b))
    assert len(a.frames) == len(b.frames) == 5 and a.closed and b.closed


def test_runstats_summary():
    s = RunStats(frames=10, seconds=2.0, decode=0.1, infer=1.0, post=0.05, encode=0.2)
    assert s.fps == 5.0
    assert s.per_frame_ms()["infer"] == pytest.approx(100.0)
    assert "5.0 frames/s" in s.summary()


def test_live_mode_reads_a_frame_only_when_the_model_takes_the_last():
    """Frame i is read only after the model took frame i - 1 (checked at every read), however slow the model."""
    started: list[int] = []  # frames the model was called on
    early_reads: list[tuple[int, int]] = []
    read_ahead = threading.Event()

    def camera():
        for i in range(1000):
            # the model took frame i - 1 before this read, so it was called on frame i - 2 at least
            if i >= 2 and len(started) < i - 1:
                early_reads.append((i, len(started)))
            if i == 3 and not started[1:]:
                read_ahead.set()  # frame 3 read while the model still holds frame 0
            yield np.full((4, 4, 3), i % 256, np.uint8)

    class Stuck(IdentityStylizer):
        """Holds frame 0 until the reader got 3 frames ahead, or for 0.5 s when it (rightly) does not."""

        def __call__(self, frame):
            started.append(int(frame[0, 0, 0]))
            if frame[0, 0, 0] == 0:
                read_ahead.wait(0.5)
            return frame

    class Stop(ListSink):
        def write(self, frame, info=None):
            super().write(frame, info)
            if len(self.frames) == 8:
                raise StopRun()

    sink = Stop()
    run(camera(), Stuck(), sink, queue_size=4, live=True)
    assert ids(sink.frames) == list(range(8))
    assert early_reads == [] and not read_ahead.is_set()


def test_without_live_mode_the_reader_runs_ahead():
    pulled: list[int] = []
    ahead = threading.Event()

    def camera():
        for i in range(1000):
            pulled.append(i)
            if len(pulled) == 4:
                ahead.set()
            yield np.full((4, 4, 3), i % 256, np.uint8)

    class Stuck(IdentityStylizer):
        def __call__(self, frame):
            if frame[0, 0, 0] == 0:
                assert ahead.wait(30)  # the queue fills while the model holds frame 0
            return frame

    class Stop(ListSink):
        def write(self, frame, info=None):
            super().write(frame, info)
            if len(self.frames) == 3:
                raise StopRun()

    run(camera(), Stuck(), Stop(), queue_size=4)
    assert ahead.is_set()
