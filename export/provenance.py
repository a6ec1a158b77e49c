"""``python -m export.provenance FILE.onnx …``: a Markdown provenance table of exported models.

Everything printed is read back from the files themselves (the contract and training metadata
that ``python -m export`` writes), plus each file's size and SHA-256, so ``weights/README.md``
can be regenerated and checked against what is actually shipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from realtime.cli.common import cli_entry
from realtime.core.download import sha256_of
from realtime.core.errors import UserError
from realtime.core.onnx_file import CONTRACT_KEY, read_metadata


def decoded_metadata(path: Path) -> dict[str, Any]:
    """The ``nst_*`` metadata of an exported ONNX file, JSON values decoded."""
    props = read_metadata(path)
    if CONTRACT_KEY not in props:
        raise UserError(f"{path}: no realtime-nst metadata (not exported by python -m export)")
    return {
        "contract": json.loads(props[CONTRACT_KEY]),
        "provenance": json.loads(props.get("nst_provenance", "{}")),
        "precision": props.get("nst_precision", "fp32")
        + (", fp16 weights" if props.get("nst_weights") == "float16" else ""),
    }


def describe(path: Path) -> dict[str, str]:
    """One row: file, size, SHA-256 and the training facts recorded in the file."""
    data = decoded_metadata(path)
    contract, checkpoint = data["contract"], data["provenance"].get("checkpoint", {})
    config = checkpoint.get("config", {})
    trained = contract.get("provenance", {})
    steps = checkpoint.get("steps_done") or trained.get("trained_steps") or trained.get("steps") or ""
    size = config.get("image_size") or trained.get("image_size") or ""
    command = checkpoint.get("command") or trained.get("command") or ""
    wall = checkpoint.get("wall_time_s")
    return {
        "file": path.name,
        "mb": f"{path.stat().st_size / 1e6:.1f}",
        "sha256": sha256_of(path),
        "family": contract.get("family", ""),
        "precision": data["precision"],
        "style": contract.get("style") or _styles(contract.get("styles") or []),
        "steps": str(steps),
        "image_size": str(size),
        "batch": str(config.get("batch_size", "")),
        "hardware": checkpoint.get("hardware", ""),
        "wall": f"{wall / 60:.0f} min" if wall else "",
        "command": command,
    }


def _styles(names: Sequence[str]) -> str:
    """A multi-style file's styles for the table: ``"3 styles: a, b, c"``."""
    return f"{len(names)} styles: {', '.join(names)}" if names else ""


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.provenance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("files", nargs="+", type=Path, help="exported .onnx files")
    args = p.parse_args(argv)
    rows = [describe(f) for f in args.files]
    print("| file | MB | family | style / domains | steps | px | batch | wall time | SHA-256 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['file']} | {r['mb']} | {r['family']} {r['precision']} | {r['style']} | {r['steps']} | "
            f"{r['image_size']} | {r['batch']} | {r['wall']} | `{r['sha256']}` |"
        )
    print()
    for r in rows:
        if r["command"]:
            print(f"- `{r['file']}`: `{r['command']}`" + (f" ({r['hardware']})" if r["hardware"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
