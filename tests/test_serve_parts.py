"""nst-serve's parts on their own: settings, clocks, the batching engine, the catalogue, the frame matcher."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from serve_helpers import Invert, Loader, Palette, entries

from realtime.core.errors import InvalidValue
from realtime.serve.catalog import Catalogue, build_entries, sample_picture
from realtime.serve.client import PtsMatcher
from realtime.serve.engine import BatchPolicy, Engine, Pending, Route
from realtime.serve.session import suggested_fps
from realtime.serve.settings import Settings, style_terms, updated
from realtime.serve.timing import CaptureClock, out_pts

IDS = ["m0", "m1"]


# -- settings -------------------------------------------------------------------------------------
def test_settings_update_only_what_a_message_names():
    s = Settings(model="m0", strength=0.5)
    assert updated(s, {}, IDS) == s
    s2 = updated(s, {"strength": 1, "preserve_color": True, "stabilize": 0.7, "side_by_side": True}, IDS)
    assert s2 == Settings("m0", None, 1.0, True, 0.7, True)
    assert updated(s2, {"stabilize": False}, IDS).stabilize is None
    assert updated(s2, {"stabilize": None}, IDS).stabilize is None
    with_style = updated(s, {"model": "m1", "style": "a:1,b:2"}, IDS)
    assert with_style.style == "a:1,b:2"
    assert updated(with_style, {"model": "m0"}, IDS).style is None  # a new model starts at its default
    assert updated(with_style, {"model": "m1"}, IDS).style == "a:1,b:2"


@pytest.mark.parametrize(
    "message,setting,words",
    [
        ({"strength": 1.5}, "strength", "between 0 and 1"),
        ({"strength": True}, "strength", "a number"),
        ({"stabilize": "on"}, "stabilize", "a number"),
        ({"stabilize": -0.1}, "stabilize", "between 0 and 1"),
        ({"preserve_color": 1}, "preserve_color", "true or false"),
        ({"model": "../weights/x.onnx"}, "model", "not in the catalogue"),
        ({"model": 3}, "model", "not in the catalogue"),
        ({"style": "a:-1"}, "style", ">= 0"),
        ({"style": "x" * 600}, "style", "at most 512"),
        ({"style": 5}, "style", "style spec"),
        ({"fps": 30}, "fps", "is not a setting"),
    ],
)
def test_bad_settings_name_the_setting(message, setting, words):
    with pytest.raises(InvalidValue) as info:
        updated(Settings(model="m0"), message, IDS)
    assert info.value.name == setting and words in str(info.value)


def test_style_terms_accept_only_the_models_own_names():
    names = ["mosaic", "Candy", "udnie"]
    assert [(t.key, t.weight) for t in style_terms("candy:0.5, 0:0.5", names)] == [("Candy", 0.5), ("mosaic", 0.5)]
    for spec in ("starry", "3", "/etc/passwd", "painting.jpg:1", "http://x/a.jpg"):
        with pytest.raises(InvalidValue, match="is not a style of this model"):
            style_terms(spec, names)


def test_suggested_send_rate_follows_what_the_model_takes():
    assert [suggested_fps(r) for r in (0, 2, 10, 18.7, 40)] == [5, 5, 17, 30, 30]


# -- clocks ---------------------------------------------------------------------------------------
def test_capture_clock_takes_the_fastest_frame_as_the_anchor():
    clock = CaptureClock()
    # frames captured every 1/30 s from t=100; travel times 20, 5, 12 ms
    assert clock.observe(0, 100.020) == pytest.approx(100.020)
    assert clock.observe(3000, 100.0333 + 0.005) == pytest.approx(100.0383, abs=1e-4)
    # from now on the anchor is 100.005: latencies are never over-stated
    assert clock.observe(6000, 100.0667 + 0.012) == pytest.approx(100.0717, abs=1e-4)
    assert clock.observe(None, 7.0) == 7.0
    assert clock.observe(900_000, 110.010) == pytest.approx(110.005, abs=1e-4)
    clock.observe(10, 200.0)  # pts jumped back 10 s: a restarted sender, a new anchor
    assert clock.observe(3010, 200.0333 + 0.001) == pytest.approx(200.0334, abs=1e-4)


def test_out_pts_follow_the_clock_and_always_increase():
    assert out_pts(None, 1.0) == 90000
    assert out_pts(90000, 1.0) == 90001
    assert out_pts(5, 2.0) == 180000


def test_pts_matcher_learns_the_offset_and_matches_frames():
    rng = np.random.default_rng(1)
    server = np.cumsum(rng.integers(2800, 3200, 60)) + 2**32 - 50_000  # wraps around 2**32
    offset = 123_456_789
    matcher = PtsMatcher()
    found = []
    for i, pts in enumerate(server):
        matcher.known(int(pts), i)
        if i % 2 == 0:  # the receiver sees every other frame
            found.append(matcher.match(int(pts) + offset))
    assert matcher.offset == offset % 2**32
    assert found[:2] == [None, None] and found[3:] == list(range(6, 60, 2))
    assert matcher.match(5) is None  # unknown frames are not matched to anything


# -- the engine -----------------------------------------------------------------------------------
class FakeClient:
    def __init__(self, stylizer, model="m0", style=None) -> None:
        self.stylizer, self.model, self.style = stylizer, model, style
        self.results, self.errors = [], []
        self.done = threading.Event()

    def route(self):
        return Route(self.stylizer, self.model, self.style)

    def deliver(self, result):
        self.results.append(result)
        self.done.set()

    def failed(self, error):
        self.errors.append(error)
        self.done.set()


def pending(value: int, shape=(8, 8)) -> Pending:
    return Pending(lambda: np.full((*shape, 3), value, np.uint8), time.monotonic(), time.monotonic())


def wait_idle(engine: Engine) -> None:
    engine.call(lambda: None).result(5)


def test_engine_keeps_only_the_newest_frame_of_a_connection():
    engine = Engine(BatchPolicy("on"))
    gate = threading.Event()
    engine.call(gate.wait)  # hold the engine while frames arrive
    client = FakeClient(Invert())
    slot = engine.attach(client)
    for value in (10, 20, 30):
        engine.offer(slot, pending(value))
    gate.set()
    wait_idle(engine)
    engine.stop()
    assert [int(r.source[0, 0, 0]) for r in client.results] == [30]
    assert (slot.received, slot.dropped, slot.processed) == (3, 2, 1)
    assert int(client.results[0].styled[0, 0, 0]) == 225


def test_engine_batches_same_model_and_size_and_splits_the_rest():
    engine = Engine(BatchPolicy("on", max_batch=2))
    invert, palette = Invert(), Palette()
    clients = [
        FakeClient(invert),
        FakeClient(invert),
        FakeClient(invert),  # three of a kind: a batch of 2, then 1
        FakeClient(invert, "m0"),  # another size
        FakeClient(palette, "m1", np.array([0, 1, 0], np.float32)),
        FakeClient(palette, "m1", np.array([0, 0, 1], np.float32)),  # same model, other style
    ]
    gate = threading.Event()
    engine.call(gate.wait)
    slots = [engine.attach(c) for c in clients]
    for i, slot in enumerate(slots):
        engine.offer(slot, pending(i, (8, 8) if i != 3 else (8, 16)))
    gate.set()
    wait_idle(engine)
    engine.stop()
    assert sorted(invert.batches) == [1, 1, 2]
    assert sorted(palette.batches) == [(1, (0.0, 0.0, 1.0)), (1, (0.0, 1.0, 0.0))]
    assert tuple(clients[4].results[0].styled[0, 0]) == (0, 255, 0)
    assert tuple(clients[5].results[0].styled[0, 0]) == (0, 0, 255)
    assert all(len(c.results) == 1 for c in clients)


def test_engine_keeps_serving_when_a_model_fails():
    class Broken(Invert):
        def stylize_batch(self, frames):
            raise RuntimeError("boom")

    engine = Engine(BatchPolicy("off"))
    bad, good = FakeClient(Broken()), FakeClient(Invert())
    bad_slot, good_slot = engine.attach(bad), engine.attach(good)
    engine.offer(bad_slot, pending(1))
    engine.offer(good_slot, pending(2))
    assert bad.done.wait(5) and good.done.wait(5)
    engine.stop()
    assert str(bad.errors[0]) == "boom" and len(good.results) == 1
    assert not engine.alive


def test_engine_jobs_run_on_its_thread_and_fail_after_stop():
    engine = Engine()
    assert engine.call(lambda: threading.current_thread().name).result(5) == "nst-serve-engine"
    with pytest.raises(ZeroDivisionError):
        engine.call(lambda: 1 / 0).result(5)
    engine.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        engine.call(lambda: None)


def test_auto_batching_times_both_ways_then_keeps_the_faster():
    policy = BatchPolicy("auto", max_batch=8)
    key = ("m0", (180, 320, 3))
    seen = []
    for _ in range(6):
        batched, chunks = policy.plan(key, 4)
        seen.append(batched)
        policy.record(key, batched, 4, 0.04 if batched else 0.1)  # batching is 2.5x faster here
    assert sorted(seen) == [False] * 3 + [True] * 3
    assert policy.decided == {key: True}
    assert policy.plan(key, 4) == (True, [4])
    assert policy.plan(key, 1) == (False, [1])
    slow = BatchPolicy("auto")
    for _ in range(6):
        batched, _ = slow.plan(key, 3)
        slow.record(key, batched, 3, 0.2 if batched else 0.1)
    assert slow.plan(key, 3) == (False, [1, 1, 1])
    assert BatchPolicy("on", max_batch=3).plan(key, 7) == (True, [3, 3, 1])
    assert BatchPolicy("off").plan(key, 3) == (False, [1, 1, 1])


# -- the catalogue --------------------------------------------------------------------------------
def test_entries_put_given_models_first_and_list_each_once():
    found = build_entries(
        ["weights/mosaic.onnx", "candy"], [("mosaic", "/w/mosaic.onnx"), ("candy", "/w/candy.onnx"), ("udnie", "/u")]
    )
    assert [(e.id, e.name, e.source, e.pinned) for e in found] == [
        ("m0", "mosaic", "weights/mosaic.onnx", True),
        ("m1", "candy", "candy", True),
        ("m2", "udnie", "/u", False),
    ]


def test_catalogue_loads_on_demand_shares_and_unloads():
    async def scenario():
        loader, engine = Loader(), Engine()
        unloads = []
        catalogue = Catalogue(entries("invert", "palette"), loader, engine, on_unload=lambda: unloads.append(1))
        await catalogue.pin("m0")
        a, b = await asyncio.gather(catalogue.acquire("m1"), catalogue.acquire("m1"))
        assert a is b and loader.loads == ["invert", "palette"]  # one load for both
        assert catalogue.refs("m1") == 2
        catalogue.release("m1")
        assert catalogue.loaded() == ["m0", "m1"]
        catalogue.release("m1")
        assert catalogue.loaded() == ["m0"] and unloads == [1]
        await catalogue.close()
        engine.stop()

    asyncio.run(scenario())


def test_thumbnails_show_each_style_and_leave_the_models_style_as_it_was():
    async def scenario():
        loader, engine = Loader(), Engine()
        catalogue = Catalogue(entries("invert", "palette"), loader, engine)
        await catalogue.scan()
        palette = loader.built["palette"][0]
        assert catalogue.entries["m1"].styles == ["red", "green", "blue"]
        assert catalogue.entries["m0"].styles == []
        assert np.allclose(palette.current_style(), [1, 0, 0])
        thumbs = [catalogue.thumbnail("m1", s) for s in (None, 0, 1, 2)]
        assert all(t[:2] == b"\xff\xd8" for t in thumbs) and len(set(thumbs[1:])) == 3
        assert catalogue.thumbnail("m1", 3) is None and catalogue.thumbnail("m0", 0) is None
        assert catalogue.loaded() == []  # nothing pinned here: the scan loaded and dropped both
        await catalogue.close()
        engine.stop()

    asyncio.run(scenario())


def test_sample_picture_is_package_data():
    picture = sample_picture((64, 36))
    assert picture.shape == (36, 64, 3) and picture.dtype == np.uint8 and picture.std() > 10
