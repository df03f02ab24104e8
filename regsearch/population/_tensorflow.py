"""The TensorFlow backend: the model's own (stateful) ``train_step``, made pure by swapping member state in.

TensorFlow's Keras optimizers have no ``stateless_apply``; a step here
assigns the member's weights, optimizer and metric state to the model's
variables, calls ``model.train_step`` and reads them back, all inside one
``tf.function`` (XLA where it compiles). Members run one after another in a
``tf.while_loop``, so a stopped member costs nothing. A program traces each step
once, however many places it takes it (:func:`_traced_once`). In a long run each
core runs a share of the members (:data:`regsearch.population.THREADS`) on a
template of its own: a share writes its members into its template's variables
(and XLA holds them for a whole call), so shares of one template would collide
or run one after the other. The shares run one trace and one compiled program,
each reading its own template's variables (:class:`_Compiled`). A short run
keeps one share: copying a second template would cost more than the second
core saves.

A short run (fewer than ``XLA_MIN_STEPS`` planned batches per member, see
:mod:`regsearch.population`) runs as a plain graph whatever follows, built
without Grappler's rewrites (:func:`_graph_rewrites_skipped`): XLA's compile,
seconds on a CPU, and Grappler's, about half a second for a moons program,
would cost more than they save.

The program is compiled with XLA, whatever ``jit_compile`` Keras resolved
(``"auto"`` is ``False`` on a CPU, where XLA makes an epoch of the moons model
several times cheaper once compiled), except where XLA cannot or should not
run: a layer that does not support it, or random layers (dropout, noise) on a
CPU, unless the model was compiled with ``jit_compile=True``. XLA's
random-number kernels on the CPU made an epoch of the moons model with one
Dropout about 12x slower than the graph (12 ms against 1 ms per
member-epoch, ``benchmarks/RESULTS.md``). So does a model with convolutions
where there is no GPU: XLA's CPU convolutions made an epoch of a small digits
CNN about 3x slower than the graph's oneDNN kernels (``benchmarks/peers.py``).
A recurrent layer without dropout draws nothing and runs under XLA, whose CPU
recurrences beat the graph's (an LSTM's epoch about 2.5x faster). A model XLA fails to compile runs as
a plain graph, with a warning.

Tracing a train step registers a custom gradient in TensorFlow's global
registry whose closure keeps the traced graph alive for the life of the
process (keras-tuner #395/#873/#1031): every trace here releases what it
registered (:func:`_traced_graphs_released`), so a program dropped from the
cache frees its graph.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any, Callable

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from regsearch.population.loop import custom_step, epoch_logs

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
        self.xla = uses_xla(model)
        self.groups = (list(model.trainable_variables), list(model.non_trainable_variables),
                       list(model.optimizer.variables), list(model.metrics_variables))

    def default_mode(self) -> str:
        return "loop"

    @staticmethod
    def threads(cores: int, once: bool) -> int:
        """Each core, for a run long enough to pay back a template per share (:data:`regsearch.population.XLA_MIN_STEPS`)."""
        return 1 if once else cores

    def _swapped(self, state: Any, step: Callable[[Any], Any], groups: tuple[list, ...], batch: Any) -> tuple[Any, Any]:
        for variables, values in zip(groups, state):
            for variable, value in zip(variables, values):
                variable.assign(value)
        # Rows unknown to the graph, as in model.fit's batches (Keras reads the static batch size in places).
        batch = tf.nest.map_structure(lambda t: tf.compat.v1.placeholder_with_default(t, [None, *t.shape[1:]]), batch)
        logs = step(batch)
        if custom_step(self.model, step.__name__):
            logs = epoch_logs(logs, self.model.get_metrics_result)
        return logs, tuple([variable.value for variable in variables] for variables in groups)

    def _train(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return self._swapped(state, self.model.train_step, self.groups, batch)

    def _test(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return self._swapped(state, self.model.test_step, (self.groups[0], self.groups[1], self.groups[3]), batch)

    def train_step(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return _traced_once(self._train, state, batch)

    def test_step(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return _traced_once(self._test, state, batch)

    def log_specs(self, step: str, state: Any, batch: Any) -> dict[str, tuple[int, ...]]:
        from regsearch.population.loop import checked_logs

        untraced = {"train_step": self._train, "test_step": self._test}[step]  # a trace of its own, not _traced_once
        traced = tf.function(lambda s, b: untraced(s, b)[0], autograph=False)
        with _traced_graphs_released():
            logs = traced.get_concrete_function(state, batch).structured_outputs
        return {name: tuple(value.shape) for name, value in checked_logs(step, logs).items()}

    @staticmethod
    def permutation(seed: Any, epoch: Any, n: int) -> Any:
        # The sequential engine's own shuffle, so a member sees the batches a lone run sees.
        return tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int32), epoch])))

    #: No zero logs up front (:func:`regsearch.population.loop._batches`): tracing a step once more for their
    #: shapes would cost a graph's build, and a plain graph (no XLA) gains little from one step less.
    blank_logs = None

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
            if size == 1:  # a lone run (regsearch.fit): no loop over members to trace and compile
                member, chunk_rows = member_chunk(tf.nest.map_structure(lambda a: a[0], members), data, val,
                                                  metrics_init)
                return tf.nest.map_structure(lambda a, b: a if a.shape.num_elements() == 0 else b[None],
                                             members, member), chunk_rows[None]

            def body(k: Any, members: Any, rows: Any) -> Any:
                # One gather and one scatter a leaf (``a[k]`` and ``[[k]]`` cost Python-side packing at each).
                at = tf.reshape(k, [1, 1])
                member, chunk_rows = member_chunk(tf.nest.map_structure(lambda a: tf.gather(a, k), members), data,
                                                  val, metrics_init)
                members = tf.nest.map_structure(lambda a, b: _put(a, b, at), members, member)
                return k + 1, members, tf.tensor_scatter_nd_update(rows, at, chunk_rows[None])

            rows = tf.zeros([size, *rows_shape], tf.float32)
            _, members, rows = tf.while_loop(lambda k, *_: k < size, body, (tf.constant(0), members, rows))
            return members, rows

        def _put(a: Any, b: Any, at: Any) -> Any:
            # An empty leaf (a group without varying numbers) has nothing to write, and TF refuses to.
            return a if a.shape.num_elements() == 0 else tf.tensor_scatter_nd_update(a, at, b[None])

        return _Compiled(population, xla=self.xla and not once, rewrites=not once)

    def shared(self, program: "_Compiled", share_backend: Callable[[], "Backend"],
               compile_on: Callable[["Backend"], Callable[..., Any]]) -> Callable[..., Any]:
        """``program`` for one more share. A step writes the member's state into the template's variables, so a
        share needs a template of its own (``share_backend()``, an identical copy); it runs ``program``'s trace
        and compiled code on that template's variables. Where the copy's variables do not match one for one, or
        the trace reads a resource that is not one of its template's variables, the share compiles its own
        program instead (``compile_on``)."""
        other = share_backend()
        pairs = _variable_pairs(self.model, other.model)
        if pairs is None:
            return compile_on(other)
        return _OnTemplate(program, other.model, pairs, lambda: compile_on(other))


def _template_variables(model: keras.Model) -> list:
    """Every variable a step can read or write: the model's, its optimizer's and its metrics', each once."""
    seen: dict[int, Any] = {}
    for variable in (*model.variables, *model.optimizer.variables, *model.metrics_variables):
        seen.setdefault(id(variable), variable)
    return list(seen.values())


def _variable_pairs(model: keras.Model, copy: keras.Model) -> dict[int, Any] | None:
    """``id(handle)`` of each of ``model``'s variables -> the handle of ``copy``'s at the same place (their paths
    may differ by the numbers Keras appends to generated names); None where their shapes or types differ."""
    mine, theirs = _template_variables(model), _template_variables(copy)
    if [(tuple(v.shape), v.dtype) for v in mine] != [(tuple(v.shape), v.dtype) for v in theirs]:
        return None
    return {id(a.handle): b.handle for a, b in zip(mine, theirs)}


class _Compiled:
    """A population program: XLA where it compiles (else a plain graph, with a warning), traced on first call.

    Called with ``redirect`` (a share on another template, :meth:`Backend.shared`), the same trace runs on the other
    template's variables: each variable the trace captured is read at call time (``replace_capture_with_deferred_capture``,
    TensorFlow's call-time captures) from the calling thread's redirect. XLA's compiled program depends on the
    variables' shapes, not on which they are, so it is compiled once too.

    ``rewrites``: the plain graph is instantiated with Grappler's rewrites. A program run once per population
    (a short run) is instantiated without them (:func:`_graph_rewrites_skipped`).
    """

    def __init__(self, population: Callable[..., Any], xla: bool, rewrites: bool = True) -> None:
        self.graph = tf.function(population, autograph=False)
        self.jit = tf.function(population, jit_compile=True, autograph=False) if xla else None
        self.rewrites = rewrites

    @property
    def xla(self) -> bool:
        """Whether the program runs under XLA (tests, benchmarks)."""
        return self.jit is not None

    def __call__(self, *args: Any, redirect: dict[int, Any] | None = None) -> Any:
        while self.jit is not None:
            try:
                return _traced_alone(self.jit, args, redirect)
            except _XLA_ERRORS as error:
                if "XLA" not in str(error) and "compil" not in str(error).lower():
                    raise
                # Nothing has run: XLA fails while compiling, before the first step.
                warnings.warn(f"regsearch: XLA could not compile this model, running as a plain graph "
                              f"({type(error).__name__}).", stacklevel=4)
                self.jit = None
        return _traced_alone(self.graph, args, redirect, rewrites=self.rewrites)


class _OnTemplate:
    """A :class:`_Compiled` program run on another template's variables (or, where it cannot be, that template's
    own program)."""

    def __init__(self, program: _Compiled, template: keras.Model, redirect: dict[int, Any],
                 own: Callable[[], Callable[..., Any]]) -> None:
        self.program, self.template, self.redirect, self.own = program, template, redirect, own
        self.fallback: Callable[..., Any] | None = None

    @property
    def xla(self) -> bool:
        return (self.fallback or self.program).xla

    def __call__(self, *args: Any) -> Any:
        if self.fallback is None:
            try:
                return self.program(*args, redirect=self.redirect)
            except _NotRedirectable:
                self.fallback = self.own()
        return self.fallback(*args)


class _NotRedirectable(Exception):
    """A trace reads a resource that is not one of its template's variables: it cannot run on another template."""


#: Held while a program is traced: threads running shares of a population (:data:`regsearch.population.THREADS`)
#: trace one at a time, so that each releases only the gradients its own trace registered.
_TRACING = threading.Lock()
#: The calling thread's redirect: the ids of the first template's variable handles -> another template's.
_REDIRECT = threading.local()
#: Concrete functions whose captured variables are read at call time (True), or cannot be (False).
_DEFERRED: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


def _traced_alone(function: Any, args: tuple, redirect: dict[int, Any] | None = None, rewrites: bool = True) -> Any:
    """``function(*args)``, its trace (the first call's) taken under :data:`_TRACING`, its run outside it,
    reading its variables from ``redirect``'s template where given; without Grappler's rewrites unless
    ``rewrites``."""
    with _TRACING, _traced_graphs_released(), _retracing_notice_silenced():
        try:
            concrete = function.get_concrete_function(*args)
        finally:
            _STEPS.clear()
        if redirect is not None and not _captures_deferred(concrete, redirect):
            raise _NotRedirectable
    _REDIRECT.handles = redirect
    try:
        with contextlib.nullcontext() if rewrites else _graph_rewrites_skipped():
            return concrete(*args)
    finally:
        _REDIRECT.handles = None


@contextlib.contextmanager
def _graph_rewrites_skipped() -> Iterator[None]:
    """Functions this thread calls in the block are instantiated without Grappler's rewrites.

    Instantiating a plain graph runs Grappler over it (constant folding, arithmetic and layout rewrites, op
    fusion): about half a second for a population program of the moons model, more than its whole run when it
    runs once for a few epochs (``benchmarks/short_run.py``). The options are the calling thread's
    (``FunctionCallOptions``, whose configuration a function's call carries to its instantiation), with Grappler
    off; a function is instantiated once per configuration, so each call of such a program must pass the same.
    TensorFlow's eager context is private API, used here only (``tests/test_population.py`` checks it).
    """
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    eager = context.context()
    saved = eager.function_call_options
    config = config_pb2.ConfigProto.FromString(saved.config_proto_serialized)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    eager.function_call_options = context.FunctionCallOptions(executor_type=saved.executor_type, config_proto=config)
    try:
        yield
    finally:
        eager.function_call_options = saved


def _captures_deferred(concrete: Any, redirect: dict[int, Any]) -> bool:
    """Makes each variable ``concrete`` captured a call-time capture, read from the calling thread's redirect;
    False where it captured a resource that is not among ``redirect``'s (the function is then left as it was)."""
    if concrete not in _DEFERRED:
        resources = [c for c in concrete.captured_inputs if getattr(c, "dtype", None) == tf.resource]
        _DEFERRED[concrete] = all(id(handle) in redirect for handle in resources)
        if _DEFERRED[concrete]:
            for handle in resources:
                concrete.replace_capture_with_deferred_capture(
                    handle, functools.partial(_redirected, handle), spec=tf.TensorSpec([], tf.resource))
    return _DEFERRED[concrete]


def _redirected(handle: Any) -> Any:
    """The handle a call in this thread reads for ``handle``: its redirect's, else ``handle`` itself."""
    handles = getattr(_REDIRECT, "handles", None)
    return handle if handles is None else handles[id(handle)]


#: The steps traced in the programs being traced (under :data:`_TRACING`), by graph; emptied after each trace,
#: so that nothing keeps a traced graph alive.
_STEPS: dict[Any, dict[Any, Any]] = {}


def _traced_once(step: Callable[[Any, Any], Any], state: Any, batch: Any) -> Any:
    """``step(state, batch)``, traced once per program and called wherever the program takes a step.

    A program takes its step in up to three places (the first batch, the loop over full batches, the smaller
    last batch) and its validation step in as many: traced at each, a step's Python (a recurrent layer's, a
    gradient's) ran three times. A step reads its batch with an unknown number of rows (:meth:`Backend._swapped`),
    so one trace serves every batch size; XLA compiles the calls as the steps written out.
    """
    graph = tf.compat.v1.get_default_graph()
    if not getattr(graph, "building_function", False):
        return step(state, batch)
    while getattr(graph.outer_graph, "building_function", False):  # a loop's body: traced in the program itself
        graph = graph.outer_graph
    steps = _STEPS.setdefault(graph, {})
    if step not in steps:
        def spec(t: Any, rows: bool = False) -> tf.TensorSpec:
            return tf.TensorSpec([None, *t.shape[1:]] if rows else t.shape, t.dtype)

        with graph.as_default():
            steps[step] = tf.function(step, autograph=False).get_concrete_function(
                tf.nest.map_structure(spec, state), tf.nest.map_structure(lambda t: spec(t, rows=True), batch))
    return steps[step](state, batch)


def uses_xla(model: keras.Model) -> bool:
    """Whether the program compiles with XLA: see the module's docstring."""
    if not all(getattr(layer, "supports_jit", True) for layer in model._flatten_layers()):
        return False
    if model.jit_compile is True:
        return True
    # XLA's CPU random-number kernels and convolutions are slow: such models keep the plain graph there.
    layers = list(model._flatten_layers())
    random = any(_draws_random_numbers(layer) for layer in layers)
    convolution = any(isinstance(layer, _CONVOLUTIONS) for layer in layers)
    return not ((random or convolution) and not tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def _traced_graphs_released() -> Iterator[None]:
    """Unregisters the custom gradients traced inside, once the tracing is done with them.

    Tracing a train step registers a ``CustomGradient-N`` function in TensorFlow's
    global gradient registry (the optimizer's ``ReplicaContext.all_reduce`` is a
    ``tf.custom_gradient``, even without a distribution strategy), and its closure
    keeps the whole traced graph alive for the life of the process: about 2 MiB
    per trial on the moons model, the resident-memory growth of keras-tuner
    #395/#873/#1031, which ``clear_session`` and ``gc`` do not touch. The gradient
    is used while tracing only: nothing differentiates through a traced program
    again. A private registry, checked on TensorFlow 2.21: if TensorFlow renames
    it, this does nothing.
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


class _RetracingNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _retracing_notice_silenced() -> Iterator[None]:
    """Drops TensorFlow's "frequent retracing" notice while a program runs, and only that.

    TensorFlow counts traces per Python function, and every program is a new
    function from the same code: tracing one per structure is the design, not
    the accident the notice warns about.
    """
    logger = logging.getLogger("tensorflow")
    notice = _RetracingNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)

