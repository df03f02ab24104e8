"""The compiled epoch loop behind :func:`regsearch.fit` (TensorFlow backend only).

Everything ``model.fit`` does between epochs happens here inside one
``tf.function``: metric resets, per-epoch shuffling, the minibatch loop over
the model's own ``train_step``, validation over ``test_step``, the
``EarlyStopping`` bookkeeping (copied decision for decision from Keras),
keeping the best weights, and stopping on a non-finite loss.
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
from tensorflow.python.framework import ops as tf_ops

# XLA reports an op it cannot compile with one of these; anything else is a real error.
_XLA_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError)


VALIDATION_BATCH_ROWS = 8192


@dataclass(frozen=True)
class Outcome:
    """What one compiled training run produced."""

    history: dict[str, list[float]]
    epochs_run: int
    stopped_epoch: int
    best_epoch: int
    best: float | None
    wait: int
    diverged: bool


@dataclass(frozen=True)
class _EarlyStoppingRule:
    """The decisions of a ``keras.callbacks.EarlyStopping``, as plain values."""

    monitor: str
    minimize: bool
    min_delta: float  # signed as Keras uses it: negative when minimizing
    patience: int
    baseline: float | None
    start_from_epoch: int
    restore_best_weights: bool

    @classmethod
    def from_callback(cls, callback: keras.callbacks.EarlyStopping, model: keras.Model) -> _EarlyStoppingRule:
        callback.set_model(model)
        if callback.monitor_op is None:
            # Keras resolves mode="auto" (and flips min_delta's sign) lazily, once.
            callback._set_monitor_op()
        return cls(
            monitor=callback.monitor,
            minimize=callback.monitor_op is keras.ops.less,
            min_delta=float(callback.min_delta),
            patience=int(callback.patience),
            baseline=None if callback.baseline is None else float(callback.baseline),
            start_from_epoch=int(callback.start_from_epoch),
            restore_best_weights=bool(callback.restore_best_weights),
        )


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
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation_data: tuple[np.ndarray, np.ndarray] | None,
    epochs: int,
    batch_size: int,
    shuffle: bool,
    early_stopping: keras.callbacks.EarlyStopping | None,
    seed: int | None,
) -> Outcome:
    """Runs up to ``epochs`` epochs in one compiled call; see :func:`regsearch.fit`."""
    x, y = _to_tensor(x), _to_tensor(y)
    val = None if validation_data is None else (_to_tensor(validation_data[0]), _to_tensor(validation_data[1]))
    batch_size = min(batch_size, int(x.shape[0]))
    model._symbolic_build(data_batch=(x[:batch_size], y[:batch_size], None))
    # Built metrics let mode="auto" find a metric's direction, as in model.fit.
    rule = None if early_stopping is None else _EarlyStoppingRule.from_callback(early_stopping, model)

    names = list(model.get_metrics_result())
    log_names = names + ([f"val_{name}" for name in names] if val is not None else [])
    if rule is not None and rule.monitor not in log_names:
        warnings.warn(
            f"Early stopping conditioned on metric `{rule.monitor}` which is not available. "
            f"Available metrics are: {','.join(log_names)}",
            stacklevel=3,
        )
        rule = None
    loop = _compiled_loop(model, x, y, val, epochs=epochs, batch_size=batch_size, shuffle=shuffle, rule=rule,
                          names=names, log_names=log_names)
    state = loop.state
    state.reset()
    shuffle_seed = _seed_random_layers(model, seed)
    data = (x, y) if val is None else (x, y, val[0], val[1])
    with _gradient_registrations_released(), _retracing_notice_silenced():
        epochs_run, logs, diverged = loop(shuffle_seed, *data)

    if isinstance(model.optimizer, keras.optimizers.Optimizer):
        model.optimizer.finalize_variable_values(model.trainable_weights)
    if rule is not None and rule.restore_best_weights and bool(state.has_best_weights.numpy()):
        state.restore_weights()

    epochs_run = int(epochs_run.numpy())
    values = logs.numpy()[:epochs_run]
    history = {name: [float(v) for v in values[:, i]] for i, name in enumerate(log_names)}
    has_best = rule is not None and bool(state.has_best.numpy())
    return Outcome(
        history=history,
        epochs_run=epochs_run,
        stopped_epoch=int(state.stopped_epoch.numpy()),
        best_epoch=int(state.best_epoch.numpy()) if has_best else max(epochs_run - 1, 0),
        best=float(state.best.numpy()) if has_best else None,
        wait=int(state.wait.numpy()),
        diverged=bool(diverged.numpy()),
    )


def _early_stopping_step(rule: _EarlyStoppingRule, state: _EarlyStoppingState, epoch: tf.Tensor, current: tf.Tensor) -> tf.Tensor:
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
            stop = tf.logical_and(state.wait.value() >= rule.patience, epoch > 0)
            state.stopped_epoch.assign(tf.where(stop, epoch, state.stopped_epoch.value()))
            return stop

        better = tf.logical_or(tf.logical_not(state.has_best), is_improvement(current, state.best.value()))
        return tf.cond(better, improved, not_improved)

    return tf.cond(epoch >= rule.start_from_epoch, monitored, lambda: tf.constant(False))


def _run_batches(step: Callable[[Any], Any], x: tf.Tensor, y: tf.Tensor, batch_size: int) -> None:
    """Calls ``step`` on consecutive minibatches, the last one possibly smaller."""
    n_full, remainder = divmod(int(x.shape[0]), batch_size)
    if n_full <= 2:
        # Few batches: unrolled, which XLA compiles into straight-line code.
        for i in range(n_full):
            step((x[i * batch_size : (i + 1) * batch_size], y[i * batch_size : (i + 1) * batch_size]))
    else:
        x_batches = tf.reshape(x[: n_full * batch_size], [n_full, batch_size, *x.shape[1:]])
        y_batches = tf.reshape(y[: n_full * batch_size], [n_full, batch_size, *y.shape[1:]])

        def body(i: tf.Tensor) -> tf.Tensor:
            step((x_batches[i], y_batches[i]))
            return i + 1

        tf.while_loop(lambda i: i < n_full, body, [tf.constant(0)])
    if remainder:
        step((x[n_full * batch_size :], y[n_full * batch_size :]))


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
    is baked into the graph (shapes, epochs, batch size, early-stopping
    settings, the compiled loss, metrics and optimizer) makes up ``key``.
    """

    def __init__(self, key: tuple, run_epochs: Callable[..., Any], state: _EarlyStoppingState, use_xla: bool) -> None:
        self.key, self.state, self.use_xla = key, state, use_xla
        self.graph = tf.function(run_epochs, autograph=False)
        self.xla = tf.function(run_epochs, jit_compile=True, autograph=False) if use_xla else None

    def __call__(self, shuffle_seed: tf.Tensor, *data: tf.Tensor) -> Any:
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


def _loop_key(model: keras.Model, data: list[tf.Tensor], **settings: Any) -> tuple:
    """What the traced loop depends on; objects are compared by identity."""
    shapes = tuple((tuple(t.shape), t.dtype.name) for t in data)
    compiled = (model.optimizer, getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None),
                getattr(model, "_loss_tracker", None), *model.trainable_weights, *model.weights)
    return shapes, tuple(sorted(settings.items(), key=lambda item: item[0])), tuple(id(o) for o in compiled), compiled


def _compiled_loop(
    model: keras.Model,
    x: tf.Tensor,
    y: tf.Tensor,
    val: tuple[tf.Tensor, tf.Tensor] | None,
    *,
    epochs: int,
    batch_size: int,
    shuffle: bool,
    rule: _EarlyStoppingRule | None,
    names: list[str],
    log_names: list[str],
) -> _CompiledLoop:
    """The model's cached loop for these settings, traced anew when anything it depends on changed."""
    use_xla = getattr(model, "jit_compile", True) is not False and all(
        getattr(layer, "supports_jit", True) for layer in model._flatten_layers()
    )
    data = [x, y, *(val or ())]
    key = _loop_key(model, data, epochs=epochs, batch_size=batch_size, shuffle=shuffle, rule=rule, use_xla=use_xla)
    cached = getattr(model, "_regsearch_loop", None)
    if cached is not None and cached.key[:3] == key[:3] and all(a is b for a, b in zip(cached.key[3], key[3])):
        return cached

    monitor_index = None if rule is None else log_names.index(rule.monitor)
    # Validation metrics are size-weighted means over batches, so one large batch
    # gives Keras's numbers (to float rounding) in a fraction of the steps.
    val_batch_size = 0 if val is None else max(batch_size, min(int(val[0].shape[0]), VALIDATION_BATCH_ROWS))
    state = _EarlyStoppingState(model, restore=rule is not None and rule.restore_best_weights)
    n_train = int(x.shape[0])
    many_batches = n_train > batch_size

    def run_epochs(shuffle_seed: tf.Tensor, x: tf.Tensor, y: tf.Tensor, *val: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        def body(epoch, logs, stop, diverged):
            model.reset_metrics()
            if shuffle and many_batches:
                # A single full batch needs no shuffle: the mean over it is order-free.
                order = tf.argsort(tf.random.stateless_uniform([n_train], seed=tf.stack([shuffle_seed, epoch])))
                xs, ys = tf.gather(x, order), tf.gather(y, order)
            else:
                xs, ys = x, y
            _run_batches(model.train_step, xs, ys, batch_size)
            train_logs = model.get_metrics_result()
            row = [train_logs[name] for name in names]
            if val:
                model.reset_metrics()
                _run_batches(model.test_step, val[0], val[1], val_batch_size)
                val_logs = model.get_metrics_result()
                row += [val_logs[name] for name in names]
            row = tf.stack([tf.cast(value, tf.float32) for value in row])
            logs = tf.tensor_scatter_nd_update(logs, [[epoch]], [row])
            diverged = tf.logical_not(tf.math.is_finite(tf.cast(train_logs["loss"], tf.float32)))
            stop = diverged
            if rule is not None:
                stop = tf.logical_or(stop, _early_stopping_step(rule, state, epoch, row[monitor_index]))
            return epoch + 1, logs, stop, diverged

        start = (tf.constant(0), tf.zeros([epochs, len(log_names)], tf.float32), tf.constant(False), tf.constant(False))
        epochs_run, logs, _, diverged = tf.while_loop(
            lambda epoch, logs, stop, diverged: tf.logical_and(epoch < epochs, tf.logical_not(stop)),
            body,
            start,
            maximum_iterations=epochs,
        )
        return epochs_run, logs, diverged

    loop = _CompiledLoop(key, run_epochs, state, use_xla)
    # Not Keras's tracked setattr: the loop is no layer state and must not be saved with the model.
    object.__setattr__(model, "_regsearch_loop", loop)
    return loop


def _seed_random_layers(model: keras.Model, seed: int | None) -> tf.Tensor:
    """Seeds dropout-like layers and returns the shuffle seed."""
    if seed is None:
        return tf.constant(np.random.randint(0, 2**31 - 1), tf.int32)
    generators = [g for layer in model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]
    streams = np.random.SeedSequence(seed).generate_state(len(generators) + 1, dtype=np.uint32) % (2**31 - 1)
    for generator, stream in zip(generators, streams[1:]):
        state = generator.state
        state.assign(np.array([stream, 0], dtype=keras.backend.standardize_dtype(state.dtype)))
    return tf.constant(int(streams[0]), tf.int32)


def _to_tensor(array: np.ndarray) -> tf.Tensor:
    """Floats become Keras's float type, as ``model.fit``'s data adapter does."""
    if np.issubdtype(array.dtype, np.floating):
        return tf.convert_to_tensor(array, dtype=keras.config.floatx())
    return tf.convert_to_tensor(array)
