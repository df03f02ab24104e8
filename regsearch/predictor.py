"""The saved models as whole predictors: what the search fitted on the data travels with them.

The runs train on the rows as :func:`regsearch.datafiles.load_file` prepared
them: scaled when ``scale = "standard"``, with class labels as indices 0..k-1.
A user holds raw rows and their own labels. So the saved ``best_model.keras``
and ``baseline_model.keras`` are the trained model with a Keras
``Normalization`` layer in front holding the fitted mean and variance (Keras'
own idiom for preprocessing inside a model; :mod:`regsearch.scaling` makes its
formula the one the runs trained with), and ``predictor.json`` beside them says
which columns to feed, in which order, and what the output columns mean in the
user's labels. ``test_rows.csv`` says which rows of the file were the test rows.

Both models load with ``keras.saving.load_model(path, safe_mode=True)`` in a
process that never imports regsearch: ``Normalization`` is a built-in layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from regsearch.datasets import Split

__all__ = ["PREDICTOR_FILE", "SCALING_LAYER", "TEST_ROWS_FILE", "description", "whole_predictor",
           "write_description"]

PREDICTOR_FILE = "predictor.json"
TEST_ROWS_FILE = "test_rows.csv"
#: The name of the layer that scales raw rows in a saved model.
SCALING_LAYER = "standard_scaling"


def whole_predictor(model: Any, split: Split | None) -> Any:
    """The trained ``model`` behind the split's fitted scaling, taking the file's raw rows.

    Returns ``model`` itself when the inputs were not scaled (or either is None).
    The new model shares the trained model's layers and weights (it is nested,
    ``predictor.layers[-1]``) and is compiled as it was, so that ``evaluate``
    on raw rows reports the same loss and metrics.
    """
    if model is None or split is None or split.scaling is None:
        return model
    import keras

    scaling = split.scaling
    shape = tuple(split.input_shape)
    inputs = keras.Input(shape, name=model.inputs[0].name if model.inputs else "inputs")
    # One mean and variance per input value: every axis but the batch is kept.
    normalize = keras.layers.Normalization(axis=tuple(range(1, len(shape) + 1)), mean=scaling.mean.tolist(),
                                           variance=scaling.variance.tolist(), name=SCALING_LAYER)
    predictor = keras.Model(inputs, model(normalize(inputs)), name=f"{model.name}_on_raw_rows")
    compiled = model.get_compile_config() if model.compiled else None
    if compiled:
        predictor.compile_from_config(compiled)
        # Loading builds every compiled model's optimizer; one saved unbuilt gives a "Skipping variable
        # loading for optimizer" warning. The nested trained model is saved with its own optimizer too.
        for each in (predictor, model):
            if each.optimizer is not None and not each.optimizer.built:
                each.optimizer.build(each.trainable_variables)
    return predictor


def description(model: Any, split: Split) -> dict[str, Any]:
    """What a saved model of this split takes and returns, in the user's terms (``predictor.json``)."""
    units = int(model.outputs[0].shape[-1])
    columns = list(split.feature_names) if split.feature_names is not None else None
    classes = None
    if split.task != "regression":
        classes = list(split.class_names) if split.class_names is not None else list(range(split.n_classes))
    feed = (f"rows of the columns {columns} of the data file, in this order" if columns is not None
            else f"arrays of shape (rows, {', '.join(map(str, split.input_shape))}) as in the data file")
    feed += (": raw values, the standard scaling fitted on the training rows is the model's first layer"
             if split.scaling is not None else ": the values as they are in the file")
    return {
        "inputs": {"columns": columns, "shape": list(split.input_shape), "scaled_inside": split.scaling is not None,
                   "feed": feed},
        "task": split.task,
        "target": split.target_name,
        "classes": classes,
        "output": _output_meaning(split.task, units, classes, split.target_name),
        "test_rows": TEST_ROWS_FILE if split.test_rows is not None else None,
    }


def _output_meaning(task: str, units: int, classes: list[Any] | None, target: str | None) -> str:
    if task == "regression" or classes is None:
        return f"one column: the predicted value of {target!r}" if target else "one column: the predicted value"
    if units == 1:
        return (f"one column: the probability of class {classes[1]!r} (classes[1]); a row is {classes[1]!r} "
                f"where it is above 0.5, else {classes[0]!r}")
    return (f"{units} columns: the probability of each class, in the order of classes; a row is "
            "classes[argmax of its row]")


def write_description(folder: Path, model: Any, split: Split | None) -> list[Path]:
    """Writes ``predictor.json`` (and ``test_rows.csv`` for a data file) for the saved models; returns the paths."""
    from regsearch.atomic import write_text_atomic

    if model is None or split is None:
        return []
    paths = [folder / PREDICTOR_FILE]
    # default=str: a categorical's labels may be dates or other objects that JSON has no type for.
    write_text_atomic(paths[0], json.dumps(description(model, split), indent=2, default=str) + "\n")
    if split.test_rows is not None:
        paths.append(folder / TEST_ROWS_FILE)
        rows = "\n".join(str(int(row)) for row in np.asarray(split.test_rows))
        write_text_atomic(paths[1], f"row\n{rows}\n")
    return paths
