"""Where a search's numbers came from: versions, backend, device, the command, when and how long.

A rerun on another machine or another release may differ in the last
decimals; ``provenance.json`` beside the report (and the Provenance section
of ``summary.md`` and ``report.html``) says what produced these ones, and
the command that reruns, or resumes, the same results folder.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PROVENANCE_FILE", "STOPPED", "collect", "device", "rerun_command", "versions"]

PROVENANCE_FILE = "provenance.json"
#: The key of ``provenance.json`` saying why the search stopped before its plan (the time limit), if it did.
STOPPED = "stopped"
#: Distributions whose versions shape the numbers.
PACKAGES = ("regsearch", "keras", "keras-tuner", "tensorflow", "jax", "jaxlib", "numpy")
DEFAULT_RESULTS = "results"


def versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None when not installed), and Python's."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _cpu_name() -> str:
    """The processor's model name (Linux' /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device() -> str:
    """What Keras trains on, in words: the GPUs' names as the backend reports them, else the CPU's."""
    import keras

    backend = keras.backend.backend()
    accelerators: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            accelerators.append(str(details.get("device_name") or gpu.name))
    elif backend == "jax":
        import jax

        accelerators = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    if accelerators:
        counted = {name: accelerators.count(name) for name in accelerators}
        return "GPU: " + ", ".join(f"{n} x {name}" if n > 1 else name for name, n in counted.items())
    return f"CPU: {_cpu_name()} ({os.cpu_count()} cores)"


def rerun_command(source: str, *, results: str = DEFAULT_RESULTS, options: Mapping[str, Any] | None = None) -> str:
    """The shell command that reruns (or resumes) a search into the same results folder.

    Args:
        source: A search name, or the path of its .toml file (made absolute:
            the results folder is named after the file, and a copy elsewhere
            would name another one).
        results: The ``--results`` folder; left out when it is the default
            (the command then runs where ``results/`` is), else made absolute.
        options: Options that change the results (``--epochs``, ``--repeats``,
            ``--max-trials``, ``--engine``), by name; None values are left out.
    """
    from regsearch.definition.schema import known_searches

    named = source in known_searches() and Path(source).suffix != ".toml" and len(Path(source).parts) == 1
    words = ["python", "-m", "regsearch", source if named else str(Path(source).resolve())]
    if Path(results) != Path(DEFAULT_RESULTS):
        words += ["--results", str(Path(results).resolve())]
    for option, value in (options or {}).items():
        if value is not None:
            words += [option, str(value)]
    return shlex.join(words)


def collect(*, command: Sequence[str], rerun: str, started: datetime.datetime, seconds: float) -> dict[str, Any]:
    """The provenance record of one run of a search (the content of ``provenance.json``).

    Args:
        command: The command line as run (``sys.argv``-like; its first word is replaced
            by ``python -m regsearch``).
        rerun: :func:`rerun_command`'s command.
        started: When the run started (aware, UTC).
        seconds: Its wall time.
    """
    import keras

    return {
        "versions": versions(),
        "backend": keras.backend.backend(),
        "device": device(),
        "platform": platform.platform(),
        "command": shlex.join(["python", "-m", "regsearch", *command]),
        "working_directory": os.getcwd(),
        "rerun": rerun,
        "started": started.astimezone(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(float(seconds), 1),
        "python_executable": sys.executable,
    }
