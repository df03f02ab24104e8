"""The on-device training engine: ``model.fit`` with early stopping as one compiled loop.

``model.fit`` returns to Python after every epoch (callbacks, logs, the
validation iterator). On the small models regularization studies use, that
overhead is almost all of the run time. :func:`fit` runs the whole epoch loop,
validation and early-stopping bookkeeping included, inside a single
``tf.function``, calling the model's own
``train_step``/``test_step`` so that losses, regularization penalties and
metrics are exactly those of ``model.fit``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

__all__ = ["fit"]


def fit(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    validation_data: tuple[Any, Any] | None = None,
    epochs: int = 1,
    batch_size: int | None = 32,
    shuffle: bool = True,
    early_stopping: keras.callbacks.EarlyStopping | None = None,
    seed: int | None = None,
) -> keras.callbacks.History:
    """Trains a compiled Keras model with the whole epoch loop on the device.

    Same semantics as ``model.fit(x, y, validation_data=..., epochs=...,
    batch_size=..., shuffle=..., callbacks=[early_stopping])``, including
    ``restore_best_weights``, but without returning to Python between epochs.
    A loss that becomes NaN or infinite stops training (no exception).

    The loop is compiled with XLA when the model's ``jit_compile`` asks for it
    (Keras's ``"auto"`` does where there is a GPU), and runs as a plain
    TensorFlow graph otherwise or when XLA cannot compile the model; it runs
    on whatever device TensorFlow places it on.

    Data that is not in memory (a ``tf.data.Dataset``, a generator, a
    ``keras.utils.PyDataset``) or a backend other than TensorFlow falls back to
    ``model.fit`` with the same callback, with a warning.

    Args:
        model: A compiled Keras model.
        x: Training inputs (array-like), or a dataset/generator (fallback).
        y: Training targets.
        validation_data: ``(x_val, y_val)``, evaluated after every epoch.
        epochs: Maximum number of epochs, at least 1.
        batch_size: Minibatch size; the last batch of an epoch may be smaller.
        shuffle: Reshuffle the training rows before every epoch.
        early_stopping: An ``EarlyStopping`` callback whose settings are honoured.
        seed: Makes shuffling and the model's random layers (dropout) reproducible.

    Returns:
        A ``keras.callbacks.History`` with per-epoch ``history`` lists and the
        attributes ``stopped_epoch`` (0 when training was not stopped early, as
        in Keras), ``best_epoch`` (0-based; the early-stopping best epoch, or
        the last epoch without early stopping) and ``diverged``.

    Raises:
        ValueError: For inputs that cannot be trained on; the message names the
            argument and what it got.
    """
    if not getattr(model, "compiled", False):
        raise ValueError("fit: 'model' must be compiled (call model.compile first); got an uncompiled model.")
    _check_positive_int("epochs", epochs)
    if early_stopping is not None and not isinstance(early_stopping, keras.callbacks.EarlyStopping):
        raise ValueError(
            f"fit: 'early_stopping' must be a keras.callbacks.EarlyStopping or None; got {type(early_stopping).__name__}."
        )
    if _is_streaming(x) or keras.backend.backend() != "tensorflow":
        reason = "data that is not in memory" if _is_streaming(x) else f"the {keras.backend.backend()} backend"
        warnings.warn(
            f"regsearch.fit falls back to model.fit for {reason}: the epoch loop runs in Python.",
            stacklevel=2,
        )
        return _fit_with_keras(model, x, y, validation_data, epochs, batch_size, shuffle, early_stopping, seed)

    _check_positive_int("batch_size", batch_size)
    x, y = _as_arrays("x", x, "y", y)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                f"fit: 'validation_data' must be a pair (x_val, y_val); got {type(validation_data).__name__}."
            )
        validation_data = _as_arrays("validation_data[0]", validation_data[0], "validation_data[1]", validation_data[1])

    from regsearch import _loop  # TensorFlow is only needed on this path.

    outcome = _loop.train(
        model,
        x,
        y,
        validation_data=validation_data,
        epochs=int(epochs),
        batch_size=int(batch_size),
        shuffle=bool(shuffle),
        early_stopping=early_stopping,
        seed=seed,
    )
    if early_stopping is not None:
        early_stopping.stopped_epoch = outcome.stopped_epoch
        early_stopping.best_epoch = outcome.best_epoch
        early_stopping.best = outcome.best
        early_stopping.wait = outcome.wait
    model.stop_training = outcome.epochs_run < epochs
    params = {"verbose": 0, "epochs": epochs, "steps": math.ceil(len(x) / batch_size)}
    return _history(model, outcome.history, params, outcome.stopped_epoch, outcome.best_epoch, outcome.diverged)


def _history(
    model: keras.Model,
    logs: dict[str, list[float]],
    params: dict[str, Any],
    stopped_epoch: int,
    best_epoch: int,
    diverged: bool,
) -> keras.callbacks.History:
    history = keras.callbacks.History()
    history.set_model(model)
    history.set_params(params)
    history.history = logs
    history.epoch = list(range(len(next(iter(logs.values()), []))))
    history.stopped_epoch = stopped_epoch
    history.best_epoch = best_epoch
    history.diverged = diverged
    return history


def _fit_with_keras(
    model: keras.Model,
    x: Any,
    y: Any,
    validation_data: Any,
    epochs: int,
    batch_size: int | None,
    shuffle: bool,
    early_stopping: keras.callbacks.EarlyStopping | None,
    seed: int | None,
) -> keras.callbacks.History:
    """The same contract on ``model.fit`` itself, for data the compiled loop cannot hold."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if early_stopping is not None:
        callbacks.append(early_stopping)
    streaming = _is_streaming(x)
    history = model.fit(
        x,
        y,
        validation_data=validation_data,
        epochs=epochs,
        batch_size=None if streaming else batch_size,
        shuffle=shuffle,
        callbacks=callbacks,
        verbose=0,
    )
    losses = history.history.get("loss", [])
    diverged = any(not math.isfinite(value) for value in losses)
    epochs_run = len(losses)
    if early_stopping is not None and early_stopping.best is not None:
        best_epoch = int(early_stopping.best_epoch)
    else:
        best_epoch = max(epochs_run - 1, 0)
    stopped_epoch = 0 if early_stopping is None else int(early_stopping.stopped_epoch)
    return _history(model, dict(history.history), dict(history.params), stopped_epoch, best_epoch, diverged)


def _is_streaming(x: Any) -> bool:
    """True for data that ``fit`` cannot hold in device memory as one tensor."""
    if isinstance(x, keras.utils.PyDataset) or inspect.isgenerator(x) or isinstance(x, Iterator):
        return True
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - other backends without TensorFlow
        return False
    return isinstance(x, tf.data.Dataset)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"fit: '{name}' must be an integer >= 1; got {value!r}.")


def _as_arrays(x_name: str, x: Any, y_name: str, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Converts inputs and targets to numpy and checks what would silently break training."""
    if y is None:
        raise ValueError(f"fit: '{y_name}' must be an array of targets; got None.")
    try:
        x_array, y_array = np.asarray(x), np.asarray(y)
    except (TypeError, ValueError) as error:
        raise ValueError(f"fit: '{x_name}' and '{y_name}' must be arrays; got {error}.") from None
    for name, array in ((x_name, x_array), (y_name, y_array)):
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(f"fit: '{name}' must hold at least one row; got shape {array.shape}.")
        if array.dtype == object:
            raise ValueError(f"fit: '{name}' must be a numeric array; got dtype object.")
    if len(x_array) != len(y_array):
        raise ValueError(
            f"fit: '{x_name}' and '{y_name}' must have the same number of rows; got {len(x_array)} and {len(y_array)}."
        )
    if np.issubdtype(x_array.dtype, np.floating) and not np.all(np.isfinite(x_array)):
        bad = int(np.size(x_array) - np.count_nonzero(np.isfinite(x_array)))
        raise ValueError(f"fit: '{x_name}' must be finite; got {bad} NaN or infinite values.")
    if np.issubdtype(y_array.dtype, np.floating) and not np.all(np.isfinite(y_array)):
        raise ValueError(f"fit: '{y_name}' must be finite; got NaN or infinite targets.")
    return x_array, y_array
