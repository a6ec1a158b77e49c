"""What every command line shares: one-line errors, exit codes, argument types, ``--list-models``.

Library code raises :class:`~realtime.core.errors.UserError` (and :class:`InvalidValue`, which
names a setting); :func:`cli_entry` wraps a command's ``main(argv)`` so those become one line on
stderr and exit status 2, with a setting's name turned into its flag (``steps`` -> ``--steps``,
or a command's own mapping).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from realtime.core.errors import InvalidValue, UserError, one_line
from realtime.core.files import OutputExists, os_error_line
from realtime.core.memory import default_budget, format_bytes, physical_memory, whole_frame_bytes
from realtime.core.model_zoo import format_model_table, list_models

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM and SIGHUP exit 128 + their number
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

Main = Callable[[Sequence[str] | None], "int | None"]


def flag_name(setting: str, flags: Mapping[str, str] | None = None) -> str:
    """The command-line flag of a library setting: ``flags[setting]`` or ``--setting-with-dashes``."""
    if flags and setting in flags:
        return flags[setting]
    return "--" + setting.replace("_", "-")


HINTS = {"model": "--list-models shows every name"}  # what a command adds after an error about a setting


def error_line(exc: BaseException, flags: Mapping[str, str] | None = None) -> str:
    """The one line printed for a user error (flag names substituted for setting names)."""
    if isinstance(exc, InvalidValue):
        hint = f" ({HINTS[exc.name]})" if exc.name in HINTS else ""
        return f"error: {one_line(exc.worded(lambda setting: flag_name(setting, flags)))}{hint}"
    if isinstance(exc, OutputExists) and "meanwhile" not in str(exc):
        return f"error: {one_line(exc)}; use {flag_name('force', flags)} to overwrite it"
    return f"error: {one_line(exc)}"


def configure_logging(verbose: bool = False) -> None:
    """Library log records to stderr, warnings and errors only (``verbose``: progress too).

    Sets the root level every time, so several commands run in one process (tests, notebooks)
    do not inherit each other's verbosity.
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s: %(message)s")
    root.setLevel(logging.INFO if verbose else logging.WARNING)


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so a command stops as it does on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`StopSignal` (a ``KeyboardInterrupt``).

    So ``kill``, a closed terminal or a service manager end a command the way Ctrl-C does:
    partial results are kept, temporary files removed. Only the main thread can install
    handlers; elsewhere (a command called from a worker thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise StopSignal(signum)

    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (OSError, ValueError):  # pragma: no cover - e.g. an embedded interpreter
            pass
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def cli_entry(main: Main | None = None, *, flags: Mapping[str, str] | None = None) -> Callable:
    """Decorate ``main(argv)``: user errors and ``OSError`` s print one line and exit 2; Ctrl-C exits 130.

    SIGTERM and SIGHUP are raised as :class:`StopSignal` (a ``KeyboardInterrupt``) while
    ``main`` runs, so they end a command like Ctrl-C (exit 143 and 129).
    Use as ``@cli_entry`` or ``@cli_entry(flags={"stabilize_strength": "--stabilize"})`` where a
    setting's flag is not simply its name with dashes. Commands leave resumable or playable
    output behind themselves before they re-raise ``KeyboardInterrupt``.
    """

    def decorate(function: Main) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(function)
        def wrapper(argv: Sequence[str] | None = None) -> int:
            configure_logging()
            try:
                with stop_signals_as_interrupt():
                    return int(function(argv) or 0)
            except UserError as exc:
                print(error_line(exc, flags), file=sys.stderr)
                return EXIT_USER_ERROR
            except KeyboardInterrupt as exc:
                stop = exc if isinstance(exc, StopSignal) else exc.__cause__
                if isinstance(stop, StopSignal):
                    print(f"stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
                    return 128 + stop.signum
                print("interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            except OSError as exc:  # the environment: permissions, a full disk, a vanished device
                print(f"error: {one_line(os_error_line(exc))}", file=sys.stderr)
                return EXIT_USER_ERROR
            except MemoryError:
                print("error: out of memory; try a smaller --size or --batch-size", file=sys.stderr)
                return EXIT_USER_ERROR
            except RuntimeError as exc:  # CUDA OOM arrives as a RuntimeError subclass
                if "out of memory" in str(exc).lower():
                    print(
                        "error: the device ran out of memory; try a smaller --batch-size, --image-size or --size",
                        file=sys.stderr,
                    )
                    return EXIT_USER_ERROR
                raise

        return wrapper

    return decorate(main) if main is not None else decorate


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line :class:`UserError` s (exit 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see --help)")


def number(text: str) -> float:
    """An argparse ``type`` for floats with a readable error."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def strength_or_default(text: str) -> float | str:
    """``--stabilize`` value: a number, or ``"default"`` when the flag is given alone."""
    return text if text == "default" else number(text)


MAX_SIDE = 16384  # the widest frame the video encoders take (libx264, libx265)


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)``; each side 16 to :data:`MAX_SIDE` pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"{flag} takes WIDTHxHEIGHT, e.g. 640x360; got {text!r}") from None
    if w < 16 or h < 16:
        raise UserError(f"{flag} {text}: each side must be at least 16 pixels")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise UserError(f"{flag} {text}: each side must be at most {MAX_SIDE} pixels (the video encoders' limit)")
    return w, h


def check_frame_memory(width: int, height: int, advice: str = "--size runs the model smaller") -> None:
    """Before a run: refuse ``width`` x ``height`` frames that need more memory than the machine has, and warn
    (stderr) when they need more than a quarter of it."""
    needed = whole_frame_bytes(height, width)
    total = physical_memory()
    if total and needed > total:
        raise UserError(
            f"frames of {width}x{height} would need about {format_bytes(needed)} each in the model, more than "
            f"this machine's {format_bytes(total)}; {advice}"
        )
    if needed > default_budget():
        print(
            f"warning: frames of {width}x{height} need about {format_bytes(needed)} each in the model "
            f"(over a quarter of the memory); {advice}",
            file=sys.stderr,
        )


def attach_dash_values(argv: Sequence[str], options: Sequence[str] = ("--input-range",)) -> list[str]:
    """Let ``--input-range -1-1`` through: argparse would read ``-1-1`` as an option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in options and token.startswith("-"):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


class ListModelsAction(argparse.Action):
    """``--list-models``: print the model table and exit, like ``--help`` (other arguments not needed)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="list the models --model can name (local and downloadable) and exit",
        )

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(format_model_table(list_models()))
        parser.exit()
