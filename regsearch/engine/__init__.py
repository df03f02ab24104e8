"""The on-device training engine: ``model.fit`` with early stopping as one compiled program.

``model.fit`` returns to Python after every epoch (callbacks, logs, the
validation iterator). On the small models regularization studies use, that
overhead is almost all of the run time. :func:`fit` checks ``model.fit``'s
arguments and trains the model as a population of one
(:func:`regsearch.population.train_population`): the whole epoch loop,
validation and early-stopping bookkeeping included, in one compiled program
that calls the model's own ``train_step``/``test_step``, so that losses,
regularization penalties and metrics are exactly those of ``model.fit``. The
program is the one a search trains its members with, on TensorFlow and JAX
alike, and is kept for the next model of the same structure. What it cannot
run goes through ``model.fit`` itself, with a warning.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
from keras import tree

from regsearch.engine.checks import (
    check_settings,
    checked_data,
    checked_validation,
    class_weight_to_sample_weights,
    is_sparse,
    is_streaming,
    packed,
    short,
    split_validation,
)
from regsearch.engine.keras_fit import fit_with_keras

__all__ = ["fit", "split_validation"]

# The compiled loop does their work: it stops on a non-finite loss, fills the
# History, and never prints.
_DONE_ON_DEVICE = (keras.callbacks.TerminateOnNaN, keras.callbacks.History, keras.callbacks.ProgbarLogger)
_KNOWN_ARGUMENTS = (
    "x", "y", "batch_size", "epochs", "callbacks", "validation_split", "validation_data", "shuffle", "class_weight",
    "sample_weight", "initial_epoch", "steps_per_epoch", "validation_steps", "validation_batch_size",
    "validation_freq", "early_stopping", "seed",
)


def fit(
    model: keras.Model,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    callbacks: list[keras.callbacks.Callback] | None = None,
    validation_split: float = 0.0,
    validation_data: tuple[Any, ...] | None = None,
    shuffle: bool | str = True,
    class_weight: dict[int, float] | None = None,
    sample_weight: Any = None,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    validation_batch_size: int | None = None,
    validation_freq: int | list[int] = 1,
    early_stopping: keras.callbacks.EarlyStopping | None = None,
    seed: int | None = None,
    **unknown: Any,
) -> keras.callbacks.History:
    """Trains a compiled Keras model with the whole epoch loop on the device.

    Takes ``model.fit``'s arguments with ``model.fit``'s meaning, and trains
    epochs ``initial_epoch .. epochs - 1`` without returning to Python between
    them; ``early_stopping`` (or one ``EarlyStopping`` in ``callbacks``) is
    honoured decision for decision, ``restore_best_weights`` included. A loss
    that becomes NaN or infinite stops training (no exception).

    Data in memory (arrays, or lists, tuples and dicts of them, as
    ``model.fit`` takes them) trains on the device. Validation runs in batches
    of ``validation_batch_size`` like ``model.fit``'s, so penalties that scale
    with the batch give the same ``val_`` numbers. ``validation_split`` takes
    the last rows, before shuffling; ``validation_data`` wins over it, as in
    Keras. Shuffling draws another order than Keras's, reproducible by ``seed``.

    These run through ``model.fit`` itself, with a warning naming the reason:
    data that is not in memory (``tf.data.Dataset``, generators,
    ``keras.utils.PyDataset``), sparse or ragged data, a backend other than
    TensorFlow and JAX, ``steps_per_epoch``, ``validation_steps``,
    ``validation_freq != 1``, ``shuffle="batch"``, and any callback but
    ``EarlyStopping``, ``TerminateOnNaN``, ``History`` and ``ProgbarLogger``
    (it must see every epoch).

    The model trains as a population of one
    (:func:`regsearch.population.train_population`): under ``jax.jit`` on
    JAX; on TensorFlow compiled with XLA, except a model with random layers
    (dropout, noise) on a CPU unless compiled with ``jit_compile=True``, a
    layer without XLA support, or a model XLA fails to compile (with a
    warning), which run as a plain graph. The compiled program is kept for
    the next model of the same structure (layers, compile settings, the
    numbers a search varies apart) and data shapes, so the repeats and
    configurations of a search trace it once.

    Args:
        model: A compiled Keras model.
        x: Inputs: an array, a list/tuple/dict of arrays (dict keys are input
            names), or a dataset/generator (through ``model.fit``).
        y: Targets in the structure of the model's outputs; None when the loss
            comes from ``add_loss`` or a custom ``train_step``.
        batch_size: Minibatch size (None: 32); the last batch may be smaller.
        epochs: Index of the epoch to stop before, at least 1.
        callbacks: Keras callbacks; see above for which keep training on the device.
        validation_split: Fraction in [0, 1) of the last rows to validate on.
        validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``.
        shuffle: Reshuffle the training rows before every epoch.
        class_weight: Class index -> weight, for single-output models.
        sample_weight: Per-row weights: an array, or one per output like ``y``.
        initial_epoch: Index of the first epoch, as ``model.fit`` and Hyperband use it.
        steps_per_epoch: Through ``model.fit``.
        validation_steps: Through ``model.fit``.
        validation_batch_size: Validation batch size (None: ``batch_size``).
        validation_freq: Only 1 runs on the device.
        early_stopping: An ``EarlyStopping`` callback whose settings are honoured.
        seed: Makes shuffling and the model's random layers (dropout) reproducible.

    Returns:
        A ``keras.callbacks.History`` (the one in ``callbacks`` if given) with
        per-epoch ``history`` lists (an array per epoch for vector-valued
        metrics), ``epoch`` (absolute indices), and the attributes
        ``stopped_epoch`` (0 when training was not stopped early, as in Keras),
        ``best_epoch`` (absolute; the early-stopping best epoch, or the last
        epoch) and ``diverged``.

    Raises:
        ValueError: For arguments or data that cannot be trained on; the
            one-line message names the argument and what it got.
    """
    if unknown:
        name = next(iter(unknown))
        raise ValueError(f"fit: unknown argument '{name}'; known arguments: {', '.join(_KNOWN_ARGUMENTS)}.")
    if not getattr(model, "compiled", False):
        raise ValueError("fit: 'model' must be compiled (call model.compile first); got an uncompiled model.")
    batch_size = 32 if batch_size is None else batch_size  # model.fit's default
    check_settings(
        epochs=epochs, batch_size=batch_size, initial_epoch=initial_epoch, validation_batch_size=validation_batch_size,
        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps, validation_freq=validation_freq,
        validation_split=validation_split, shuffle=shuffle, class_weight=class_weight, seed=seed,
    )
    early_stopping, history, per_epoch = _sort_callbacks(callbacks, early_stopping)

    streaming = is_streaming(x) or is_streaming(validation_data)
    sparse = not streaming and any(is_sparse(leaf) for leaf in tree.flatten((x, y, sample_weight, validation_data)))
    reasons = _fallback_reasons(streaming, sparse, per_epoch, shuffle=shuffle, steps_per_epoch=steps_per_epoch,
                                validation_steps=validation_steps, validation_freq=validation_freq)
    if not streaming and not sparse:  # model.fit checks other data itself
        x, y, sample_weight = checked_data(model, x, y, sample_weight, class_weight)
        if validation_data is not None:
            validation_data = checked_validation(validation_data, y)
    if reasons:
        warnings.warn(
            f"regsearch.fit falls back to model.fit for {'; '.join(reasons)}: the epoch loop runs in Python.",
            stacklevel=2,
        )
        trained, stopped_epoch, best_epoch, diverged = fit_with_keras(
            model, early_stopping, seed, callbacks=list(callbacks or []), x=x, y=y,
            batch_size=None if streaming else batch_size, epochs=epochs, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle, class_weight=class_weight, sample_weight=sample_weight,
            initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            validation_batch_size=validation_batch_size, validation_freq=validation_freq,
        )
        return _history(model, trained, dict(trained.history), list(trained.epoch), dict(trained.params),
                        stopped_epoch, best_epoch, diverged)

    if validation_data is None and validation_split:
        (x, y, sample_weight), validation_data = split_validation(x, y, sample_weight, validation_split)
    if class_weight is not None:
        sample_weight = class_weight_to_sample_weights(y, class_weight)
    data = packed(x, y, sample_weight)
    validation = None if validation_data is None else packed(*(tuple(validation_data) + (None, None))[:3])
    n_rows = len(tree.flatten(x)[0])
    params = {"verbose": 0, "epochs": epochs, "steps": math.ceil(n_rows / batch_size)}
    if epochs <= initial_epoch:  # model.fit trains nothing either
        if early_stopping is not None:
            early_stopping.stopped_epoch, early_stopping.best_epoch, early_stopping.wait = 0, 0, 0
        return _history(model, history, {}, [], params, stopped_epoch=0, best_epoch=0, diverged=False)

    from regsearch.population import train_population  # the backend's modules load only on this path

    # A population of one: the program every search trains its members with, kept for the next model of this
    # structure (the next trial of a search) and for this model trained again.
    (outcome,) = train_population(
        [model], data, validation, epochs=int(epochs), initial_epoch=int(initial_epoch), batch_size=int(batch_size),
        validation_batch_size=int(validation_batch_size or batch_size), shuffle=bool(shuffle),
        early_stopping=early_stopping, seeds=[seed],
    )
    if early_stopping is not None:
        early_stopping.stopped_epoch = outcome.stopped_epoch
        early_stopping.best_epoch = outcome.best_epoch
        early_stopping.best = outcome.best
        early_stopping.wait = outcome.wait
    model.stop_training = outcome.epochs_run < epochs - initial_epoch
    epoch_indices = list(range(initial_epoch, initial_epoch + outcome.epochs_run))
    return _history(model, history, outcome.history, epoch_indices, params, outcome.stopped_epoch, outcome.best_epoch,
                    outcome.diverged)


def _history(
    model: keras.Model,
    history: keras.callbacks.History | None,
    logs: dict[str, list[Any]],
    epochs: list[int],
    params: dict[str, Any],
    stopped_epoch: int,
    best_epoch: int,
    diverged: bool,
) -> keras.callbacks.History:
    history = keras.callbacks.History() if history is None else history
    history.set_model(model)
    history.set_params(params)
    history.history = logs
    history.epoch = epochs
    history.stopped_epoch = stopped_epoch
    history.best_epoch = best_epoch
    history.diverged = diverged
    return history


def _sort_callbacks(
    callbacks: Any, early_stopping: Any
) -> tuple[keras.callbacks.EarlyStopping | None, keras.callbacks.History | None, list[keras.callbacks.Callback]]:
    """The early stopping, a History to fill, and the callbacks that must see every epoch."""
    if early_stopping is not None and not isinstance(early_stopping, keras.callbacks.EarlyStopping):
        raise ValueError(
            f"fit: 'early_stopping' must be a keras.callbacks.EarlyStopping or None; got {type(early_stopping).__name__}."
        )
    callbacks = [] if callbacks is None else callbacks
    if not isinstance(callbacks, (list, tuple)) or not all(isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise ValueError(
            f"fit: 'callbacks' must be a list of keras.callbacks.Callback or None; got {short(callbacks)}."
        )
    stoppers = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    stoppers += [] if early_stopping is None else [early_stopping]
    if len(stoppers) > 1:
        raise ValueError(
            "fit: early stopping must be given once (the 'early_stopping' argument or one EarlyStopping in "
            f"'callbacks'); got {len(stoppers)}."
        )
    history = next((c for c in callbacks if type(c) is keras.callbacks.History), None)
    # Exact types: a subclass may do more than the compiled loop does.
    per_epoch = [
        c for c in callbacks if not isinstance(c, keras.callbacks.EarlyStopping) and type(c) not in _DONE_ON_DEVICE
    ]
    return (stoppers[0] if stoppers else None), history, per_epoch


def _fallback_reasons(
    streaming: bool, sparse: bool, per_epoch: list[keras.callbacks.Callback], **settings: Any
) -> list[str]:
    """Why the compiled loop cannot run this, in words; empty when it can."""
    reasons = ["data that is not in memory"] if streaming else ["sparse or ragged data"] if sparse else []
    if keras.backend.backend() not in ("tensorflow", "jax"):
        reasons.append(f"the {keras.backend.backend()} backend")
    for name in ("steps_per_epoch", "validation_steps"):
        if settings[name] is not None:
            reasons.append(f"{name}={settings[name]!r}")
    if settings["validation_freq"] != 1:
        reasons.append(f"validation_freq={settings['validation_freq']!r}")
    if settings["shuffle"] == "batch":
        reasons.append("shuffle='batch'")
    if per_epoch:
        names = ", ".join(type(callback).__name__ for callback in per_epoch)
        reasons.append(f"callbacks that act every epoch ({names})")
    return reasons
