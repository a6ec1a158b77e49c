"""realtime.core.styles: style specs, vector blends and cross-fades."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.core.errors import InvalidValue
from realtime.core.styles import CrossFade, StyleTerm, blend, has_style_control, parse_style_spec


class Weights:
    """A minimal StyleControl over named one-hot styles."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.vector = np.eye(len(names), dtype=np.float32)[0]

    def style_names(self) -> list[str]:
        return list(self.names)

    def style_vector(self, terms):
        return blend(
            [np.eye(len(self.names), dtype=np.float32)[self.names.index(t.key)] for t in terms],
            [t.weight for t in terms],
        )

    def set_style(self, vector) -> None:
        self.vector = np.asarray(vector, dtype=np.float32)

    def current_style(self):
        return self.vector


@pytest.mark.parametrize(
    "text, terms",
    [
        ("candy", [StyleTerm("candy", 1.0)]),
        ("3", [StyleTerm("3", 1.0)]),
        ("mosaic:0.5, candy:0.25", [StyleTerm("mosaic", 0.5), StyleTerm("candy", 0.25)]),
        ("a.jpg:0.7,b.jpg:0.3", [StyleTerm("a.jpg", 0.7), StyleTerm("b.jpg", 0.3)]),
        (r"C:\art\a.jpg", [StyleTerm(r"C:\art\a.jpg", 1.0)]),
        ("http://host/a.jpg:2", [StyleTerm("http://host/a.jpg", 2.0)]),
    ],
)
def test_parse_style_spec(text, terms):
    assert parse_style_spec(text) == terms


@pytest.mark.parametrize("text", ["", " , ", "a:-1", "a:0,b:0", "a:nan"])
def test_bad_specs_name_the_style_setting(text):
    with pytest.raises(InvalidValue) as info:
        parse_style_spec(text)
    assert info.value.name == "style"


def test_blend_is_the_normalised_weighted_mean():
    v = blend([np.array([1.0, 0.0]), np.array([0.0, 4.0])], [3.0, 1.0])
    np.testing.assert_allclose(v, [0.75, 1.0])
    assert v.dtype == np.float32


def test_crossfade_reaches_the_target_in_the_given_frames():
    control = Weights(["a", "b"])
    assert has_style_control(control) and not has_style_control(object())
    fade = CrossFade(control, control.style_vector(parse_style_spec("b")), frames=4)
    seen = []
    while True:
        more = fade.step()
        seen.append(control.current_style().copy())
        if not more:
            break
    assert len(seen) == 4
    np.testing.assert_allclose(seen[0], [0.75, 0.25])
    np.testing.assert_allclose(seen[-1], [0.0, 1.0])
    assert fade.step() is False
