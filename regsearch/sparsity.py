"""Activation sparsity of a layer: how much a regularizer silences it."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def activation_sparsity(
    model: keras.Model, layer_name: str, x: Any, *, batch_size: int = 1024
) -> dict[str, float]:
    """Mean activation and fraction of exact zeros of one layer's output on ``x``.

    The layer runs in inference mode (dropout off). Activity L1 and ReLU make
    outputs exactly zero, so ``zero_fraction`` is the sparsity the tutorials
    report alongside the mean activation.

    Args:
        model: A functional or built Sequential Keras model.
        layer_name: The layer whose output is measured.
        x: Input data: an array, or a list or dict of arrays for several inputs.
        batch_size: Rows per forward pass.

    Returns:
        ``{"mean_activation": float, "zero_fraction": float}``; NaN for empty data.
    """
    layer = model.get_layer(layer_name)
    # A Sequential model has no ``input`` in Keras 3 until it is called on a tensor (built from keras.Input,
    # cloned or loaded from a .keras file, it has not been); its one symbolic input is in ``inputs``.
    inputs = model.inputs[0] if isinstance(model, keras.Sequential) else model.input
    probe = keras.Model(inputs=inputs, outputs=layer.output)
    n_rows = len(keras.tree.flatten(x)[0])
    total = zeros = count = 0.0
    for start in range(0, n_rows, batch_size):
        batch = keras.tree.map_structure(lambda a: np.asarray(a[start : start + batch_size]), x)
        out = keras.ops.convert_to_numpy(probe(batch, training=False))
        out = out.astype(np.float64, copy=False)
        total += float(out.sum())
        zeros += float(np.count_nonzero(out == 0.0))
        count += out.size
    if count == 0:
        return {"mean_activation": float("nan"), "zero_fraction": float("nan")}
    return {"mean_activation": total / count, "zero_fraction": zeros / count}
