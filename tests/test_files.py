"""realtime.core.files: no-replace publishing, partial results beside, temp files never left, OSErrors worded."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.core.errors import UserError
from realtime.core.files import (
    TEMP_MARK,
    OutputExists,
    atomic_path,
    check_output,
    clear_stale_temps,
    os_error_line,
    output_file,
)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_publishes_and_refuses_an_existing_file_without_force(tmp_path):
    final = tmp_path / "out.txt"
    with output_file(final) as pending:
        assert pending.tmp.parent == tmp_path and pending.tmp.name.startswith(".out.txt" + TEMP_MARK)
        pending.tmp.write_text("first")
    assert final.read_text() == "first" and pending.published == final
    with pytest.raises(OutputExists, match="already exists"):
        with output_file(final):
            pytest.fail("the block must not run")
    with output_file(final, force=True) as pending:
        pending.tmp.write_text("second")
    assert final.read_text() == "second" and hidden(tmp_path) == []


def test_a_second_writer_gets_exists_and_its_result_is_kept_beside(tmp_path):
    final = tmp_path / "clip.mp4"
    with pytest.raises(OutputExists, match="already exists: another run wrote it meanwhile") as caught:
        with output_file(final) as pending:
            pending.tmp.write_text("mine")
            final.write_text("theirs")  # the other run publishes first
    assert final.read_text() == "theirs"  # never replaced
    assert (tmp_path / "clip.new.mp4").read_text() == "mine"
    assert str(tmp_path / "clip.new.mp4") in str(caught.value)
    assert hidden(tmp_path) == []


def test_partial_result_never_replaces_an_existing_file(tmp_path):
    final = tmp_path / "clip.mp4"
    with output_file(final) as pending:  # nothing there yet: the partial result takes the name
        pending.tmp.write_text("partial 1")
        pending.partial = True
    assert final.read_text() == "partial 1" and pending.published == final
    final.write_text("finished")
    with output_file(final, force=True) as pending:  # --force, then stopped early
        pending.tmp.write_text("partial 2")
        pending.partial = True
    assert final.read_text() == "finished"
    assert pending.published == tmp_path / "clip.partial.mp4"
    assert pending.published.read_text() == "partial 2" and hidden(tmp_path) == []


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_temp_file_removed_on_any_exception(tmp_path, exc):
    final = tmp_path / "a.png"
    final.write_text("old")
    for manager in (output_file(final, force=True), atomic_path(final)):
        with pytest.raises(exc):
            with manager as pending:
                tmp = getattr(pending, "tmp", pending)
                tmp.write_text("half")
                raise exc()
    assert final.read_text() == "old" and hidden(tmp_path) == []


def test_leftovers_of_killed_runs_are_cleared(tmp_path):
    final = tmp_path / "out.mp4"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.mp4{TEMP_MARK}{int(dead.stdout)}-abc.mp4"
    alive = tmp_path / f".out.mp4{TEMP_MARK}{os.getppid()}-def.mp4"  # another live process's
    other = tmp_path / f".other.mp4{TEMP_MARK}{int(dead.stdout)}-ghi.mp4"  # another file's
    for path in (stale, alive, other):
        path.write_text("x")
    assert clear_stale_temps(final) == [stale]
    with output_file(final) as pending:
        pending.tmp.write_text("new")
    assert hidden(tmp_path) == sorted([alive.name, other.name])


def test_check_output_says_why(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputExists):
        check_output(tmp_path / "f")
    assert check_output(tmp_path / "f", force=True) == tmp_path / "f"
    with pytest.raises(UserError, match="is a folder"):
        check_output(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        check_output(tmp_path / "f" / "g.png")


def test_os_error_line_names_the_path_in_plain_words():
    full = OSError(errno.ENOSPC, "No space left on device", "/mnt/x.mp4")
    assert os_error_line(full) == "/mnt/x.mp4: no space left on the device (disk full)"
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/out")
    assert os_error_line(denied, doing="cannot write") == "cannot write /srv/out: permission denied"
    assert "read-only" in os_error_line(OSError(errno.EROFS, "Read-only file system"), "/ro/a")


def test_write_errors_become_one_line_but_input_errors_pass_through(tmp_path):
    final = tmp_path / "m.onnx"
    with pytest.raises(UserError, match="cannot write .*m.onnx: no space left"):
        with output_file(final) as pending:
            raise OSError(errno.ENOSPC, "No space left on device", str(pending.tmp))
    with pytest.raises(FileNotFoundError):  # reading a missing input is not a write error
        with output_file(final):
            open(tmp_path / "missing-input.bin", "rb")
    assert not final.exists() and hidden(tmp_path) == []
