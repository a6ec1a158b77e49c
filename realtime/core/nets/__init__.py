"""Every network of the project, defined once, and the family registry (:mod:`.families`) that names them."""

from __future__ import annotations

from realtime.core.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from realtime.core.nets.families import FAMILIES, Family, arch_name, architectures, build, family, family_of
from realtime.core.nets.transformer import TransformerNet

__all__ = [
    "FAMILIES",
    "Family",
    "PatchDiscriminator",
    "ResnetGenerator",
    "TransformerNet",
    "arch_name",
    "architectures",
    "build",
    "family",
    "family_of",
]
