"""Errors a user can fix, raised by library code in plain words (no command-line flags).

:class:`UserError` carries a one-line message about a file, a value or the environment.
:class:`InvalidValue` names the setting it is about (a parameter name such as ``steps``), so a
command line can say ``--steps must be at least 1`` while a Python caller reads
``steps must be at least 1``. The command-line layer (:mod:`realtime.cli.common`) turns both
into one line on stderr and exit status 2.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by input the user can fix; its message is shown as one line."""


class InvalidValue(UserError, ValueError):
    """A setting with a value no computation can use.

    ``name`` is the setting's parameter name (``"steps"``, ``"strength"``); ``problem`` completes
    the sentence that starts with it (``"must be at least 1, got 0"``).
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name} {problem}")

    def worded(self, label: str) -> str:
        """The message with the setting called ``label`` (e.g. a command-line flag)."""
        return f"{label} {self.problem}"


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(message).split())
