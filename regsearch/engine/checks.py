"""``regsearch.fit``'s arguments and data checked as ``model.fit`` needs them, and turned into what a step takes.

Every refusal is one line naming the argument, what it must be and what it
got. Data leaves here as numpy structures packed as ``model.fit`` hands them
to ``train_step``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import tree

__all__ = ["check_settings", "checked_data", "checked_validation", "class_weight_to_sample_weights", "is_sparse",
           "is_streaming", "packed", "short", "split_validation"]


def is_streaming(x: Any) -> bool:
    """True for data that ``fit`` cannot hold in device memory as tensors."""
    if isinstance(x, keras.utils.PyDataset) or inspect.isgenerator(x) or isinstance(x, Iterator):
        return True
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(x, tf.data.Dataset)


def is_sparse(leaf: Any) -> bool:
    if type(leaf).__module__.startswith("scipy.sparse"):
        return True
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(leaf, (tf.SparseTensor, tf.RaggedTensor))


def check_settings(**settings: Any) -> None:
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
            f"fit: 'validation_freq' must be an integer >= 1 or a list of epoch numbers; got {short(freq)}."
        )
    split = settings["validation_split"]
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise ValueError(f"fit: 'validation_split' must be a number in [0, 1); got {short(split)}.")
    if not isinstance(settings["shuffle"], bool) and settings["shuffle"] != "batch":
        raise ValueError(f"fit: 'shuffle' must be True, False or 'batch'; got {short(settings['shuffle'])}.")
    class_weight = settings["class_weight"]
    if class_weight is not None and not (
        isinstance(class_weight, dict)
        and all(_is_int(k) and isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in class_weight.items())
    ):
        raise ValueError(f"fit: 'class_weight' must be a dict of class index -> weight; got {short(class_weight)}.")
    if settings["seed"] is not None and not _is_int(settings["seed"]):
        raise ValueError(f"fit: 'seed' must be an integer or None; got {short(settings['seed'])}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int, or_none: bool = False) -> None:
    if not _is_int(value) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if or_none else "")
        raise ValueError(f"fit: '{name}' must be {allowed}; got {short(value)}.")


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def checked_data(model: keras.Model, x: Any, y: Any, sample_weight: Any, class_weight: Any) -> tuple[Any, Any, Any]:
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


def checked_validation(validation_data: Any, y: Any) -> tuple[Any, ...]:
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


def class_weight_to_sample_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Keras's own rows weights for ``class_weight`` (one-hot or index targets alike).

    A private Keras helper, checked on Keras 3.15:
    ``keras/src/trainers/data_adapters/data_adapter_utils.py``.
    """
    from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights

    return np.asarray(class_weight_to_sample_weights(y, class_weight))


def packed(x: Any, y: Any, sample_weight: Any) -> Any:
    """What ``model.fit`` hands ``train_step``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``, lists as tuples."""
    return tree.lists_to_tuples(keras.utils.pack_x_y_sample_weight(x, y, sample_weight))
