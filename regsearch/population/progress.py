"""Where a population in training stands, reported after every compiled chunk of epochs to whoever listens.

A population trains inside one compiled program, so no per-run callback sees
its epochs as they pass; a listener set with :func:`reporting` (the command
line's progress bar) is told after every chunk instead. Nothing listens by
default, and a listener is set for the current context only.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator

__all__ = ["PopulationProgress", "report", "reporting"]


@dataclasses.dataclass(frozen=True)
class PopulationProgress:
    """One population after a chunk of epochs."""

    #: Members (runs) in the population.
    members: int
    #: Members still training (not stopped early, diverged, dropped at a rung, or at their budget).
    alive: int
    #: Epochs every member has trained so far, summed.
    epochs_done: int
    #: Each member's budget of epochs.
    epochs: int
    #: The population's work done, in runs: a member that trains no more counts 1, one training its share.
    runs_done: float
    #: Of ``epochs_done``, those taken from a checkpoint (:mod:`.checkpoints`) rather than trained in this process.
    resumed: int = 0


_LISTENER: contextvars.ContextVar[Callable[[PopulationProgress], None] | None] = contextvars.ContextVar(
    "regsearch_population_listener", default=None)


@contextlib.contextmanager
def reporting(listener: Callable[[PopulationProgress], None]) -> Iterator[None]:
    """Calls ``listener`` with every population's progress while the block runs."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def report(progress: PopulationProgress) -> None:
    """Tells the listener of the current context, if there is one."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(progress)
