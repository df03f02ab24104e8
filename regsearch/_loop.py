"""The compiled epoch loop behind :func:`regsearch.fit` (TensorFlow backend only).

Everything ``model.fit`` does between epochs happens here inside one
``tf.function``: metric resets, per-epoch shuffling, the minibatch loop over
the model's own ``train_step``, validation over ``test_step`` in batches of the
validation batch size, the epoch's logs (chosen as ``model.fit`` chooses
them), the ``EarlyStopping`` bookkeeping (copied decision for decision from
Keras), keeping the best weights, and stopping on a non-finite loss.

Data arrives as ``model.fit`` hands it to ``train_step``: one structure
``x``, ``(x, y)`` or ``(x, y, sample_weight)`` whose leaves share their rows.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf
from keras import tree
from tensorflow.python.framework import ops as tf_ops

from regsearch.population import Outcome, seed_random_layers
from regsearch.population.loop import Layout, flat_logs
from regsearch.population.stopping import StoppingRule

# XLA reports an op it cannot compile with one of these; anything else is a real error.
_XLA_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError)


class _EarlyStoppingState:
    """``EarlyStopping``'s instance attributes as device variables."""

    def __init__(self, model: keras.Model, restore: bool) -> None:
        self.best = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self.has_best = tf.Variable(False, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int32, trainable=False)
        self.wait = tf.Variable(0, dtype=tf.int32, trainable=False)
        self.stopped_epoch = tf.Variable(0, dtype=tf.int32, trainable=False)
        self.has_best_weights = tf.Variable(False, trainable=False)
        self.weights = list(model.weights)
        self.best_weights = (
            [tf.Variable(w.value, trainable=False) for w in self.weights] if restore else []
        )

    def reset(self) -> None:
        """``EarlyStopping.on_train_begin``: every run starts from no best value."""
        self.best.assign(0.0)
        self.has_best.assign(False)
        self.best_epoch.assign(0)
        self.wait.assign(0)
        self.stopped_epoch.assign(0)
        self.has_best_weights.assign(False)

    def keep_weights(self) -> None:
        for best, weight in zip(self.best_weights, self.weights):
            best.assign(weight.value)
        self.has_best_weights.assign(True)

    def restore_weights(self) -> None:
        for best, weight in zip(self.best_weights, self.weights):
            weight.assign(best.value())


def train(
    model: keras.Model,
    data: Any,
    validation_data: Any | None,
    *,
    epochs: int,
    initial_epoch: int,
    batch_size: int,
    validation_batch_size: int,
    shuffle: bool,
    early_stopping: keras.callbacks.EarlyStopping | None,
    seed: int | None,
) -> Outcome:
    """Runs epochs ``initial_epoch .. epochs - 1`` in one compiled call; see :func:`regsearch.fit`.

    ``data`` and ``validation_data`` are structures of numpy arrays packed as
    ``model.fit`` packs them (``x``, ``(x, y)`` or ``(x, y, sample_weight)``),
    lists already turned into tuples; ``epochs > initial_epoch``.
    """
    data = tree.map_structure(_to_tensor, data)
    val = None if validation_data is None else tree.map_structure(_to_tensor, validation_data)
    batch_size = min(batch_size, _rows(data))
    val_batch_size = 0 if val is None else min(validation_batch_size, _rows(val))
    model._symbolic_build(data_batch=_slice(data, 0, batch_size))
    # Built metrics let mode="auto" find a metric's direction, as in model.fit.
    rule = None if early_stopping is None else StoppingRule.from_callback(early_stopping, model)
    patience = 0 if early_stopping is None else int(early_stopping.patience)

    with _gradient_registrations_released(), _retracing_notice_silenced():
        loop = _compiled_loop(model, data, val, epochs=epochs, initial_epoch=initial_epoch, batch_size=batch_size,
                              val_batch_size=val_batch_size, shuffle=shuffle, rule=rule, patience=patience)
        if rule is not None and loop.layout.column(rule.monitor) is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{rule.monitor}` which is not available. "
                f"Available metrics are: {','.join(loop.layout.names)}",
                stacklevel=3,
            )
        state = loop.state
        state.reset()
        shuffle_seed = tf.constant(seed_random_layers(model, seed), tf.int32)
        epochs_run, logs, diverged = loop(shuffle_seed, data, *([] if val is None else [val]))

    if isinstance(model.optimizer, keras.optimizers.Optimizer):
        model.optimizer.finalize_variable_values(model.trainable_weights)
    if rule is not None and rule.restore_best_weights and bool(state.has_best_weights.numpy()):
        state.restore_weights()

    epochs_run = int(epochs_run.numpy())
    has_best = rule is not None and bool(state.has_best.numpy())
    return Outcome(
        history=loop.layout.history(logs.numpy()[:epochs_run]),
        epochs_run=epochs_run,
        stopped_epoch=int(state.stopped_epoch.numpy()),
        best_epoch=int(state.best_epoch.numpy()) if has_best else max(initial_epoch + epochs_run - 1, 0),
        best=float(state.best.numpy()) if has_best else None,
        wait=int(state.wait.numpy()),
        diverged=bool(diverged.numpy()),
    )


@dataclass(frozen=True)
class _StepLogs:
    """What one epoch of ``train_step`` or ``test_step`` logs, chosen as ``model.fit`` chooses it.

    Keras logs the metrics' results when the step returns exactly their names,
    and otherwise the dict the epoch's last step returned
    (``Trainer._get_metrics_result_or_logs``), flattened and sorted by name as
    ``pythonify_logs`` does.
    """

    step: str
    from_metrics: bool
    specs: dict[str, tf.TensorSpec]  # flattened, sorted names -> fixed shapes

    @classmethod
    def of(cls, model: keras.Model, step: str, batch: Any) -> _StepLogs:
        metric_logs = model.get_metrics_result()
        returned = metric_logs
        if any(getattr(type(model), name) is not getattr(keras.Model, name) for name in (step, "compute_metrics")):
            # A custom step: trace it once, apart, to learn what it returns.
            spec = tree.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), batch)
            returned = tf.function(getattr(model, step), autograph=False).get_concrete_function(spec).structured_outputs
            if not isinstance(returned, dict):
                raise ValueError(
                    f"fit: 'model.{step}' must return a dict of logs, as model.fit needs; got {type(returned).__name__}."
                )
        from_metrics = set(returned) == set(metric_logs)
        flat = flat_logs(metric_logs if from_metrics else returned)
        specs = {}
        for name, value in flat.items():
            value = value if tf.is_tensor(value) else tf.constant(value)
            if not value.shape.is_fully_defined():
                raise ValueError(f"fit: the log '{name}' of 'model.{step}' must have a fixed shape; got {value.shape}.")
            specs[name] = tf.TensorSpec(value.shape, value.dtype)
        return cls(step, from_metrics, specs)

    def carried(self, logs: Any) -> dict[str, tf.Tensor]:
        """One step's returned logs, checked to fit the loop's fixed slots."""
        flat = flat_logs(logs) if isinstance(logs, dict) else {}
        if list(flat) != list(self.specs):
            raise ValueError(
                f"fit: 'model.{self.step}' must return the same logs on every batch; "
                f"got {list(flat)} and {list(self.specs)}."
            )
        values = {}
        for name, spec in self.specs.items():
            value = tf.cast(flat[name], spec.dtype)
            if value.shape != spec.shape:
                raise ValueError(
                    f"fit: the log '{name}' of 'model.{self.step}' must keep its shape across batches; "
                    f"got {spec.shape} and {value.shape}."
                )
            values[name] = value
        return values

    def of_epoch(self, model: keras.Model, last: dict[str, tf.Tensor] | None) -> dict[str, tf.Tensor]:
        return flat_logs(model.get_metrics_result()) if self.from_metrics else last


def _layout(train: _StepLogs, val: _StepLogs | None) -> Layout:
    """The columns of the per-epoch log tensor: every logged value flattened, scalars and vectors alike."""
    specs = list(train.specs.items()) + ([] if val is None else [(f"val_{n}", s) for n, s in val.specs.items()])
    return Layout(tuple(name for name, _ in specs), tuple(tuple(spec.shape.as_list()) for _, spec in specs))


def _row(values: list[Any]) -> tf.Tensor:
    pieces = [tf.reshape(tf.cast(value, tf.float32), [-1]) for value in values]
    return tf.concat(pieces, axis=0) if pieces else tf.zeros([0], tf.float32)


def _early_stopping_step(rule: StoppingRule, patience: int, state: _EarlyStoppingState, epoch: tf.Tensor,
                         current: tf.Tensor) -> tf.Tensor:
    """``EarlyStopping.on_epoch_end`` on the device; returns whether to stop."""

    def is_improvement(value: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
        shifted = value - rule.min_delta
        return shifted < reference if rule.minimize else shifted > reference

    def monitored() -> tf.Tensor:
        if rule.restore_best_weights:

            def first_weights() -> tf.Tensor:
                state.keep_weights()
                state.best_epoch.assign(epoch)
                return tf.constant(True)

            tf.cond(state.has_best_weights, lambda: tf.constant(True), first_weights)
        state.wait.assign_add(1)

        def improved() -> tf.Tensor:
            state.best.assign(current)
            state.has_best.assign(True)
            state.best_epoch.assign(epoch)
            if rule.restore_best_weights:
                state.keep_weights()
            if rule.baseline is None:
                state.wait.assign(0)
            else:
                beats_baseline = is_improvement(current, tf.constant(rule.baseline, tf.float32))
                state.wait.assign(tf.where(beats_baseline, 0, state.wait.value()))
            return tf.constant(False)

        def not_improved() -> tf.Tensor:
            stop = tf.logical_and(state.wait.value() >= patience, epoch > 0)
            state.stopped_epoch.assign(tf.where(stop, epoch, state.stopped_epoch.value()))
            return stop

        better = tf.logical_or(tf.logical_not(state.has_best), is_improvement(current, state.best.value()))
        return tf.cond(better, improved, not_improved)

    return tf.cond(epoch >= rule.start_from_epoch, monitored, lambda: tf.constant(False))


def _run_batches(
    step: Callable[[Any], Any], data: Any, batch_size: int, logs: _StepLogs
) -> dict[str, tf.Tensor] | None:
    """Calls ``step`` on consecutive minibatches, the last one possibly smaller.

    Returns what the last step returned when the epoch logs it, else None.
    """
    n_rows = _rows(data)
    n_full, remainder = divmod(n_rows, batch_size)
    keep = not logs.from_metrics

    def call(batch: Any) -> dict[str, tf.Tensor] | None:
        returned = step(_unknown_rows(batch))
        return logs.carried(returned) if keep else None

    last = None
    if n_full <= 2:
        # Few batches: unrolled, which XLA compiles into straight-line code.
        for i in range(n_full):
            last = call(_slice(data, i * batch_size, (i + 1) * batch_size))
    else:
        batches = tree.map_structure(
            lambda t: tf.reshape(t[: n_full * batch_size], [n_full, batch_size, *t.shape[1:]]), data
        )

        def body(i: tf.Tensor, *carried: dict[str, tf.Tensor]) -> tuple:
            returned = call(tree.map_structure(lambda t: t[i], batches))
            return (i + 1, returned) if keep else (i + 1,)

        start = (tf.constant(0), {name: tf.zeros(spec.shape, spec.dtype) for name, spec in logs.specs.items()})
        out = tf.while_loop(lambda i, *_: i < n_full, body, start if keep else start[:1])
        last = out[1] if keep else None
    if remainder:
        last = call(_slice(data, n_full * batch_size, n_rows))
    return last


def _unknown_rows(batch: Any) -> Any:
    """The batch with its number of rows unknown to the graph, as in ``model.fit``'s tf.data batches.

    Keras reads the static batch size in places: ``CompileLoss`` weights each
    batch's per-output loss by it (``tree.flatten(y_pred)[0].shape[0]``), and
    in ``model.fit`` it is None, so every batch counts once however short.
    """
    return tree.map_structure(lambda t: tf.compat.v1.placeholder_with_default(t, [None, *t.shape[1:]]), batch)


def _rows(data: Any) -> int:
    return int(tree.flatten(data)[0].shape[0])


def _slice(data: Any, start: int, stop: int) -> Any:
    return tree.map_structure(lambda t: t[start:stop], data)


class _RetracingNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _retracing_notice_silenced() -> Iterator[None]:
    """Drops TensorFlow's "frequent retracing" notice while the loop runs, and only that.

    TensorFlow counts traces per Python function, and every model's loop is a
    new function from the same code: tracing one per model is the design, not
    the accident the notice warns about.
    """
    logger = logging.getLogger("tensorflow")
    notice = _RetracingNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


@contextlib.contextmanager
def _gradient_registrations_released() -> Iterator[None]:
    """Unregisters the custom gradients traced inside, once the compiled loop is done with them.

    Tracing a train step registers a ``CustomGradient-N`` function in TensorFlow's
    global gradient registry (the optimizer's ``ReplicaContext.all_reduce`` is a
    ``tf.custom_gradient``, even without a distribution strategy), and its closure
    keeps the whole traced graph alive for the life of the process: about 2 MiB
    per trial on the moons model, the resident-memory growth of keras-tuner
    #395/#873/#1031, which ``clear_session`` and ``gc`` do not touch. The loop is
    traced, run once and dropped here, so nothing can differentiate through it
    again. A private registry: if TensorFlow renames it, this does nothing.
    """
    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in [name for name in list(registry) if name not in before]:
                if isinstance(name, str) and name.startswith("CustomGradient-"):
                    registry.pop(name, None)


class _CompiledLoop:
    """One model's traced epoch loop, kept on the model so that training it again skips tracing.

    Everything that may change between calls (data, shuffle seed, early-stopping
    state, weights, optimizer state) is a function argument or a variable; what
    is baked into the graph (the data's structure and shapes, epochs, batch
    sizes, early-stopping settings, the compiled loss, metrics and optimizer)
    makes up ``key``; ``layout`` names the columns of the logs it returns.
    """

    def __init__(
        self, key: tuple, run_epochs: Callable[..., Any], state: _EarlyStoppingState, layout: Layout, use_xla: bool
    ) -> None:
        self.key, self.state, self.layout, self.use_xla = key, state, layout, use_xla
        self.graph = tf.function(run_epochs, autograph=False)
        self.xla = tf.function(run_epochs, jit_compile=True, autograph=False) if use_xla else None

    def __call__(self, shuffle_seed: tf.Tensor, *data: Any) -> Any:
        """Runs the loop with XLA when the model is compiled for it, else as a plain graph.

        Following ``model.jit_compile`` keeps the numbers those of ``model.fit``
        (Keras leaves XLA off on CPU-only machines) and avoids XLA's compilation
        cache, which grows by megabytes per trial and cannot be cleared in-process.
        """
        if self.xla is not None:
            try:
                return self.xla(shuffle_seed, *data)
            except _XLA_ERRORS as error:
                if "XLA" not in str(error) and "compil" not in str(error).lower():
                    raise
                # Nothing has run: XLA fails while compiling, before the first step.
                warnings.warn(
                    f"regsearch.fit: XLA could not compile this model, running as a plain graph ({type(error).__name__}).",
                    stacklevel=4,
                )
                self.xla = None
        return self.graph(shuffle_seed, *data)


def _loop_key(model: keras.Model, data: Any, **settings: Any) -> tuple:
    """What the traced loop depends on; objects are compared by identity."""
    shapes = tuple(
        (path, None if t is None else (tuple(t.shape), t.dtype.name)) for path, t in tree.flatten_with_path(data)
    )
    compiled = (model.optimizer, getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None),
                getattr(model, "_loss_tracker", None), *model.trainable_weights, *model.weights)
    return shapes, tuple(sorted(settings.items(), key=lambda item: item[0])), tuple(id(o) for o in compiled), compiled


def _compiled_loop(
    model: keras.Model,
    data: Any,
    val: Any | None,
    *,
    epochs: int,
    initial_epoch: int,
    batch_size: int,
    val_batch_size: int,
    shuffle: bool,
    rule: StoppingRule | None,
    patience: int,
) -> _CompiledLoop:
    """The model's cached loop for these settings, traced anew when anything it depends on changed."""
    use_xla = getattr(model, "jit_compile", True) is not False and all(
        getattr(layer, "supports_jit", True) for layer in model._flatten_layers()
    )
    key = _loop_key(model, {"train": data, "val": val}, epochs=epochs, initial_epoch=initial_epoch,
                    batch_size=batch_size, val_batch_size=val_batch_size, shuffle=shuffle, rule=rule, patience=patience, use_xla=use_xla)
    cached = getattr(model, "_regsearch_loop", None)
    if cached is not None and cached.key[:3] == key[:3] and all(a is b for a, b in zip(cached.key[3], key[3])):
        return cached

    train_logs = _StepLogs.of(model, "train_step", _slice(data, 0, batch_size))
    val_logs = None if val is None else _StepLogs.of(model, "test_step", _slice(val, 0, val_batch_size))
    layout = _layout(train_logs, val_logs)
    monitor = None if rule is None else layout.column(rule.monitor)
    state = _EarlyStoppingState(model, restore=rule is not None and rule.restore_best_weights)
    n_train, n_epochs = _rows(data), epochs - initial_epoch
    many_batches = n_train > batch_size

    def run_epochs(shuffle_seed: tf.Tensor, data: Any, *val: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        def body(epoch, logs, stop, diverged):
            model.reset_metrics()
            batches = data
            if shuffle and many_batches:
                # A single full batch needs no shuffle: the mean over it is order-free.
                order = tf.argsort(tf.random.stateless_uniform([n_train], seed=tf.stack([shuffle_seed, epoch])))
                batches = tree.map_structure(lambda t: tf.gather(t, order), data)
            trained = train_logs.of_epoch(model, _run_batches(model.train_step, batches, batch_size, train_logs))
            values = [trained[name] for name in train_logs.specs]
            if val:
                model.reset_metrics()
                tested = val_logs.of_epoch(model, _run_batches(model.test_step, val[0], val_batch_size, val_logs))
                values += [tested[name] for name in val_logs.specs]
            row = _row(values)
            logs = tf.tensor_scatter_nd_update(logs, [[epoch - initial_epoch]], [row])
            # Without a logged loss there is nothing to call divergence, as for TerminateOnNaN.
            diverged = tf.constant(False)
            if "loss" in trained:
                diverged = tf.logical_not(tf.reduce_all(tf.math.is_finite(tf.cast(trained["loss"], tf.float32))))
            stop = diverged
            if monitor is not None:
                stop = tf.logical_or(stop, _early_stopping_step(rule, patience, state, epoch, row[monitor]))
            return epoch + 1, logs, stop, diverged

        start = (tf.constant(initial_epoch), tf.zeros([n_epochs, layout.width], tf.float32), tf.constant(False),
                 tf.constant(False))
        end, logs, _, diverged = tf.while_loop(
            lambda epoch, logs, stop, diverged: tf.logical_and(epoch < epochs, tf.logical_not(stop)),
            body,
            start,
            maximum_iterations=n_epochs,
        )
        return end - initial_epoch, logs, diverged

    loop = _CompiledLoop(key, run_epochs, state, layout, use_xla)
    # Not Keras's tracked setattr: the loop is no layer state and must not be saved with the model.
    object.__setattr__(model, "_regsearch_loop", loop)
    return loop


def _to_tensor(array: np.ndarray) -> tf.Tensor:
    """Floats become Keras's float type, as ``model.fit``'s data adapter does."""
    if np.issubdtype(array.dtype, np.floating):
        return tf.convert_to_tensor(array, dtype=keras.config.floatx())
    return tf.convert_to_tensor(array)
