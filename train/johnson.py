"""Train a Johnson et al. (2016) fast style transfer net: ``python -m train.johnson``.

The perceptual loss runs on the Caffe VGG19 (train/nets/vgg.py):

* content: ``relu2_2`` by default (as Johnson et al.; it keeps edges and layout while
  leaving colour and texture free), mean squared error normalised by the target's mean square;
* style: Gram matrices of ``relu1_1 … relu5_1`` (Gatys et al.'s layers), each layer's squared
  error normalised by the style Gram's mean square, so every layer counts the same and the
  default weights do not depend on the VGG's activation scale;
* total variation on the output (off by default: nearest upsampling gives no checkerboards).

Everything a run needs to continue is in its checkpoint: ``--resume`` restores weights,
optimizer, step, data order and RNG. Ctrl-C writes a resumable checkpoint before exiting.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from realtime.cli.common import cli_entry
from realtime.core.checkpoint import json_safe, load_model, save_checkpoint
from realtime.core.contract import johnson_contract
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
)
from realtime.core.nets import TransformerNet
from realtime.core.nets.transformer import ARCHS
from realtime.core.nets.vgg import LAYERS, VGG19Features
from train import distributed
from train.data import Augment, ImageFolder, default_data_root, epoch_permutation, resolve_coco
from train.runlog import RunLog, recorded_command, save_grid, to_uint8_images
from train.state import capture_rng, restore_rng, seed_everything

log = logging.getLogger(__name__)

CONTENT_LAYERS = JOHNSON_CONTENT_LAYERS
STYLE_LAYERS = GATYS_STYLE_LAYERS


@dataclass
class JohnsonConfig:
    """Every setting of a run; stored in the checkpoint's ``meta["config"]``."""

    style: str
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
    amp: str = "off"
    channels_last: bool = False
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
    extra_meta: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.image_size <= 0 or self.image_size % 4:
            raise InvalidValue("image_size", f"must be a positive multiple of 4, got {self.image_size}")
        if self.batch_size < 1:
            raise InvalidValue("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.arch not in ARCHS:
            raise InvalidValue("arch", f"must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise InvalidValue("amp", f"must be off, bf16 or fp16, got {self.amp!r}")
        if self.steps is not None and self.steps < 1:
            raise InvalidValue("steps", f"must be at least 1, got {self.steps}")
        if self.epochs is not None and self.epochs < 1:
            raise InvalidValue("epochs", f"must be at least 1, got {self.epochs}")
        if not 0 < self.scale_min <= 1:
            raise InvalidValue("scale_min", f"must be in (0, 1], got {self.scale_min}")


# ----------------------------------------------------------------------------- data
def resolve_dataset(config: JohnsonConfig, progress: bool) -> Path:
    if config.dataset == "coco":
        root = Path(config.data_root) if config.data_root else default_data_root()
        return resolve_coco(root, config.download, progress=progress)
    return Path(config.dataset)


# ----------------------------------------------------------------------------- training
def _autocast(device: torch.device, amp: str):
    if amp == "off":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _sample_grid(model: torch.nn.Module, val: torch.Tensor, path: Path) -> None:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(val).clamp(0, 255)
    model.train(was_training)
    save_grid([to_uint8_images(val, (0, 255)), to_uint8_images(out, (0, 255))], path)


def _training_state(
    step: int, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, bad_files: set[int]
) -> dict[str, Any]:
    return {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "bad_files": sorted(bad_files),
    }


def train(config: JohnsonConfig, progress: bool = True) -> Path:
    """Run training as configured; returns the path of the final checkpoint."""
    config.validate()
    device = resolve_device(config.device)
    dist_info, device = distributed.setup(device)
    show = progress and dist_info.is_main
    if config.amp == "fp16" and device.type != "cuda":
        raise InvalidValue("amp", "fp16 needs a CUDA GPU; use bf16 on the CPU")
    style_path = Path(config.style)
    style_rgb = read_image(style_path, max_side=config.style_size)
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
    model = TransformerNet.from_arch(config.arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    step, bad_files, earlier_wall_time = 0, set(), 0.0
    if config.resume:
        step, bad_files, earlier_wall_time = _resume(config, model, optimizer, scaler)
    elif config.init_from:
        model.load_state_dict(_load_same_arch(config.init_from, model, config.arch).state_dict())
    model.to(device)
    _move_optimizer_state(optimizer, device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model) if dist_info.enabled else model

    vgg = VGG19Features.caffe().to(device)
    if config.channels_last:
        vgg.to(memory_format=torch.channels_last)
    style_t = torch.from_numpy(style_rgb).permute(2, 0, 1)[None].float().to(device)
    loss_fn = PerceptualLoss(
        vgg,
        StyleTargets.from_images(vgg, [style_t], config.style_layers, [style_path.name]),
        config.content_layers,
        config.style_layers,
        LossWeights(config.content_weight, config.style_weight, config.tv_weight),
    )
    val = torch.stack([data[i][0] for i in range(min(4, len(data)))]).to(device)

    out_path = Path(config.output)
    log_dir = Path(config.log_dir) if config.log_dir else out_path.with_name(out_path.stem + "_log")
    runlog = RunLog(log_dir, resume=bool(config.resume)) if dist_info.is_main else None
    if config.resume and config.init_from:
        raise InvalidValue("init_from", "cannot be combined with {resume}", mentions=("resume",))
    meta = {
        "config": json_safe(dataclasses.asdict(config)),
        "style": style_path.name,
        "dataset": str(dataset_dir),
        "dataset_images": len(data),
        "command": recorded_command("train.johnson", sys.argv[1:]),
        "hardware": _hardware(device),
        **config.extra_meta,
    }
    contract = johnson_contract(
        name=config.name or out_path.stem,
        style=style_path.name,
        provenance={
            "trained_steps": total_steps,
            "image_size": config.image_size,
            "dataset": dataset_dir.name,
            "style_image": style_path.name,
        },
    )

    def save(at_step: int, final: bool = False) -> None:
        if not dist_info.is_main:
            return
        meta["steps_done"] = at_step
        meta["wall_time_s"] = round(time.time() - t_start + earlier_wall_time, 1)
        save_checkpoint(
            out_path,
            model,
            contract.replace(provenance={**contract.provenance, "trained_steps": at_step}),
            meta,
            _training_state(at_step, optimizer, scaler, bad_files),
        )
        if final:
            log.info("saved %s", out_path)

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
    try:
        while step < total_steps:
            epoch, offset = divmod(step, steps_per_epoch)
            order = epoch_permutation(len(data), epoch, config.seed)[: steps_per_epoch * per_step]
            mine = order[offset * per_step :][dist_info.rank :: dist_info.world_size]
            data.set_epoch(epoch)
            loader = DataLoader(
                data,
                batch_size=config.batch_size,
                sampler=mine,
                num_workers=config.workers,
                pin_memory=device.type == "cuda",
                drop_last=True,
                persistent_workers=False,
            )
            for images, bad in loader:
                for b in bad.tolist():
                    if b >= 0 and b not in bad_files:
                        bad_files.add(b)
                        log.warning("skipped unreadable image %s", data.files[b])
                x = images.to(device, non_blocking=True)
                if config.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device, config.amp):
                    y = net(x)
                    losses = loss_fn(y, loss_fn.content_targets(x))
                if not torch.isfinite(losses["loss"]):
                    raise InvalidValue(
                        "lr",
                        f"{config.lr:g}: the loss became {losses['loss'].item()} at step {step}; "
                        "lower it or {style_weight}, or turn {amp} off",
                        mentions=("style_weight", "amp"),
                    )
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(losses["loss"]).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    losses["loss"].backward()
                    optimizer.step()
                step += 1
                images_seen += per_step
                if step % config.log_every == 0 or step == total_steps:
                    now = time.time()
                    rate = images_seen / max(now - t_window, 1e-9)
                    images_seen, t_window = 0, now
                    values = {
                        k: distributed.all_reduce_mean(v.detach().float(), dist_info).item() for k, v in losses.items()
                    }
                    values["images_per_s"] = rate
                    if runlog is not None:
                        runlog.write(step, values)
                    bar.set_postfix(
                        loss=f"{values['loss']:.3g}",
                        content=f"{values['content']:.3g}",
                        style=f"{values['style']:.3g}",
                        img_s=f"{rate:.1f}",
                    )
                bar.update(1)
                if dist_info.is_main and config.sample_every and step % config.sample_every == 0:
                    _sample_grid(model, val, log_dir / f"samples_{step:07d}.png")
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                    save(step)
                if step >= total_steps:
                    break
    except KeyboardInterrupt:
        bar.close()
        save(step)
        if dist_info.is_main:
            print(f"interrupted at step {step}; resume with --resume {out_path}", file=sys.stderr)
        raise
    finally:
        bar.close()
        if runlog is not None:
            runlog.close()
    save(step, final=True)
    if dist_info.is_main:
        _sample_grid(model, val, log_dir / "samples_final.png")
        if bad_files:
            print(f"warning: skipped {len(bad_files)} unreadable image(s) under {dataset_dir}", file=sys.stderr)
    distributed.teardown(dist_info)
    return out_path


def _resume(
    config: JohnsonConfig, model: TransformerNet, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> tuple[int, set[int], float]:
    """Load weights, optimizer, RNG and step from ``config.resume``; refuse another architecture."""
    loaded = load_model(config.resume)
    _load_same_arch(config.resume, model, config.arch, loaded)
    if not loaded.training:
        raise UserError(
            f"{config.resume} has no training state (it is an exported or published model); "
            "start a new run or fine-tune from scratch"
        )
    model.load_state_dict(loaded.model.state_dict())
    optimizer.load_state_dict(loaded.training["optimizer"])
    if scaler is not None and loaded.training.get("scaler"):
        scaler.load_state_dict(loaded.training["scaler"])
    restore_rng(loaded.training["rng"])
    return (
        int(loaded.training["step"]),
        set(loaded.training.get("bad_files", [])),
        float(loaded.meta.get("wall_time_s", 0.0)),
    )


def _load_same_arch(path: str, model: TransformerNet, arch: str, loaded: Any = None) -> TransformerNet:
    """The TransformerNet stored in ``path``; UserError if it is another architecture than ``model``."""
    loaded = loaded or load_model(path)
    if not isinstance(loaded.model, TransformerNet) or loaded.model.arch_kwargs() != model.arch_kwargs():
        theirs = loaded.model.arch_kwargs() if hasattr(loaded.model, "arch_kwargs") else {}
        raise InvalidValue(
            "arch", f"{arch} {model.arch_kwargs()} differs from {path}: a {type(loaded.model).__name__} {theirs}"
        )
    return loaded.model


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


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.johnson",
        description="Train a Johnson et al. fast style transfer net on a folder of photos or MS-COCO. "
        "Writes one checkpoint (weights, architecture, IO contract, training state) that "
        "realtime.cli.still, nst-video, nst-cam and `python -m export` read.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="examples:\n"
        "  python -m train.johnson --dataset coco --download --style samples/styles/mosaic.jpg "
        "-o checkpoints/mosaic.pth\n"
        "  python -m train.johnson --dataset ~/photos --style starry.jpg -o starry.pth --steps 4000 "
        "--arch small\n"
        "  python -m train.johnson --dataset ~/photos --style starry.jpg -o starry.pth --resume starry.pth\n"
        "  torchrun --nproc_per_node 4 -m train.johnson --dataset coco --style candy.jpg -o candy.pth "
        "--amp bf16 --channels-last --batch-size 8\n"
        "Ctrl-C writes a resumable checkpoint. Samples and log.csv go to --log-dir.",
    )
    a = p.add_argument
    a("--style", required=True, help="style image")
    a("-o", "--output", required=True, help="checkpoint to write (.pth)")
    a("--dataset", default="coco", help="'coco' (MS-COCO train images under --data-root) or a folder of photos")
    a("--data-root", help="where datasets live (default $NST_DATA_ROOT or the user cache)")
    a("--download", action="store_true", help="download MS-COCO train2017 (~19 GB, resumable) if missing")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimizer steps to run")
    g.add_argument("--epochs", type=int, help="passes over the dataset (default 2 when --steps is not given)")
    a("--image-size", type=int, default=256, help="training crop size, a multiple of 4")
    a("--batch-size", type=int, default=4, help="images per step (per process)")
    a("--lr", type=float, default=1e-3, help="Adam learning rate")
    a("--content-weight", type=float, default=1.0, help="weight of the normalised content loss")
    a("--style-weight", type=float, default=10.0, help="weight of the normalised style loss")
    a("--tv-weight", type=float, default=0.0, help="weight of total variation (smoothness)")
    a(
        "--style-size",
        type=int,
        help="resize the style image's longer side to this (default: as is); smaller gives larger brush strokes",
    )
    a("--scale-min", type=float, default=0.35, help="smallest crop area fraction (scale jitter)")
    a(
        "--arch",
        choices=sorted(ARCHS),
        default="johnson",
        help="johnson: the paper's net; small: half width, 3 residual blocks, for CPU real time",
    )
    a("--content-layers", default=",".join(CONTENT_LAYERS), help="VGG19 layers for the content loss")
    a("--style-layers", default=",".join(STYLE_LAYERS), help="VGG19 layers for the style loss")
    a("--amp", choices=("off", "bf16", "fp16"), default="off", help="mixed precision (bf16 also on CPU)")
    a("--channels-last", action="store_true", help="NHWC memory layout (faster on recent GPUs)")
    a("--checkpoint-every", type=int, default=1000, help="steps between resumable checkpoints")
    a("--sample-every", type=int, default=500, help="steps between sample grids (0 = only at the end)")
    a("--log-every", type=int, default=10, help="steps between log rows")
    a("--resume", help="checkpoint to continue from (usually the same as -o)")
    a(
        "--init-from",
        help="start from the weights of another checkpoint of the same --arch (fine-tuning a "
        "new style from a trained one converges faster); optimizer and step start fresh",
    )
    a("--seed", type=int, default=42)
    a("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a("--workers", type=int, default=2, help="data loading processes")
    a(
        "--threads",
        type=int,
        help="CPU threads for torch (default: all cores; on a busy machine fewer, even 1, can be much faster)",
    )
    a("--log-dir", help="folder for log.csv, TensorBoard and sample grids (default: <output>_log)")
    a("--name", help="model name stored in the contract (default: output file stem)")
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output(args.output, force=True)  # an unwritable folder is one line now, not after the setup
    if args.threads:
        torch.set_num_threads(args.threads)
    config = JohnsonConfig(
        style=args.style,
        output=args.output,
        dataset=args.dataset,
        data_root=args.data_root,
        download=args.download,
        steps=args.steps,
        epochs=args.epochs,
        image_size=args.image_size,
        batch_size=args.batch_size,
        lr=args.lr,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        style_size=args.style_size,
        scale_min=args.scale_min,
        arch=args.arch,
        content_layers=tuple(s for s in args.content_layers.split(",") if s),
        style_layers=tuple(s for s in args.style_layers.split(",") if s),
        amp=args.amp,
        channels_last=args.channels_last,
        checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every,
        log_every=args.log_every,
        resume=args.resume,
        init_from=args.init_from,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        log_dir=args.log_dir,
        name=args.name,
    )

    bad = [n for n in config.content_layers + config.style_layers if n not in LAYERS]
    if bad:
        raise UserError(f"unknown VGG19 layer(s) {', '.join(bad)}; e.g. relu2_2, relu4_2, relu1_1 … relu5_1")
    out = train(config)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
