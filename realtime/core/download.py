"""Resumable, checked downloads: a ``.part`` file, HTTP range requests, a progress bar, an atomic rename.

Used for datasets (COCO, the CycleGAN sets) and published models. Tests serve files from a
local HTTP server on 127.0.0.1, so the real code path runs without internet.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from realtime.core.errors import UserError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "realtime-nst/0.1"


def cache_dir(*parts: str) -> Path:
    """The user cache folder (``$NST_CACHE`` or ``$XDG_CACHE_HOME/realtime-nst`` or ``~/.cache/realtime-nst``)."""
    root = os.environ.get("NST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "realtime-nst"
    )
    return Path(root, *parts)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part``; verify size and SHA-256 when known.

    Nothing appears under ``dest`` unless the whole file arrived and passed the checks. Network
    failures raise :class:`UserError` naming the URL (the partial file is kept for resuming).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range not satisfiable: the part file is already complete
            response = None
        else:
            raise UserError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot download {url} (offline?): {reason}") from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else expected_size
            with (
                open(part, "ab" if resumed else "wb") as out,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
                except (OSError, urllib.error.URLError) as exc:
                    raise UserError(f"download of {url} broke off ({exc}); run again to resume") from None
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        if size > expected_size:
            part.unlink()
        raise UserError(f"download of {url} is {size} bytes, expected {expected_size}; run again to resume")
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink()
            raise UserError(
                f"download of {url} has SHA-256 {actual[:12]}…, expected {sha256[:12]}…; "
                "the file was removed, try again"
            )
    os.replace(part, dest)
    return dest


def extract_zip(archive: str | Path, into: str | Path, progress: bool = True) -> Path:
    """Extract ``archive`` into ``into`` via a temporary sibling folder, so a broken extraction leaves nothing."""
    archive, into = Path(archive), Path(into)
    staging = into.with_name(into.name + ".extracting")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for member in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress, leave=False):
                zf.extract(member, staging)
    except zipfile.BadZipFile:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{archive} is not a valid zip archive; delete it and download again") from None
    into.mkdir(parents=True, exist_ok=True)
    for child in staging.iterdir():
        target = into / child.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(child, target)
    staging.rmdir()
    return into
