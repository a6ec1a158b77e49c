"""realtime.core.checkpoint: bare state dicts saved from a DistributedDataParallel wrapper load like plain ones."""

from __future__ import annotations

import pytest
import torch
from lively_nets import lively_generator, lively_johnson

from realtime.core.checkpoint import load_model, save_checkpoint
from realtime.core.contract import IOContract, cyclegan_contract


@pytest.mark.parametrize("factory,family", [(lively_johnson, "johnson"), (lively_generator, "cyclegan")])
def test_ddp_module_prefix_is_stripped(tmp_path, factory, family):
    net = factory(seed=4)
    wrapped = {f"module.{k}": v for k, v in net.state_dict().items()}  # torch.save(ddp.state_dict())
    torch.save(wrapped, tmp_path / "ddp.pth")
    loaded = load_model(tmp_path / "ddp.pth")
    assert loaded.contract.family == family and type(loaded.model) is type(net)
    x = torch.rand(1, 3, 32, 32) * 255 if family == "johnson" else torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), net(x))


def test_contract_round_trips_through_json_and_a_checkpoint(tmp_path):
    contract = cyclegan_contract(
        name="h2z",
        style="horse->zebra",
        channel_order="BGR",
        size_multiple=8,
        fixed_size=(64, 96),
        provenance={"steps": 3, "dataset": "h2z"},
    )
    again = IOContract.from_json(contract.to_json())
    assert again == contract and again.fixed_size == (64, 96) and again.value_range == (-1.0, 1.0)
    path = save_checkpoint(tmp_path / "g.pth", lively_generator(), contract, meta={"note": "x"})
    loaded = load_model(path)
    assert loaded.contract == contract and loaded.meta == {"note": "x"}
