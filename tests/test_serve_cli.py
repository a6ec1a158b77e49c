"""The nst-serve command: flags, one-line errors, and the safe defaults of a real server process."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bench.serve_process import ServeProcess
from realtime.cli.serve import is_loopback, main
from realtime.core.model_zoo import default_weights_dirs, local_weights


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for words in ("--max-clients", "--token", "--cert", "examples:", "POST /offer", "SSH tunnel"):
        assert words in out


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--max-clients", "0"], "--max-clients must be at least 1"),
        (["--max-batch", "0"], "--max-batch must be at least 1"),
        (["--strength", "2"], "--strength must be between 0 and 1"),
        (["--stabilize", "1.5"], "--stabilize must be between 0 and 1"),
        (["--size", "8x8"], "--size 8x8: each side must be at least 16 pixels"),
        (["--cert", "cert.pem"], "--cert and --key go together"),
        (["--cert", "missing.pem", "--key", "missing.key"], "no such file: missing.pem"),
        (["--token", "short"], "--token must be at least 8 characters"),
        (["--port", "70000"], "--port must be 0..65535"),
        (["--idle-timeout", "0"], "--idle-timeout must be more than 0 seconds"),
        (["--batch", "always"], "invalid choice"),
    ],
)
def test_bad_flags_give_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_model_or_style_that_cannot_load_stops_the_start_with_one_line(capsys, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert main(["--model", "no_such_model_anywhere", "--port", "0"]) == 2
    assert "--model 'no_such_model_anywhere' is not a model file or a known name" in capsys.readouterr().err
    assert main(["--model", str(broken), "--port", "0", "--no-local-models"]) == 2
    err = capsys.readouterr().err
    assert "is not a loadable ONNX model" in err and err.count("\n") == 1
    assert main(["--model", "mosaic_small", "--style", "candy", "--port", "0", "--no-local-models"]) == 2
    assert "--style does not apply to model 'mosaic_small'" in capsys.readouterr().err
    assert main(["--model", "mosaic_small", "--list-styles"]) == 2
    assert "--style does not apply to model 'mosaic_small'" in capsys.readouterr().err


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.org", ""))


def test_a_server_off_loopback_needs_a_token_and_lists_every_local_model():
    async def probe(base: str, token: str) -> dict:
        found = {}
        async with aiohttp.ClientSession() as http:
            for path in ("", "api/config", "api/models"):
                async with http.get(base + path) as r:
                    found[f"no token {path}"] = r.status
            async with http.post(base + "offer", json={"sdp": "v=0", "type": "offer"}) as r:
                found["offer without token"] = r.status
            async with http.get(base + "api/models", headers={"X-NST-Token": token}) as r:
                found["models"] = [m["name"] for m in (await r.json())["models"]]
            async with http.get(base + "..%2fsetup.cfg", headers={"X-NST-Token": token}) as r:
                found["outside"] = r.status
        return found

    with ServeProcess(["--host", "0.0.0.0", "--model", "mosaic_small", "--quiet"]) as server:
        base, token = server.base, server.url.split("?token=", 1)[1]
        assert len(token) >= 16
        local = f"http://127.0.0.1:{base.rsplit(':', 1)[1]}"
        found = asyncio.run(probe(local, token))
    lines = server.lines
    assert found.pop("models") == ["mosaic_small"] + sorted(
        p.stem for p in local_weights(default_weights_dirs()) if p.stem != "mosaic_small"
    )
    assert found.pop("outside") == 404
    assert set(found.values()) == {403}, json.dumps(found)
    assert any("browsers give pages the camera only over https://" in line for line in lines)
    assert lines[-1] == "nst-serve stopped" and server.returncode == 0  # SIGTERM: a clean stop
