"""Run ``nst-serve`` as a child process on a free loopback port (for the browser test and the load test)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"nst-serve: open (\S+)")


class ServeProcess:
    """``with ServeProcess(["--model", "mosaic_small"]) as server: server.url``; its output in ``server.lines``."""

    def __init__(self, args: Sequence[str], timeout: float = 120.0, env: dict | None = None) -> None:
        self.args, self.timeout = list(args), timeout
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.lines: list[str] = []
        self.url = ""
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._found = threading.Event()

    def __enter__(self) -> ServeProcess:
        command = [sys.executable, "-m", "realtime.cli.serve", "--port", "0", *self.args]
        self._process = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, name="nst-serve-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.timeout
        while not self._found.wait(0.1):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("nst-serve did not start:\n" + "\n".join(self.lines[-20:]))
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = URL_LINE.search(line)
            if match and not self.url:
                self.url = match.group(1)
                self._found.set()

    @property
    def base(self) -> str:
        """The URL without its query (the token)."""
        return self.url.split("?", 1)[0]

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # SIGTERM: nst-serve closes its sessions and exits
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(5)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()
