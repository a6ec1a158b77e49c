"""Continuing a run with its own settings: which flags a command line set, and the run's recipe restored.

``--resume`` takes every setting the command line leaves out from the run being resumed (its
checkpoint stores the run's configuration). A *recipe* setting given again must equal the run's,
or the command is refused with one line naming the setting and both values; the others (how
long, where data and outputs live, device, precision, speed, logging) may change. The commands
that started and resumed the run are kept, so provenance records each of them.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from realtime.core.errors import InvalidValue


def given_settings(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options ``argv`` sets explicitly (the others take their defaults)."""
    probe = copy.deepcopy(parser)
    for action in probe._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    return set(vars(probe.parse_args(argv)))


def restore_settings(
    current: Mapping[str, Any],
    saved: Mapping[str, Any],
    given: Collection[str],
    recipe: Sequence[str],
    never_restored: Collection[str],
    source: str,
    same: Callable[[str, Any, Any], bool] = lambda name, a, b: a == b,
) -> dict[str, Any]:
    """The settings of the continued run: ``current`` with every setting not in ``given`` taken from ``saved``.

    ``recipe`` settings in ``given`` must be ``same`` as the saved ones, else :class:`InvalidValue`
    (the setting's name, both values, and ``source``, the file being resumed). Settings in
    ``never_restored`` (where this invocation writes, how it reports) and settings ``saved``
    does not know are kept as they are.
    """
    for name in recipe:
        if name in given and name in saved and not same(name, current[name], saved[name]):
            raise InvalidValue(
                name,
                f"{_shown(current[name])} differs from {_shown(saved[name])} in the run being resumed ({source}); "
                "leave it out to continue that run, or start a new run with another output",
            )
    restored = {k: v for k, v in saved.items() if k in current and k not in given and k not in never_restored}
    return {**current, **restored}


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)
