"""The aiohttp application of ``nst-serve``: the page, signalling, the catalogue and status.

Routes (all but the page's script and style sheet need the token when one is set: ``?token=``
or the ``X-NST-Token`` header; a wrong one gets 403 and no media):

==========================  ===========================================================================
``GET /``                   the page (``assets/index.html``)
``GET /app.js``, ``/app.css``  its script and style sheet
``POST /offer``             ``{"sdp", "type": "offer"[, "settings": {...}]}`` -> ``{"sdp", "type":
                            "answer", "session"}`` (aiortc's example convention, so any WebRTC
                            client can connect); 503 with a "busy" message at ``max_clients``
``POST /api/close``         ``?session=ID``: end a session (the page's beacon when its tab closes)
``GET /api/config``         what the page needs: camera size, ICE servers, default model, limits
``GET /api/models``         the catalogue: every model and its run-time styles
``GET /api/thumb/ID.jpg``   a model's thumbnail (``?style=N`` for one of its styles)
``GET /api/status``         connections and engine counters
==========================  ===========================================================================

Nothing here takes a path from a request: assets are package data read at start-up, models
are catalogue ids and thumbnails live in memory. Request bodies are limited to
:data:`MAX_BODY` bytes and an SDP to :data:`MAX_SDP` characters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from realtime.core.errors import UserError, one_line
from realtime.serve.catalog import Catalogue
from realtime.serve.engine import Engine
from realtime.serve.session import Session, SessionContext
from realtime.serve.settings import Settings, updated

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # bytes of any request body
MAX_SDP = 48 * 1024  # characters of an offer's SDP (browsers send 3-10 KB)
ASSETS = {  # URL -> (package file, content type); the only files the server sends
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/app.css": ("app.css", "text/css"),
}
PUBLIC = ("/app.js", "/app.css")  # code, no data: served without the token
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)


@dataclass
class ServeConfig:
    """Server-wide settings. ``size``: the camera size pages ask for, and the most the model gets."""

    default: Settings
    token: str | None = None
    max_clients: int = 4
    size: tuple[int, int] | None = (640, 360)
    idle_timeout: float = 10.0
    connect_timeout: float = 15.0
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    compose_workers: int = 2


class Server:
    """Everything one ``nst-serve`` shares: engine, catalogue, compose pool and the live sessions."""

    def __init__(self, config: ServeConfig, catalogue: Catalogue, engine: Engine) -> None:
        self.config = config
        self.catalogue = catalogue
        self.engine = engine
        self.sessions: dict[str, Session] = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(config.compose_workers, thread_name_prefix="nst-serve-post")
        self.context = SessionContext(
            engine,
            catalogue,
            self.pool,
            size_limit=config.size,
            idle_timeout=config.idle_timeout,
            connect_timeout=config.connect_timeout,
        )
        self.started = time.monotonic()
        self.refused_busy = 0

    def check_token(self, request: web.Request) -> bool:
        if not self.config.token:
            return True
        given = request.query.get("token") or request.headers.get("X-NST-Token") or ""
        return hmac.compare_digest(given.encode(), self.config.token.encode())

    async def open_session(self, sdp: str, kind: str, changes: dict[str, Any]) -> tuple[Session, RTCSessionDescription]:
        """A new session answering the offer; :class:`UserError` for a bad offer or settings."""
        settings = updated(self.config.default, changes, self.catalogue.ids) if changes else self.config.default
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self.config.ice_servers)))
        session = Session(secrets.token_urlsafe(12), pc, self.context, settings)
        self.sessions[session.id] = session  # counts against max_clients from now on
        session.on_closed = lambda s: self.sessions.pop(s.id, None)
        try:
            await session.start()
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
            except (ValueError, KeyError, IndexError) as exc:
                raise UserError(f"unreadable SDP offer: {one_line(exc)[:200]}") from None
            if not session.has_video:
                raise UserError("the offer has no video track; send the camera as a video track")
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            await session.close("the offer was refused")
            raise
        return session, pc.localDescription

    async def close(self) -> None:
        await asyncio.gather(*(s.close("the server is shutting down") for s in list(self.sessions.values())))

    def status(self) -> dict[str, Any]:
        stats = self.engine.stats
        elapsed = max(1e-9, time.monotonic() - stats.started)
        return {
            "clients": len(self.sessions),
            "max_clients": self.config.max_clients,
            "refused_busy": self.refused_busy,
            "sessions": [s.status() for s in self.sessions.values()],
            "engine": {
                "frames": stats.frames,
                "model_calls": stats.calls,
                "busy_seconds": round(stats.busy, 3),
                "busy_fraction": round(stats.busy / elapsed, 3),
                "batching": {f"{m} {s[1]}x{s[0]}": on for (m, s), on in self.engine.policy.decided.items()},
            },
            "models_loaded": self.catalogue.loaded(),
        }


SERVER = web.AppKey("server", Server)


def _error(status: type[web.HTTPException], message: str, **kwargs: Any) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": message}`` (the page shows the message)."""
    return status(text=json.dumps({"error": message}), content_type="application/json", **kwargs)


@web.middleware
async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Token check, then headers that keep the token in the page (no referrer) and code to our own."""
    server = request.app[SERVER]
    if request.path not in PUBLIC and not server.check_token(request):
        raise _error(web.HTTPForbidden, "wrong or missing token: open the URL nst-serve printed")
    response = await handler(request)
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
    return response


def _asset_handler(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = resources.files("realtime.serve").joinpath("assets", name).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    return handler


async def offer(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    try:
        body = await request.json()
    except ValueError:
        raise _error(web.HTTPBadRequest, 'the body must be JSON: {"sdp": ..., "type": "offer"}') from None
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        raise _error(web.HTTPBadRequest, 'expected {"sdp": "<offer SDP>", "type": "offer"}')
    if len(body["sdp"]) > MAX_SDP:
        raise _error(
            web.HTTPRequestEntityTooLarge,
            f"the SDP is longer than {MAX_SDP} characters",
            max_size=MAX_SDP,
            actual_size=len(body["sdp"]),
        )
    changes = body.get("settings") or {}
    if not isinstance(changes, dict):
        raise _error(web.HTTPBadRequest, "settings must be a JSON object")
    if len(server.sessions) >= server.config.max_clients:
        server.refused_busy += 1
        n = server.config.max_clients
        raise _error(
            web.HTTPServiceUnavailable,
            f"busy: {n} of {n} connections are in use; try again when someone leaves",
        )
    try:
        session, answer = await server.open_session(body["sdp"], body["type"], changes)
    except UserError as exc:
        raise _error(web.HTTPBadRequest, one_line(exc)) from None
    log.info("session %s opened (%d of %d)", session.id, len(server.sessions), server.config.max_clients)
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "session": session.id})


async def close_session(request: web.Request) -> web.Response:
    session = request.app[SERVER].sessions.get(request.query.get("session", ""))
    if session is None:
        raise _error(web.HTTPNotFound, "no such session")
    await session.close("the page closed")
    return web.json_response({"closed": session.id})


async def config(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    cfg = server.config
    return web.json_response(
        {
            "size": list(cfg.size) if cfg.size else None,
            "default": cfg.default.as_json(),
            "max_clients": cfg.max_clients,
            "ice_servers": [
                {k: v for k, v in vars(s).items() if v is not None and k != "credentialType"} for s in cfg.ice_servers
            ],
        }
    )


async def models(request: web.Request) -> web.Response:
    catalogue = request.app[SERVER].catalogue
    await catalogue.scan()
    return web.json_response({"models": catalogue.listing()})


async def thumbnail(request: web.Request) -> web.Response:
    catalogue = request.app[SERVER].catalogue
    entry = request.match_info["entry"]
    style = request.query.get("style")
    if entry not in catalogue.entries or (style is not None and not style.isdigit()):
        raise _error(web.HTTPNotFound, "no such thumbnail")
    await catalogue.scan()
    data = catalogue.thumbnail(entry, int(style) if style is not None else None)
    if data is None:
        raise _error(web.HTTPNotFound, "no such thumbnail")
    response = web.Response(body=data, content_type="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVER].status())


def make_app(server: Server) -> web.Application:
    """The application; starting it scans the catalogue, stopping it closes every session and thread."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard])
    app[SERVER] = server
    for path, (name, content_type) in ASSETS.items():
        app.router.add_get(path, _asset_handler(name, content_type))
    app.router.add_post("/offer", offer)
    app.router.add_post("/api/close", close_session)
    app.router.add_get("/api/config", config)
    app.router.add_get("/api/models", models)
    app.router.add_get(r"/api/thumb/{entry:m\d+}.jpg", thumbnail)
    app.router.add_get("/api/status", status)

    async def started(app: web.Application) -> None:
        server.catalogue.start_scan()

    async def shutdown(app: web.Application) -> None:
        await server.close()

    async def cleanup(app: web.Application) -> None:
        await server.catalogue.close()
        server.engine.stop()
        server.pool.shutdown(wait=True)

    app.on_startup.append(started)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app


def ice_servers(urls: Sequence[str], username: str | None = None, credential: str | None = None) -> list[RTCIceServer]:
    """``RTCIceServer`` objects for ``stun:``/``turn:`` URLs (TURN ones get the credentials)."""
    servers = []
    for url in urls:
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise UserError(f"ICE server {url!r} must start with stun:, stuns:, turn: or turns:")
        turn = url.startswith("turn")
        servers.append(RTCIceServer(url, username if turn else None, credential if turn else None))
    return servers
