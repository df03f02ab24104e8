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
with the member's state swapped in on TensorFlow. On a CPU each core trains a
share of the members (:data:`THREADS`). Where a checkpoint folder is
set (:mod:`.checkpoints`), a population writes its whole state every few
seconds of training and resumes from it when opened again.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
from keras import tree

from regsearch.population import checkpoints as _checkpoints
from regsearch.population import memory as _memory
from regsearch.population import progress as _progress
from regsearch.population import numbers as _numbers
from regsearch.population import stopping
from regsearch.population.loop import Layout, Settings, custom_step, member_chunk, member_scores

__all__ = ["Outcome", "Population", "Standing", "train_population", "open_populations", "group_by_structure",
           "seed_random_layers", "MODES"]

MODES = ("loop", "vmap")
#: Epochs per compiled call: the history buffer holds this many rows per member.
CHUNK = 1000
#: Steps (training and validation batches) a member's run must plan for its program to be compiled with XLA
#: on the TensorFlow backend. XLA's compile costs 2 to 4 s on a CPU and saves 0.05 (moons) to 0.12 ms (an LSTM)
#: a step (``benchmarks/RESULTS.md``): it pays back over some 25,000 steps of the program, which every member of
#: the population (and the next phase's) shares, so from about a dozen members at this many steps each.
#: Shorter runs (a test's few epochs, a quick look) run as a plain graph. JAX always compiles.
XLA_MIN_STEPS = 2000
#: Threads that train shares of a population's members side by side, where the backend allows it (JAX on a CPU;
#: TensorFlow in a long run, each share on a template of its own through the first share's program; a GPU takes one).
#: XLA runs a program on one core: the member loop is sequential and a small model's operations are too small
#: to split, so a second share on a second core about halves an epoch's wall time (``benchmarks/RESULTS.md``).
#: The cores this process may use.
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
    #: With ``evaluate``: inference-mode logs on ``"train"`` and ``"validation"`` rows (scalars only).
    scores: dict[str, dict[str, float]] | None = None


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
    return [_read(v.value) for v in variables]


def _read(value: Any) -> np.ndarray:
    # TensorFlow's variables read through .numpy(): numpy's copy protocol warns on the variables themselves.
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


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
    evaluate: bool = False,
    initial_epoch: int = 0,
) -> list[Outcome]:
    """Trains every model of one structure for ``epochs`` epochs, together; returns one Outcome per model.

    ``data`` and ``validation`` are packed as ``model.fit`` packs them
    (``(x, y)`` or ``(x, y, sample_weight)``) from numpy arrays. Every model
    follows ``early_stopping``'s rule with its own patience (``patiences``,
    default the callback's). ``mode`` is ``"loop"`` or ``"vmap"`` (JAX only);
    None picks ``"vmap"`` on a GPU and ``"loop"`` on a CPU. With ``evaluate``,
    each trained (or restored) model is also scored in inference mode on the
    training and the validation rows, as ``model.evaluate`` scores it
    (``Outcome.scores``), inside the same compiled machinery. Epochs are
    numbered from ``initial_epoch`` as in ``model.fit``.

    The compiled program is kept for the next population of the same
    structure, settings and data shapes (a later phase of a search, the
    next batch of a Bayesian search): it is traced and compiled once.
    More members than memory holds train in slices, one after another.

    Raises:
        ValueError: models of different structures, or a bad setting (named).
    """
    outcomes: list[Outcome] = []
    for population in open_populations(models, data, validation, epochs=epochs, batch_size=batch_size,
                                       validation_batch_size=validation_batch_size, shuffle=shuffle,
                                       early_stopping=early_stopping, patiences=patiences, seeds=seeds, mode=mode,
                                       evaluate=evaluate, initial_epoch=initial_epoch):
        population.advance()
        outcomes.extend(population.finish())
    return outcomes


def open_populations(models: Sequence[keras.Model], data: Any, validation: Any | None, *, epochs: int,
                     batch_size: int, seeds: Sequence[int | None], patiences: Sequence[int] | None = None,
                     **settings: Any) -> Iterator[Population]:
    """``train_population``'s members as :class:`Population` slices that memory holds, each opened when asked for.

    Arguments as :func:`train_population`'s. Raises ValueError as it does, before the first slice opens.
    """
    models = list(models)
    if not models:
        return iter(())
    if len(seeds) != len(models):
        raise ValueError(f"train_population: 'seeds' must give one seed per model ({len(models)}); got {len(seeds)}.")
    mode = settings.get("mode")
    if mode is not None and mode not in MODES:
        raise ValueError(f"train_population: 'mode' must be one of {', '.join(MODES)} or None; got {mode!r}.")
    if len({_numbers.structure_of(model) for model in models}) != 1:
        raise ValueError("train_population: every model must have one structure (group them with group_by_structure).")
    n_rows, n_val, train_batch, val_batch = _batch_sizes(data, validation, batch_size,
                                                         settings.get("validation_batch_size"))
    fit = _memory.members_that_fit(models[0], _memory.step_rows(max(train_batch, val_batch), n_rows, n_val),
                                   "train_population")
    patiences = list(patiences) if patiences is not None else [None] * len(models)
    return (Population(models[start:start + fit], data, validation, epochs=epochs, batch_size=batch_size,
                       seeds=list(seeds[start:start + fit]), patiences=patiences[start:start + fit], **settings)
            for start in range(0, len(models), fit))


class Population:
    """Members of one structure in training: advanced to an epoch, some dropped, then finished.

    :func:`train_population` advances every member to ``epochs`` at once; a
    search with rungs (:mod:`.rungs`) advances to each rung's budget, reads
    every member's :meth:`standing`, and drops the weakest, which never
    train again. A member carried on continues from where it stands: the
    same weights, optimizer state and early-stopping state.
    """

    def __init__(self, models: Sequence[keras.Model], data: Any, validation: Any | None, *, epochs: int,
                 batch_size: int, validation_batch_size: int | None = None, shuffle: bool = True,
                 early_stopping: keras.callbacks.EarlyStopping | None = None,
                 patiences: Sequence[int | None] | None = None, seeds: Sequence[int | None],
                 mode: str | None = None, evaluate: bool = False, initial_epoch: int = 0) -> None:
        self.models = models = list(models)
        self.epochs, self.initial_epoch, self.evaluate = int(epochs), int(initial_epoch), evaluate
        _, _, batch_size, val_batch_size = _batch_sizes(data, validation, batch_size, validation_batch_size)
        self.data = data = tree.map_structure(_to_backend, data)
        self.val = val = None if validation is None else tree.map_structure(_to_backend, validation)
        first_batch = tree.map_structure(lambda t: t[:batch_size], data)
        for model in models:
            _built_for_training(model, first_batch, whole=model is models[0])
        self.rule = rule = (None if early_stopping is None
                            else stopping.StoppingRule.from_callback(early_stopping, models[0]))
        default_patience = 0 if early_stopping is None else int(early_stopping.patience)
        patiences = [default_patience if p is None else int(p) for p in (patiences or [None] * len(models))]
        table = _numbers.Table([_numbers.numbers_of(model) for model in models])
        size = _padded(len(models))
        chunk = _chunk(epochs - initial_epoch)
        self.program = program = _program(
            models[0], _numbers.structure_of(models[0]), table.keys, data, val, first_batch, size=size, mode=mode,
            chunk=chunk, batch_size=batch_size, val_batch_size=val_batch_size, shuffle=bool(shuffle), rule=rule,
            long_run=planned_steps(data, val, epochs, batch_size, val_batch_size) >= XLA_MIN_STEPS)
        if rule is not None and program.settings.monitor is None:
            warnings.warn(f"Early stopping conditioned on metric `{rule.monitor}` which is not available. "
                          f"Available metrics are: {','.join(program.settings.layout.names)}", stacklevel=3)

        shuffle_seeds = [seed_random_layers(model, seed) for model, seed in zip(models, seeds)]
        self.restore = restore = rule is not None and rule.restore_best_weights
        padding = [models[0]] * (size - len(models))

        def stacked(pick: Any) -> Any:
            per_member = [pick(model) for model in models + padding]
            return tree.map_structure(lambda *leaves: _to_backend(np.stack(leaves)), *per_member)

        #: Members that may train on: padding never does, nor a dropped one.
        self.open = np.zeros(size, bool)
        self.open[: len(models)] = True
        rows = np.asarray(table.rows, np.float32).reshape(len(models), len(table))
        self.members = {
            "model": stacked(lambda m: (_values(m.trainable_variables), _values(m.non_trainable_variables),
                                        _values(m.optimizer.variables))),
            "stopping": stacked(lambda m: tree.map_structure(keras.ops.convert_to_numpy, stopping.initial_state(
                (_values(m.trainable_variables), _values(m.non_trainable_variables)) if restore else ([], [])))),
            "epoch": _to_backend(np.full(size, initial_epoch, np.int32)),
            "until": _to_backend(np.full(size, initial_epoch, np.int32)),
            "alive": _to_backend(np.zeros(size, bool)),
            "ended": _to_backend(np.zeros(size, bool)),
            "diverged": _to_backend(np.zeros(size, bool)),
            "done": _to_backend(np.zeros(size, np.int32)),
            "numbers": _to_backend(np.concatenate([rows, np.repeat(rows[:1], len(padding), axis=0)])),
            "patience": _to_backend(np.asarray(patiences + patiences[:1] * len(padding), np.int32)),
            "seed": _to_backend(np.asarray(shuffle_seeds + shuffle_seeds[:1] * len(padding), np.int32)),
        }
        self.rows: list[list[np.ndarray]] = [[] for _ in models]
        #: Where this population's checkpoints go (:mod:`.checkpoints`), if anywhere; member-epochs taken from one.
        self.checkpoints, self.resumed = _checkpoints.current(), 0
        if self.checkpoints is not None:
            initial = tree.map_structure(keras.ops.convert_to_numpy, self.members)
            given = [np.asarray(keras.ops.convert_to_numpy(t)) for t in tree.flatten((data, val))]
            self.checkpoint_path = self.checkpoints.path(_checkpoints.key_of(
                "population", keras.backend.backend(), keras.config.floatx(), _numbers.structure_of(models[0]),
                table.keys, len(models), tree.flatten(initial), given, self.epochs, self.initial_epoch, batch_size,
                val_batch_size, bool(shuffle), rule, mode or program.backend.default_mode(), program.settings.chunk))
            self._resume(initial)
        self._written = time.monotonic()
        self._seconds_per_epoch: float | None = None  # per member-epoch, in the last compiled call
        self._unsaved = False  # trained since the last checkpoint

    def advance(self, until: int | None = None) -> None:
        """Trains every open member until its next epoch is ``until`` (at most ``epochs``), or it stops or diverges.

        With checkpoints, a compiled call pauses the members sooner where the
        next checkpoint falls due first (at the member-epochs per second of the
        last call; the first call trains one epoch), so that one lands every
        interval whatever the chunk; a pause changes nothing of the result
        (:mod:`.rungs` pauses too).
        """
        until = self.epochs if until is None else min(int(until), self.epochs)
        while True:
            epoch = keras.ops.convert_to_numpy(self.members["epoch"])
            ended = keras.ops.convert_to_numpy(self.members["ended"])
            alive = self.open & ~ended & (epoch < until)
            if not alive.any():
                return
            self.members = {**self.members, "until": _to_backend(self._pause(epoch, alive, until)),
                            "alive": _to_backend(alive)}
            start = time.monotonic()
            self.members, chunk_rows = self.program.train_members(self.members, alive, self.data, self.val)
            done = keras.ops.convert_to_numpy(self.members["done"])
            chunk_rows = keras.ops.convert_to_numpy(chunk_rows)
            self._seconds_per_epoch = (time.monotonic() - start) / max(int(done.sum()), 1)
            for k in range(len(self.models)):
                self.rows[k].append(chunk_rows[k, : done[k]])
            self._unsaved = True
            if self.checkpoints is not None and time.monotonic() - self._written >= self.checkpoints.every:
                self.checkpoint()
            self._report()

    def _pause(self, epoch: np.ndarray, alive: np.ndarray, until: int) -> np.ndarray:
        """The epoch each member pauses before in the next call: ``until``, or sooner for a checkpoint due first."""
        pause = np.full(len(epoch), until, np.int32)
        if self.checkpoints is None:
            return pause
        if self._seconds_per_epoch is None:  # the first call measures the pace: one epoch
            return np.minimum(pause, epoch + 1).astype(np.int32)
        due = max(self.checkpoints.every - (time.monotonic() - self._written), 0.0)
        epochs = max(1, min(until, int(due / (max(self._seconds_per_epoch, 1e-9) * int(alive.sum())))))
        return np.minimum(pause, epoch.astype(np.int64) + epochs).astype(np.int32)

    def checkpoint(self) -> None:
        """Writes every member's state, history and whether it is open, atomically (see :mod:`.checkpoints`)."""
        if self.checkpoints is None:
            raise RuntimeError("Population.checkpoint: no checkpoint folder is set (regsearch.population.checkpoints).")
        layout = self.program.settings.layout
        state = tree.flatten(tree.map_structure(keras.ops.convert_to_numpy, self.members))
        arrays = {f"m{i}": np.asarray(leaf) for i, leaf in enumerate(state)}
        arrays.update({f"r{k}": _joined(rows, layout) for k, rows in enumerate(self.rows)})
        self.checkpoints.save_arrays(self.checkpoint_path, {**arrays, "open": self.open})
        self._written, self._unsaved = time.monotonic(), False

    def _resume(self, initial: dict[str, Any]) -> None:
        """Takes the state of this population's checkpoint, if one was written and it is whole."""
        found = self.checkpoints.load_arrays(self.checkpoint_path)
        if found is None:
            return
        leaves = tree.flatten(initial)
        saved = [found.get(f"m{i}") for i in range(len(leaves))]
        rows = [found.get(f"r{k}") for k in range(len(self.models))]
        width = self.program.settings.layout.width
        if (len(found) != len(leaves) + len(rows) + 1
                or any(s is None or s.shape != np.shape(a) or s.dtype != np.asarray(a).dtype
                       for s, a in zip(saved, leaves))
                or any(r is None or r.ndim != 2 or r.shape[1] != width for r in rows)
                or found.get("open", np.zeros(0)).shape != self.open.shape):
            _checkpoints.damaged(self.checkpoint_path, "its arrays are not this population's")
            return
        self.members = tree.pack_sequence_as(self.members, [keras.ops.convert_to_tensor(s) for s in saved])
        self.rows = [[r] for r in rows]
        self.open = found["open"].astype(bool)
        epoch = keras.ops.convert_to_numpy(self.members["epoch"])[: len(self.models)]
        self.resumed = int((epoch - self.initial_epoch).sum())
        self.checkpoints.resumed += self.resumed

    def _report(self) -> None:
        """Tells a listener (:mod:`.progress`) how far the members are."""
        n = len(self.models)
        epoch = keras.ops.convert_to_numpy(self.members["epoch"])[:n].astype(np.int64)
        ended = keras.ops.convert_to_numpy(self.members["ended"])[:n]
        alive = self.open[:n] & ~ended & (epoch < self.epochs)  # dropped at a rung, stopped, or done: trains no more
        budget = max(1, self.epochs - self.initial_epoch)
        trained = epoch - self.initial_epoch
        runs_done = float(np.where(alive, trained / budget, 1.0).sum())
        _progress.report(_progress.PopulationProgress(members=n, alive=int(alive.sum()),
                                                      epochs_done=int(trained.sum()), epochs=budget,
                                                      runs_done=runs_done, resumed=self.resumed))

    def drop(self, members: Sequence[int]) -> None:
        """Members that never train again; they finish as they stand now."""
        self.open[list(members)] = False

    def standing(self) -> list[Standing]:
        """Each member's history so far, best epoch so far (as :class:`Outcome` counts it) and whether it ended."""
        members = tree.map_structure(keras.ops.convert_to_numpy,
                                     {key: self.members[key] for key in ("stopping", "epoch", "ended")})
        layout = self.program.settings.layout
        return [Standing(history=layout.history(_joined(self.rows[k], layout)),
                         epoch=int(members["epoch"][k]),
                         best_epoch=_best_epoch(tree.map_structure(lambda a: a[k], members["stopping"]), self.rule,
                                                int(members["epoch"][k])),
                         ended=bool(members["ended"][k]))
                for k in range(len(self.models))]

    def finish(self) -> list[Outcome]:
        """Writes each member's final (or best) state into its model; one Outcome per member.

        With checkpoints, the trained state is checkpointed first: a kill while
        the members are scored or their runs recorded trains nothing again.
        """
        if self.checkpoints is not None and self._unsaved:
            self.checkpoint()
        final = tree.map_structure(keras.ops.convert_to_numpy, self.members)
        weights = _trained_weights(final, self.restore)
        program = self.program
        scores = (program.scores(weights, final["numbers"], self.data, self.val) if self.evaluate
                  else [None] * len(final["epoch"]))
        if not any(program is kept for kept in _PROGRAMS.values()):
            program.keep.close()
        return [_finish(k, model, final, weights, self.rule, program.settings.layout, self.rows[k], scores[k],
                        self.initial_epoch)
                for k, model in enumerate(self.models)]


@dataclass(frozen=True)
class Standing:
    """Where a member stands between two :meth:`Population.advance` calls."""

    history: dict[str, list[Any]]
    #: The next epoch it would train.
    epoch: int
    best_epoch: int
    #: Stopped early or diverged: it trains no more.
    ended: bool


def _built_for_training(model: keras.Model, first_batch: Any, whole: bool) -> None:
    """Builds what training ``model`` as a member reads; nothing is done for what is built already.

    ``whole``: as ``model.fit`` builds it (layers, compiled loss and metrics, whose directions ``mode="auto"``
    early stopping reads, optimizer). Otherwise a model whose layers are built gets its optimizer's slots only:
    the program runs on a template's loss and metrics, and a member's symbolic pass through its model, loss
    and metrics (about 60 ms on the moons model) would build objects that nothing reads.
    """
    if whole or not all(layer.built for layer in model._flatten_layers()):
        model._symbolic_build(data_batch=first_batch)
    elif model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def _batch_sizes(data: Any, validation: Any | None, batch_size: int,
                 validation_batch_size: int | None) -> tuple[int, int, int, int]:
    """Training and validation rows, and the batch sizes a step uses on them (at most all the rows; 0 without)."""
    n_rows = int(tree.flatten(data)[0].shape[0])
    n_val = 0 if validation is None else int(tree.flatten(validation)[0].shape[0])
    val_batch = 0 if validation is None else min(validation_batch_size or min(batch_size, n_rows), n_val)
    return n_rows, n_val, min(batch_size, n_rows), val_batch


def _joined(rows: list[np.ndarray], layout: Layout) -> np.ndarray:
    return np.concatenate(rows) if rows else np.zeros((0, layout.width), np.float32)


def _best_epoch(es: dict[str, Any], rule: stopping.StoppingRule | None, end: int) -> int:
    """The epoch whose weights a member ends with: early stopping's best, else its last."""
    has_best = rule is not None and bool(es["has_best"])
    return int(es["best_epoch"]) if has_best else max(end - 1, 0)


def _chunk(epochs: int) -> int:
    """Epochs per compiled call: ``epochs`` rounded up to a power of two, at most ``CHUNK``.

    Rounding lets runs of nearby lengths (a Hyperband bracket's rounds, a
    user's repeated ``regsearch.fit``) share a program; a member pauses at its
    own last epoch whatever the chunk.
    """
    return max(1, min(CHUNK, 1 << max(0, int(epochs) - 1).bit_length()))


def _padded(size: int) -> int:
    """Members rounded up to a multiple of 8, so that populations of nearby sizes share a compiled program.

    Padding members are never alive: in ``"loop"`` mode they cost nothing.
    """
    return size if size == 1 else -(-size // 8) * 8


def _trained_weights(members: dict[str, Any], restore: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each member's trainable and non-trainable values at the end: its best epoch's where restored."""
    trainable, non_trainable, _ = members["model"]
    if not restore:
        return list(trainable), list(non_trainable)
    es = members["stopping"]
    best_trainable, best_non_trainable = es["best_weights"]
    keep = np.asarray(es["has_best_weights"], bool)

    def pick(best: np.ndarray, last: np.ndarray) -> np.ndarray:
        return np.where(keep.reshape(-1, *[1] * (last.ndim - 1)), best, last)

    return ([pick(b, t) for b, t in zip(best_trainable, trainable)],
            [pick(b, t) for b, t in zip(best_non_trainable, non_trainable)])


@dataclass
class _Program:
    """A compiled population program and the private template model it was traced on."""

    template: keras.Model
    backend: Any
    settings: Settings
    metrics_init: Any
    #: One training program per share of the members, each compiled for ``size // shards`` of them (one program
    #: traced and compiled once, run on a template of each share's own where the backend's steps write to one);
    #: :meth:`train_members` runs them side by side.
    trains: tuple[Callable[..., Any], ...]
    evaluate: Callable[..., Any]
    eval_layout: Layout
    keep: contextlib.ExitStack

    @property
    def shards(self) -> int:
        return len(self.trains)

    def train_members(self, members: Any, alive: np.ndarray, data: Any, val: Any) -> tuple[Any, Any]:
        """``(members, rows)`` after one compiled call of :attr:`trains` per share, the shares side by side.

        The members that will train (``alive``) are dealt out in turn, so each
        share holds as many of them as the others, give or take one; what each
        member computes does not depend on its share.
        """
        if self.shards == 1:
            return self.trains[0](members, data, val, self.metrics_init)
        order = balanced_order(alive, self.shards)
        # On the host: an operation of the backend's own would be compiled for every shape of state on first use.
        members = tree.map_structure(keras.ops.convert_to_numpy, members)

        def share(train: Callable[..., Any], rows: np.ndarray) -> Any:
            picked = tree.map_structure(lambda a: keras.ops.convert_to_tensor(a[rows]), members)
            return tree.map_structure(keras.ops.convert_to_numpy, train(picked, data, val, self.metrics_init))

        results = list(_pool(self.shards).map(share, self.trains, np.split(order, self.shards)))
        back = np.argsort(order)
        return tree.map_structure(lambda *parts: keras.ops.convert_to_tensor(np.concatenate(parts)[back]), *results)

    def scores(self, weights: Any, numbers: np.ndarray, data: Any, val: Any) -> list[dict[str, dict[str, float]]]:
        """Each member's inference-mode logs on the training (``"train"``) and validation (``"validation"``) rows.

        Without validation rows ``"validation"`` is empty.
        """
        members = {"weights": tree.map_structure(_to_backend, weights), "numbers": _to_backend(numbers)}
        _, rows = self.evaluate(members, data, val, self.metrics_init)
        rows = keras.ops.convert_to_numpy(rows)
        names, shapes = self.eval_layout.names, self.eval_layout.shapes
        scalar = [(name, offset) for name, shape, offset in zip(names, shapes, _offsets(shapes)) if shape in ((), (1,))]
        width = self.eval_layout.width
        parts = (("train", 0), ("validation", width)) if val is not None else (("train", 0),)
        return [{"validation": {}, **{part: {name: float(row[base + offset]) for name, offset in scalar}
                                      for part, base in parts}} for row in rows]


def balanced_order(alive: np.ndarray, shards: int) -> np.ndarray:
    """A permutation of the members whose ``shards`` equal consecutive parts each hold a turn's share of ``alive``.

    The alive members are dealt out one per share in turn, and the others fill
    the shares up to ``len(alive) // shards`` each.
    """
    per = len(alive) // shards
    dealt = [list(np.flatnonzero(alive)[s::shards]) for s in range(shards)]
    idle = iter(np.flatnonzero(~np.asarray(alive, bool)))
    return np.asarray([k for rows in dealt for k in rows + [next(idle) for _ in range(per - len(rows))]], np.int32)


def _shards(size: int, backend: Any, once: bool) -> int:
    """The most threads (at most :data:`THREADS`, as the backend allows) that split ``size`` members evenly."""
    shards = max(1, min(backend.threads(THREADS, once), size))
    while size % shards:
        shards -= 1
    return shards


_POOL: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's threads for ``workers`` shares side by side, made once per size."""
    if workers not in _POOL:
        _POOL[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="regsearch-population")
    return _POOL[workers]


def _offsets(shapes: Sequence[tuple[int, ...]]) -> list[int]:
    return list(np.cumsum([0, *[math.prod(s) for s in shapes[:-1]]])) if shapes else []


#: Compiled programs by structure, settings and shapes, newest last; at most ``KEEP`` are kept.
_PROGRAMS: OrderedDict[tuple, _Program] = OrderedDict()
KEEP = 8


def planned_steps(data: Any, val: Any | None, epochs: int, batch_size: int, val_batch_size: int) -> int:
    """The training and validation batches one member's run of ``epochs`` epochs plans (from epoch 0, so that a
    resumed run decides as the uninterrupted one did)."""
    n_rows = int(tree.flatten(data)[0].shape[0])
    n_val = 0 if val is None else int(tree.flatten(val)[0].shape[0])
    per_epoch = math.ceil(n_rows / batch_size) + (math.ceil(n_val / val_batch_size) if n_val else 0)
    return int(epochs) * per_epoch


def _program(model: keras.Model, structure: str, keys: tuple[str, ...], data: Any, val: Any | None, first_batch: Any, *, size: int,
             mode: str | None, chunk: int, batch_size: int, val_batch_size: int, shuffle: bool,
             rule: stopping.StoppingRule | None, long_run: bool = True) -> _Program:
    """The compiled program for this structure, settings and data shapes: kept from before, or traced now.

    ``long_run``: the members' runs are long enough for XLA's compile to pay back (:data:`XLA_MIN_STEPS`);
    otherwise the TensorFlow backend runs the program as a plain graph, unless the model was compiled with
    ``jit_compile=True``.
    """
    def spec(rows: Any) -> Any:
        # Flattened with paths: data may be dicts (input names), which a key cannot hold.
        return None if rows is None else tuple((path, tuple(t.shape), str(t.dtype))
                                               for path, t in tree.flatten_with_path(rows))

    specs = (spec(data), spec(val))
    key = (keras.backend.backend(), structure, keys, specs, size, mode, chunk, batch_size,
           val_batch_size, shuffle, rule, long_run, THREADS)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    template = _private_copy(model, first_batch)
    kept = template is not None
    if not kept:
        template = model
        template._symbolic_build(data_batch=first_batch)  # its metrics' variables
    module = _backend_module()
    keep = contextlib.ExitStack()
    backend = _bound_backend(template, keys, module, keep)
    mode = mode or backend.default_mode()
    metrics_init = [keras.ops.convert_to_tensor(v) for v in _values(template.metrics_variables)]
    weights = (_values(template.trainable_variables), _values(template.non_trainable_variables))
    val_batch = None if val is None else tree.map_structure(lambda t: t[:val_batch_size], val)
    train_specs, test_specs, eval_specs = _log_specs(template, backend, weights, metrics_init, first_batch, val_batch)
    specs = list(train_specs.items()) + [(f"val_{n}", s) for n, s in test_specs.items()]
    layout = Layout(tuple(n for n, _ in specs), tuple(s for _, s in specs))
    settings = Settings(chunk=chunk, batch_size=batch_size, val_batch_size=val_batch_size,
                        shuffle=shuffle, rule=rule, layout=layout,
                        monitor=None if rule is None else layout.column(rule.monitor))

    def one_score(member: Any, data: Any, val: Any, metrics_init: Any) -> Any:
        return member_scores(backend, member, data, val, metrics_init, _memory.EVALUATION_BATCH)

    eval_layout = Layout(tuple(eval_specs), tuple(eval_specs.values()))
    once = not (long_run or template.jit_compile is True)
    shards = _shards(size, backend, once) if kept else 1
    train = _training_program(settings, backend, size // shards, mode, once)

    def share() -> Callable[..., Any]:
        return backend.shared(train, lambda: _share_backend(model, first_batch, keys, module, keep),
                              lambda other: _training_program(settings, other, size // shards, mode, once))

    program = _Program(
        template=template, backend=backend, settings=settings, metrics_init=metrics_init,
        trains=(train, *[share() for _ in range(1, shards)]),
        evaluate=backend.compile(one_score, size, mode, (2 * eval_layout.width,), once=True),
        eval_layout=eval_layout, keep=keep,
    )
    if not kept:  # traced on a member's own model: used once, then its objects go back
        return program
    _PROGRAMS[key] = program
    while len(_PROGRAMS) > KEEP:
        _PROGRAMS.popitem(last=False)[1].keep.close()
    return program


def _bound_backend(template: keras.Model, keys: tuple[str, ...], module: Any, keep: contextlib.ExitStack) -> Any:
    """The backend's steps on ``template``, which reads the numbers in ``keys`` from a row for ``keep``'s life."""
    set_row = keep.enter_context(_numbers.bound(template, keys, module.dropout))
    backend = module.Backend(template, set_row)
    template.reset_metrics()
    set_row(np.zeros(len(keys), np.float32))
    return backend


def _share_backend(model: keras.Model, first_batch: Any, keys: tuple[str, ...], module: Any,
                   keep: contextlib.ExitStack) -> Any:
    """One more share's backend, on a template of its own: a backend whose step writes the member's state into
    the template's variables (TensorFlow) cannot run two shares through one template at once."""
    template = _private_copy(model, first_batch)
    if template is None:  # the first share's copy was made: Keras rebuilds a model from its config the same way
        raise RuntimeError("population: a second private copy of the model could not be made for a share.")
    return _bound_backend(template, keys, module, keep)


def _training_program(settings: Settings, backend: Any, size: int, mode: str, once: bool) -> Callable[..., Any]:
    """``backend``'s compiled training chunk for ``size`` members (:func:`.loop.member_chunk`)."""

    def one_member(member: Any, data: Any, val: Any, metrics_init: Any) -> Any:
        return member_chunk(settings, backend, member, data, val, metrics_init)

    return backend.compile(one_member, size, mode, (settings.chunk, settings.layout.width), once=once)


def _log_specs(template: keras.Model, backend: Any, weights: tuple, metrics_init: Any, first_batch: Any,
               val_batch: Any | None) -> tuple[dict[str, tuple[int, ...]], ...]:
    """The shapes of the logs of a training step, a validation step and a scoring step (empty without validation).

    Keras's own ``train_step`` and ``test_step`` both return ``compute_metrics(...)``: the same names and shapes,
    whatever the batch, so one traced ``test_step`` gives all three (tracing a training step builds its gradient
    graph, the costliest trace of a program). A model that overrides a step or ``compute_metrics`` has each
    traced on its own batch.
    """
    test_state = (*weights, metrics_init)
    if custom_step(template, "train_step") or custom_step(template, "test_step"):
        train = backend.log_specs("train_step", (*weights, _values(template.optimizer.variables), metrics_init),
                                  first_batch)
        test = {} if val_batch is None else backend.log_specs("test_step", test_state, val_batch)
        return train, test, backend.log_specs("test_step", test_state, first_batch)
    logs = backend.log_specs("test_step", test_state, first_batch)
    return logs, ({} if val_batch is None else logs), logs


def _private_copy(model: keras.Model, first_batch: Any) -> keras.Model | None:
    """A compiled clone of ``model`` for a kept program to trace on, so members' own models stay untouched.

    None where Keras cannot rebuild the model and its compile settings from their configs (a subclassed model
    without ``get_config``, a loss that is a lambda) or the copy is not the same model (another class, another
    structure): the program then traces on the member's own model and is not kept.
    """
    try:
        template = keras.models.clone_model(model)
        template.compile_from_config(model.get_compile_config())
        template._symbolic_build(data_batch=first_batch)
    except Exception:  # noqa: BLE001 - Keras raises several types for what it cannot rebuild from config
        return None
    pairs = zip([model, *model._flatten_layers(include_self=False)],
                [template, *template._flatten_layers(include_self=False)])
    if (len(model.weights) != len(template.weights) or any(type(a) is not type(b) for a, b in pairs)
            or len(model.optimizer.variables) != len(template.optimizer.variables)
            or _numbers.structure_of(template) != _numbers.structure_of(model)):
        return None
    return template


def _finish(k: int, model: keras.Model, members: dict[str, Any], weights: tuple[list, list],
            rule: stopping.StoppingRule | None, layout: Layout, rows: list[np.ndarray],
            scores: dict[str, dict[str, float]] | None, initial_epoch: int) -> Outcome:
    """Writes member ``k``'s final (or best) state into its model and returns its Outcome."""
    es = tree.map_structure(lambda a: a[k], members["stopping"])
    trainable, non_trainable = ([a[k] for a in part] for part in weights)
    optimizer = [a[k] for a in members["model"][2]]
    for variables, values in ((model.trainable_variables, trainable), (model.non_trainable_variables, non_trainable),
                              (model.optimizer.variables, optimizer)):
        for variable, value in zip(variables, values):
            variable.assign(value)
    model.optimizer.finalize_variable_values(model.trainable_weights)
    end = int(members["epoch"][k])
    return Outcome(
        history=layout.history(_joined(rows, layout)),
        epochs_run=end - initial_epoch,
        stopped_epoch=int(es["stopped_epoch"]),
        best_epoch=_best_epoch(es, rule, end),
        best=float(es["best"]) if rule is not None and bool(es["has_best"]) else None,
        wait=int(es["wait"]),
        diverged=bool(members["diverged"][k]),
        scores=scores,
    )
