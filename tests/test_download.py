"""Downloads: resume with HTTP ranges, size and SHA-256 checks, clean offline errors, the COCO lookup."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from realtime.core.download import download, extract_zip
from realtime.core.errors import UserError
from train import data as data_module


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``self.server.files`` (name -> bytes) with Range support; counts requests."""

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        body = self.server.files.get(self.path.lstrip("/"))
        self.server.requests.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def url(server, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def test_download_resumes_a_partial_file(server, tmp_path) -> None:
    payload = bytes(range(256)) * 4000
    server.files["blob.bin"] = payload
    dest = tmp_path / "blob.bin"
    Path(str(dest) + ".part").write_bytes(payload[:1000])
    download(
        url(server, "blob.bin"),
        dest,
        expected_size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        progress=False,
    )
    assert dest.read_bytes() == payload
    assert server.requests[-1][1] == "bytes=1000-"
    assert not Path(str(dest) + ".part").exists()


def test_checksum_mismatch_leaves_nothing(server, tmp_path) -> None:
    server.files["blob.bin"] = b"hello" * 100
    dest = tmp_path / "blob.bin"
    with pytest.raises(UserError, match="SHA-256"):
        download(url(server, "blob.bin"), dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not Path(str(dest) + ".part").exists()


def test_offline_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(UserError, match="cannot download"):
        download("http://127.0.0.1:9/nothing.zip", tmp_path / "x.zip", progress=False, timeout=2)
    assert not (tmp_path / "x.zip").exists()


def test_coco_missing_says_how_to_get_it(tmp_path) -> None:
    with pytest.raises(UserError, match="with download"):
        data_module.resolve_coco(tmp_path, download_missing=False)


def test_coco_download_and_extract(server, tmp_path, monkeypatch) -> None:
    archive = tmp_path / "train2017.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train2017/000000000001.jpg", b"jpeg bytes")
        zf.writestr("train2017/000000000002.jpg", b"jpeg bytes 2")
    server.files["train2017.zip"] = archive.read_bytes()
    monkeypatch.setitem(data_module.COCO_ARCHIVES, "train2017", (url(server, "train2017.zip"), archive.stat().st_size))
    root = tmp_path / "data"
    folder = data_module.resolve_coco(root, download_missing=True, progress=False)
    assert folder == root / "coco" / "train2017"
    assert sorted(p.name for p in folder.iterdir()) == ["000000000001.jpg", "000000000002.jpg"]
    assert not (root / "coco" / "train2017.zip").exists()
    # found locally the second time: no new request
    count = len(server.requests)
    assert data_module.resolve_coco(root, download_missing=True) == folder
    assert len(server.requests) == count


def test_bad_zip_is_reported(tmp_path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK not a zip")
    with pytest.raises(UserError, match="not a valid zip"):
        extract_zip(bad, tmp_path / "out", progress=False)
