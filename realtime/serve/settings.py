"""One connection's settings, and how a settings message from a page (JSON) changes them.

A settings message is a JSON object with any of these keys (the rest keep their values):

==================  ===========================================================================
``model``           a catalogue id (``GET /api/models``), e.g. ``"m0"``
``style``           for a model with run-time styles: a spec over its style names or indices
                    (``"candy"``, ``"2"``, ``"mosaic:0.5,candy:0.5"``); ``null`` for its default
``strength``        0..1, the blend with the camera picture (1 = fully stylised)
``preserve_color``  true/false: keep the camera's colours
``stabilize``       0..1 (the temporal stabiliser's strength), or false/null for off
``side_by_side``    true/false: the camera picture left of the stylised one
==================  ===========================================================================

Values are checked here (:func:`updated`) with the stages' own checks, so a bad value gives
the same one line as on the command line, naming the setting, and changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from realtime.core.errors import InvalidValue
from realtime.core.styles import StyleTerm, parse_style_spec
from realtime.stages import check_stabilize, check_strength

MAX_STYLE_SPEC = 512  # characters; a spec names styles of one model, so this is generous
KEYS = ("model", "style", "strength", "preserve_color", "stabilize", "side_by_side")


@dataclass(frozen=True)
class Settings:
    """What one connection asked for. ``stabilize``: the stabiliser's strength, ``None`` when off."""

    model: str
    style: str | None = None
    strength: float = 1.0
    preserve_color: bool = False
    stabilize: float | None = None
    side_by_side: bool = False

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(name, f"must be true or false, got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(name, f"must be a number in 0..1, got {value!r}")
    return float(value)


def updated(current: Settings, message: Mapping[str, Any], model_ids: Sequence[str]) -> Settings:
    """``current`` with the keys of ``message`` applied, or :class:`InvalidValue` (nothing applied).

    ``model_ids``: the catalogue ids a page may pick. A new model clears ``style`` unless the
    message sets one. Unknown keys are refused, so a typo is not silently ignored.
    """
    unknown = sorted(set(message) - set(KEYS))
    if unknown:
        raise InvalidValue(unknown[0], f"is not a setting; the settings are {', '.join(KEYS)}")
    changes: dict[str, Any] = {}
    if "model" in message:
        model = message["model"]
        if not isinstance(model, str) or model not in model_ids:
            raise InvalidValue("model", f"{model!r} is not in the catalogue (GET /api/models lists it)")
        changes["model"] = model
        if model != current.model:
            changes["style"] = None
    if "style" in message:
        style = message["style"]
        if style is not None:
            if not isinstance(style, str) or len(style) > MAX_STYLE_SPEC:
                raise InvalidValue("style", f"must be a style spec of at most {MAX_STYLE_SPEC} characters")
            parse_style_spec(style)  # syntax now; the names are checked against the model by the session
        changes["style"] = style
    if "strength" in message:
        changes["strength"] = check_strength(_number("strength", message["strength"]))
    if "preserve_color" in message:
        changes["preserve_color"] = _flag("preserve_color", message["preserve_color"])
    if "stabilize" in message:
        value = message["stabilize"]
        changes["stabilize"] = None if value is None or value is False else check_stabilize(_number("stabilize", value))
    if "side_by_side" in message:
        changes["side_by_side"] = _flag("side_by_side", message["side_by_side"])
    return dataclasses.replace(current, **changes)


def style_terms(spec: str, names: Sequence[str]) -> list[StyleTerm]:
    """Parse ``spec`` and check each key is one of ``names`` or an index into them.

    Keys are looked up by name (case-insensitive) and turned into the exact name, so a
    stylizer's :meth:`~realtime.core.styles.StyleControl.style_vector` never sees anything
    else: a page cannot make the server open a file by naming it.
    """
    by_name = {n.lower(): n for n in names}
    terms = []
    for term in parse_style_spec(spec):
        key = term.key
        if key.isdigit() and int(key) < len(names):
            key = names[int(key)]
        elif key.lower() in by_name:
            key = by_name[key.lower()]
        else:
            listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise InvalidValue("style", f"{term.key!r} is not a style of this model (its styles: {listed})")
        terms.append(StyleTerm(key, term.weight))
    return terms
