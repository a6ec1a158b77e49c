"""CycleGAN training state: four networks, two optimisers, schedules and image pools; one step; the run's files.

The step is the authors' ``CycleGANModel.optimize_parameters``: update both generators with the
discriminators frozen (GAN + cycle + identity losses), then both discriminators on real images
and on fakes drawn from the history pools. Per-sample work shares one forward where possible
(``G_A`` maps ``real_A`` and, for the identity loss, ``real_B`` in one batch; each ``D`` scores
reals and fakes in one batch): InstanceNorm is per image, so the result is the same, with fewer
kernel launches and one DDP call per discriminator.

:func:`save_run` writes both generators in the project's checkpoint format plus ``state.pth``
(the A -> B checkpoint whose ``training`` dict holds everything else); :func:`load_run_state`
reads it back for ``--resume``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from realtime.core.checkpoint import load_state_dict_strict, read_checkpoint_file, save_checkpoint
from realtime.core.contract import cyclegan_contract
from realtime.core.errors import InvalidValue, UserError
from realtime.core.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from train.distributed import DistInfo
from train.gan_losses import lsgan_loss, vanilla_gan_loss
from train.image_pool import ImagePool
from train.state import capture_rng
from train.unpaired import domain_names


@dataclass
class CycleGANConfig:
    """Everything a run depends on; stored in every checkpoint it writes (paths as strings)."""

    dataset: str  # a folder with trainA/ trainB/, or one of train.unpaired.DATASETS
    output: str = "checkpoints/cyclegan"
    data_root: str | None = None  # default: $NST_DATA_ROOT or the user cache
    download: bool = False
    epochs: int = 100  # at the initial learning rate
    epochs_decay: int = 100  # then linearly down to zero
    steps: int | None = None  # stop after this many iterations (overrides the epoch count)
    image_size: int = 256  # crop; images are first squashed to image_size * 286 / 256
    batch_size: int = 1
    ngf: int = 64
    n_blocks: int = 9
    ndf: int = 64
    n_layers_d: int = 3
    gan_mode: str = "lsgan"  # or "vanilla"
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0  # lambda_A = lambda_B
    lambda_identity: float = 0.5  # fraction of lambda_cycle
    pool_size: int = 50
    amp: str = "off"  # off, bf16 or fp16 (fp16 only on CUDA)
    channels_last: bool = False
    checkpoint_every: int = 1000
    sample_every: int = 500
    log_every: int = 20
    resume: str | None = None  # path of a state file to continue from
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    threads: int | None = None  # CPU threads for torch (default: torch's choice)
    log_dir: str | None = None  # default: output/logs
    progress: bool = True
    command: str = ""  # recorded in the checkpoints' provenance

    def check(self) -> None:
        for name in (
            "epochs",
            "epochs_decay",
            "image_size",
            "batch_size",
            "ngf",
            "ndf",
            "checkpoint_every",
            "sample_every",
            "log_every",
        ):
            if getattr(self, name) < (0 if name == "epochs_decay" else 1):
                raise InvalidValue(name, f"must be positive, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise InvalidValue("steps", f"must be at least 1, got {self.steps}")
        if self.image_size % 4:
            raise InvalidValue(
                "image_size", f"must be a multiple of 4 (the generator downsamples twice), got {self.image_size}"
            )
        for name in ("n_blocks", "workers", "pool_size", "threads"):
            if (getattr(self, name) or 0) < 0:
                raise InvalidValue(name, f"cannot be negative, got {getattr(self, name)}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise InvalidValue("amp", f"must be off, bf16 or fp16, got {self.amp!r}")


NET_NAMES = ("G_A", "G_B", "D_A", "D_B")
GAN_LOSSES: dict[str, Callable[[torch.Tensor, bool], torch.Tensor]] = {"lsgan": lsgan_loss, "vanilla": vanilla_gan_loss}


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """The authors' ``init_type='normal'``: conv weights from N(0, ``std``), biases zero."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


def linear_decay(epochs: int, epochs_decay: int) -> Callable[[int], float]:
    """The authors' ``lr_policy='linear'``: factor 1 for ``epochs`` epochs, then linearly towards 0.

    For 0-based epoch ``e``: ``1 - max(0, e + 1 - epochs) / (epochs_decay + 1)``, never below 0.
    """

    def factor(epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1))

    return factor


def arch_summary(cfg: CycleGANConfig) -> dict[str, int]:
    """The network shape a state file must match to be resumed."""
    return {"ngf": cfg.ngf, "n_blocks": cfg.n_blocks, "ndf": cfg.ndf, "n_layers_d": cfg.n_layers_d}


class CycleGAN:
    """The trainable state of a run, on ``device``; under DDP (``info.enabled``) the nets are wrapped.

    ``G_A``: A -> B, ``G_B``: B -> A, ``D_A`` judges B-domain images, ``D_B`` judges A (authors' names).
    """

    def __init__(self, cfg: CycleGANConfig, device: torch.device, info: DistInfo = DistInfo()) -> None:
        self.cfg, self.device, self.arch = cfg, device, arch_summary(cfg)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self._raw: dict[str, nn.Module] = {
            "G_A": ResnetGenerator(cfg.ngf, cfg.n_blocks),
            "G_B": ResnetGenerator(cfg.ngf, cfg.n_blocks),
            "D_A": PatchDiscriminator(cfg.ndf, cfg.n_layers_d),
            "D_B": PatchDiscriminator(cfg.ndf, cfg.n_layers_d),
        }
        for net in self._raw.values():
            init_weights(net).to(device, memory_format=self.memory_format).train()
        ids = [device.index] if device.type == "cuda" else None
        self.nets = {k: DistributedDataParallel(v, device_ids=ids) if info.enabled else v for k, v in self._raw.items()}
        betas = (cfg.beta1, 0.999)
        self.opt_G = torch.optim.Adam(
            itertools.chain(self._raw["G_A"].parameters(), self._raw["G_B"].parameters()), lr=cfg.lr, betas=betas
        )
        self.opt_D = torch.optim.Adam(
            itertools.chain(self._raw["D_A"].parameters(), self._raw["D_B"].parameters()), lr=cfg.lr, betas=betas
        )
        factor = linear_decay(cfg.epochs, cfg.epochs_decay)
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, factor)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, factor)
        # pool_A holds fakes of domain A (G_B's outputs), pool_B fakes of B; each rank draws its own.
        self.pool_A = ImagePool(cfg.pool_size, seed=cfg.seed * 7919 + 2 * info.rank)
        self.pool_B = ImagePool(cfg.pool_size, seed=cfg.seed * 7919 + 2 * info.rank + 1)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        self.gan_loss = GAN_LOSSES[cfg.gan_mode]
        self._amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)

    def raw(self, name: str) -> nn.Module:
        """The network ``name`` without its DDP wrapper."""
        return self._raw[name]

    @property
    def lr(self) -> float:
        return float(self.opt_G.param_groups[0]["lr"])

    def set_epoch(self, epoch: int) -> None:
        """Advance both learning-rate schedules to 0-based ``epoch``."""
        while self.sched_G.last_epoch < epoch:
            self.sched_G.step()
            self.sched_D.step()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._amp_dtype)

    def _freeze_discriminators(self, frozen: bool) -> None:
        for name in ("D_A", "D_B"):
            self._raw[name].requires_grad_(not frozen)

    def step(
        self, real_A: torch.Tensor, real_B: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One iteration on ``(B, 3, H, W)`` batches in -1..1 from each domain.

        Returns the eight detached scalar losses (authors' names) and the images
        ``real_A, fake_B, rec_A, real_B, fake_A, rec_B`` (detached, -1..1).
        """
        cfg, n = self.cfg, real_A.shape[0]
        real_A = real_A.contiguous(memory_format=self.memory_format)
        real_B = real_B.contiguous(memory_format=self.memory_format)
        lam, lam_idt = cfg.lambda_cycle, cfg.lambda_cycle * cfg.lambda_identity
        G_A, G_B, D_A, D_B = (self.nets[k] for k in NET_NAMES)

        # Generators, discriminators frozen (and called unwrapped: no gradient sync for them here).
        self._freeze_discriminators(True)
        with self._autocast():
            if lam_idt > 0:
                fake_B, idt_A = G_A(torch.cat([real_A, real_B])).split([n, real_B.shape[0]])
                fake_A, idt_B = G_B(torch.cat([real_B, real_A])).split([real_B.shape[0], n])
            else:
                fake_B, fake_A = G_A(real_A), G_B(real_B)
            rec_A, rec_B = G_B(fake_B), G_A(fake_A)
            loss_G_A = self.gan_loss(self._raw["D_A"](fake_B), True)
            loss_G_B = self.gan_loss(self._raw["D_B"](fake_A), True)
        cycle_A = F.l1_loss(rec_A.float(), real_A) * lam
        cycle_B = F.l1_loss(rec_B.float(), real_B) * lam
        if lam_idt > 0:
            idt_loss_A = F.l1_loss(idt_A.float(), real_B) * lam_idt
            idt_loss_B = F.l1_loss(idt_B.float(), real_A) * lam_idt
        else:
            idt_loss_A = idt_loss_B = torch.zeros((), device=real_A.device)
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_G_A + loss_G_B + cycle_A + cycle_B + idt_loss_A + idt_loss_B).backward()
        self.scaler.step(self.opt_G)

        # Discriminators: reals against fakes from the history pools, one forward each.
        self._freeze_discriminators(False)
        pooled_B = self.pool_B.query(fake_B).contiguous(memory_format=self.memory_format)
        pooled_A = self.pool_A.query(fake_A).contiguous(memory_format=self.memory_format)
        with self._autocast():
            real_score_B, fake_score_B = D_A(torch.cat([real_B, pooled_B])).split([real_B.shape[0], n])
            real_score_A, fake_score_A = D_B(torch.cat([real_A, pooled_A])).split([n, real_B.shape[0]])
        loss_D_A = 0.5 * (self.gan_loss(real_score_B, True) + self.gan_loss(fake_score_B, False))
        loss_D_B = 0.5 * (self.gan_loss(real_score_A, True) + self.gan_loss(fake_score_A, False))
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(loss_D_A + loss_D_B).backward()
        self.scaler.step(self.opt_D)
        self.scaler.update()

        losses = {
            "D_A": loss_D_A,
            "G_A": loss_G_A,
            "cycle_A": cycle_A,
            "idt_A": idt_loss_A,
            "D_B": loss_D_B,
            "G_B": loss_G_B,
            "cycle_B": cycle_B,
            "idt_B": idt_loss_B,
        }
        visuals = {
            "real_A": real_A,
            "fake_B": fake_B,
            "rec_A": rec_A,
            "real_B": real_B,
            "fake_A": fake_A,
            "rec_B": rec_B,
        }
        return ({k: v.detach().float() for k, v in losses.items()}, {k: v.detach().float() for k, v in visuals.items()})

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: nets, optimisers, schedules, scaler, pools (tensors, primitives)."""
        return {
            "arch": dict(self.arch),
            "nets": {k: {p: t.detach().cpu() for p, t in net.state_dict().items()} for k, net in self._raw.items()},
            "optim": {"G": self.opt_G.state_dict(), "D": self.opt_D.state_dict()},
            "sched": {"G": self.sched_G.state_dict(), "D": self.sched_D.state_dict()},
            "scaler": self.scaler.state_dict(),
            "pools": {"A": self.pool_A.state_dict(), "B": self.pool_B.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "state") -> None:
        """Restore :meth:`state_dict`'s output; a net of another shape is a one-line :class:`UserError`."""
        for name in NET_NAMES:
            load_state_dict_strict(self._raw[name], state["nets"][name], f"{source} ({name})")
        self.opt_G.load_state_dict(state["optim"]["G"])
        self.opt_D.load_state_dict(state["optim"]["D"])
        self.sched_G.load_state_dict(state["sched"]["G"])
        self.sched_D.load_state_dict(state["sched"]["D"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        try:
            self.pool_A.load_state_dict(state["pools"]["A"], self.device)
            self.pool_B.load_state_dict(state["pools"]["B"], self.device)
        except ValueError as exc:
            raise InvalidValue("pool_size", f"differs from the one {source} was trained with ({exc})") from None


# ----------------------------------------------------------------------------- the run's files
def output_names(dataset: str) -> tuple[str, str, tuple[str, str]]:
    """File stems of the A->B and B->A generators and the domain names: horse2zebra -> zebra2horse."""
    names = domain_names(Path(dataset.rstrip("/\\")).name)
    if names is None:
        return "a2b", "b2a", ("A", "B")
    a, b = names
    return f"{a}2{b}", f"{b}2{a}", (a, b)


def save_run(
    cfg: CycleGANConfig, model: CycleGAN, step: int, epochs: float, position: tuple[int, int], data_name: str
) -> dict[str, Path]:
    """Both generators, named after their direction, and the resumable state file (atomic writes).

    ``position`` is ``(epoch, batch)`` of the next batch to train on.
    """
    out = Path(cfg.output)
    stem_ab, stem_ba, (a, b) = output_names(data_name)
    provenance = {
        "command": cfg.command,
        "steps": step,
        "epochs": round(epochs, 3),
        "data": data_name,
        "image_size": cfg.image_size,
        "recipe": "CycleGAN, Zhu et al. 2017",
    }
    meta = {"config": dataclasses.asdict(cfg)}
    written = {}
    for stem, net, style in ((stem_ab, model.raw("G_A"), f"{a}->{b}"), (stem_ba, model.raw("G_B"), f"{b}->{a}")):
        contract = cyclegan_contract(name=stem, style=style, provenance=provenance)
        written[stem] = save_checkpoint(out / f"{stem}.pth", net, contract, meta)
    training = {
        "kind": "cyclegan",
        **model.state_dict(),
        "step": step,
        "epoch": position[0],
        "batch": position[1],
        "rng": capture_rng(),
    }
    del training["nets"]["G_A"]  # it is the checkpoint's own state_dict
    contract = cyclegan_contract(name=stem_ab, style=f"{a}->{b}", provenance=provenance)
    written["state"] = save_checkpoint(out / "state.pth", model.raw("G_A"), contract, meta, training)
    return written


def load_run_state(cfg: CycleGANConfig, model: CycleGAN) -> dict[str, Any]:
    """Load ``cfg.resume`` into ``model``; returns its ``training`` dict (step, epoch, batch, rng)."""
    if not Path(cfg.resume).is_file():
        raise InvalidValue("resume", f"{cfg.resume}: nothing to resume, the file does not exist")
    data = read_checkpoint_file(cfg.resume)
    training = data.get("training")
    if not isinstance(training, dict) or training.get("kind") != "cyclegan":
        raise UserError(f"{cfg.resume} is not a CycleGAN training state (use the state.pth a run wrote)")
    saved, wanted = training.get("arch", {}), model.arch
    if saved != wanted:
        diff = ", ".join(f"{k}={saved.get(k)}" for k in wanted if saved.get(k) != wanted[k])
        raise InvalidValue("resume", f"{cfg.resume} was trained with {diff}; give the same network settings")
    training["nets"]["G_A"] = data["state_dict"]
    model.load_state_dict(training, source=str(cfg.resume))
    return training
