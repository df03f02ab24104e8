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

import inspect
import math
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import tree

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
    _check_settings(
        epochs=epochs, batch_size=batch_size, initial_epoch=initial_epoch, validation_batch_size=validation_batch_size,
        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps, validation_freq=validation_freq,
        validation_split=validation_split, shuffle=shuffle, class_weight=class_weight, seed=seed,
    )
    early_stopping, history, per_epoch = _sort_callbacks(callbacks, early_stopping)

    streaming = _is_streaming(x) or _is_streaming(validation_data)
    sparse = not streaming and any(_is_sparse(leaf) for leaf in tree.flatten((x, y, sample_weight, validation_data)))
    reasons = _fallback_reasons(streaming, sparse, per_epoch, shuffle=shuffle, steps_per_epoch=steps_per_epoch,
                                validation_steps=validation_steps, validation_freq=validation_freq)
    if not streaming and not sparse:  # model.fit checks other data itself
        x, y, sample_weight = _checked_data(model, x, y, sample_weight, class_weight)
        if validation_data is not None:
            validation_data = _checked_validation(validation_data, y)
    if reasons:
        warnings.warn(
            f"regsearch.fit falls back to model.fit for {'; '.join(reasons)}: the epoch loop runs in Python.",
            stacklevel=2,
        )
        return _fit_with_keras(
            model, early_stopping, seed, callbacks=list(callbacks or []), x=x, y=y,
            batch_size=None if streaming else batch_size, epochs=epochs, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle, class_weight=class_weight, sample_weight=sample_weight,
            initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            validation_batch_size=validation_batch_size, validation_freq=validation_freq,
        )

    if validation_data is None and validation_split:
        (x, y, sample_weight), validation_data = split_validation(x, y, sample_weight, validation_split)
    if class_weight is not None:
        sample_weight = _class_weight_to_sample_weights(y, class_weight)
    data = _packed(x, y, sample_weight)
    validation = None if validation_data is None else _packed(*(tuple(validation_data) + (None, None))[:3])
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


def _fit_with_keras(
    model: keras.Model,
    early_stopping: keras.callbacks.EarlyStopping | None,
    seed: int | None,
    callbacks: list[keras.callbacks.Callback],
    **fit_arguments: Any,
) -> keras.callbacks.History:
    """The same contract on ``model.fit`` itself, for what the compiled loop cannot run."""
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
    return _history(model, history, dict(history.history), epochs, dict(history.params), stopped_epoch, best_epoch,
                    diverged=not np.all(np.isfinite(losses)))


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
            f"fit: 'callbacks' must be a list of keras.callbacks.Callback or None; got {_short(callbacks)}."
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


def _is_streaming(x: Any) -> bool:
    """True for data that ``fit`` cannot hold in device memory as tensors."""
    if isinstance(x, keras.utils.PyDataset) or inspect.isgenerator(x) or isinstance(x, Iterator):
        return True
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(x, tf.data.Dataset)


def _is_sparse(leaf: Any) -> bool:
    if type(leaf).__module__.startswith("scipy.sparse"):
        return True
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(leaf, (tf.SparseTensor, tf.RaggedTensor))


def _check_settings(**settings: Any) -> None:
    """Refuses settings ``model.fit`` would refuse or misread, one line naming each."""
    _check_int("epochs", settings["epochs"], minimum=1)
    _check_int("batch_size", settings["batch_size"], minimum=1)
    _check_int("initial_epoch", settings["initial_epoch"], minimum=0)
    for name in ("validation_batch_size", "steps_per_epoch", "validation_steps"):
        if settings[name] is not None:
            _check_int(name, settings[name], minimum=1, or_none=True)
    freq = settings["validation_freq"]
    epoch_list = isinstance(freq, list) and freq and all(_is_int(f) and f >= 1 for f in freq)
    if not (_is_int(freq) and freq >= 1) and not epoch_list:
        raise ValueError(
            f"fit: 'validation_freq' must be an integer >= 1 or a list of epoch numbers; got {_short(freq)}."
        )
    split = settings["validation_split"]
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise ValueError(f"fit: 'validation_split' must be a number in [0, 1); got {_short(split)}.")
    if not isinstance(settings["shuffle"], bool) and settings["shuffle"] != "batch":
        raise ValueError(f"fit: 'shuffle' must be True, False or 'batch'; got {_short(settings['shuffle'])}.")
    class_weight = settings["class_weight"]
    if class_weight is not None and not (
        isinstance(class_weight, dict)
        and all(_is_int(k) and isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in class_weight.items())
    ):
        raise ValueError(f"fit: 'class_weight' must be a dict of class index -> weight; got {_short(class_weight)}.")
    if settings["seed"] is not None and not _is_int(settings["seed"]):
        raise ValueError(f"fit: 'seed' must be an integer or None; got {_short(settings['seed'])}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int, or_none: bool = False) -> None:
    if not _is_int(value) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if or_none else "")
        raise ValueError(f"fit: '{name}' must be {allowed}; got {_short(value)}.")


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _checked_data(model: keras.Model, x: Any, y: Any, sample_weight: Any, class_weight: Any) -> tuple[Any, Any, Any]:
    """``x``, ``y`` and ``sample_weight`` as numpy structures, checked as ``model.fit`` needs them."""
    if x is None:
        raise ValueError("fit: 'x' must be an array or a list, tuple or dict of arrays; got None.")
    if y is None and model.loss is not None and type(model).train_step is keras.Model.train_step:
        raise ValueError("fit: 'y' must be an array of targets for a model compiled with a loss; got None.")
    x, named = _arrays("x", x)
    if y is not None:
        y, named_y = _arrays("y", y)
        named += named_y
    if sample_weight is not None:
        if y is None:
            raise ValueError("fit: 'sample_weight' needs targets 'y' (model.fit would ignore it); got y=None.")
        if class_weight is not None:
            raise ValueError(
                "fit: 'class_weight' and 'sample_weight' cannot be given together, as in model.fit; got both."
            )
        sample_weight, named_weights = _arrays("sample_weight", sample_weight)
        sample_weight = _per_output("sample_weight", sample_weight, y)
        named += named_weights
    if class_weight is not None and (y is None or tree.is_nested(y)):
        outputs = "no y" if y is None else f"y with {len(tree.flatten(y))} outputs"
        raise ValueError(f"fit: 'class_weight' applies to single-output models only, as in model.fit; got {outputs}.")
    _check_rows(named)
    return x, y, sample_weight


def _checked_validation(validation_data: Any, y: Any) -> tuple[Any, ...]:
    """``(x_val, y_val[, sample_weight_val])`` as numpy structures, checked like the training data."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "fit: 'validation_data' must be a pair (x_val, y_val) or a triple (x_val, y_val, sample_weight_val); "
            f"got {_describe(validation_data)}."
        )
    x_val, y_val, weights = (tuple(validation_data) + (None,))[:3]
    if y_val is None and y is not None:
        raise ValueError("fit: 'validation_data[1]' must be an array of targets like 'y'; got None.")
    x_val, named = _arrays("validation_data[0]", x_val)
    if y_val is not None:
        y_val, named_y = _arrays("validation_data[1]", y_val)
        named += named_y
    if weights is not None:
        weights, named_weights = _arrays("validation_data[2]", weights)
        weights = _per_output("validation_data[2]", weights, y_val)
        named += named_weights
    _check_rows(named)
    return (x_val, y_val) if weights is None else (x_val, y_val, weights)


def _arrays(name: str, value: Any) -> tuple[Any, list[tuple[str, np.ndarray]]]:
    """``value`` with every leaf a checked numpy array, and the leaves named by their paths (``x["age"]``)."""
    # Plain lists of numbers are one array, not a structure (model.fit would refuse them).
    value = tree.traverse(lambda node: np.asarray(node) if _is_number_list(node) else None, value, top_down=True)
    named = []
    for path, leaf in tree.flatten_with_path(value):
        where = name + "".join(f'["{key}"]' if isinstance(key, str) else f"[{key}]" for key in path)
        named.append((where, _as_array(where, leaf)))
    if not named:
        raise ValueError(f"fit: '{name}' must hold at least one array; got an empty {type(value).__name__}.")
    return tree.pack_sequence_as(value, [array for _, array in named]), named


def _is_number_list(node: Any) -> bool:
    return isinstance(node, (list, tuple)) and all(
        (isinstance(item, (int, float, np.number, np.bool_))) or _is_number_list(item) for item in node
    )


def _as_array(where: str, leaf: Any) -> np.ndarray:
    """One leaf as numpy; refuses what would silently break training."""
    if leaf is None:
        raise ValueError(f"fit: '{where}' must be an array; got None.")
    try:
        array = np.asarray(leaf)
    except (TypeError, ValueError) as error:
        raise ValueError(f"fit: '{where}' must be an array; got {type(leaf).__name__} ({error}).") from None
    if array.dtype == object and array.size and all(isinstance(item, str) for item in array.flat):
        array = array.astype(str)  # strings for a model that tokenizes them, as model.fit converts them
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"fit: '{where}' must hold at least one row; got shape {array.shape}.")
    if array.dtype.kind not in "biufUS":
        raise ValueError(f"fit: '{where}' must be a numeric array; got dtype {array.dtype}.")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"fit: '{where}' must be finite; got {bad} NaN or infinite values.")
    return array


def _check_rows(named: list[tuple[str, np.ndarray]]) -> None:
    first_name, first = named[0]
    for name, array in named[1:]:
        if len(array) != len(first):
            raise ValueError(
                f"fit: '{first_name}' and '{name}' must have the same number of rows; "
                f"got {len(first)} and {len(array)}."
            )


def _per_output(name: str, sample_weight: Any, y: Any) -> Any:
    """One weight array per output of ``y``, as Keras's array adapter makes them."""
    if not tree.is_nested(y):
        if tree.is_nested(sample_weight):
            raise ValueError(
                f"fit: '{name}' must be one array for a single-output 'y'; got a {type(sample_weight).__name__}."
            )
        return sample_weight
    if tree.is_nested(sample_weight):
        try:
            tree.assert_same_structure(y, sample_weight)
        except (ValueError, TypeError):
            raise ValueError(
                f"fit: '{name}' must be one array, or one per output in the structure of 'y'; got another structure."
            ) from None
        return sample_weight
    if sample_weight.ndim > 2 or (sample_weight.ndim == 2 and sample_weight.shape[1] != 1):
        raise ValueError(
            f"fit: '{name}' for several outputs must be one weight per row; got shape {sample_weight.shape}."
        )
    return tree.map_structure(lambda _: sample_weight, y)


def split_validation(
    x: Any, y: Any, sample_weight: Any, fraction: float
) -> tuple[tuple[Any, Any, Any], tuple[Any, ...]]:
    """The last ``fraction`` of the rows, before any shuffling, as Keras's ``train_validation_split`` takes them."""
    n_rows = len(tree.flatten(x)[0])
    split_at = int(math.floor(n_rows * (1.0 - fraction)))
    if split_at in (0, n_rows):
        raise ValueError(
            "fit: 'validation_split' must leave rows for both training and validation; "
            f"got {fraction} of {n_rows} rows."
        )
    arrays = (x, y, sample_weight)
    train = tree.map_structure(lambda a: None if a is None else a[:split_at], arrays)
    validation = tree.map_structure(lambda a: None if a is None else a[split_at:], arrays)
    return train, validation


def _class_weight_to_sample_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Keras's own rows weights for ``class_weight`` (one-hot or index targets alike).

    A private Keras helper, checked on Keras 3.15:
    ``keras/src/trainers/data_adapters/data_adapter_utils.py``.
    """
    from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights

    return np.asarray(class_weight_to_sample_weights(y, class_weight))


def _packed(x: Any, y: Any, sample_weight: Any) -> Any:
    """What ``model.fit`` hands ``train_step``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``, lists as tuples."""
    return tree.lists_to_tuples(keras.utils.pack_x_y_sample_weight(x, y, sample_weight))
