"""How many members fit in memory: an estimate from one built model, made before the others are built.

A member holds its own Keras model (weights and optimizer state), its slice
of the stacked population state (weights, optimizer state, the best
weights early stopping keeps) and, while it trains, gradients and the
activations of one batch. Activations are counted from every layer's output
shape; the estimate is rough (within a small factor) and errs on the large
side, which is what a refusal before training needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

__all__ = ["Footprint", "footprint", "available_bytes", "members_that_fit", "step_rows", "GiB",
           "EVALUATION_BATCH"]

GiB = 1024**3
#: The share of available memory a population may plan to use.
SHARE = 0.7
#: Rows per batch when members are scored (``model.evaluate``'s batches in regsearch's own evaluation).
EVALUATION_BATCH = 1024


def step_rows(batch_size: int, *row_counts: int) -> int:
    """The most rows one step of a run handles: a training or validation batch, or a batch of the scoring."""
    return max(batch_size, min(EVALUATION_BATCH, max(row_counts, default=0)))


@dataclass(frozen=True)
class Footprint:
    """Estimated bytes of one member: weights, optimizer state and one batch's activations."""

    weights: int
    optimizer: int
    activations: int
    rows: int

    @property
    def total(self) -> int:
        # The model's own copy, the stacked copy, the best weights and the gradients; two optimizer copies.
        return 4 * self.weights + 2 * self.optimizer + self.activations

    def describe(self) -> str:
        return (f"about {self.total / GiB:.1f} GiB (weights {self.weights / GiB:.1f} GiB, optimizer state "
                f"{self.optimizer / GiB:.1f} GiB, activations of {self.rows} rows {self.activations / GiB:.1f} GiB)")


def footprint(model: keras.Model, rows: int) -> Footprint:
    """The estimated footprint of one member of ``model``'s structure, for batches of up to ``rows`` rows."""
    weights = sum(_bytes(v.shape, v.dtype) for v in model.weights)
    if model.optimizer is not None and model.optimizer.built:
        optimizer = sum(_bytes(v.shape, v.dtype) for v in model.optimizer.variables)
    else:  # Adam's two slots, the usual worst case of Keras's optimizers
        optimizer = 2 * sum(_bytes(v.shape, v.dtype) for v in model.trainable_weights)
    per_row = 0
    for layer in model._flatten_layers(include_self=False):
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer called more than once, or never symbolically
            continue
        per_row += sum(_bytes(tuple(out.shape)[1:], out.dtype) for out in outputs)
    # Forward values, their gradients and a working copy.
    return Footprint(weights=weights, optimizer=optimizer, activations=3 * per_row * rows, rows=rows)


def available_bytes() -> int:
    """Memory a population may use: the accelerator's (JAX's report of it) or the machine's available RAM."""
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            stats = device.memory_stats() or {}
            if "bytes_limit" in stats:
                return int(SHARE * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    import psutil

    return int(SHARE * psutil.virtual_memory().available)


def _bytes(shape: tuple, dtype: str) -> int:
    name = keras.backend.standardize_dtype(dtype)
    itemsize = 2 if name == "bfloat16" else np.dtype(name).itemsize
    return math.prod(d or 1 for d in shape) * itemsize


def members_that_fit(model: keras.Model, rows: int, where: str) -> int:
    """How many members of ``model``'s structure fit in the memory available now (at least 1).

    Raises:
        MemoryError: Not even one member fits; the message says how much it needs and how much there is.
    """
    needed, available = footprint(model, rows), available_bytes()
    if needed.total > available:
        raise MemoryError(f"{where}: one training run of this model needs {needed.describe()}, more than the "
                          f"{available / GiB:.1f} GiB available; use a smaller model or batch_size.")
    return max(1, available // needed.total)
