"""``nst-serve``: the live stylizer in any browser, over WebRTC; many connections share one GPU.

Builds the engine, the model catalogue and the aiohttp application of :mod:`realtime.serve`,
loads the ``--model`` models before it listens (a bad one is a one-line error), and prints the
URL to open. Safe by default: it listens on 127.0.0.1 only; any other ``--host`` needs a token
(``--token``, or one is generated and printed in the URL).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from realtime.cli.common import (
    ListModelsAction,
    OneLineParser,
    attach_dash_values,
    cli_entry,
    number,
    parse_size,
    strength_or_default,
)
from realtime.core.errors import UserError
from realtime.stages import DEFAULT_STRENGTH, check_stabilize, check_strength

log = logging.getLogger("realtime.serve")

EPILOG = """\
examples:
  nst-serve --model mosaic_small                      # then open http://127.0.0.1:8080/
  nst-serve --model mosaic --model candy --size 1280x720 --max-clients 8     # a GPU box
  nst-serve --host 0.0.0.0 --cert cert.pem --key key.pem                     # a LAN (prints the token URL)

The page lists every local model (weights/, $NST_WEIGHTS_DIR, downloaded ones) and every style
of a multi-style or arbitrary-style model, with a thumbnail each; --model ones load at start and
stay loaded, the others load when someone picks them. Settings change without reconnecting.
Browsers give a page the camera only over https:// or on localhost: off this machine use
--cert/--key, or an SSH tunnel (ssh -L 8080:localhost:8080 gpu-box, then open localhost:8080;
the video itself then flows over UDP to the box, which must be reachable, or use a TURN server).
Any WebRTC client can connect: POST /offer {"sdp": ..., "type": "offer"} answers the same way.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="nst-serve",
        description="Serve live style transfer to browsers over WebRTC (camera in the browser, model here).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--list-models", action=ListModelsAction)
    p.add_argument(
        "--model",
        "-m",
        action="append",
        metavar="PATH|NAME",
        help="a model to load at start (repeatable); the first is what new connections get (default mosaic_small)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--token", help="secret the URL must carry (?token=); generated when --host is not loopback")
    p.add_argument("--cert", metavar="PEM", help="TLS certificate: serve https:// (browsers need it off localhost)")
    p.add_argument("--key", metavar="PEM", help="TLS private key for --cert")
    p.add_argument("--max-clients", type=int, default=4, metavar="N", help="connections at once (default 4)")
    p.add_argument(
        "--size",
        metavar="WxH",
        help="camera size pages ask for; larger frames are scaled to fit (default 320x180 on a CPU, 1280x720 on CUDA)",
    )
    p.add_argument(
        "--style",
        metavar="SPEC",
        help="for a multi-style or arbitrary-style first --model: the style new connections start with "
        "(a name or index, an image, or a blend such as mosaic:0.5,candy:0.5; see --list-styles)",
    )
    p.add_argument("--list-styles", action="store_true", help="print the styles of the first --model and exit")
    p.add_argument("--strength", type=number, default=1.0, help="initial strength 0..1 (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="start with the camera's colours kept")
    p.add_argument(
        "--stabilize",
        nargs="?",
        const="default",
        type=strength_or_default,
        metavar="S",
        help="start with the flicker stabiliser on; S in 0..1",
    )
    p.add_argument(
        "--batch",
        choices=("auto", "on", "off"),
        default="auto",
        help="batch frames of one model and size from several connections: auto times both ways and keeps "
        "the faster (default)",
    )
    p.add_argument("--max-batch", type=int, default=8, metavar="N", help="most frames in one model call (default 8)")
    p.add_argument("--no-local-models", action="store_true", help="offer only the --model models in the page")
    p.add_argument(
        "--idle-timeout",
        type=number,
        default=10.0,
        metavar="S",
        help="end a connection after S seconds without a camera frame (default 10)",
    )
    p.add_argument("--ice-server", action="append", default=[], metavar="URL", help="STUN/TURN server (repeatable)")
    p.add_argument("--turn-user", help="username for turn: servers")
    p.add_argument("--turn-password", help="password for turn: servers")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--backend", choices=("onnx", "torch"), help="default: ONNX Runtime for checkpoints on the CPU")
    p.add_argument("--provider", metavar="NAME", help="ONNX Runtime execution provider")
    p.add_argument("--input-range", choices=("0-255", "0-1", "-1-1"), help="pixel range a foreign ONNX model expects")
    p.add_argument("--quiet", "-q", action="store_true", help="do not log connections")
    return p


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reachable_host(host: str) -> str:
    """The address to print for ``host``: a wildcard becomes this machine's LAN address where known."""
    if host not in ("0.0.0.0", "::", ""):
        return f"[{host}]" if ":" in host else host
    try:  # the address the default route uses; connecting a UDP socket sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise UserError("--cert and --key go together (the certificate and its private key)")
    for path in (cert, key):
        if not Path(path).is_file():
            raise UserError(f"no such file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UserError(f"cannot use --cert {cert} with --key {key}: {exc}") from None
    return context


@cli_entry(flags={"stabilize": "--stabilize"})
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(attach_dash_values(sys.argv[1:] if argv is None else list(argv)))
    if args.max_clients < 1:
        raise UserError("--max-clients must be at least 1")
    if args.max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    if args.idle_timeout <= 0:
        raise UserError("--idle-timeout must be more than 0 seconds")
    check_strength(args.strength)
    stabilize = DEFAULT_STRENGTH if args.stabilize == "default" else args.stabilize
    if stabilize is not None:
        check_stabilize(stabilize)
    size = parse_size(args.size) if args.size else None
    if args.token is not None and len(args.token) < 8:
        raise UserError("--token must be at least 8 characters")
    loopback = is_loopback(args.host)
    token = args.token or (None if loopback else secrets.token_urlsafe(16))
    context = tls_context(args.cert, args.key)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)

    # Lazy: the backends (torch, ONNX Runtime) take ~2.3 s to import and aiohttp + aiortc ~0.4 s
    # (measured here); --help and bad flags skip them.
    from realtime.backends.loader import load_for_pipeline  # noqa: PLC0415
    from realtime.core.devices import resolve_device  # noqa: PLC0415
    from realtime.core.styles import style_listing  # noqa: PLC0415
    from realtime.serve.app import ice_servers  # noqa: PLC0415

    device = str(resolve_device(args.device))
    if size is None:
        size = (1280, 720) if device.startswith("cuda") else (320, 180)
    servers = ice_servers(args.ice_server, args.turn_user, args.turn_password)

    given = args.model or ["mosaic_small"]
    if args.list_styles:
        print(style_listing(load_for_pipeline(given[0], device=device, input_range=args.input_range), given[0]))
        return 0

    def load(source: str):
        # --input-range and --provider describe the --model files, not every local model the page lists
        mine = source in given
        return load_for_pipeline(
            source,
            device=device,
            provider=args.provider if mine else None,
            input_range=args.input_range if mine else None,
            backend=args.backend,
        )

    options = dict(
        models=given,
        style=args.style,
        local=not args.no_local_models,
        load=load,
        token=token,
        size=size,
        strength=args.strength,
        preserve_color=args.preserve_color,
        stabilize=stabilize,
        max_clients=args.max_clients,
        batch=args.batch,
        max_batch=args.max_batch,
        idle_timeout=args.idle_timeout,
        ice=servers,
        host=args.host,
        port=args.port,
        ssl_context=context,
        device=device,
    )
    if not loopback and context is None:
        print(
            "note: browsers give pages the camera only over https:// or on localhost; pass --cert and --key, "
            "or open the page through an SSH tunnel (ssh -L PORT:localhost:PORT this-host)",
            file=sys.stderr,
        )
    try:
        asyncio.run(serve(**options))
    except KeyboardInterrupt:
        pass
    print("nst-serve stopped", file=sys.stderr)
    return 0


async def serve(
    *,
    models: Sequence[str],
    style: str | None,
    local: bool,
    load,
    token: str | None,
    size: tuple[int, int],
    strength: float,
    preserve_color: bool,
    stabilize: float | None,
    max_clients: int,
    batch: str,
    max_batch: int,
    idle_timeout: float,
    ice: list,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    device: str,
) -> None:
    """Load the models, listen, print the URL, and serve until SIGINT/SIGTERM."""
    from aiohttp import web  # noqa: PLC0415 - see main

    from realtime.core.model_zoo import list_models  # noqa: PLC0415
    from realtime.core.styles import apply_style_spec  # noqa: PLC0415
    from realtime.serve.app import ServeConfig, Server, make_app  # noqa: PLC0415
    from realtime.serve.catalog import Catalogue, build_entries, free_cuda_cache  # noqa: PLC0415
    from realtime.serve.engine import BatchPolicy, Engine  # noqa: PLC0415
    from realtime.serve.settings import Settings  # noqa: PLC0415

    rows = [r for r in list_models() if r.where in ("weights", "cache")] if local else []
    entries = build_entries(models, [(r.name, r.location) for r in rows])
    engine = Engine(BatchPolicy(batch, max_batch))
    catalogue = Catalogue(entries, load, engine, on_unload=free_cuda_cache)
    runner = None
    try:
        pinned = [await catalogue.pin(entry.id) for entry in entries if entry.pinned]
        if style is not None:  # the first model's style is where new connections start
            first, name = pinned[0], entries[0].name
            await asyncio.wrap_future(engine.call(lambda: apply_style_spec(first, style, name)))
        default = Settings(model=entries[0].id, strength=strength, preserve_color=preserve_color, stabilize=stabilize)
        config = ServeConfig(
            default=default,
            token=token,
            max_clients=max_clients,
            size=size,
            idle_timeout=idle_timeout,
            ice_servers=list(ice),
            compose_workers=min(4, max(2, os.cpu_count() or 2)),
        )
        runner = web.AppRunner(make_app(Server(config, catalogue, engine)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = runner.addresses[0][1] if runner.addresses else port
        scheme = "https" if ssl_context else "http"
        url = f"{scheme}://{reachable_host(host) if not is_loopback(host) else host}:{bound}/"
        if token:
            url += f"?token={token}"
        print(
            f"nst-serve: open {url}  ({entries[0].name} on {device}, camera {size[0]}x{size[1]}, "
            f"{len(entries)} models, up to {max_clients} connections; Ctrl-C stops)",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
                pass
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()  # closes sessions, the catalogue and the engine (app cleanup)
        else:
            await catalogue.close()
            engine.stop()


if __name__ == "__main__":
    sys.exit(main())
