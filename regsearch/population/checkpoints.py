"""Checkpoints inside a population: every member's whole state, written every few seconds of training.

A population trains inside one compiled program for as long as its members
need; a process killed there would train the whole population again from its
first epoch. While a folder is set (:func:`checkpointing`; the tuners set one
per phase), a population writes its state at the first chunk boundary after
``every`` seconds of training, atomically: each member's weights, optimizer
state, early-stopping state (best score, best weights, wait, stopped), epochs
done, random state (the seed generators are non-trainable variables; the
shuffle follows the seed and the epoch), its history so far, and which members
a rung dropped. A population opened again with the same key (the members'
initial state, numbers, patiences and seeds, the data, the epochs and the
program's settings) takes that state and goes on; the program is
deterministic, so the result equals an uninterrupted run's. Whoever set the
folder removes the files once the runs are recorded (:meth:`Checkpoints.remove`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regsearch.atomic import write_bytes_atomic, write_text_atomic

__all__ = ["Checkpoints", "DEFAULT_SECONDS", "checkpointing", "current", "damaged", "key_of", "sweep"]

#: Seconds of training between two checkpoints of a population, unless set otherwise.
DEFAULT_SECONDS = 300.0
#: Suffixes of the files written here (a population's arrays, a rung schedule's decisions).
SUFFIXES = (".npz", ".json")


@dataclass
class Checkpoints:
    """Where populations write their checkpoints, how often, and every file the populations opened here used."""

    folder: Path
    every: float = DEFAULT_SECONDS
    used: set[Path] = field(default_factory=set)
    #: Member-epochs the populations opened here took from checkpoints instead of training them again.
    resumed: int = 0
    #: Checkpoints written here.
    writes: int = 0

    def path(self, key: str, suffix: str = ".npz") -> Path:
        """The file of ``key``, noted as used."""
        path = self.folder / f"{key}{suffix}"
        self.used.add(path)
        return path

    def save_arrays(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        """Writes ``arrays`` to ``path`` (``.npz``) atomically."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(path, buffer.getvalue())
        self.writes += 1

    def load_arrays(self, path: Path) -> dict[str, np.ndarray] | None:
        """The arrays at ``path``; None where there is none, or it cannot be read (said in one line, not used)."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as found:
                return {name: found[name] for name in found.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # cut short, or not an npz
            damaged(path, type(error).__name__)
            return None

    def save_json(self, path: Path, value: Any) -> None:
        """Writes ``value`` to ``path`` as JSON, atomically."""
        write_text_atomic(path, json.dumps(value))

    def load_json(self, path: Path) -> Any | None:
        """The JSON value at ``path``; None where there is none, or it cannot be read (said in one line)."""
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            damaged(path, type(error).__name__)
            return None

    def remove(self) -> None:
        """Removes every file used here: the runs they would resume are recorded."""
        for path in self.used:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.used.clear()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty: another process's checkpoints stay


def damaged(path: Path, why: str) -> None:
    """Says in one line that the checkpoint at ``path`` is not used, and why."""
    warnings.warn(f"regsearch: the checkpoint {path} cannot be used ({why}); what it holds trains again.",
                  stacklevel=3)


_CURRENT: contextvars.ContextVar[Checkpoints | None] = contextvars.ContextVar("regsearch_checkpoints",
                                                                             default=None)


@contextlib.contextmanager
def checkpointing(folder: str | os.PathLike[str], every: float = DEFAULT_SECONDS) -> Iterator[Checkpoints]:
    """Populations opened in the block write their checkpoints into ``folder`` every ``every`` seconds of training.

    Raises:
        ValueError: ``every`` is not a number of seconds > 0.
    """
    if isinstance(every, bool) or not isinstance(every, (int, float)) or not 0 < every < float("inf"):
        raise ValueError(f"checkpointing: 'every' must be a number of seconds > 0; got {every!r}.")
    checkpoints = Checkpoints(Path(folder), float(every))
    token = _CURRENT.set(checkpoints)
    try:
        yield checkpoints
    finally:
        _CURRENT.reset(token)


def current() -> Checkpoints | None:
    """The checkpoints of the current context, if a folder is set."""
    return _CURRENT.get()


def key_of(*parts: Any) -> str:
    """A hex digest of ``parts``: arrays by dtype, shape and bytes, anything else by ``repr``, nested lists walked."""
    digest = hashlib.sha256()

    def add(part: Any) -> None:
        if isinstance(part, (list, tuple)):
            digest.update(f"[{len(part)}".encode())
            for item in part:
                add(item)
            digest.update(b"]")
        elif isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"a{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        else:
            digest.update(f"r{part!r};".encode())

    for part in parts:
        add(part)
    return digest.hexdigest()[:32]


def sweep(folder: str | os.PathLike[str]) -> None:
    """Removes every checkpoint in ``folder`` (and what a killed write left of one), then the folder if empty."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        written = path.suffix in SUFFIXES
        half_written = path.name.startswith(".") and path.suffix == ".tmp"  # regsearch.atomic's temporary files
        if path.is_file() and (written or half_written):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()
