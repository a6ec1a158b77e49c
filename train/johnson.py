"""Train a Johnson et al. (2016) fast style transfer net: ``python -m train.johnson``.

One ``--style`` image trains the paper's one-style net; several train one multi-style net
(Dumoulin et al. 2017, conditional instance norm: one row of norm parameters per style), each
batch for one style, taken in turn (``--style-order cycle``) or drawn at random. ``--init-from`` a
trained multi-style net *adds* the style images as new styles and trains only their norm rows (the
paper's fast path); see :mod:`train.style_nets`.

The perceptual loss is the project's one loss (:mod:`realtime.core.losses`) on the Caffe VGG19:

* content: ``relu2_2`` by default (as Johnson et al.; it keeps edges and layout while
  leaving colour and texture free), mean squared error normalised by the target's mean square;
* style: Gram matrices of ``relu1_1 … relu5_1`` (Gatys et al.'s layers), each layer's squared
  error normalised by the style Gram's mean square, so every layer counts the same and the
  default weights do not depend on the VGG's activation scale; every style's Gram matrices are
  computed once, and a batch picks its style by index;
* total variation on the output (off by default: nearest upsampling gives no checkerboards).

Speed: one data loader for the whole run (workers stay up across epochs), losses summed on the
device and read back only every ``--log-every`` steps (no per-step host sync), the VGG held in
the autocast precision (no per-step weight casts), and ``--compile`` to ``torch.compile`` the
fixed-shape step (net, VGG and loss).

Everything a run needs to continue is in its checkpoint: ``--resume`` restores weights,
optimizer, step, data order, RNG and the run's settings (:mod:`train.settings`). Ctrl-C writes a
resumable checkpoint before exiting.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import platform
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from realtime.cli.common import cli_entry
from realtime.core.checkpoint import json_safe, load_model, read_checkpoint_file, save_checkpoint
from realtime.core.contract import IOContract, johnson_contract, multistyle_contract
from realtime.core.devices import resolve_device
from realtime.core.errors import InvalidValue, UserError
from realtime.core.files import check_output
from realtime.core.images import read_image
from realtime.core.losses import (
    GATYS_STYLE_LAYERS,
    JOHNSON_CONTENT_LAYERS,
    LossWeights,
    PerceptualLoss,
    StyleTargets,
    parse_layer_weights,
)
from realtime.core.nets.multistyle import ARCHS as MULTI_ARCHS
from realtime.core.nets.transformer import ARCHS
from realtime.core.nets.vgg import LAYERS, VGG19Features
from train import distributed
from train.data import Augment, ImageFolder, default_data_root, epoch_permutation, resolve_coco
from train.runlog import RunLog, portable_path, recorded_command, save_grid, to_uint8_images
from train.settings import given_settings, restore_settings
from train.state import capture_rng, restore_rng, seed_everything
from train.style_nets import StylePlan, new_plan, resumed_plan

log = logging.getLogger(__name__)

CONTENT_LAYERS = JOHNSON_CONTENT_LAYERS
STYLE_LAYERS = GATYS_STYLE_LAYERS
STYLE_ORDERS = ("cycle", "random")
LOSS_KEYS = ("loss", "content", "style", "tv")
STYLE_KEY = LOSS_KEYS.index("style")
assert set(ARCHS) == set(MULTI_ARCHS), "one --arch name per size for both nets"

# The run's recipe: --resume keeps these, and refuses a command line that gives another value.
# Everything else (how long, where data and outputs live, device, precision, speed, logging) may change.
RECIPE = (
    "style",
    "image_size",
    "batch_size",
    "lr",
    "content_weight",
    "style_weight",
    "tv_weight",
    "style_size",
    "scale_min",
    "arch",
    "content_layers",
    "style_layers",
    "style_layer_weights",
    "style_order",
    "seed",
)
# Never taken from the checkpoint: where this invocation writes, what it resumes, how it reports.
NOT_RESTORED = ("output", "resume", "init_from", "command", "earlier_commands", "download", "extra_meta")


@dataclass
class JohnsonConfig:
    """Every setting of a run; stored in the checkpoint's ``meta["config"]``.

    ``style``: one style image (a one-style net) or several (one multi-style net); a single path
    string is taken as one image.
    """

    style: tuple[str, ...]
    output: str
    dataset: str = "coco"
    data_root: str | None = None
    download: bool = False
    steps: int | None = None
    epochs: int | None = None
    image_size: int = 256
    batch_size: int = 4
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.0
    style_size: int | None = None
    scale_min: float = 0.35
    arch: str = "johnson"
    content_layers: tuple[str, ...] = CONTENT_LAYERS
    style_layers: tuple[str, ...] = STYLE_LAYERS
    style_layer_weights: str = "equal"  # e.g. "relu1_1=4" (realtime.core.losses.PALETTE_LAYER_WEIGHTS)
    style_order: str = "cycle"
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 1000
    sample_every: int = 500
    log_every: int = 10
    resume: str | None = None
    init_from: str | None = None
    seed: int = 42
    device: str = "auto"
    workers: int = 2
    log_dir: str | None = None
    name: str | None = None
    command: str = ""  # the command line of this invocation, as provenance records it
    earlier_commands: tuple[str, ...] = ()  # the commands that started and resumed the run before
    extra_meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.style = (str(self.style),) if isinstance(self.style, (str, os.PathLike)) else tuple(map(str, self.style))
        self.content_layers, self.style_layers = tuple(self.content_layers), tuple(self.style_layers)
        self.earlier_commands = tuple(self.earlier_commands)

    def validate(self) -> None:
        if not self.style:
            raise InvalidValue("style", "needs at least one style image")
        if self.image_size <= 0 or self.image_size % 4:
            raise InvalidValue("image_size", f"must be a positive multiple of 4, got {self.image_size}")
        if self.batch_size < 1:
            raise InvalidValue("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.arch not in ARCHS:
            raise InvalidValue("arch", f"must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise InvalidValue("amp", f"must be off, bf16 or fp16, got {self.amp!r}")
        if self.style_order not in STYLE_ORDERS:
            raise InvalidValue("style_order", f"must be one of {', '.join(STYLE_ORDERS)}, got {self.style_order!r}")
        if self.steps is not None and self.steps < 1:
            raise InvalidValue("steps", f"must be at least 1, got {self.steps}")
        if self.epochs is not None and self.epochs < 1:
            raise InvalidValue("epochs", f"must be at least 1, got {self.epochs}")
        if not 0 < self.scale_min <= 1:
            raise InvalidValue("scale_min", f"must be in (0, 1], got {self.scale_min}")
        if self.log_every < 1:
            raise InvalidValue("log_every", f"must be at least 1, got {self.log_every}")
        if self.resume and self.init_from:
            raise InvalidValue("init_from", "cannot be combined with {resume}", mentions=("resume",))
        parse_layer_weights(self.style_layer_weights, self.style_layers)
        bad = [n for n in self.content_layers + self.style_layers if n not in LAYERS]
        if bad:
            raise InvalidValue(
                "style_layers" if bad[0] in self.style_layers else "content_layers",
                f"names unknown VGG19 layer(s) {', '.join(bad)}; e.g. relu2_2, relu4_2, relu1_1 … relu5_1",
            )


# ----------------------------------------------------------------------------- data
def resolve_dataset(config: JohnsonConfig, progress: bool) -> Path:
    if config.dataset == "coco":
        root = Path(config.data_root) if config.data_root else default_data_root()
        return resolve_coco(root, config.download, progress=progress)
    return Path(config.dataset)


class StepBatches(Sampler):
    """Endless batches of ``(epoch, index)`` keys from step ``start`` on, for one DataLoader for the whole run.

    Step ``s`` of a run with ``per_step = batch * world`` images per step takes positions
    ``[k * per_step, (k + 1) * per_step)`` of epoch ``s // steps_per_epoch``'s permutation
    (:func:`train.data.epoch_permutation`, so ``--resume`` replays it), ``k = s % steps_per_epoch``,
    and rank ``r`` every ``world``-th of them from ``r``.
    """

    def __init__(self, n: int, batch: int, steps_per_epoch: int, seed: int, rank: int, world: int, start: int) -> None:
        self.n, self.batch, self.steps_per_epoch, self.seed = n, batch, steps_per_epoch, seed
        self.rank, self.world, self.start = rank, world, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_step = self.batch * self.world
        epoch, offset = divmod(self.start, self.steps_per_epoch)
        while True:
            order = epoch_permutation(self.n, epoch, self.seed)
            for k in range(offset, self.steps_per_epoch):
                yield [(epoch, i) for i in order[k * per_step : (k + 1) * per_step][self.rank :: self.world]]
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:  # one epoch; the sampler itself never ends
        return self.steps_per_epoch


def _ignore_sigint(worker_id: int) -> None:
    """Data workers leave Ctrl-C to the main process, which saves before it stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def style_at(step: int, count: int, order: str, seed: int) -> int:
    """Which of the run's ``count`` styles step ``step`` trains: in turn, or drawn (reproducibly) at random."""
    if order == "cycle":
        return step % count
    return random.Random(hash((seed, step))).randrange(count)


# ----------------------------------------------------------------------------- training
def _autocast(device: torch.device, amp: str):
    if amp == "off":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _sample_grid(plan: StylePlan, val: torch.Tensor, path: Path) -> None:
    """Content row, then one row per style of the net."""
    model = plan.model
    was_training = model.training
    model.eval()
    rows = [to_uint8_images(val, (0, 255))]
    with torch.no_grad():
        if plan.multi:
            eye = torch.eye(len(plan.names), device=val.device)
            for k in range(len(plan.names)):
                rows.append(to_uint8_images(model(val, eye[k]).clamp(0, 255), (0, 255)))
        else:
            rows.append(to_uint8_images(model(val).clamp(0, 255), (0, 255)))
    model.train(was_training)
    save_grid(rows, path)


def _training_state(
    step: int,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    bad_files: set[int],
    plan: StylePlan,
) -> dict[str, Any]:
    return {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "bad_files": sorted(bad_files),
        "styles": plan.state(),
    }


class StyleStats:
    """Per style: training steps and a running mean of its style loss (what adding a style is compared with)."""

    def __init__(self, earlier: dict[str, Any] | None = None) -> None:
        self.steps: dict[str, int] = {k: int(v.get("steps", 0)) for k, v in (earlier or {}).items()}
        self.loss: dict[str, float] = {
            k: float(v["style_loss"]) for k, v in (earlier or {}).items() if "style_loss" in v
        }

    def count(self, name: str) -> None:
        self.steps[name] = self.steps.get(name, 0) + 1

    def update(self, name: str, mean_loss: float) -> None:
        last = self.loss.get(name)
        self.loss[name] = mean_loss if last is None else 0.7 * last + 0.3 * mean_loss

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {
            k: {"steps": self.steps.get(k, 0), **({"style_loss": round(self.loss[k], 5)} if k in self.loss else {})}
            for k in sorted(set(self.steps) | set(self.loss))
        }


def _style_images(config: JohnsonConfig, device: torch.device) -> list[torch.Tensor]:
    images = []
    for path in config.style:
        rgb = read_image(path, max_side=config.style_size)
        images.append(torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float().to(device))
    return images


def _contract(config: JohnsonConfig, plan: StylePlan, out_path: Path, dataset: Path, total: int) -> IOContract:
    provenance: dict[str, Any] = {"trained_steps": total, "image_size": config.image_size, "dataset": dataset.name}
    name = config.name or out_path.stem
    if not plan.multi:
        return johnson_contract(
            name=name,
            style=Path(config.style[0]).name,
            provenance={**provenance, "style_image": Path(config.style[0]).name},
        )
    return multistyle_contract(
        name=name, styles=tuple(plan.names), provenance={**provenance, "style_images": plan.images}
    )


def train(config: JohnsonConfig, progress: bool = True, on_step: Callable[[int], None] | None = None) -> Path:
    """Run training as configured; returns the path of the final checkpoint.

    ``on_step(step)`` is called after every optimizer step (e.g. a profiler's ``step``).
    """
    config.validate()
    device = resolve_device(config.device)
    dist_info, device = distributed.setup(device)
    show = progress and dist_info.is_main
    if config.amp == "fp16" and device.type != "cuda":
        raise InvalidValue("amp", "fp16 needs a CUDA GPU; use bf16 on the CPU")
    dataset_dir = resolve_dataset(config, show)
    data = ImageFolder(dataset_dir, Augment(config.image_size, (config.scale_min, 1.0)), seed=config.seed)
    per_step = config.batch_size * dist_info.world_size
    if len(data) < per_step:
        raise InvalidValue(
            "batch_size",
            f"{config.batch_size}: {dataset_dir} has {len(data)} image(s), fewer "
            f"than one batch of {per_step}; lower it or add photos",
        )
    steps_per_epoch = len(data) // per_step
    total_steps = config.steps or (config.epochs or 2) * steps_per_epoch

    seed_everything(config.seed)
    step, bad_files, earlier_wall_time = 0, set(), 0.0
    if config.resume:
        loaded = _resumable(config)
        plan = resumed_plan(loaded, config.style)
        lineage = {k: loaded.meta[k] for k in ("init_from", "added_styles") if k in loaded.meta}
        stats = StyleStats(loaded.meta.get("style_stats"))
    else:
        plan = new_plan(config.arch, config.style, config.init_from)
        lineage = {"init_from": portable_path(config.init_from)} if config.init_from else {}
        if plan.rows_only:
            lineage["added_styles"] = [plan.names[i] for i in plan.trained]
        stats = StyleStats(plan.start_meta.get("style_stats") if plan.rows_only else None)
    model = plan.model
    groups = plan.param_groups(config.lr)
    if config.resume and len(loaded.training["optimizer"]["param_groups"]) < len(groups):
        log.info("the run began with one learning rate for every layer; it continues so")
        groups = [{"params": plan.parameters(), "lr": config.lr}]
    optimizer = torch.optim.Adam(groups)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    if config.resume:
        step, bad_files, earlier_wall_time = _restore_training(config, loaded, optimizer, scaler)
    model.to(device)
    _move_optimizer_state(optimizer, device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model) if dist_info.enabled else model

    vgg = VGG19Features.caffe().to(device)
    names_run = [plan.names[i] for i in plan.trained]
    targets = StyleTargets.from_images(vgg, _style_images(config, device), config.style_layers, names_run)
    if config.amp != "off":  # held in the autocast precision: no cast of its 20M weights at every step
        vgg.to(torch.bfloat16 if config.amp == "bf16" else torch.float16)
    if config.channels_last:
        vgg.to(memory_format=torch.channels_last)
    loss_fn = PerceptualLoss(
        vgg,
        targets,
        config.content_layers,
        config.style_layers,
        LossWeights(config.content_weight, config.style_weight, config.tv_weight),
        parse_layer_weights(config.style_layer_weights, config.style_layers),
    )
    target_index = [torch.tensor([j], device=device) for j in range(len(plan.trained))]
    eye = torch.eye(len(plan.names), device=device) if plan.multi else None
    val = torch.stack([data[i][0] for i in range(min(4, len(data)))]).to(device)

    def forward(x: torch.Tensor, weights: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        """The fixed-shape step up to the losses: ``(len(LOSS_KEYS),)`` float32 on the device."""
        with _autocast(device, config.amp):
            y = net(x) if weights is None else net(x, weights)
            losses = loss_fn(y, loss_fn.content_targets(x), target)
        return torch.stack([losses[k].float() for k in LOSS_KEYS])

    step_losses = torch.compile(forward, dynamic=False) if config.compile else forward

    out_path = Path(config.output)
    log_dir = Path(config.log_dir) if config.log_dir else out_path.with_name(out_path.stem + "_log")
    runlog = RunLog(log_dir, resume=bool(config.resume)) if dist_info.is_main else None
    commands = [*config.earlier_commands, config.command or recorded_command("train.johnson", sys.argv[1:])]
    meta = {
        "config": json_safe(dataclasses.asdict(config)),
        "style": Path(config.style[0]).name if not plan.multi else [Path(p).name for p in config.style],
        "dataset": str(dataset_dir),
        "dataset_images": len(data),
        "command": commands[0],
        **({"resumed_with": commands[1:]} if len(commands) > 1 else {}),
        "hardware": _hardware(device),
        **lineage,
        **config.extra_meta,
    }
    contract = _contract(config, plan, out_path, dataset_dir, total_steps)

    def save(at_step: int, final: bool = False) -> None:
        if not dist_info.is_main:
            return
        meta["steps_done"] = at_step
        meta["wall_time_s"] = round(time.time() - t_start + earlier_wall_time, 1)
        meta["style_stats"] = stats.as_dict()
        save_checkpoint(
            out_path,
            model,
            contract.replace(provenance={**contract.provenance, "trained_steps": at_step}),
            meta,
            _training_state(at_step, optimizer, scaler, bad_files, plan),
        )
        if final:
            log.info("saved %s", out_path)

    loader = DataLoader(
        data,
        batch_sampler=StepBatches(
            len(data), config.batch_size, steps_per_epoch, config.seed, dist_info.rank, dist_info.world_size, step
        ),
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers else None,
        worker_init_fn=_ignore_sigint if config.workers else None,
    )
    # Losses stay on the device, summed over the logging window: the only waits for the device are
    # the log rows, sample grids and checkpoints.
    window = torch.zeros(len(LOSS_KEYS), device=device)
    style_sums = torch.zeros(len(plan.trained), device=device)
    style_counts = [0] * len(plan.trained)
    window_n = 0

    def flush(at_step: int, rate: float) -> None:
        nonlocal window, style_sums, style_counts, window_n
        if window_n == 0:
            return
        reduced = distributed.all_reduce_mean(torch.cat([window / window_n, style_sums]), dist_info).tolist()
        values = dict(zip(LOSS_KEYS, reduced[: len(LOSS_KEYS)]))
        if not math.isfinite(values["loss"]):
            raise InvalidValue(
                "lr",
                f"{config.lr:g}: the loss became {values['loss']} by step {at_step}; "
                "lower it or {style_weight}, or turn {amp} off",
                mentions=("style_weight", "amp"),
            )
        for j, count in enumerate(style_counts):
            mean = reduced[len(LOSS_KEYS) + j] / count if count else math.nan
            if count:
                stats.update(names_run[j], mean)
            if plan.multi:  # a column per style (empty where the window had no step of it)
                values[f"style:{names_run[j]}"] = mean
        values["images_per_s"] = rate
        if runlog is not None:
            runlog.write(at_step, values)
        bar.set_postfix(
            loss=f"{values['loss']:.3g}",
            content=f"{values['content']:.3g}",
            style=f"{values['style']:.3g}",
            img_s=f"{rate:.1f}",
        )
        window.zero_()
        style_sums.zero_()
        style_counts = [0] * len(plan.trained)
        window_n = 0

    t_start = time.time()
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"train {out_path.stem}",
        unit="step",
        disable=not show,
        dynamic_ncols=True,
    )
    images_seen, t_window = 0, time.time()
    batches = iter(loader)
    try:
        while step < total_steps:
            images, bad = next(batches)
            for b in bad.tolist():
                if b >= 0 and b not in bad_files:
                    bad_files.add(b)
                    log.warning("skipped unreadable image %s", data.files[b])
            x = images.to(device, non_blocking=True)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            j = style_at(step, len(plan.trained), config.style_order, config.seed)
            values = step_losses(x, None if eye is None else eye[plan.trained[j]], target_index[j])
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(values[0]).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                values[0].backward()
                optimizer.step()
            step += 1
            window += values.detach()
            style_sums[j] += values[STYLE_KEY].detach()
            style_counts[j] += 1
            window_n += 1
            stats.count(names_run[j])
            images_seen += per_step
            checkpoint_due = config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps
            if step % config.log_every == 0 or step == total_steps or checkpoint_due:
                now = time.time()
                flush(step, images_seen / max(now - t_window, 1e-9))
                images_seen, t_window = 0, now
            bar.update(1)
            if dist_info.is_main and config.sample_every and step % config.sample_every == 0:
                _sample_grid(plan, val, log_dir / f"samples_{step:07d}.png")
            if checkpoint_due:
                save(step)
            if on_step is not None:
                on_step(step)
    except KeyboardInterrupt:
        bar.close()
        save(step)
        if dist_info.is_main:
            print(f"interrupted at step {step}; resume with --resume {out_path}", file=sys.stderr)
        raise
    finally:
        bar.close()
        del batches
        if runlog is not None:
            runlog.close()
    save(step, final=True)
    if dist_info.is_main:
        _sample_grid(plan, val, log_dir / "samples_final.png")
        if bad_files:
            names = ", ".join(data.files[b].name for b in sorted(bad_files)[:5])
            more = f" and {len(bad_files) - 5} more" if len(bad_files) > 5 else ""
            print(
                f"warning: skipped {len(bad_files)} unreadable image(s) under {dataset_dir}: {names}{more}",
                file=sys.stderr,
            )
    distributed.teardown(dist_info)
    return out_path


def _resumable(config: JohnsonConfig) -> Any:
    """The checkpoint of the run being resumed; its recipe must be this config's."""
    loaded = load_model(config.resume)
    if not loaded.training:
        raise UserError(
            f"{config.resume} has no training state (it is an exported or published model); "
            "start a new run or fine-tune it with --init-from"
        )
    saved = saved_config(loaded.meta)
    for name in RECIPE:
        if name in saved and not same_setting(name, getattr(config, name), saved[name]):
            raise InvalidValue(
                name,
                f"{_shown(getattr(config, name))} differs from {_shown(saved[name])} in the run being resumed "
                f"({config.resume}); leave it out to continue that run, or start a new run with another output",
            )
    return loaded


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def saved_config(meta: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's stored run settings, in :class:`JohnsonConfig`'s types (older files: a str style)."""
    saved = dict(meta.get("config") or {})
    if isinstance(saved.get("style"), str):
        saved["style"] = [saved["style"]]
    for key in ("style", "content_layers", "style_layers", "earlier_commands"):
        if key in saved and saved[key] is not None:
            saved[key] = tuple(saved[key])
    return saved


def same_setting(name: str, a: Any, b: Any) -> bool:
    """Whether two values of a setting are the same run's: style images by file name, the rest equal."""
    if name == "style":
        return [Path(p).name for p in a] == [Path(p).name for p in b]
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return tuple(a or ()) == tuple(b or ())
    return a == b


def _restore_training(
    config: JohnsonConfig, loaded: Any, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> tuple[int, set[int], float]:
    """Load optimizer, RNG and step from the checkpoint being resumed."""
    optimizer.load_state_dict(loaded.training["optimizer"])
    if scaler is not None and loaded.training.get("scaler"):
        scaler.load_state_dict(loaded.training["scaler"])
    restore_rng(loaded.training["rng"])
    return (
        int(loaded.training["step"]),
        set(loaded.training.get("bad_files", [])),
        float(loaded.meta.get("wall_time_s", 0.0)),
    )


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return (
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    )


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and k != "step":
                state[k] = v.to(device)


def added_styles_report(path: str | Path) -> str | None:
    """One line on a run that added styles to a trained net: its steps and style loss against the net's own styles."""
    meta = dict(read_checkpoint_file(path).get("meta") or {})
    added = meta.get("added_styles")
    stats = meta.get("style_stats") or {}
    if not added:
        return None
    own = {k: v for k, v in stats.items() if k not in added}
    new = [stats.get(n, {}) for n in added]
    steps = ", ".join(f"{n} {s.get('steps', 0)}" for n, s in zip(added, new))
    losses = ", ".join(f"{s['style_loss']:.3g}" for s in new if "style_loss" in s)
    own_losses = [v["style_loss"] for v in own.values() if "style_loss" in v]
    own_steps = [v.get("steps", 0) for v in own.values()]
    line = f"added {len(added)} style(s), norm rows only: steps {steps}; style loss {losses or '?'}"
    if own_losses:
        line += (
            f" vs {np.mean(own_losses):.3g} (mean) for the net's own {len(own)} styles after "
            f"{int(np.mean(own_steps)):,} steps each"
        )
    return line


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.johnson",
        description="Train a Johnson et al. fast style transfer net on a folder of photos or MS-COCO: one "
        "--style image gives the paper's one-style net, several give one multi-style net (conditional "
        "instance norm; pick and blend its styles at run time with --style). Writes one checkpoint "
        "(weights, architecture, IO contract, training state) that realtime.still, nst-video, nst-cam "
        "and `python -m export` read.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python -m train.johnson --dataset coco --download --style samples/styles/mosaic.jpg "
        "-o checkpoints/mosaic.pth\n"
        "  python -m train.johnson --dataset ~/photos --style starry.jpg -o starry.pth --steps 4000 "
        "--arch small\n"
        "  python -m train.johnson --dataset ~/photos --style samples/styles/*.jpg -o multi.pth "
        "--steps 20000      # one net, every style\n"
        "  python -m train.johnson --dataset ~/photos --style mine.jpg --init-from multi.pth -o multi_plus.pth "
        "--steps 1000   # add a style\n"
        "  python -m train.johnson --resume starry.pth --steps 8000     # continue a run (its own settings)\n"
        "  torchrun --nproc_per_node 4 -m train.johnson --dataset coco --style candy.jpg -o candy.pth "
        "--amp bf16 --channels-last --batch-size 8\n"
        "Ctrl-C writes a resumable checkpoint. Samples and log.csv go to --log-dir.",
    )
    a = p.add_argument
    a(
        "--style",
        nargs="+",
        metavar="IMAGE",
        help="style image(s): one trains a one-style net; several train one multi-style net whose styles are "
        "named by the file names; with --init-from a multi-style net, the styles to add to it",
    )
    a("-o", "--output", help="checkpoint to write (.pth; default with --resume: the file resumed)")
    a("--dataset", default="coco", help="'coco' (MS-COCO train images under --data-root) or a folder of photos")
    a("--data-root", help="where datasets live (default $NST_DATA_ROOT or the user cache)")
    a("--download", action="store_true", help="download MS-COCO train2017 (~19 GB, resumable) if missing")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimizer steps to run")
    g.add_argument("--epochs", type=int, help="passes over the dataset (default 2 when --steps is not given)")
    a("--image-size", type=int, default=256, help="training crop size, a multiple of 4 (default 256)")
    a("--batch-size", type=int, default=4, help="images per step per process (default 4)")
    a("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    a("--content-weight", type=float, default=1.0, help="weight of the normalised content loss (default 1)")
    a("--style-weight", type=float, default=10.0, help="weight of the normalised style loss (default 10)")
    a("--tv-weight", type=float, default=0.0, help="weight of total variation (smoothness; default 0)")
    a(
        "--style-size",
        type=int,
        help="resize the style images' longer side to this (default: as is); smaller gives larger brush strokes",
    )
    a("--scale-min", type=float, default=0.35, help="smallest crop area fraction (scale jitter; default 0.35)")
    a(
        "--arch",
        choices=sorted(ARCHS),
        default="johnson",
        help="johnson: the paper's net (default); small: for CPU real time (one style: half width, 3 residual "
        "blocks; several styles: 16/32/64 channels, 5 depthwise-separable blocks, 8 channels at full size)",
    )
    a(
        "--style-order",
        choices=STYLE_ORDERS,
        default="cycle",
        help="several styles: each batch trains one, in turn (cycle, default) or drawn at random",
    )
    a("--content-layers", default=",".join(CONTENT_LAYERS), help="VGG19 layers for the content loss")
    a("--style-layers", default=",".join(STYLE_LAYERS), help="VGG19 layers for the style loss")
    a(
        "--style-layer-weights",
        default="equal",
        help="weights of the style layers, e.g. relu1_1=4 (the painting's palette counts more; layers not named "
        "weigh 1; default equal)",
    )
    a("--amp", choices=("off", "bf16", "fp16"), default="off", help="mixed precision (bf16 also on CPU)")
    a("--channels-last", action="store_true", help="NHWC memory layout (faster on recent GPUs)")
    a(
        "--compile",
        action="store_true",
        help="torch.compile the step (net, VGG, loss); the first steps compile (minutes), so it pays on long runs",
    )
    a("--checkpoint-every", type=int, default=1000, help="steps between resumable checkpoints (default 1000)")
    a("--sample-every", type=int, default=500, help="steps between sample grids (0 = only at the end; default 500)")
    a("--log-every", type=int, default=10, help="steps between log rows (default 10)")
    a(
        "--resume",
        help="checkpoint of a run to continue: its settings come along; a recipe flag given again must match",
    )
    a(
        "--init-from",
        help="start from a trained net (.pth, or one of this project's .onnx files): a one-style net of the same "
        "--arch to fine-tune a new style (converges several times faster), a one-style johnson net to start a "
        "multi-style one, or a multi-style net to add the --style images to it (only their norm rows train)",
    )
    a("--seed", type=int, default=42, help="random seed (default 42)")
    a("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a("--workers", type=int, default=2, help="data loading processes (default 2)")
    a(
        "--threads",
        type=int,
        help="CPU threads for torch (default: all cores; on a busy machine fewer, even 1, can be much faster)",
    )
    a("--log-dir", help="folder for log.csv, TensorBoard and sample grids (default: <output>_log)")
    a("--name", help="model name stored in the contract (default: output file stem)")
    return p


def _layers(text: str) -> tuple[str, ...]:
    return tuple(s for s in text.split(",") if s)


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output:
        check_output(args.output, force=True)  # an unwritable folder is one line now, not after the setup
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume is None and not args.style:
        raise InvalidValue(
            "style",
            "is required (one or more style images), unless you continue a run with {resume}",
            mentions=("resume",),
        )
    if args.resume is None and not args.output:
        raise InvalidValue("output", "is required: the checkpoint to write (.pth)")
    fields = {f.name for f in dataclasses.fields(JohnsonConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values.update(
        style=tuple(args.style or ()),
        output=args.output or args.resume,
        content_layers=_layers(args.content_layers),
        style_layers=_layers(args.style_layers),
        command=recorded_command("train.johnson", argv),
    )
    if args.resume is not None:  # the run's own settings, except what this command line says (must agree)
        values = _resumed_values(values, given_settings(parser, argv), args.resume)
    config = JohnsonConfig(**values)
    out = train(config)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: rank 0 wrote the file
        print(f"wrote {out}")
        report = added_styles_report(out)
        if report:
            print(report)
    return 0


def _resumed_values(values: dict[str, Any], given: set[str], resume: str) -> dict[str, Any]:
    if not Path(resume).is_file():
        raise InvalidValue("resume", f"{resume}: nothing to resume, the file does not exist")
    meta = dict(read_checkpoint_file(resume).get("meta") or {})
    saved = saved_config(meta)
    if not saved:
        raise UserError(
            f"{resume} holds no run settings (not written by train.johnson, or written before it kept them)"
        )
    if given & {"steps", "epochs"}:  # a new length replaces the run's, whichever way it is given
        saved.pop("steps", None)
        saved.pop("epochs", None)
    restored = restore_settings(values, saved, given, RECIPE, NOT_RESTORED, resume, same_setting)
    first = saved.get("command") or meta.get("command")  # files from before the config kept its command
    restored["earlier_commands"] = (*saved.get("earlier_commands", ()), *([first] if first else []))
    return restored


if __name__ == "__main__":
    sys.exit(main())
