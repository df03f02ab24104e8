"""Tests for regsearch.atomic: atomic writes and the results-folder lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from regsearch.atomic import (
    LockedError,
    ResultsLock,
    save_figure_atomic,
    write_bytes_atomic,
    write_csv_atomic,
    write_text_atomic,
)

# A second process that takes the same flock; it imports only the standard
# library, so it starts fast. Exit code 0: got the lock, 1: refused.
TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(1)
if len(sys.argv) > 2:  # hold the lock until stdin closes
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_writes_leave_only_the_target(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "a.md", "# hello\n")
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    write_csv_atomic(pd.DataFrame({"x": [1, 2]}), tmp_path / "c.csv")
    fig = Figure()
    fig.add_subplot().plot([1, 2], [3, 4])
    save_figure_atomic(fig, tmp_path / "d.png", dpi=50)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.bin", "c.csv", "d.png"]
    assert (tmp_path / "a.md").read_text() == "# hello\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.csv").read_text() == "x\n1\n2\n"
    assert (tmp_path / "d.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "a.md").stat().st_mode & 0o777 == 0o644


def test_overwrite_replaces_content_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    write_text_atomic(target, "old")
    target.chmod(0o600)
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600


def test_failing_write_keeps_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    write_text_atomic(target, "old")
    with pytest.raises(TypeError):
        write_bytes_atomic(target, "not bytes")  # type: ignore[arg-type]
    with pytest.raises(LookupError):
        write_text_atomic(target, "new", encoding="no-such-codec")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_failing_savefig_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    write_bytes_atomic(target, b"old")
    with pytest.raises(ValueError):
        save_figure_atomic(Figure(), target, format="no-such-format")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_lock_refuses_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    with ResultsLock(tmp_path) as lock:
        assert lock.held
        with pytest.raises(LockedError) as caught:
            ResultsLock(tmp_path).acquire()
        message = str(caught.value)
        assert str(tmp_path) in message
        assert "another regsearch run is writing there" in message
    assert not lock.held
    with ResultsLock(tmp_path):
        pass


def test_lock_refuses_another_process_and_is_free_after_release(tmp_path: Path) -> None:
    lock = ResultsLock(tmp_path / "results").acquire()
    refused = subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock.path)])
    assert refused.returncode == 1
    lock.release()
    granted = subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock.path)])
    assert granted.returncode == 0


def test_lock_held_by_another_process_is_refused_then_freed_when_it_exits(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", TRY_LOCK, str(path), "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(LockedError, match="another regsearch run"):
            ResultsLock(tmp_path).acquire()
    finally:
        holder.communicate("")  # closing stdin ends the holder
    with ResultsLock(tmp_path) as lock:
        assert lock.held


def test_double_acquire_on_one_object_is_an_error(tmp_path: Path) -> None:
    lock = ResultsLock(tmp_path).acquire()
    try:
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    finally:
        lock.release()
    lock.release()  # a second release is harmless


def test_write_refused_finds_the_disk_error_in_a_chain_or_a_library_message() -> None:
    import errno

    from regsearch.atomic import write_refused

    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as error:
            raise RuntimeError("saving failed") from error
    except RuntimeError as wrapped:
        assert write_refused(wrapped) is full
    # HDF5 and TensorFlow put the system's message in their own error.
    found = write_refused(RuntimeError("file write failed: errno = 28, error message = 'No space left on device'"))
    assert found is not None and found.errno == errno.ENOSPC
    assert write_refused(OSError(errno.ENOENT, "No such file or directory")) is None
    assert write_refused(ValueError("a bad value")) is None


def test_a_failed_atomic_write_names_its_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    from regsearch import atomic

    target = tmp_path / "state.json"
    target.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        atomic.write_text_atomic(target, "new")
    assert caught.value.filename == str(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
