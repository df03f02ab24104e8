"""The model.fit path: ``regsearch.fit``'s contract on ``model.fit`` itself, for what the compiled program cannot run.

Data that is not in memory, ``steps_per_epoch``, ``validation_freq != 1``,
callbacks that must see every epoch and the like train here, epoch by epoch
in Python, with the same early stopping, divergence stop and History.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

__all__ = ["fit_with_keras"]


def fit_with_keras(
    model: keras.Model,
    early_stopping: keras.callbacks.EarlyStopping | None,
    seed: int | None,
    callbacks: list[keras.callbacks.Callback],
    **fit_arguments: Any,
) -> tuple[keras.callbacks.History, int, int, bool]:
    """Trains with ``model.fit``; returns its History, the stopped epoch, the best epoch and whether it diverged."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if not any(isinstance(callback, keras.callbacks.TerminateOnNaN) for callback in callbacks):
        callbacks.insert(0, keras.callbacks.TerminateOnNaN())
    if early_stopping is not None and early_stopping not in callbacks:
        callbacks.append(early_stopping)
    history = model.fit(callbacks=callbacks, verbose=0, **fit_arguments)
    losses = np.asarray(history.history.get("loss", []), dtype=float)
    epochs = list(history.epoch)
    if early_stopping is not None and early_stopping.best is not None and math.isfinite(early_stopping.best):
        best_epoch = int(early_stopping.best_epoch)
    else:
        best_epoch = epochs[-1] if epochs else 0
    stopped_epoch = 0 if early_stopping is None else int(early_stopping.stopped_epoch)
    return history, stopped_epoch, best_epoch, not bool(np.all(np.isfinite(losses)))
