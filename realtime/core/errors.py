"""Errors a user can fix, raised by library code in plain words (no command-line flags).

:class:`UserError` carries a one-line message about a file, a value or the environment.
:class:`InvalidValue` names the setting it is about (a parameter name such as ``steps``), so a
command line can say ``--steps must be at least 1`` while a Python caller reads
``steps must be at least 1``. The command-line layer (:mod:`realtime.cli.common`) turns both
into one line on stderr and exit status 2.
"""

from __future__ import annotations

from collections.abc import Callable


class UserError(Exception):
    """An error caused by input the user can fix; its message is shown as one line."""


class InvalidValue(UserError, ValueError):
    """A setting with a value no computation can use.

    ``name`` is the setting's parameter name (``"steps"``, ``"strength"``); ``problem`` completes
    the sentence that starts with it (``"must be at least 1, got 0"``). Other settings the
    problem refers to are written ``{setting}`` in it and listed in ``mentions``, so each caller
    names them its own way (``steps`` in Python, ``--steps`` on a command line).
    """

    def __init__(self, name: str, problem: str, *, mentions: tuple[str, ...] = ()) -> None:
        self.name = name
        self.problem = problem
        self.mentions = tuple(mentions)
        super().__init__(self.worded(lambda setting: setting))

    def worded(self, label: Callable[[str], str]) -> str:
        """The message with every setting named by ``label(setting)`` (e.g. its command-line flag)."""
        problem = self.problem
        for setting in self.mentions:
            problem = problem.replace("{" + setting + "}", label(setting))
        return f"{label(self.name)} {problem}"


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(message).split())
