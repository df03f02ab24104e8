"""Atomic file writes and an exclusive lock on a results folder.

A file is written to a temporary file in its own folder, flushed to disk and
renamed over the target with ``os.replace``: a reader sees the old file or the
new one, never half of one, even if the process dies mid-write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "LockedError",
    "ResultsLock",
    "WRITE_REFUSED",
    "save_figure_atomic",
    "write_bytes_atomic",
    "write_csv_atomic",
    "write_refused",
    "write_text_atomic",
]

LOCK_NAME = ".lock"
NEW_FILE_MODE = 0o644

#: The errors of a disk that refuses a write: full, over quota, read-only, past a file size limit, no permission.
WRITE_REFUSED = {errno.ENOSPC: "no space left", errno.EDQUOT: "over the disk quota",
                 errno.EROFS: "read-only", errno.EFBIG: "past the file size limit",
                 errno.EACCES: "not writable", errno.EPERM: "not writable"}


def write_refused(error: BaseException) -> OSError | None:
    """The ``OSError`` in ``error`` or its causes by which the disk refused a write (``WRITE_REFUSED``), or None.

    Libraries that write their own files (h5py, TensorFlow) may wrap the
    operating system's error: its causes are searched, then its message.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in WRITE_REFUSED:
            return current
        current = current.__cause__ or current.__context__
    text = str(error)
    for number in WRITE_REFUSED:
        if number not in (errno.EACCES, errno.EPERM) and os.strerror(number) in text:
            return OSError(number, os.strerror(number))
    return None


def _write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Calls ``write`` on a temporary file beside ``path``, then renames it to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    tmp = tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )
    try:
        with tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        # NamedTemporaryFile creates the file 0600; keep the mode a plain write would give.
        os.chmod(tmp.name, mode)
        os.replace(tmp.name, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp.name)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = str(target)  # a failed write() names no file: say which one it was
        raise
    _fsync_folder(target.parent)
    return target


def _fsync_folder(folder: Path) -> None:
    """Makes the rename itself durable; not every filesystem allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically.

    Args:
        path: Target file; missing parent folders are created.
        data: The full new content.

    Returns:
        The target path.
    """
    return _write_atomic(path, lambda file: file.write(data))


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``path`` atomically (see ``write_bytes_atomic``)."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_csv_atomic(df: pd.DataFrame, path: str | os.PathLike[str], **to_csv: Any) -> Path:
    """Writes a DataFrame as CSV atomically, without the index unless asked.

    Args:
        df: The table.
        path: Target file.
        **to_csv: Passed to ``DataFrame.to_csv``.

    Returns:
        The target path.
    """
    to_csv.setdefault("index", False)
    return write_text_atomic(path, df.to_csv(**to_csv))


def save_figure_atomic(fig: Figure, path: str | os.PathLike[str], **savefig: Any) -> Path:
    """Saves a Matplotlib figure atomically; the format comes from the suffix.

    Args:
        fig: The figure.
        path: Target file, e.g. ``accuracy_vs_strength.png``.
        **savefig: Passed to ``Figure.savefig`` (e.g. ``dpi=120``).

    Returns:
        The target path.
    """
    savefig.setdefault("format", Path(path).suffix.lstrip(".") or "png")
    # Rendered into memory first so a failing savefig never touches the disk.
    buffer = io.BytesIO()
    fig.savefig(buffer, **savefig)
    return write_bytes_atomic(path, buffer.getvalue())


class LockedError(RuntimeError):
    """Another process holds the lock on a results folder."""


class ResultsLock:
    """An exclusive lock on a results folder, held through ``<folder>/.lock``.

    The lock is an ``fcntl.flock`` on an open file, so the kernel releases it
    when the holder exits or dies; a stale lock file is harmless. Locks are
    per open file, so a second ``ResultsLock`` on the same folder is refused
    even inside the same process.

    Example:
        >>> with ResultsLock("results/moons_l2"):
        ...     write_report(...)
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> ResultsLock:
        """Takes the lock without waiting.

        Returns:
            This lock.

        Raises:
            LockedError: If another holder has the lock.
            RuntimeError: If this object already holds it.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.folder}: this ResultsLock is already held.")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, NEW_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(fd)
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise LockedError(
                f"{self.folder}: another regsearch run is writing there{holder}; "
                "wait for it to finish or choose another results folder."
            ) from None
        # The pid is only for the message above; the flock is what counts.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Releases the lock; does nothing if it is not held."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> ResultsLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
