"""Every architecture of the project, defined once, and the registry that names them in checkpoints."""
from __future__ import annotations

from typing import Any

from torch import nn

from realtime.core.contract import IOContract, cyclegan_contract, johnson_contract
from realtime.core.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from realtime.core.nets.transformer import TransformerNet

# The names stored in checkpoints. An explicit table: renaming a class never breaks old files.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "transformer_net": TransformerNet,
    "resnet_generator": ResnetGenerator,
    "patch_discriminator": PatchDiscriminator,
}


def arch_name(model: nn.Module) -> str:
    """The registry name of ``model``'s class."""
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise KeyError(f"{type(model).__name__} is not a registered architecture")


def build(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate a registered architecture from its stored constructor arguments."""
    return ARCHITECTURES[arch](**kwargs)


__all__ = ["ARCHITECTURES", "IOContract", "PatchDiscriminator", "ResnetGenerator", "TransformerNet",
           "arch_name", "build", "cyclegan_contract", "johnson_contract"]
