"""The TensorFlow backend: the model's own (stateful) ``train_step``, made pure by swapping member state in.

TensorFlow's Keras optimizers have no ``stateless_apply``; a step here
assigns the member's weights, optimizer and metric state to the model's
variables, calls ``model.train_step`` and reads them back, all inside one
``tf.function`` (XLA where it compiles). Members run one after another in a
``tf.while_loop``, so a stopped member costs nothing.

A model with random layers (dropout, noise) runs as a plain graph: XLA's
random-number kernels on the CPU made an epoch of the moons model with one
Dropout about 12x slower than the graph (12 ms against 1 ms per
member-epoch, ``benchmarks/RESULTS.md``). So does a model with convolutions
where there is no GPU: XLA's CPU convolutions made an epoch of a small digits
CNN about 3x slower than the graph's oneDNN kernels (``benchmarks/peers.py``).
A recurrent layer without dropout draws nothing and runs under XLA, whose CPU
recurrences beat the graph's (an LSTM's epoch about 2.5x faster).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import keras
import tensorflow as tf

__all__ = ["Backend", "dropout"]


def dropout(inputs: Any, rate: Any, noise_shape: Any, seed_generator: Any) -> Any:
    """``keras.random.dropout`` of the TensorFlow backend (same seed, same mask) for a rate that is a tensor."""
    seed = seed_generator.next()
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)  # as keras's _cast_seed
    shape = None if noise_shape is None else [tf.shape(inputs)[i] if d is None else d for i, d in enumerate(noise_shape)]
    return tf.nn.experimental.stateless_dropout(inputs, rate=rate, noise_shape=shape, seed=seed)

_XLA_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError)
_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Conv1DTranspose,
                 keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose, keras.layers.DepthwiseConv1D,
                 keras.layers.DepthwiseConv2D, keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
                 keras.layers.ConvLSTM1D, keras.layers.ConvLSTM2D, keras.layers.ConvLSTM3D)


def _draws_random_numbers(layer: keras.Layer) -> bool:
    """A layer with seed generators, unless a recurrent cell without dropout (an LSTMCell keeps one regardless)."""
    if not getattr(layer, "_seed_generators", None):
        return False
    return not (getattr(layer, "dropout", None) == 0 and getattr(layer, "recurrent_dropout", None) == 0)


class Backend:
    def __init__(self, model: keras.Model, set_row: Callable[[Any], None]) -> None:
        self.model, self.bind_numbers = model, set_row
        # XLA's CPU random-number kernels and convolutions are slow: such models keep the plain graph there.
        layers = list(model._flatten_layers())
        random = any(_draws_random_numbers(layer) for layer in layers)
        convolution = any(isinstance(layer, _CONVOLUTIONS) for layer in layers)
        self.xla = not ((random or convolution) and not tf.config.list_physical_devices("GPU"))
        self.groups = (list(model.trainable_variables), list(model.non_trainable_variables),
                       list(model.optimizer.variables), list(model.metrics_variables))

    def default_mode(self) -> str:
        return "loop"

    def _swapped(self, state: Any, step: Callable[[Any], Any], groups: tuple[list, ...], batch: Any) -> tuple[Any, Any]:
        for variables, values in zip(groups, state):
            for variable, value in zip(variables, values):
                variable.assign(value)
        # Rows unknown to the graph, as in model.fit's batches (Keras reads the static batch size in places).
        batch = tf.nest.map_structure(lambda t: tf.compat.v1.placeholder_with_default(t, [None, *t.shape[1:]]), batch)
        logs = step(batch)
        return logs, tuple([variable.value for variable in variables] for variables in groups)

    def train_step(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return self._swapped(state, self.model.train_step, self.groups, batch)

    def test_step(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return self._swapped(state, self.model.test_step, (self.groups[0], self.groups[1], self.groups[3]), batch)

    def log_specs(self, step: str, state: Any, batch: Any) -> dict[str, tuple[int, ...]]:
        from regsearch.population.loop import flat_logs

        traced = tf.function(lambda s, b: getattr(self, step)(s, b)[0], autograph=False)
        logs = traced.get_concrete_function(state, batch).structured_outputs
        return {name: tuple(value.shape) for name, value in flat_logs(logs).items()}

    @staticmethod
    def permutation(seed: Any, epoch: Any, n: int) -> Any:
        # The sequential engine's own shuffle, so a member sees the batches a lone run sees.
        return tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int32), epoch])))

    @staticmethod
    def take_rows(data: Any, start: Any, size: int) -> Any:
        return tf.nest.map_structure(
            lambda t: tf.slice(t, [start, *([0] * (t.shape.rank - 1))], [size, *([-1] * (t.shape.rank - 1))]), data
        )

    @staticmethod
    def put_row(rows: Any, i: Any, row: Any) -> Any:
        return tf.tensor_scatter_nd_update(rows, [[i]], [row])

    def compile(self, member_chunk: Callable[..., Any], size: int, mode: str, rows_shape: tuple[int, ...],
                once: bool = False) -> Callable[..., Any]:
        """The population program; ``once``: run once per population (a plain graph: XLA's compile costs more)."""
        if mode != "loop":
            raise ValueError(f"population: mode '{mode}' needs the JAX backend; the TensorFlow backend runs 'loop'.")

        def population(members: Any, data: Any, val: Any, metrics_init: Any) -> Any:
            def body(k: Any, members: Any, rows: Any) -> Any:
                member, chunk_rows = member_chunk(tf.nest.map_structure(lambda a: a[k], members), data, val,
                                                  metrics_init)
                members = tf.nest.map_structure(lambda a, b: _put(a, b, k), members, member)
                return k + 1, members, tf.tensor_scatter_nd_update(rows, [[k]], [chunk_rows])

            rows = tf.zeros([size, *rows_shape], tf.float32)
            _, members, rows = tf.while_loop(lambda k, *_: k < size, body, (tf.constant(0), members, rows))
            return members, rows

        def _put(a: Any, b: Any, k: Any) -> Any:
            # An empty leaf (a group without varying numbers) has nothing to write, and TF refuses to.
            return a if a.shape.num_elements() == 0 else tf.tensor_scatter_nd_update(a, [[k]], [b])

        graph = tf.function(population, autograph=False)
        xla = None if once or not self.xla else tf.function(population, jit_compile=True, autograph=False)

        def run(*args: Any) -> Any:
            nonlocal xla
            if xla is not None:
                try:
                    return xla(*args)
                except _XLA_ERRORS as error:
                    if "XLA" not in str(error) and "compil" not in str(error).lower():
                        raise
                    warnings.warn(f"population: XLA could not compile this model, running as a plain graph "
                                  f"({type(error).__name__}).", stacklevel=3)
                    xla = None
            return graph(*args)

        return run

