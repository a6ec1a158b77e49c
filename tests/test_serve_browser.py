"""nst-serve in a real browser: headless Chromium with a fake camera, the page, the shipped models.

Skipped (with the reason) where Chromium is not installed; ``.ci/run`` installs Debian's
``chromium`` where apt is available. ``NST_SERVE_SCREENSHOT=docs/serve.png`` keeps the page's
screenshot (the README's picture).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from PIL import Image

from realtime.core.images import read_image, resize

pytest.importorskip("aiortc")
from bench.chromium import Chromium, find_chromium, write_y4m  # noqa: E402
from bench.serve_process import ServeProcess  # noqa: E402

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TOKEN = "browser-test-token"
WIDTH, HEIGHT = 320, 180


def camera_frames() -> list[np.ndarray]:
    """One second of a photo with a small square moving along the bottom (the fake camera loops it)."""
    photo = resize(read_image(SAMPLES / "content" / "chicago.jpg"), HEIGHT, WIDTH, "high")
    frames = []
    for i in range(30):
        frame = photo.copy()
        x = 8 + i * 9
        frame[HEIGHT - 28 : HEIGHT - 8, x : x + 20] = (255, 40, 40)
        frames.append(frame)
    return frames


def photo_at_size() -> np.ndarray:
    return camera_frames()[0]


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0..255) of two pictures, ``b`` resized to ``a``."""
    b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


async def video_picture(tab) -> np.ndarray:
    """A screenshot of the stylised video as shown (its element's box, letterboxing trimmed)."""
    box = await tab.evaluate(
        """(() => { const v = document.getElementById('out'); const r = v.getBoundingClientRect();
        const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
        const w = v.videoWidth * s, h = v.videoHeight * s;
        return {x: r.x + (r.width - w) / 2 + 2, y: r.y + (r.height - h) / 2 + 2, width: w - 4, height: h - 4}; })()"""
    )
    return await tab.screenshot(box)


async def frames_later(tab, count: int) -> None:
    shown = await tab.evaluate("nst.framesShown")
    await tab.wait_for(f"nst.framesShown >= {shown + count}")


async def status(base: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "api/status", headers={"X-NST-Token": TOKEN}) as r:
            return await r.json()


async def browser_scenario(tmp_path: Path, server: ServeProcess) -> dict:
    camera = write_y4m(tmp_path / "camera.y4m", camera_frames())
    photo = camera_frames()[0]
    found: dict = {}
    async with Chromium(CHROMIUM, camera=camera) as browser:
        tab = await browser.new_tab()
        assert await tab.navigate(server.url) == 200
        await tab.wait_for("window.nst && nst.framesMatched >= 6", timeout=40)  # stylised frames, matched
        found["fps"], found["latency"] = await tab.evaluate("[nst.fps, nst.latencyMs]")
        assert await tab.evaluate("nst.modelName") == "mosaic_small"
        assert await tab.evaluate("document.querySelectorAll('.style').length") >= 2
        mosaic = await video_picture(tab)
        found["stylised_vs_camera"] = difference(mosaic, photo)

        # strength 0 through the slider: the camera picture comes back (so the comparison above means something)
        await tab.evaluate(
            "(() => { const s = document.getElementById('strength'); s.value = '0';"
            " s.dispatchEvent(new Event('input')); })()"
        )
        await tab.wait_for("nst.settings.strength === 0")
        await frames_later(tab, 3)
        found["strength0_vs_camera"] = difference(await video_picture(tab), photo)
        await tab.evaluate(
            "(() => { const s = document.getElementById('strength'); s.value = '1';"
            " s.dispatchEvent(new Event('input')); })()"
        )

        # a style change by clicking a thumbnail
        await tab.evaluate("document.querySelector('.style[data-model=\"m1\"]').click()")
        await tab.wait_for("nst.settings.model === 'm1' && nst.settings.strength === 1 && nst.last.model === 'm1'")
        await frames_later(tab, 3)
        assert await tab.evaluate("nst.modelName") == "candy"
        candy = await video_picture(tab)
        found["candy_vs_mosaic"] = difference(candy, mosaic)

        # side by side, then the README's screenshot
        await tab.evaluate("document.getElementById('sbs').click()")
        await tab.wait_for("document.getElementById('out').videoWidth === 640", timeout=20)
        await frames_later(tab, 3)
        page = await tab.screenshot()
        found["page"] = page
        downloads = tmp_path / "downloads"
        await browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        await tab.evaluate("document.getElementById('snapshot').click()")
        for _ in range(100):
            snapshots = list(downloads.glob("nst-serve_candy_*.png"))
            if snapshots:
                break
            await asyncio.sleep(0.1)
        found["snapshot"] = read_image(snapshots[0]) if snapshots else None
        found["page_errors"] = tab.errors()  # uncaught exceptions, console errors, CSP violations
        assert (await status(server.base))["clients"] == 1

        await tab.close()  # the tab goes: its session must end
        for _ in range(100):
            if (await status(server.base))["clients"] == 0:
                break
            await asyncio.sleep(0.1)
        found["clients_after_close"] = (await status(server.base))["clients"]

        # a wrong token: 403, no page script, no session
        stranger = await browser.new_tab()
        found["wrong_token_status"] = await stranger.navigate(server.base + "?token=wrong-token")
        found["wrong_token_nst"] = await stranger.evaluate("typeof window.nst")
        await asyncio.sleep(0.5)
        found["clients_after_stranger"] = (await status(server.base))["clients"]
    return found


def test_the_page_shows_a_live_stylised_camera_and_switches_styles(tmp_path):
    args = ["--model", "mosaic_small", "--model", "candy", "--no-local-models", "--size", f"{WIDTH}x{HEIGHT}"]
    with ServeProcess([*args, "--token", TOKEN, "--idle-timeout", "8"]) as server:
        assert server.url.endswith(f"?token={TOKEN}")
        found = asyncio.run(asyncio.wait_for(browser_scenario(tmp_path, server), 120))
        server_log = "\n".join(server.lines)
    print(f"browser: {found['fps']:.1f} fps, latency {found['latency']:.0f} ms (capture to display)")
    cv2.imwrite(str(tmp_path / "page.png"), cv2.cvtColor(found["page"], cv2.COLOR_RGB2BGR))
    if os.environ.get("NST_SERVE_SCREENSHOT"):  # small for the README: a 256-colour palette PNG
        Image.fromarray(found["page"]).quantize(256).save(os.environ["NST_SERVE_SCREENSHOT"], optimize=True)
    assert found["stylised_vs_camera"] > 30  # the picture is stylised...
    assert found["strength0_vs_camera"] < 15  # ...and strength 0 gives the camera picture back
    assert found["candy_vs_mosaic"] > 15  # the style change shows
    assert found["page_errors"] == []
    snapshot = found["snapshot"]
    assert snapshot is not None and snapshot.shape == (HEIGHT, 2 * WIDTH, 3)  # the PNG download, side by side
    assert difference(snapshot[:, :WIDTH], photo_at_size()) < 15 < difference(snapshot[:, WIDTH:], photo_at_size())
    assert found["clients_after_close"] == 0
    ended = re.findall(r"session \S+ ends: (.*)", server_log)
    assert ended and not ended[0].startswith("no camera frame"), server_log  # the tab's goodbye, not the timeout
    assert found["wrong_token_status"] == 403 and found["wrong_token_nst"] == "undefined"
    assert found["clients_after_stranger"] == 0
