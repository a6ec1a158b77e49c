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
import re
import shutil
import warnings
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
    lr: float = 2e-4  # at batch 1; see lr_scaling
    lr_scaling: str = "none"  # none, sqrt or linear: the Adam lr is lr * batch_size ** (0, 1/2, 1)
    beta1: float = 0.5
    lambda_cycle: float = 10.0  # lambda_A = lambda_B
    lambda_identity: float = 0.5  # fraction of lambda_cycle
    pool_size: int = 50
    amp: str = "off"  # off, bf16 or fp16 (fp16 only on CUDA)
    channels_last: bool = False
    preload: bool = False  # decode every image once and cut the batches on the device (no loader workers)
    compile: bool = False  # torch.compile the four networks (CUDA graphs on CUDA)
    compile_backend: str = "inductor"  # the tests use "eager" (graph capture only, no compiler needed)
    time_limit: float | None = None  # stop (and save a resumable state) after this many seconds of training
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
    earlier_commands: tuple[str, ...] = ()  # the commands this run was started and resumed with before

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
        if self.lr_scaling not in LR_SCALING:
            raise InvalidValue("lr_scaling", f"must be one of {', '.join(LR_SCALING)}, got {self.lr_scaling!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise InvalidValue("time_limit", f"must be a positive number of seconds, got {self.time_limit}")

    @property
    def effective_lr(self) -> float:
        """Adam's initial learning rate: ``lr`` scaled for the batch size as ``lr_scaling`` says."""
        return self.lr * self.batch_size ** LR_SCALING[self.lr_scaling]


NET_NAMES = ("G_A", "G_B", "D_A", "D_B")
LOSS_NAMES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")
LR_SCALING = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}  # exponent of the batch size
GAN_LOSSES: dict[str, Callable[[torch.Tensor, bool], torch.Tensor]] = {"lsgan": lsgan_loss, "vanilla": vanilla_gan_loss}


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """The authors' ``init_type='normal'``: conv weights from N(0, ``std``), biases zero."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


def _adam(params: list[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam, fused where torch has it for these parameters (one kernel per step instead of ~10 per tensor)."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # older torch: fused Adam on CUDA only
        return torch.optim.Adam(params, lr=lr, betas=betas)


def _inductor_missing(device: torch.device) -> str | None:
    """Why ``torch.compile``'s default backend cannot run on ``device`` here, or ``None`` if it can."""
    if device.type == "cuda":
        try:
            import triton  # noqa: F401, PLC0415 - only probed when --compile is asked for
        except ImportError:
            return "torch.compile needs Triton on CUDA, which is not installed"
        return None
    if device.type == "cpu" and not any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "g++", "c++")):
        return "torch.compile needs a C/C++ compiler on the CPU, and none is on the PATH"
    return None


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
        # What the step calls: the nets (DDP-wrapped where enabled), and the discriminators unwrapped for the
        # generator update (no gradient sync for them there); compiled when asked.
        self._call: dict[str, Callable[..., torch.Tensor]] = dict(self.nets)
        self._call.update({f"{k}_frozen": self._raw[k] for k in ("D_A", "D_B")})
        self._cudagraphs = False
        if cfg.compile:
            self._compile()
        betas = (cfg.beta1, 0.999)
        self.opt_G = _adam([*self._raw["G_A"].parameters(), *self._raw["G_B"].parameters()], cfg.effective_lr, betas)
        self.opt_D = _adam([*self._raw["D_A"].parameters(), *self._raw["D_B"].parameters()], cfg.effective_lr, betas)
        factor = linear_decay(cfg.epochs, cfg.epochs_decay)
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, factor)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, factor)
        # pool_A holds fakes of domain A (G_B's outputs), pool_B fakes of B; each rank draws its own.
        self.pool_A = ImagePool(cfg.pool_size, seed=cfg.seed * 7919 + 2 * info.rank)
        self.pool_B = ImagePool(cfg.pool_size, seed=cfg.seed * 7919 + 2 * info.rank + 1)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        self.gan_loss = GAN_LOSSES[cfg.gan_mode]
        self._amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.visuals: dict[str, torch.Tensor] = {}

    def _compile(self) -> None:
        """``torch.compile`` every network call of the step; on CUDA with CUDA graphs (mode reduce-overhead).

        The step has fixed shapes (each net sees one or two batch sizes), so each net compiles once
        or twice; the first steps are slow while that happens. Raises :class:`UserError` where the
        backend's compiler is missing.
        """
        backend = self.cfg.compile_backend
        if backend == "inductor":
            missing = _inductor_missing(self.device)
            if missing:
                raise InvalidValue("compile", f"was asked for, but {missing}; train without it")
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._cudagraphs = self.device.type == "cuda"
            self._call = {k: torch.compile(f, mode=mode) for k, f in self._call.items()}
        else:
            self._call = {k: torch.compile(f, backend=backend) for k, f in self._call.items()}

    def raw(self, name: str) -> nn.Module:
        """The network ``name`` without its DDP wrapper."""
        return self._raw[name]

    @property
    def lr(self) -> float:
        return float(self.opt_G.param_groups[0]["lr"])

    def set_epoch(self, epoch: int) -> None:
        """Advance both learning-rate schedules to 0-based ``epoch``."""
        with warnings.catch_warnings():  # after --resume the new optimisers have not stepped yet; that is fine here
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
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

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> torch.Tensor:
        """One iteration on ``(B, 3, H, W)`` batches in -1..1 from each domain.

        Returns the eight losses (:data:`LOSS_NAMES` order) as one detached float32 tensor ``(8,)``
        on the device: nothing here waits for the device, so the host can queue the next step while
        this one runs. The step's images ``real_A, fake_B, rec_A, real_B, fake_A, rec_B`` (detached,
        -1..1, valid until the next step) are in :attr:`visuals`.
        """
        cfg, n, m = self.cfg, real_A.shape[0], real_B.shape[0]
        if self._cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        real_A = real_A.contiguous(memory_format=self.memory_format)
        real_B = real_B.contiguous(memory_format=self.memory_format)
        lam, lam_idt = cfg.lambda_cycle, cfg.lambda_cycle * cfg.lambda_identity
        G_A, G_B, D_A, D_B = (self._call[k] for k in NET_NAMES)

        # Generators, discriminators frozen (and called unwrapped: no gradient sync for them here).
        self._freeze_discriminators(True)
        with self._autocast():
            if lam_idt > 0:
                fake_B, idt_A = G_A(torch.cat([real_A, real_B])).split([n, m])
                fake_A, idt_B = G_B(torch.cat([real_B, real_A])).split([m, n])
            else:
                fake_B, fake_A = G_A(real_A), G_B(real_B)
            rec_A, rec_B = G_B(fake_B), G_A(fake_A)
            loss_G_A = self.gan_loss(self._call["D_A_frozen"](fake_B), True)
            loss_G_B = self.gan_loss(self._call["D_B_frozen"](fake_A), True)
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
            real_score_B, fake_score_B = D_A(torch.cat([real_B, pooled_B])).split([m, n])
            real_score_A, fake_score_A = D_B(torch.cat([real_A, pooled_A])).split([n, m])
        loss_D_A = 0.5 * (self.gan_loss(real_score_B, True) + self.gan_loss(fake_score_B, False))
        loss_D_B = 0.5 * (self.gan_loss(real_score_A, True) + self.gan_loss(fake_score_A, False))
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(loss_D_A + loss_D_B).backward()
        self.scaler.step(self.opt_D)
        self.scaler.update()

        self.visuals = {
            "real_A": real_A,
            "fake_B": fake_B.detach(),
            "rec_A": rec_A.detach(),
            "real_B": real_B,
            "fake_A": fake_A.detach(),
            "rec_B": rec_B.detach(),
        }
        losses = (loss_D_A, loss_G_A, cycle_A, idt_loss_A, loss_D_B, loss_G_B, cycle_B, idt_loss_B)
        return torch.stack([v.detach().float() for v in losses])

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
    commands = [*cfg.earlier_commands, cfg.command]
    provenance = {
        "command": commands[0],  # the command that started the run; later ones resumed it
        **({"resumed_with": commands[1:]} if len(commands) > 1 else {}),
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


# The recipe and the data stream: a resumed run keeps these. Everything else (how long, where the data
# and outputs live, device, precision, speed, logging) may change when a run is continued.
RUN_SETTINGS = (
    "image_size",
    "batch_size",
    "ngf",
    "n_blocks",
    "ndf",
    "n_layers_d",
    "gan_mode",
    "lr",
    "lr_scaling",
    "beta1",
    "lambda_cycle",
    "lambda_identity",
    "pool_size",
    "seed",
)
# Never taken from the state file: they say where this invocation reads and writes, and how it reports.
_NOT_RESTORED = ("output", "resume", "command", "earlier_commands", "progress", "download")


def _read_state(path: str | Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise InvalidValue("resume", f"{path}: nothing to resume, the file does not exist")
    data = read_checkpoint_file(path)
    training = data.get("training")
    if not isinstance(training, dict) or training.get("kind") != "cyclegan":
        raise UserError(f"{path} is not a CycleGAN training state (use the state.pth a run wrote)")
    return data


def _saved_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The run's settings stored in a state file; fields it predates get their defaults."""
    saved = dict((data.get("meta") or {}).get("config") or {})
    fields = {f.name: f for f in dataclasses.fields(CycleGANConfig)}
    out = {}
    for name, f in fields.items():
        if name in saved:
            out[name] = tuple(saved[name]) if name == "earlier_commands" else saved[name]
        elif f.default is not dataclasses.MISSING:
            out[name] = f.default
    return out


def resumed_config(cfg: CycleGANConfig, given: set[str] | frozenset[str]) -> CycleGANConfig:
    """``cfg`` for continuing the run in ``cfg.resume``: every setting not in ``given`` comes from the state file.

    ``given`` names the settings the user set explicitly. One of :data:`RUN_SETTINGS` given with
    another value than the run has is an :class:`InvalidValue` naming both; the others (steps,
    epochs, workers, device, logging, ...) may change. The state's commands are kept in
    ``earlier_commands`` so provenance records how the run was started and each time it was resumed.
    """
    data = _read_state(cfg.resume)
    saved = _saved_settings(data)
    if "arch" in data.get("training", {}) and "ngf" not in (data.get("meta") or {}).get("config", {}):
        saved.update(data["training"]["arch"])  # a state file older than the stored config
    for name in RUN_SETTINGS:
        if name in given and name in saved and getattr(cfg, name) != saved[name]:
            raise InvalidValue(
                name,
                f"{getattr(cfg, name)} differs from {saved[name]} in the run being resumed ({cfg.resume}); "
                "leave it out to continue that run, or start a new run in another output folder",
            )
    restored = {k: v for k, v in saved.items() if k not in given and k not in _NOT_RESTORED}
    earlier = (*saved.get("earlier_commands", ()), saved["command"]) if saved.get("command") else ()
    return dataclasses.replace(cfg, **restored, earlier_commands=tuple(earlier))


def load_run_state(cfg: CycleGANConfig, model: CycleGAN) -> dict[str, Any]:
    """Load ``cfg.resume`` into ``model``; returns its ``training`` dict (step, epoch, batch, rng).

    The run settings (:data:`RUN_SETTINGS`) must equal the state's; :func:`resumed_config` fills in
    the ones a command line left out.
    """
    data = _read_state(cfg.resume)
    training = data["training"]
    saved, wanted = training.get("arch", {}), model.arch
    if saved != wanted:
        diff = ", ".join(f"{k}={saved.get(k)}" for k in wanted if saved.get(k) != wanted[k])
        raise InvalidValue("resume", f"{cfg.resume} was trained with {diff}; give the same network settings")
    settings = _saved_settings(data)
    stored = (data.get("meta") or {}).get("config") or {}
    for name in RUN_SETTINGS:
        if name in stored and getattr(cfg, name) != settings[name]:
            raise InvalidValue(
                "resume", f"{cfg.resume} was trained with {name}={settings[name]}, this run has {getattr(cfg, name)}"
            )
    training["nets"]["G_A"] = data["state_dict"]
    model.load_state_dict(training, source=str(cfg.resume))
    return training
