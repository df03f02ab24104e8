"""Population training: many members (configurations x seeds) of one structure in one compiled program.

Each member is a built, compiled Keras model holding its own initial weights,
optimizer state (the learning rate is an optimizer variable) and numbers
(penalty strengths, noise rates, constraint bounds; :mod:`.numbers`). Members
with one structure (:func:`group_by_structure`) share a program traced once;
each keeps its own data order and noise (from its seed), its early-stopping
state and patience, and its divergence flag, and stops on its own. Epochs run
in chunks, so nothing sized by ``epochs`` is allocated up front; at the end each
member's model holds its trained (or best) weights, as after ``regsearch.fit``.

The program is written once (:mod:`.loop`, in ``keras.ops``) over a backend's
pure steps: the model's own stateless ``train_step`` on JAX, its stateful one
with the member's state swapped in on TensorFlow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import keras
import numpy as np
from keras import tree

from regsearch.population import numbers as _numbers
from regsearch.population import stopping
from regsearch.population.loop import Layout, Settings, member_chunk

__all__ = ["Outcome", "train_population", "group_by_structure", "seed_random_layers", "MODES"]

MODES = ("loop", "vmap")
#: Epochs per compiled call: the history buffer holds this many rows per member.
CHUNK = 1000


@dataclass(frozen=True)
class Outcome:
    """What training one member produced."""

    history: dict[str, list[Any]]
    epochs_run: int
    stopped_epoch: int
    best_epoch: int
    best: float | None
    wait: int
    diverged: bool


def group_by_structure(models: Sequence[keras.Model]) -> list[list[int]]:
    """Indices of ``models`` grouped by :func:`numbers.structure_of`, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for index, model in enumerate(models):
        groups.setdefault(_numbers.structure_of(model), []).append(index)
    return list(groups.values())


def seed_random_layers(model: keras.Model, seed: int | None) -> int:
    """Seeds the model's dropout-like layers from ``seed`` and returns its shuffle seed."""
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    generators = [g for layer in model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]
    streams = np.random.SeedSequence(seed).generate_state(len(generators) + 1, dtype=np.uint32) % (2**31 - 1)
    for generator, stream in zip(generators, streams[1:]):
        state = generator.state
        state.assign(np.array([stream, 0], dtype=keras.backend.standardize_dtype(state.dtype)))
    return int(streams[0])


def _backend_module() -> Any:
    """The backend's module, chosen once by name as Keras chooses its trainer."""
    name = keras.backend.backend()
    if name == "jax":
        from regsearch.population import _jax

        return _jax
    if name == "tensorflow":
        from regsearch.population import _tensorflow

        return _tensorflow
    raise ValueError(f"population: the Keras backend '{name}' is not supported; use 'tensorflow' or 'jax'.")


def _to_backend(array: np.ndarray) -> Any:
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(keras.config.floatx())
    return keras.ops.convert_to_tensor(array)


def _values(variables: Sequence[Any]) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v.value) for v in variables]


def train_population(
    models: Sequence[keras.Model],
    data: Any,
    validation: Any | None,
    *,
    epochs: int,
    batch_size: int,
    validation_batch_size: int | None = None,
    shuffle: bool = True,
    early_stopping: keras.callbacks.EarlyStopping | None = None,
    patiences: Sequence[int] | None = None,
    seeds: Sequence[int | None],
    mode: str | None = None,
) -> list[Outcome]:
    """Trains every model of one structure for ``epochs`` epochs, together; returns one Outcome per model.

    ``data`` and ``validation`` are packed as ``model.fit`` packs them
    (``(x, y)`` or ``(x, y, sample_weight)``) from numpy arrays. Every model
    follows ``early_stopping``'s rule with its own patience (``patiences``,
    default the callback's). ``mode`` is ``"loop"`` or ``"vmap"`` (JAX only);
    None picks ``"vmap"`` on a GPU and ``"loop"`` on a CPU.

    Raises:
        ValueError: models of different structures, or a bad setting (named).
    """
    models = list(models)
    if not models:
        return []
    if len(seeds) != len(models):
        raise ValueError(f"train_population: 'seeds' must give one seed per model ({len(models)}); got {len(seeds)}.")
    if mode is not None and mode not in MODES:
        raise ValueError(f"train_population: 'mode' must be one of {', '.join(MODES)} or None; got {mode!r}.")
    if len(group_by_structure(models)) != 1:
        raise ValueError("train_population: every model must have one structure (group them with group_by_structure).")
    template = models[0]
    data = tree.map_structure(_to_backend, data)
    val = None if validation is None else tree.map_structure(_to_backend, validation)
    n_rows = int(tree.flatten(data)[0].shape[0])
    batch_size = min(batch_size, n_rows)
    val_batch_size = 0 if val is None else min(validation_batch_size or batch_size, int(tree.flatten(val)[0].shape[0]))
    first_batch = tree.map_structure(lambda t: t[:batch_size], data)
    for model in models:
        model._symbolic_build(data_batch=first_batch)  # metrics and optimizer variables, as model.fit builds them
        model.optimizer.build(model.trainable_variables)
    rule = None if early_stopping is None else stopping.StoppingRule.from_callback(early_stopping, template)
    default_patience = 0 if early_stopping is None else int(early_stopping.patience)
    patiences = [default_patience if p is None else int(p) for p in (patiences or [None] * len(models))]

    shuffle_seeds = [seed_random_layers(model, seed) for model, seed in zip(models, seeds)]
    table = _numbers.Table([_numbers.numbers_of(model) for model in models])
    template.reset_metrics()
    metrics_init = [keras.ops.convert_to_tensor(v) for v in _values(template.metrics_variables)]

    def stacked(pick: Any) -> Any:
        per_member = [pick(model) for model in models]
        return tree.map_structure(lambda *leaves: _to_backend(np.stack(leaves)), *per_member)

    model_state = stacked(lambda m: (_values(m.trainable_variables), _values(m.non_trainable_variables),
                                     _values(m.optimizer.variables)))
    first_weights = tree.map_structure(lambda a: a[0], model_state)
    es_state = stacked(lambda m: tree.map_structure(keras.ops.convert_to_numpy, stopping.initial_state(
        (_values(m.trainable_variables), _values(m.non_trainable_variables))
        if rule is not None and rule.restore_best_weights else ([], []))))
    members = {
        "model": model_state,
        "stopping": es_state,
        "epoch": _to_backend(np.zeros(len(models), np.int32)),
        "alive": _to_backend(np.full(len(models), epochs > 0)),
        "diverged": _to_backend(np.zeros(len(models), bool)),
        "done": _to_backend(np.zeros(len(models), np.int32)),
        "numbers": _to_backend(np.asarray(table.rows, np.float32).reshape(len(models), len(table))),
        "patience": _to_backend(np.asarray(patiences, np.int32)),
        "seed": _to_backend(np.asarray(shuffle_seeds, np.int32)),
    }

    module = _backend_module()
    with _numbers.bound(template, table.keys, module.dropout) as set_row:
        backend = module.Backend(template, set_row)
        mode = mode or backend.default_mode()
        set_row(np.asarray(table.rows[0], np.float32))
        one = (*first_weights, metrics_init)
        train_specs = backend.log_specs("train_step", one, first_batch)
        val_specs = {} if val is None else backend.log_specs(
            "test_step", (one[0], one[1], metrics_init), tree.map_structure(lambda t: t[:val_batch_size], val))
        specs = list(train_specs.items()) + [(f"val_{n}", s) for n, s in val_specs.items()]
        layout = Layout(tuple(n for n, _ in specs), tuple(s for _, s in specs))
        monitor = None if rule is None else layout.column(rule.monitor)
        if rule is not None and monitor is None:
            warnings.warn(f"Early stopping conditioned on metric `{rule.monitor}` which is not available. "
                          f"Available metrics are: {','.join(layout.names)}", stacklevel=2)
        chunk = max(1, min(CHUNK, epochs))
        settings = Settings(epochs=epochs, chunk=chunk, batch_size=batch_size, val_batch_size=val_batch_size,
                            shuffle=bool(shuffle), rule=rule, layout=layout, monitor=monitor)

        def one_member(member: Any, data: Any, val: Any, metrics_init: Any) -> Any:
            return member_chunk(settings, backend, member, data, val, metrics_init)

        program = backend.compile(one_member, len(models), mode, (chunk, layout.width))
        histories: list[list[np.ndarray]] = [[] for _ in models]
        while bool(np.any(keras.ops.convert_to_numpy(members["alive"]))):
            members, rows = program(members, data, val, metrics_init)
            done = keras.ops.convert_to_numpy(members["done"])
            rows = keras.ops.convert_to_numpy(rows)
            for k in range(len(models)):
                histories[k].append(rows[k, : done[k]])

    return [_finish(k, model, members, rule, layout, histories[k]) for k, model in enumerate(models)]


def _finish(k: int, model: keras.Model, members: dict[str, Any], rule: stopping.StoppingRule | None,
            layout: Layout, rows: list[np.ndarray]) -> Outcome:
    """Writes member ``k``'s final (or best) state into its model and returns its Outcome."""
    member = tree.map_structure(lambda a: keras.ops.convert_to_numpy(a)[k], members)
    es = member["stopping"]
    trainable, non_trainable, optimizer = member["model"]
    if rule is not None and rule.restore_best_weights and bool(es["has_best_weights"]):
        trainable, non_trainable = es["best_weights"]
    for variables, values in ((model.trainable_variables, trainable), (model.non_trainable_variables, non_trainable),
                              (model.optimizer.variables, optimizer)):
        for variable, value in zip(variables, values):
            variable.assign(value)
    model.optimizer.finalize_variable_values(model.trainable_weights)
    epochs_run = int(member["epoch"])
    has_best = rule is not None and bool(es["has_best"])
    history = np.concatenate(rows) if rows else np.zeros((0, layout.width), np.float32)
    return Outcome(
        history=layout.history(history),
        epochs_run=epochs_run,
        stopped_epoch=int(es["stopped_epoch"]),
        best_epoch=int(es["best_epoch"]) if has_best else max(epochs_run - 1, 0),
        best=float(es["best"]) if has_best else None,
        wait=int(es["wait"]),
        diverged=bool(member["diverged"]),
    )
