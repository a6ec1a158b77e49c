"""Writing files so that nothing half-written appears under a final name and nothing is lost.

* :func:`output_file` is how every command writes what the user asked for (a video, a still, an
  exported model, a snapshot): into a hidden temporary file beside the target, published at the
  end with an atomic rename that never replaces an existing file unless ``force`` (two runs
  writing the same name: the second gets :class:`OutputExists`, and its result is kept beside).
  A run that stops early may mark its result ``partial``: it is published under the final name
  when that is free, else as ``NAME.partial.EXT`` beside the file it must not replace.
* :func:`atomic_path` is the plain form for files the program owns (caches, checkpoints a
  trainer rewrites): temporary file, then an atomic replace.

Both remove their temporary file on every ending Python sees (errors, Ctrl-C, and SIGTERM or
SIGHUP, which the commands turn into Ctrl-C), and both clear leftovers of runs that were killed
outright (a temporary file whose process is gone). :func:`os_error_line` words an ``OSError``
(no permission, read-only, disk full, …) as one line naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from realtime.core.errors import UserError

TEMP_MARK = ".nst-tmp-"  # hidden temporary files are named .<final name>.nst-tmp-<pid>-<random><suffix>
_LINK_UNSUPPORTED = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}

_ERRNO_WORDS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENODEV: "no such device",
    errno.ENXIO: "no such device",
    errno.EIO: "input/output error (a failing disk or a removed drive?)",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "is a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files",
    errno.EFBIG: "file too large for this file system",
}


def os_error_line(exc: OSError, path: str | os.PathLike | None = None, doing: str = "") -> str:
    """One line for an ``OSError``: what failed, on which path, and why in plain words.

    ``path`` defaults to the error's own file name; ``doing`` (``"writing"``) starts the line.
    """
    where = path if path is not None else (exc.filename if exc.filename is not None else "")
    why = _ERRNO_WORDS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__
    head = f"{doing} {where}".strip() if doing or where else "file error"
    return f"{head}: {why}"


class OutputExists(UserError):
    """The output file exists and may not be replaced; ``path`` is the file."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def check_output(final: str | os.PathLike, *, force: bool = False) -> Path:
    """Refuse early: ``final`` exists (without ``force``), is a folder, or its folder cannot be written.

    Nothing is created. Returns ``final`` as a :class:`Path`.
    """
    final = Path(final)
    if final.is_dir():
        raise UserError(f"{final} is a folder; give a file name")
    if final.exists() and not force:
        raise OutputExists(f"{final} already exists", final)
    folder = next((p for p in [final.parent, *final.parent.parents] if p.exists()), Path("."))
    if not folder.is_dir():
        raise UserError(f"cannot write {final}: {folder} is not a folder")
    _check_writable(folder, final)
    return final


def _check_writable(folder: Path, final: Path) -> None:
    if os.access(folder, os.W_OK | os.X_OK):
        return
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    why = "is on a read-only file system" if read_only else "is not writable (permission denied)"
    raise UserError(f"cannot write {final}: the folder {folder} {why}")


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO, errno.EACCES, errno.EPERM}


def _about_writing(exc: OSError, tmp: Path, final: Path) -> bool:
    """Whether ``exc`` (raised while writing ``tmp``) is about writing there, not about reading an input."""
    name = os.fspath(exc.filename) if exc.filename is not None else None
    if name in (os.fspath(tmp), os.fspath(final), os.fspath(final.parent), os.fspath(tmp.parent)):
        return True
    return name is None and exc.errno in _WRITE_ERRNOS


def _prepare_folder(final: Path) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(os_error_line(exc, final.parent, "cannot create the folder")) from None
    _check_writable(final.parent, final)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: never clear
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def clear_stale_temps(final: str | os.PathLike) -> list[Path]:
    """Remove temporary files of ``final`` left by runs that were killed (their process is gone)."""
    final = Path(final)
    pattern = re.compile(re.escape(f".{final.name}{TEMP_MARK}") + r"(\d+)-")
    removed = []
    try:
        candidates = list(final.parent.glob(f".{glob_escape(final.name)}{TEMP_MARK}*"))
    except OSError:
        return removed
    for path in candidates:
        match = pattern.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with the glob characters ``*?[`` made literal."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _temp_beside(final: Path, suffix: str | None) -> Path:
    _prepare_folder(final)
    clear_stale_temps(final)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{final.name}{TEMP_MARK}{os.getpid()}-", suffix=suffix or final.suffix, dir=final.parent
        )
    except OSError as exc:
        raise UserError(os_error_line(exc, final, "cannot write")) from None
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
    return Path(name)


def _link_no_replace(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final`` atomically unless ``final`` exists (then ``FileExistsError``)."""
    try:
        os.link(tmp, final)  # fails with EEXIST if final exists: the atomic no-replace step
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _LINK_UNSUPPORTED:
            raise
        if final.exists():  # no hard links here (FAT, some network file systems): check, then rename
            raise FileExistsError(errno.EEXIST, "File exists", str(final)) from None
        os.rename(tmp, final)
        return
    tmp.unlink()


def partial_name(final: Path) -> Path:
    """``out/clip.mp4`` -> ``out/clip.partial.mp4``."""
    return final.with_name(f"{final.stem}.partial{final.suffix}")


def _free_sibling(final: Path, tag: str) -> Path:
    for n in range(1, 1000):
        candidate = final.with_name(f"{final.stem}.{tag}{'' if n == 1 else n}{final.suffix}")
        if not candidate.exists():
            return candidate
    raise UserError(f"too many {final.stem}.{tag}* files beside {final}; remove some")


@dataclass
class PendingOutput:
    """The file being written by :func:`output_file`: write to ``tmp``; set ``partial`` if stopped early.

    After the ``with`` block, ``published`` is where the result went (the final name, or
    ``NAME.partial.EXT`` for a partial result that may not replace an existing file).
    """

    tmp: Path
    final: Path
    force: bool
    partial: bool = False
    published: Path | None = None


@contextlib.contextmanager
def _writing(tmp: Path, final: Path) -> Iterator[None]:
    """Around writing ``tmp`` and publishing it as ``final``: ``tmp`` is removed whatever happens, and
    an OS error about writing them (disk full, no permission) becomes one line that names ``final``."""
    try:
        yield
    except OSError as exc:
        if not _about_writing(exc, tmp, final):
            raise
        raise UserError(os_error_line(exc, final, "cannot write") + "; nothing was written") from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def output_file(final: str | os.PathLike, *, force: bool = False, suffix: str | None = None) -> Iterator[PendingOutput]:
    """Write a user's output through a hidden temporary file; publish it when the block ends.

    * without ``force`` the file is published with an atomic no-replace rename: if ``final``
      exists (before or, from another run, meanwhile) :class:`OutputExists` is raised and
      nothing is replaced; a result finished meanwhile is kept as ``NAME.new.EXT``;
    * with ``force`` it replaces ``final`` atomically;
    * ``pending.partial = True`` (a run stopped early): published under ``final`` when that is
      free, else as ``NAME.partial.EXT`` (replacing an older partial): an existing file is
      never replaced by a partial one, ``force`` or not;
    * on an exception (Ctrl-C included) the temporary file is removed and nothing changes.

    ``suffix`` (default: the final name's) is the temporary file's suffix, for writers that
    pick the format from it.
    """
    final = Path(final)
    if final.exists() and not force:
        raise OutputExists(f"{final} already exists", final)
    tmp = _temp_beside(final, suffix)
    pending = PendingOutput(tmp, final, force)
    with _writing(tmp, final):
        yield pending
        if pending.partial and final.exists():
            target = partial_name(final)
            os.replace(tmp, target)
            pending.published = target
        elif force and not pending.partial:
            os.replace(tmp, final)
            pending.published = final
        else:
            try:
                _link_no_replace(tmp, final)
                pending.published = final
            except FileExistsError:
                if pending.partial:
                    pending.published = partial_name(final)
                    os.replace(tmp, pending.published)
                    return
                kept = _free_sibling(final, "new")
                os.replace(tmp, kept)
                raise OutputExists(
                    f"{final} already exists: another run wrote it meanwhile; "
                    f"it was left as it is, this run's result is {kept}",
                    final,
                ) from None


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` (replacing it) on success.

    For files the program owns (caches, the checkpoints a trainer rewrites); user outputs go
    through :func:`output_file`. The parent folder is created. On any exception (Ctrl-C
    included) the temporary file is removed and ``final`` is left as it was. ``suffix``
    defaults to the final name's suffix so writers that infer the format from it keep working.
    """
    final = Path(final)
    tmp = _temp_beside(final, suffix)
    with _writing(tmp, final):
        yield tmp
        os.replace(tmp, final)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


def ensure_not_an_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse to write ``output`` over any of ``inputs`` (compared after resolving links)."""
    out = Path(output).resolve()
    for item in inputs:
        if item is not None and Path(item).resolve() == out:
            raise UserError(f"refusing to overwrite the input file {item}; choose another output name")
