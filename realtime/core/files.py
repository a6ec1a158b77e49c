"""Atomic file writes: nothing half-written ever appears under a final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from realtime.core.errors import UserError


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    The parent folder is created. On any exception (Ctrl-C included) the temporary
    file is removed and ``final`` is left as it was. ``suffix`` defaults to the final
    name's suffix so writers that infer the format from it keep working.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {final.parent}: {exc.strerror}") from None
    if not os.access(final.parent, os.W_OK):
        raise UserError(f"output folder {final.parent} is not writable")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == 28:  # ENOSPC
            raise UserError(f"disk full while writing {final}; nothing was written") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
