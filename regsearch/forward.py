"""Inference-mode forward passes, compiled once per model structure on JAX.

A search scores every run's model on its rows (``row_scores``) and measures
its regularized layer (``activation_sparsity``): a new model of the same
structure each run. Called eagerly, a model on JAX compiles as it goes (a
recurrent layer's ``scan`` anew on every call, about a second a run); here
the first model's pass is compiled once, with the weights as arguments, and
every later model of its structure runs through it on its own weights. On
TensorFlow the pass runs eagerly: tracing a graph costs more than an eager
pass over a few hundred rows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import keras
import numpy as np

__all__ = ["inference_batches"]

#: Compiled passes by model structure and the part of it they compute, newest last; at most ``KEEP`` are kept.
_PASSES: OrderedDict[tuple[str, str], Callable[[Any, Any], Any]] = OrderedDict()
KEEP = 8


def inference_batches(model: keras.Model, x: Any, *, batch_size: int, chain: Sequence[keras.Model] | None = None,
                      part: str = "outputs") -> Iterator[np.ndarray]:
    """``chain`` (default: ``[model]``) applied in turn to ``x`` in inference mode, each on its own weights, one
    batch of ``batch_size`` rows at a time.

    Args:
        model: The model whose structure keys the compiled pass.
        x: The inputs, in the structure the first model of ``chain`` takes.
        batch_size: Rows per pass.
        chain: Models built on ``model``'s layers, applied one after the other (a layer's probe).
        part: What ``chain`` computes of ``model`` (a layer's path), so that two chains of one model do not mix.

    Yields:
        The last model's output for each batch, in order, as a NumPy array.
    """
    chain = list(chain or [model])
    forward = _compiled(model, part, chain)
    weights = [([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables])
               for m in chain]
    for start in range(0, len(keras.tree.flatten(x)[0]), batch_size):
        batch = keras.tree.map_structure(lambda a: np.asarray(a[start:start + batch_size]), x)
        yield keras.ops.convert_to_numpy(forward(weights, batch))


def _compiled(model: keras.Model, part: str, chain: list[keras.Model]) -> Callable[[Any, Any], Any]:
    """The pass for ``model``'s structure and ``part``: kept from an earlier model of the structure, or made now.

    The structure masks the numbers a search varies (penalties, noise and dropout rates, constraints' bounds):
    none of them changes an inference-mode forward pass.
    """
    if keras.backend.backend() != "jax":
        return _stateless(chain)
    import jax

    from regsearch.population.numbers import structure_of

    key = (structure_of(model), part)
    if key[0].startswith("<model without a config"):  # a structure shared with no other model: nothing to keep
        return jax.jit(_stateless(chain))
    if key not in _PASSES:
        _PASSES[key] = jax.jit(_stateless(chain))
        while len(_PASSES) > KEEP:
            _PASSES.popitem(last=False)
    _PASSES.move_to_end(key)
    return _PASSES[key]


def _stateless(chain: list[keras.Model]) -> Callable[[Any, Any], Any]:
    def forward(weights: Any, x: Any) -> Any:
        for model, (trainable, non_trainable) in zip(chain, weights):
            x, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return x

    return forward
