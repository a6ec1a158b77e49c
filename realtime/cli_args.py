"""Argument parsing shared by the ``nst-video`` and ``nst-cam`` command lines."""
from __future__ import annotations

import argparse

from train.errors import UserError


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
