"""Activation sparsity of a layer: how much a regularizer silences it."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from regsearch.forward import inference_batches


def activation_sparsity(
    model: keras.Model, layer_name: str, x: Any, *, batch_size: int = 1024
) -> dict[str, float]:
    """Mean activation and fraction of exact zeros of one layer's output on ``x``.

    The layer runs in inference mode (dropout off). Activity L1 and ReLU make
    outputs exactly zero, so ``zero_fraction`` is the sparsity the tutorials
    report alongside the mean activation.

    Args:
        model: A functional or built Sequential Keras model.
        layer_name: The layer whose output is measured; inside a nested model,
            its path (``"encoder/dense_1"``).
        x: Input data: an array, or a list or dict of arrays for several inputs.
        batch_size: Rows per forward pass.

    Returns:
        ``{"mean_activation": float, "zero_fraction": float}``; NaN for empty data.
    """
    total = zeros = count = 0.0
    for out in inference_batches(model, x, batch_size=batch_size, chain=_probes(model, layer_name), part=layer_name):
        out = out.astype(np.float64, copy=False)
        total += float(out.sum())
        zeros += float(np.count_nonzero(out == 0.0))
        count += out.size
    if count == 0:
        return {"mean_activation": float("nan"), "zero_fraction": float("nan")}
    return {"mean_activation": total / count, "zero_fraction": zeros / count}


def _probes(model: keras.Model, path: str) -> list[keras.Model]:
    """Models that, applied in turn, take ``model``'s input to the output of the layer at ``path``.

    A layer inside a nested model lives in that model's own graph: the first
    probe ends at the nested model's input (the tensors it was first called
    on, read from Keras 3.15's private ``_inbound_nodes``), the next ones go on
    inside it.
    """
    head, _, rest = path.partition("/")
    layer = model.get_layer(head)
    if not rest:
        return [keras.Model(inputs=symbolic_input(model), outputs=layer.output)]
    fed = layer._inbound_nodes[0].arguments.args[0]
    return [keras.Model(inputs=symbolic_input(model), outputs=fed), *_probes(layer, rest)]


def symbolic_input(model: keras.Model) -> Any:
    """The model's symbolic input, in the structure its data comes in (a tensor, a list or a dict).

    A functional model has it as ``model.input``; a built Sequential model has
    never been called on a tensor of its own, so ``model.input`` raises, and
    its one input is ``model.inputs[0]``.
    """
    if isinstance(model, keras.Sequential):
        return model.inputs[0]
    return model.input
