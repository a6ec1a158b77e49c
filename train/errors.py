"""User-facing errors and the one wrapper that turns them into a clean CLI exit.

Library code raises :class:`UserError` for anything a user can fix (a missing file,
a bad flag value). Every command's ``main`` is wrapped by :func:`cli_entry`, which
prints exactly one line to stderr and exits non-zero instead of showing a traceback.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable, Sequence

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error caused by input the user can fix; its message is shown as one line."""


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def cli_entry(main: Callable[[Sequence[str] | None], int | None]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a ``main(argv)`` so user errors print one line and exit with status 2.

    ``KeyboardInterrupt`` exits 130 (the command itself is responsible for leaving
    resumable or playable output behind before it re-raises).
    """

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        prog = getattr(main, "__module__", "nst")
        try:
            return int(main(argv) or 0)
        except UserError as exc:
            print(f"error: {_one_line(str(exc))}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except MemoryError:
            print("error: out of memory; try a smaller --size or --batch-size", file=sys.stderr)
            return EXIT_USER_ERROR
        except RuntimeError as exc:  # CUDA OOM arrives as a RuntimeError subclass
            if "out of memory" in str(exc).lower():
                print(f"error: the device ran out of memory in {prog}; try a smaller "
                      "--batch-size, --image-size or --size", file=sys.stderr)
                return EXIT_USER_ERROR
            raise

    return wrapper
