"""Run a small script as two gloo ranks with ``torchrun --standalone`` (tests of the DDP paths).

``--standalone`` lets torchrun's own rendezvous bind a free port (port 0) and hand it to the
workers, so parallel runs never collide on a fixed port, and there is no gap between picking
a port and using it. The whole process group is killed when ``timeout`` passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

PRELUDE = f"""
import os, sys
sys.path[:0] = [{str(REPO)!r}, {str(TESTS)!r}]
RANK = int(os.environ["RANK"])
"""


def run_two_ranks(
    script: str, folder: Path, args: list[str] = (), timeout: float = 240.0
) -> subprocess.CompletedProcess:
    """Write ``script`` (it sees ``RANK``) to ``folder`` and run it on two CPU ranks; returns the finished process."""
    path = folder / "two_ranks_main.py"
    path.write_text(PRELUDE + script)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(path), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"two ranks still running after {timeout:.0f} s:\n{err[-2000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def assert_same_weights(folder: Path, pattern: str = "rank{}.pth") -> dict[str, torch.Tensor]:
    """The two ranks' dumped state dicts hold identical tensors (DDP kept the replicas in step); returns rank 0's."""
    ranks = [torch.load(folder / pattern.format(r), weights_only=True) for r in range(2)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    return ranks[0]
