"""Train CycleGAN (Zhu et al. 2017) on two unpaired image sets: ``python -m train.cyclegan``.

The paper's recipe by default: ResNet generators (9 blocks), 70x70 PatchGANs, LSGAN loss,
cycle weight 10 each way, identity weight 0.5 of it, a 50-image history pool, Adam 2e-4
(beta1 0.5) constant for ``epochs`` then linearly decayed over ``epochs_decay``, 286 -> 256
crops with flips, batch 1, weights drawn from N(0, 0.02). Names follow the authors: ``G_A``
maps A -> B and ``D_A`` judges B-domain images; ``G_B`` maps B -> A and ``D_B`` judges A.

Outputs in ``output/``: both generators in the project's checkpoint format (``horse2zebra.pth``
and ``zebra2horse.pth``, or ``a2b.pth``/``b2a.pth``), ``state.pth`` to ``--resume`` from (the
A -> B checkpoint plus a ``training`` dict with everything else), ``logs/log.csv`` and
``samples/`` grids. Under ``torchrun`` each rank trains on its shard with DDP; rank 0 writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from realtime.cli.common import cli_entry
from realtime.core.devices import resolve_device
from realtime.core.errors import InvalidValue
from realtime.core.files import check_output
from train import distributed
from train.cyclegan_model import (
    LOSS_NAMES,
    LR_SCALING,
    CycleGAN,
    CycleGANConfig,
    load_run_state,
    resumed_config,
    save_run,
)
from train.data import default_data_root
from train.runlog import RunLog, recorded_command, save_grid, to_uint8_images
from train.settings import given_settings
from train.state import restore_rng, seed_everything
from train.unpaired import DATASETS, EpochBatchSampler, PreloadedDomains, UnpairedDataset, resolve_dataset

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    steps: int
    epochs: float
    outputs: dict[str, Path]
    losses: dict[str, float]
    bad_files: int
    model: CycleGAN
    out_of_time: bool = False  # stopped by the time limit before the last step


class _StopFlag:
    """First Ctrl-C (or SIGTERM) asks the loop to save and stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.set = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _ignore_sigint(worker_id: int) -> None:
    """Data workers leave Ctrl-C to the main process, which saves before it stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train(cfg: CycleGANConfig) -> TrainResult:
    """Run (or continue) a CycleGAN training; see the module docstring for what it writes."""
    cfg.check()
    info, device = distributed.setup(resolve_device(cfg.device))
    try:
        return _train(cfg, info, device)
    finally:
        distributed.teardown(info)


def _train(cfg: CycleGANConfig, info: distributed.DistInfo, device: torch.device) -> TrainResult:
    if cfg.amp == "fp16" and device.type != "cuda":
        raise InvalidValue("amp", "fp16 needs a CUDA device; use bf16 on the CPU")
    if cfg.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidValue("amp", "bf16: this GPU has no bfloat16 support; use fp16")
    out = Path(cfg.output)
    if cfg.resume is None and (out / "state.pth").exists():
        raise InvalidValue(
            "output",
            f"{out} already holds a training state; continue it with {{resume}}, "
            "or choose another output folder / delete state.pth",
            mentions=("resume",),
        )
    data_root = Path(cfg.data_root) if cfg.data_root else default_data_root()
    if info.is_main:  # rank 0 downloads while the others wait
        root = resolve_dataset(cfg.dataset, data_root, cfg.download, progress=cfg.progress)
    distributed.barrier(info)
    if not info.is_main:
        root = resolve_dataset(cfg.dataset, data_root)
    data_name = cfg.dataset if cfg.dataset in DATASETS else root.resolve().name
    dataset = UnpairedDataset(root, crop_size=cfg.image_size, seed=cfg.seed)

    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = CycleGAN(cfg, device, info)
    step, epoch, batch_pos = 0, 0, 0
    if cfg.resume is not None:
        training = load_run_state(cfg, model)
        step, epoch, batch_pos = int(training["step"]), int(training["epoch"]), int(training["batch"])
        if info.world_size == 1:
            restore_rng(training["rng"])
    sampler = EpochBatchSampler(len(dataset), cfg.batch_size, cfg.seed, info.rank, info.world_size, epoch, batch_pos)
    per_epoch = sampler.batches_per_epoch
    total = cfg.steps if cfg.steps is not None else (cfg.epochs + cfg.epochs_decay) * per_epoch
    bad_seen: set[tuple[str, int]] = set()
    if cfg.preload:
        preloaded = PreloadedDomains(dataset, device, threads=cfg.workers or None)
        for side in "AB":
            for bad in preloaded.unreadable[side]:
                _warn_bad(side, bad, dataset, bad_seen)
        batches = (preloaded.batch(keys) for keys in sampler)
        if info.is_main:
            log.info(
                "preloaded %d images (%.0f MB) onto %s",
                len(dataset.files_A) + len(dataset.files_B),
                preloaded.nbytes / 1e6,
                device,
            )
    else:
        batches = iter(
            DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=cfg.workers,
                pin_memory=device.type == "cuda",
                worker_init_fn=_ignore_sigint if cfg.workers else None,
                persistent_workers=cfg.workers > 0,
                prefetch_factor=4 if cfg.workers else None,
            )
        )
    runlog = RunLog(cfg.log_dir or out / "logs", resume=cfg.resume is not None) if info.is_main else None
    if info.is_main:
        log.info(
            "%s: %d A and %d B images, %d iterations/epoch, training to step %d on %s%s",
            root,
            len(dataset.files_A),
            len(dataset.files_B),
            per_epoch,
            total,
            device,
            f" x{info.world_size}" if info.enabled else "",
        )

    # Losses stay on the device, summed over the logging window: the only waits for the device are
    # the log lines (every log_every steps), sample grids and checkpoints.
    window: torch.Tensor | None = None
    last: dict[str, float] = {}
    outputs: dict[str, Path] = {}
    out_of_time = False
    window_n, position, t0 = 0, (epoch, batch_pos), time.perf_counter()
    started = t0
    bar = tqdm(
        total=total,
        initial=step,
        unit="it",
        dynamic_ncols=True,
        desc="cyclegan",
        disable=not (cfg.progress and info.is_main),
    )
    with _StopFlag() as stop:
        try:
            while step < total:
                batch = next(batches)
                epoch, batch_index = int(batch["epoch"][0]), int(batch["batch"][0])
                model.set_epoch(epoch)
                _note_bad_files(batch, dataset, bad_seen)
                losses = model.step(batch["A"].to(device, non_blocking=True), batch["B"].to(device, non_blocking=True))
                step += 1
                position = (epoch, batch_index + 1) if batch_index + 1 < per_epoch else (epoch + 1, 0)
                window = losses if window is None else window + losses
                window_n += 1
                bar.update(1)
                if cfg.time_limit is not None and step < total:
                    out_of_time = _out_of_time(started, cfg.time_limit, info, device)
                final = step == total or out_of_time
                if step % cfg.log_every == 0 or final:
                    means = distributed.all_reduce_mean(window / window_n, info)
                    last = dict(zip(LOSS_NAMES, means.tolist()))
                    rate, t0 = window_n / max(time.perf_counter() - t0, 1e-9), time.perf_counter()
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()}, refresh=False)
                    if runlog is not None:
                        row = {**last, "lr": model.lr, "epoch": step / per_epoch, "it_per_s": rate}
                        runlog.write(step, {**row, "images_per_s": rate * cfg.batch_size * info.world_size})
                    window, window_n = None, 0
                if info.is_main and (step % cfg.sample_every == 0 or final):
                    _save_samples(model.visuals, out / "samples" / f"step_{step:07d}.png")
                if info.is_main and step % cfg.checkpoint_every == 0 and not final:
                    save_run(cfg, model, step, step / per_epoch, position, data_name)
                if out_of_time:
                    break
                if _stop_requested(stop, info, device):
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            if info.is_main:
                written = save_run(cfg, model, step, step / per_epoch, position, data_name)
                log.warning("interrupted at step %d; saved %s (continue with --resume)", step, written["state"])
            raise
        finally:
            bar.close()
            del batches
            if runlog is not None:
                runlog.close()
    if info.is_main:
        outputs = save_run(cfg, model, step, step / per_epoch, position, data_name)
        if out_of_time:
            log.warning(
                "time limit of %g s reached at step %d of %d; saved %s (continue with --resume)",
                cfg.time_limit,
                step,
                total,
                outputs["state"],
            )
        if bad_seen:
            log.warning("skipped %d unreadable image file(s) in %s", len(bad_seen), root)
    distributed.barrier(info)
    return TrainResult(step, step / per_epoch, outputs, last, len(bad_seen), model, out_of_time)


def _out_of_time(started: float, limit: float, info: distributed.DistInfo, device: torch.device) -> bool:
    """Whether the time limit is spent (on rank 0's clock, so all ranks stop at the same step)."""
    spent = time.perf_counter() - started >= limit
    if not info.enabled:
        return spent
    flag = torch.tensor([1.0 if spent and info.is_main else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def _warn_bad(side: str, bad: int, dataset: UnpairedDataset, seen: set[tuple[str, int]]) -> None:
    if (side, bad) not in seen:
        seen.add((side, bad))
        log.warning("skipping unreadable image %s", (dataset.files_A if side == "A" else dataset.files_B)[bad])


def _note_bad_files(batch: dict[str, Any], dataset: UnpairedDataset, seen: set[tuple[str, int]]) -> None:
    """Warn once per unreadable file the loader skipped; ``seen`` collects them for the final count."""
    for side in "AB":
        for bad in batch[f"bad_{side}"].tolist():
            if bad >= 0:
                _warn_bad(side, bad, dataset, seen)


def _save_samples(visuals: dict[str, torch.Tensor], path: Path) -> None:
    """A 2x3 grid of the batch's first images: real A, fake B, reconstructed A; real B, fake A, reconstructed B."""
    rows = [
        [to_uint8_images(visuals[k][:1], (-1.0, 1.0))[0] for k in keys]
        for keys in (("real_A", "fake_B", "rec_A"), ("real_B", "fake_A", "rec_B"))
    ]
    save_grid(rows, path)


def _stop_requested(stop: _StopFlag, info: distributed.DistInfo, device: torch.device) -> bool:
    """Whether any rank was asked to stop (all ranks must stop at the same step)."""
    if not info.enabled:
        return stop.set
    flag = torch.tensor([1.0 if stop.set else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


class _TqdmLogHandler(logging.Handler):
    """Log lines that do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


EPILOG = """examples:
  python -m train.cyclegan --dataset horse2zebra --download -o checkpoints/horse2zebra
  python -m train.cyclegan --dataset horse2zebra --image-size 128 --ngf 32 --n-blocks 6 --steps 20000 --workers 2
  python -m train.cyclegan --dataset ~/data/day2night -o runs/d2n --amp bf16   # a folder with trainA/ trainB/
  python -m train.cyclegan --dataset horse2zebra -o checkpoints/horse2zebra --resume            # continue after Ctrl-C
  torchrun --nproc_per_node 4 -m train.cyclegan --dataset monet2photo -o checkpoints/monet2photo --amp bf16

Writes X2Y.pth and Y2X.pth (a2b.pth / b2a.pth for folders not named X2Y), state.pth for --resume,
logs/log.csv and samples/step_*.png into the output folder. Ctrl-C saves before it stops.
Named datasets: """ + ", ".join(DATASETS)


def build_parser() -> argparse.ArgumentParser:
    d = CycleGANConfig(dataset="")
    p = argparse.ArgumentParser(
        prog="python -m train.cyclegan",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a pair of CycleGAN generators (Zhu et al. 2017) on two "
        "unpaired image sets; defaults are the paper's recipe.",
    )
    p.add_argument(
        "--dataset", help="folder with trainA/ and trainB/, or a named dataset (with --resume: the run's, by default)"
    )
    p.add_argument(
        "-o", "--output", help="output folder (default: checkpoints/<dataset name>, or the folder of --resume STATE)"
    )
    p.add_argument(
        "--data-root",
        help="where named datasets live, under cyclegan/<name> (default: $NST_DATA_ROOT or ~/.cache/realtime-nst/data)",
    )
    p.add_argument("--download", action="store_true", help="download a named dataset if it is missing")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, default=d.epochs, help="epochs at the initial learning rate (%(default)s)")
    g.add_argument("--epochs-decay", type=int, default=d.epochs_decay, help="epochs of linear decay (%(default)s)")
    g.add_argument(
        "--steps",
        type=int,
        help="stop after this many iterations; the lr schedule stays per epoch, so for a "
        "short run with decay shrink --epochs and --epochs-decay instead",
    )
    g.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate at batch 1 (%(default)s)")
    g.add_argument(
        "--lr-scaling",
        choices=tuple(LR_SCALING),
        default=d.lr_scaling,
        help="scale --lr for --batch-size: sqrt (lr*sqrt(batch)) or linear (lr*batch) (default %(default)s)",
    )
    g.add_argument("--beta1", type=float, default=d.beta1, help="Adam beta1 (%(default)s)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="images per domain per step (%(default)s)")
    g.add_argument(
        "--image-size",
        type=int,
        default=d.image_size,
        help="training crop (%(default)s); images are first resized to size*286/256",
    )
    n = p.add_argument_group("networks and losses")
    n.add_argument("--ngf", type=int, default=d.ngf, help="generator width (%(default)s)")
    n.add_argument("--n-blocks", type=int, default=d.n_blocks, help="generator residual blocks: 9, or 6 (%(default)s)")
    n.add_argument("--ndf", type=int, default=d.ndf, help="discriminator width (%(default)s)")
    n.add_argument("--n-layers-d", type=int, default=d.n_layers_d, help="PatchGAN layers, 3 = 70x70 (%(default)s)")
    n.add_argument("--gan-mode", choices=("lsgan", "vanilla"), default=d.gan_mode)
    n.add_argument("--lambda-cycle", type=float, default=d.lambda_cycle, help="cycle-loss weight (%(default)s)")
    n.add_argument(
        "--lambda-identity",
        type=float,
        default=d.lambda_identity,
        help="identity-loss weight as a fraction of --lambda-cycle, 0 to disable (%(default)s)",
    )
    n.add_argument("--pool-size", type=int, default=d.pool_size, help="history of fakes, 0 to disable (%(default)s)")
    r = p.add_argument_group("running")
    r.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (%(default)s)")
    r.add_argument(
        "--amp",
        choices=("off", "bf16", "fp16"),
        default=d.amp,
        help="mixed precision: bf16 (CUDA or CPU) or fp16 with loss scaling (CUDA)",
    )
    r.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster with AMP on GPUs)")
    r.add_argument(
        "--preload",
        action="store_true",
        help="decode every image once and keep both domains on the device (uint8, about 590 MB for horse2zebra "
        "at 256 px); crops and flips run there, with no loader processes: the fast path on a GPU",
    )
    r.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the four networks (with CUDA graphs on CUDA); the first steps compile, which "
        "takes minutes, so it pays on long runs",
    )
    r.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="stop after this much training time and save a resumable state (for fixed GPU slots)",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help="data-loading processes (%(default)s; with --preload: decoding threads, 0 = all cores)",
    )
    r.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: all cores; on a busy machine fewer, even 1, can be much faster)",
    )
    r.add_argument("--seed", type=int, default=d.seed)
    r.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="STATE",
        help="continue from the output folder's state.pth (or the given state file)",
    )
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=d.checkpoint_every,
        help="save generators and state every N steps (%(default)s)",
    )
    r.add_argument(
        "--sample-every", type=int, default=d.sample_every, help="save an image grid every N steps (%(default)s)"
    )
    r.add_argument("--log-every", type=int, default=d.log_every, help="log averaged losses every N steps (%(default)s)")
    r.add_argument("--log-dir", help="CSV/TensorBoard folder (default: OUTPUT/logs)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = _TqdmLogHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    if args.dataset is None and args.resume is None:
        parser.error("--dataset is required (unless you --resume a run)")
    if args.output:
        output = args.output
    elif args.resume:
        output = str(Path(args.resume).parent)
    elif args.dataset:
        output = str(Path("checkpoints") / Path(args.dataset.rstrip("/\\")).name)
    else:
        parser.error("--resume without a state file needs -o (the run's output folder) or --dataset")
    check_output(Path(output) / "state.pth", force=True)  # an unwritable folder is one line now, not after the setup
    resume = None if args.resume is None else (args.resume or str(Path(output) / "state.pth"))
    fields = {f.name for f in dataclasses.fields(CycleGANConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    cfg = CycleGANConfig(
        **{
            **values,
            "dataset": args.dataset or "",
            "output": output,
            "resume": resume,
            "progress": not args.no_progress,
            "command": recorded_command("train.cyclegan", argv),
        }
    )
    if resume is not None:  # the run's own settings, except what this command line says (must agree)
        cfg = resumed_config(cfg, given_settings(parser, argv))
    result = train(cfg)
    if result.outputs:
        names = ", ".join(str(p) for k, p in result.outputs.items() if k != "state")
        stopped = " (time limit)" if result.out_of_time else ""
        print(
            f"trained {result.steps} steps ({result.epochs:.2f} epochs){stopped}; wrote {names} "
            f"and {result.outputs['state']} (for --resume)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
