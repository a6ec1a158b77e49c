"""Pack a training-data copy small enough to travel to a lent GPU: ``python -m train.gpu_data``.

A lent GPU machine receives the repository's working tree plus a few carried folders, 64 MiB in
all, and reaches nothing else. This writes ``photos/`` (Johnson content: photos downscaled to
``--photo-side`` on their shorter side) and ``horse2zebra/trainA``, ``trainB`` (squashed to the
CycleGAN load size, ``--unpaired-size``: 143 for 128-px crops) as WebP, taking photos (shuffled,
seeded) until the byte budget is spent: by default what is left of 64 MiB after the files git
would send (tracked and untracked-but-not-ignored) and the wheels in ``.whl/``, less a margin.
``train.gpu_all --data`` reads the result. Keep the folder out of git (``/.gpu_data/`` is ignored).
"""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from realtime.cli.common import cli_entry
from realtime.core.errors import UserError
from realtime.core.images import list_images, pil_to_rgb

REPO = Path(__file__).resolve().parents[1]
TRAVEL_LIMIT = 64 * 2**20  # what a lent machine receives: working tree + carried folders
MARGIN = 1 * 2**20


def travelling_bytes(repo: Path = REPO, carried: Sequence[Path] = ()) -> int:
    """Bytes a lent machine would receive from ``repo``: git's tracked and untracked-but-not-ignored files,
    plus ``carried`` files and folders."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UserError(f"{repo} is not a git checkout (or git is missing); give --budget-mb") from None
    names = [name for name in listed.decode().split("\0") if name]
    total = sum((repo / name).stat().st_size for name in names if (repo / name).is_file())
    for path in carried:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total


def encode(path: Path, size: tuple[int, int] | int, quality: int) -> bytes:
    """The image at ``path`` as WebP: squashed to ``(w, h)``, or with its shorter side scaled down to ``size``."""
    with Image.open(path) as img:
        img = Image.fromarray(pil_to_rgb(img))
    if isinstance(size, int):
        scale = size / min(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    else:
        img = img.resize(size, Image.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, "WEBP", quality=quality, method=6)
    return buffer.getvalue()


@dataclass
class Packed:
    files: int = 0
    bytes: int = 0
    unreadable: int = 0


def pack(sources: Sequence[tuple[Path, Path]], budget: int, size: tuple[int, int] | int, quality: int) -> Packed:
    """Encode ``(source file, destination without suffix)`` pairs in order until ``budget`` bytes are used."""
    done = Packed()
    for source, dest in sources:
        try:
            data = encode(source, size, quality)
        except Exception:  # noqa: BLE001 - an unreadable photo is skipped, as the trainers do
            done.unreadable += 1
            continue
        if done.bytes + len(data) > budget:
            break
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.with_suffix(".webp").write_bytes(data)
        done.files += 1
        done.bytes += len(data)
    return done


def interleave(a: list[Path], b: list[Path]) -> list[Path]:
    """``a0, b0, a1, b1, ...``: both domains grow together until the budget ends."""
    out = []
    for i in range(max(len(a), len(b))):
        out += ([a[i]] if i < len(a) else []) + ([b[i]] if i < len(b) else [])
    return out


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.gpu_data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m train.gpu_data --photos ../shared/data/photos "
        "--unpaired ../shared/data/horse2zebra -o .gpu_data",
    )
    p.add_argument("--photos", required=True, help="folder of photos for the Johnson nets (searched recursively)")
    p.add_argument("--unpaired", required=True, help="folder with trainA/ and trainB/ (horse2zebra)")
    p.add_argument("-o", "--output", default=".gpu_data", help="output folder (default %(default)s)")
    p.add_argument("--budget-mb", type=float, help="bytes to fill, in MB (default: what 64 MiB leaves, see above)")
    p.add_argument("--photo-share", type=float, default=0.55, help="of the budget for photos (default %(default)s)")
    p.add_argument("--photo-side", type=int, default=256, help="shorter side of the photos (default %(default)s)")
    p.add_argument("--unpaired-size", type=int, default=143, help="squashed side of trainA/B (default %(default)s)")
    p.add_argument("--quality", type=int, default=78, help="WebP quality (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="which photos come first (default %(default)s)")
    args = p.parse_args(argv)
    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; remove it or choose another --output")
    if not 0 < args.photo_share < 1:
        raise UserError(f"--photo-share must be between 0 and 1, got {args.photo_share}")
    if args.budget_mb is not None:
        budget = int(args.budget_mb * 1e6)
    else:
        whl = REPO / ".whl"
        budget = TRAVEL_LIMIT - travelling_bytes(REPO, [whl] if whl.is_dir() else []) - MARGIN
    if budget <= 0:
        raise UserError("nothing is left of the 64 MiB that travels; give --budget-mb or make the tree smaller")
    photos = list_images(Path(args.photos))
    unpaired_root = Path(args.unpaired)
    domains = [list_images(unpaired_root / d) if (unpaired_root / d).is_dir() else [] for d in ("trainA", "trainB")]
    if not photos or not all(domains):
        raise UserError(f"need photos under {args.photos} and images in {unpaired_root}/trainA and trainB")
    rng = random.Random(args.seed)
    for files in (photos, *domains):
        rng.shuffle(files)
    photo_budget = int(budget * args.photo_share)
    got_photos = pack([(f, out / "photos" / f.stem) for f in photos], photo_budget, args.photo_side, args.quality)
    pairs = [(f, out / "horse2zebra" / f.parent.name / f.stem) for f in interleave(*domains)]
    side = (args.unpaired_size, args.unpaired_size)
    got_unpaired = pack(pairs, budget - got_photos.bytes, side, args.quality)
    counts = {d: len(list((out / "horse2zebra" / d).glob("*.webp"))) for d in ("trainA", "trainB")}
    (out / "MANIFEST.txt").write_text(
        f"photos/: {got_photos.files} of {len(photos)} photos from {Path(args.photos).name}, shorter side "
        f"{args.photo_side}, WebP q{args.quality}\n"
        f"horse2zebra/: {counts['trainA']} of {len(domains[0])} trainA, {counts['trainB']} of {len(domains[1])} "
        f"trainB, {args.unpaired_size}x{args.unpaired_size}, WebP q{args.quality}\n"
        f"{(got_photos.bytes + got_unpaired.bytes) / 1e6:.2f} MB of a {budget / 1e6:.2f} MB budget; seed {args.seed}\n"
        "Licences: as the sources (MS-COCO: each photo's Flickr licence; horse2zebra: ImageNet, research only).\n"
    )
    print(
        f"wrote {out}: {got_photos.files} photos ({got_photos.bytes / 1e6:.2f} MB), {counts['trainA']} trainA + "
        f"{counts['trainB']} trainB ({got_unpaired.bytes / 1e6:.2f} MB); budget {budget / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
