"""Headless Chromium with a fake camera, driven over the DevTools protocol (for the nst-serve test and benchmark).

:func:`find_chromium` locates the browser (``$NST_CHROMIUM``, then ``chromium``,
``chromium-browser``, ``google-chrome`` on the PATH); :func:`write_y4m` writes the video the
fake camera plays (looped); :class:`Chromium` starts the browser with a fresh profile and
talks to it through one WebSocket (``aiohttp``), one :class:`Tab` per page.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np

FLAGS = (  # quiet, reproducible, no network of its own (see the machine notes)
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)


def find_chromium() -> str | None:
    """The Chromium executable, or None where there is none."""
    candidates = [os.environ.get("NST_CHROMIUM", "")] + ["chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        if name and (found := shutil.which(name)):
            return found
    return None


def write_y4m(path: Path, frames: Sequence[np.ndarray], fps: int = 30) -> Path:
    """Write ``(H, W, 3)`` uint8 RGB frames (even sides) as a 4:2:0 Y4M file, the fake camera's format."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


class DevToolsError(RuntimeError):
    pass


class Tab:
    """One page: ``call`` a DevTools method on it, ``evaluate`` JavaScript, take screenshots, close it."""

    def __init__(self, browser: Chromium, target_id: str, session_id: str) -> None:
        self.browser, self.target_id, self.session_id = browser, target_id, session_id

    async def call(self, method: str, **params: Any) -> dict:
        return await self.browser.call(method, session=self.session_id, **params)

    async def navigate(self, url: str) -> int | None:
        """Open ``url``; returns the HTTP status of the document (None if unknown)."""
        seen = len(self.browser.events)
        await self.call("Network.enable")
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for event in self.browser.events[seen:]:
                params = event.get("params", {})
                if (
                    event.get("sessionId") == self.session_id
                    and event.get("method") == "Network.responseReceived"
                    and params.get("type") == "Document"
                ):
                    return int(params["response"]["status"])
            await asyncio.sleep(0.05)
        return None

    def errors(self) -> list[str]:
        """What went wrong in the page so far: uncaught exceptions, console errors, browser errors (CSP...)."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session_id:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise DevToolsError(reply["exceptionDetails"].get("text", "exception") + f" in {expression[:80]}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0, interval: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy; returns its value, or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} stayed false for {timeout:g} s")
            await asyncio.sleep(interval)

    async def screenshot(self, clip: dict | None = None) -> np.ndarray:
        """The page (or ``clip`` {x, y, width, height} in CSS pixels) as ``(H, W, 3)`` uint8 RGB."""
        params: dict[str, Any] = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        data = base64.b64decode((await self.call("Page.captureScreenshot", **params))["data"])
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    async def close(self) -> None:
        """Close the tab as a user would (the page gets its ``pagehide``)."""
        await self.browser.call("Target.closeTarget", targetId=self.target_id)


class Chromium:
    """``async with Chromium(camera=y4m) as browser: tab = await browser.new_tab()``."""

    def __init__(self, executable: str, camera: Path | None = None, window: tuple[int, int] = (900, 680)) -> None:
        self.executable, self.camera, self.window = executable, camera, window
        self.events: list[dict] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._profile = tempfile.TemporaryDirectory(prefix="nst-chromium-", ignore_cleanup_errors=True)
        self._process: subprocess.Popen | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> Chromium:
        args = [self.executable, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0"]
        args.append(f"--window-size={self.window[0]},{self.window[1]}")
        if self.camera is not None:
            args.append(f"--use-file-for-fake-video-capture={self.camera}")
        self._process = subprocess.Popen(
            [*args, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        port_file = Path(self._profile.name, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                await self.__aexit__(None, None, None)
                raise DevToolsError("Chromium did not start (no DevToolsActivePort)")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)
                del self.events[:-5000]
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(DevToolsError("Chromium closed the DevTools connection"))

    async def call(self, method: str, session: str | None = None, timeout: float = 30.0, **params: Any) -> dict:
        assert self._ws is not None
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def new_tab(self) -> Tab:
        target = (await self.call("Target.createTarget", url="about:blank"))["targetId"]
        session = (await self.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        tab = Tab(self, target, session)
        await tab.call("Page.enable")
        await tab.call("Runtime.enable")
        await tab.call("Log.enable")
        return tab

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGTERM)  # its renderers: the group it was started in
            await asyncio.sleep(0.2)
        self._profile.cleanup()
