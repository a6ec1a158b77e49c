"""The mutation check: inject each plausible bug of ``mutants.py`` into a copy of the repo, run its tests.

``make mutation`` (or ``python tests/mutation/run.py``) copies the repository's files (tracked and
untracked, not ignored) into a temporary folder, checks once that the tests of every mutant pass
there unchanged, then for each mutant: replaces its text in its module (the text must occur
exactly once), runs only that mutant's test files with ``pytest -x`` under a time limit, records
whether a test failed (caught) or all passed (survived), and restores the module. The working
tree is never touched. It prints one row per mutant and the share caught; the exit status is 1
when that share is below ``--target`` (90%) or a survivor is not listed in ``mutants.EQUIVALENT``
with the reason why no test can tell it apart, 2 when a mutant no longer applies (its text moved).

Options: ``-k TEXT`` runs only mutants whose id contains TEXT; ``-j N`` runs N at once (one copy
of the repo each); ``--no-baseline`` skips the unmutated run; ``--list`` prints the mutants.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import EQUIVALENT, MUTANTS, Mutant  # noqa: E402 - the list lives beside this script

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240.0  # per mutant: a hang counts as caught (the tests stopped it), reported as "timeout"


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # "caught" | "timeout" | "survived" | "error"
    seconds: float
    detail: str = ""

    @property
    def caught(self) -> bool:
        return self.status in ("caught", "timeout")


def repo_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files of the working tree (what the tests may read)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in out.decode().split("\0") if name and (root / name).is_file()]


def make_copy(root: Path, dest: Path) -> Path:
    for name in repo_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return dest


def pytest_command(tests: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(copy),  # the copy's packages, not an installed or editable version
        PYTHONDONTWRITEBYTECODE="1",  # no stale .pyc between a mutant and its restore
        QT_QPA_PLATFORM="offscreen",
        NST_CACHE=str(copy / ".mutation-cache"),
    )
    return env


def check_imports(copy: Path) -> None:
    """The copy's packages must be the ones imported there (not an installed or editable checkout)."""
    code = "import export, realtime, train; print(realtime.__file__, export.__file__, train.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=environment(copy), capture_output=True, text=True)
    paths = out.stdout.split()
    if (
        out.returncode != 0
        or len(paths) != 3
        or not all(Path(p).resolve().is_relative_to(copy.resolve()) for p in paths)
    ):
        raise SystemExit(f"the copy's packages are not the ones imported in it: {out.stdout or out.stderr}")


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """pytest's exit status (None on timeout) and the tail of its output."""
    proc = subprocess.Popen(
        pytest_command(tests),
        cwd=copy,
        env=environment(copy),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a timeout kills the whole group (DDP workers, ffmpeg children)
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        return None, out[-2000:]
    return proc.returncode, out[-2000:]


def apply(copy: Path, mutant: Mutant) -> str:
    """Write the mutated module into ``copy``; returns the original text (to restore)."""
    path = copy / mutant.path
    original = path.read_text()
    count = original.count(mutant.old)
    if count != 1:
        raise ValueError(f"{mutant.id}: the text to replace occurs {count} times in {mutant.path} (expected once)")
    mutated = original.replace(mutant.old, mutant.new)
    compile(mutated, str(path), "exec")  # a mutant is a plausible bug, never a syntax error
    path.write_text(mutated)
    return original


def check_mutant(copy: Path, mutant: Mutant, timeout: float) -> Outcome:
    t0 = time.perf_counter()
    try:
        original = apply(copy, mutant)
    except (ValueError, SyntaxError) as exc:
        return Outcome(mutant, "error", 0.0, str(exc))
    try:
        code, out = run_tests(copy, mutant.tests, timeout)
    finally:
        (copy / mutant.path).write_text(original)
    seconds = time.perf_counter() - t0
    if code is None:
        return Outcome(mutant, "timeout", seconds)
    if code == 0:
        return Outcome(mutant, "survived", seconds)
    if code == 1:
        failed = [line.split()[1] for line in out.splitlines() if line.startswith(("FAILED ", "ERROR "))]
        return Outcome(mutant, "caught", seconds, failed[0].removeprefix("tests/") if failed else "")
    return Outcome(mutant, "error", seconds, f"pytest exit status {code}: {out.strip().splitlines()[-1:]}")


def baseline(copy: Path, mutants: list[Mutant], timeout: float) -> None:
    """Every test file the mutants use must pass on the unmutated copy, else 'caught' means nothing."""
    tests = tuple(sorted({t for m in mutants for t in m.tests}))
    print(f"baseline: {len(tests)} test files on the unmutated copy ...", flush=True)
    t0 = time.perf_counter()
    code, out = run_tests(copy, tests, timeout * 3)
    if code != 0:
        print(out, file=sys.stderr)
        raise SystemExit(f"the tests fail without any mutant (exit {code}); fix them first")
    print(f"baseline passed in {time.perf_counter() - t0:.0f} s", flush=True)


def report(outcomes: list[Outcome], target: float) -> int:
    width = max(len(o.mutant.id) for o in outcomes)
    print(f"\n{'mutant':<{width}}  {'module':<30} {'result':<9} {'s':>5}  caught by")
    for o in outcomes:
        by = o.detail if o.status == "caught" else ""
        print(f"{o.mutant.id:<{width}}  {o.mutant.path:<30} {o.status:<9} {o.seconds:5.1f}  {by[:90]}")
    errors = [o for o in outcomes if o.status == "error"]
    survivors = [o for o in outcomes if o.status == "survived"]
    scored = [o for o in outcomes if o.status != "error"]
    caught = sum(o.caught for o in scored)
    share = caught / len(scored) if scored else 0.0
    print(f"\ncaught {caught} of {len(scored)} mutants ({100 * share:.1f}%), survived {len(survivors)}", end="")
    print(f", errors {len(errors)}" if errors else "")
    for o in errors:
        print(f"  error    {o.mutant.id}: {o.detail}")
    unexplained = [o for o in survivors if o.mutant.id not in EQUIVALENT]
    for o in survivors:
        print(f"  survived {o.mutant.id}: {EQUIVALENT.get(o.mutant.id, 'NOT EXPLAINED: add a test or a reason')}")
    if errors:
        return 2
    return 1 if share < target or unexplained else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-k", dest="only", default="", help="only mutants whose id contains this text")
    p.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at once (each in its own copy)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per mutant (default %(default)s)")
    p.add_argument("--target", type=float, default=0.9, help="share to catch (default %(default)s)")
    p.add_argument("--no-baseline", action="store_true", help="skip the run without mutants")
    p.add_argument("--list", action="store_true", help="print the mutants and exit")
    args = p.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only in m.id]
    if args.list:
        for m in chosen:
            print(f"{m.id:<32} {m.path:<34} {m.what}")
        return 0
    if not chosen:
        print(f"no mutant id contains {args.only!r}", file=sys.stderr)
        return 2
    jobs = max(1, min(args.jobs, len(chosen)))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nst-mutation-") as tmp:
        copies = [make_copy(REPO, Path(tmp) / f"repo{i}") for i in range(jobs)]
        check_imports(copies[0])
        if not args.no_baseline:
            baseline(copies[0], chosen, args.timeout)
        print(f"{len(chosen)} mutants, {jobs} at a time", flush=True)
        free = list(copies)

        def one(mutant: Mutant) -> Outcome:
            copy = free.pop()
            try:
                outcome = check_mutant(copy, mutant, args.timeout)
            finally:
                free.append(copy)
            print(f"  {outcome.status:<8} {mutant.id} ({outcome.seconds:.0f} s)", flush=True)
            return outcome

        with ThreadPoolExecutor(jobs) as pool:
            outcomes = list(pool.map(one, chosen))
    code = report(outcomes, args.target)
    print(f"mutation check took {time.perf_counter() - t0:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
