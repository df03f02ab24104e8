"""What every regularization HyperModel shares: the space, compiling, and ``run``.

A subclass says how to build its network from a resolved configuration
(``_network``); this class turns constructor arguments into Keras Tuner
hyperparameters, compiles the model, trains it with :func:`regsearch.fit`,
evaluates the restored model and reports the metrics Keras Tuner scores.
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from regsearch.engine import fit as engine_fit
from regsearch.engine import split_validation
from regsearch.errors import SettingError, one_of
from regsearch.forward import inference_batches
from regsearch.outcomes import RowScores
from regsearch.population.memory import EVALUATION_BATCH
from regsearch.population.rungs import Rungs, RungScore
from regsearch.rewrite import regularized
from regsearch.space import (
    Constraint,
    Dropout,
    Placement,
    Regularizer,
    Values,
    as_choices,
    as_numbers,
    declare_value,
    make_dropout,
)
from regsearch.sparsity import activation_sparsity

TASKS = ("binary", "multiclass", "regression")
OPTIMIZERS = (
    "adam",
    "adamw",
    "sgd",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adamax",
    "nadam",
    "ftrl",
    "lion",
)


@dataclass
class RunResult:
    """One training run of one trial.

    Attributes:
        metrics: ``loss``, ``val_loss`` (and ``accuracy``, ``val_accuracy``) at
            the best epoch as the engine logged them, which Keras Tuner scores;
            ``train_loss``, ``test_loss`` (and ``train_accuracy``,
            ``test_accuracy``) of the restored model in inference mode;
            ``best_epoch``, ``epochs_run``, ``diverged`` (0.0 or 1.0),
            ``mean_activation``, ``zero_fraction``. NaN where a diverged run
            has no number.
        history: The engine's per-epoch history.
        diverged: True if the loss went NaN or infinite and training stopped.
        rungs: With rungs (:mod:`regsearch.population.rungs`), the run's score at
            each rung it reached; the last says where it stopped.
        rows: Each row's outcome, per set of rows (``"val"``, ``"test"``); the tuners fill it.
    """

    metrics: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)
    diverged: bool = False
    rungs: list[RungScore] = field(default_factory=list)
    #: Each row's outcome on the rows of ``val_*`` and ``test_*`` (:mod:`regsearch.outcomes`), where recorded.
    rows: dict[str, RowScores] = field(default_factory=dict)


class _Unset:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"


#: An argument not given: tells "no space given" apart from a value equal to the default.
UNSET = _Unset()


class RegularizedHyperModel(kt.HyperModel):
    """Base class: a network whose regularization is searched.

    Subclasses set ``supported_targets``, ``supports_before`` and
    ``regularized_layer_name`` and implement ``_network(config)``.

    Args:
        task: ``"binary"`` (sigmoid, binary cross-entropy, accuracy),
            ``"multiclass"`` (softmax, sparse categorical cross-entropy,
            accuracy) or ``"regression"`` (linear, mse).
        classes: Number of classes; required for ``"multiclass"``.
        regularizer: The penalty to search. Given no space at all (no
            ``regularizer``, ``constraint``, ``dropout``, ``patience``,
            ``optimizer`` or ``learning_rate``), it is ``Regularizer("l2")``:
            an L2 penalty on the kernels, its strength drawn from
            ``LogRange(1e-6, 1e-1)``; ``Regularizer("none")`` searches no penalty.
        placement: Where activity regularization goes: ``"after"``,
            ``"before"``, a list of both, or a ``Placement``.
        constraint: A weight constraint; None means none.
        dropout: Noise layers; None means none.
        optimizer: An optimizer name, or a list of names (searched); default ``"adam"``.
        learning_rate: A number, a list, ``Decades``, ``FineGrid`` or ``LogRange``; default 1e-3.
        patience: Early-stopping patience, an int or a list (searched); ``"none"``
            in the list means a run without early stopping;
            None leaves early stopping to the ``early_stopping`` argument of ``run``.
        layers: Names or glob patterns of the layers that carry the regularization
            (and the hidden noise after them), among ``regularizable_layers()``;
            None: every one.
        jit_compile: Passed to ``model.compile``: ``"auto"`` (Keras's choice: XLA
            where there is a GPU), ``True`` or ``False``. With XLA, ``regsearch.fit``
            runs an epoch of the moons model about six times faster once
            compiled, but TensorFlow keeps every compiled program for the life
            of the process (benchmarks/RESULTS.md).
        name: The HyperModel's name.
        tunable: Keras Tuner's flag.

    Raises:
        SettingError: For any argument regsearch cannot use.
    """

    supported_targets: tuple[str, ...] = ("kernel", "bias", "activity")
    supported_constraint_targets: tuple[str, ...] = ("kernel", "bias")
    supports_before: bool = True
    #: The layer whose output sparsity is measured: the first hidden layer, after its activation.
    regularized_layer_name: str = "hidden_1"

    def __init__(
        self,
        *,
        task: str | None = "binary",
        classes: int | None = None,
        regularizer: Regularizer | None = None,
        placement: str | Sequence[str] | Placement = "after",
        constraint: Constraint | None = None,
        dropout: Dropout | None = None,
        optimizer: str | Sequence[str] | None | _Unset = UNSET,
        learning_rate: Values | None | _Unset = UNSET,
        patience: int | Sequence[int | str] | None = None,
        layers: str | Sequence[str] | None = None,
        jit_compile: bool | str = "auto",
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        if regularizer is None and all(
            piece is None or piece is UNSET for piece in (constraint, dropout, patience, optimizer, learning_rate)
        ):
            # No space given: search the L2 strength (as Regularize does), on a scale stock tuners never exhaust.
            regularizer = Regularizer("l2")
        optimizer = "adam" if optimizer is UNSET else optimizer
        learning_rate = 1e-3 if learning_rate is UNSET else learning_rate
        if jit_compile not in (True, False, "auto"):
            raise SettingError("jit_compile", "true, false or 'auto'", jit_compile, type(self).__name__)
        self.jit_compile = jit_compile
        self.layers: Any = layers  # checked by the subclass once it knows its layers (_check_layers)
        where = type(self).__name__
        if task is not None and task not in TASKS:
            raise SettingError("task", one_of(TASKS), task, where)
        self.task = task
        if task == "multiclass" and (
            not isinstance(classes, int) or isinstance(classes, bool) or classes < 2
        ):
            raise SettingError("classes", "an integer >= 2 for task 'multiclass'", classes, where)
        self.classes = classes
        self.regularizer = _piece(regularizer, Regularizer, "regularizer", where) or Regularizer(
            "none"
        )
        unsupported = self.regularizer.target_parts() - set(self.supported_targets)
        if unsupported:
            raise SettingError(
                "regularizer target", one_of(self.supported_targets), min(unsupported), where
            )
        self.placement = placement if isinstance(placement, Placement) else Placement(placement)
        self._has_activity = "activity" in self.regularizer.target_parts()
        if len(self.placement.values) > 1 and not self._has_activity:
            raise SettingError(
                "placement",
                "a single value unless the regularizer targets 'activity'",
                list(self.placement.values),
                where,
            )
        if not self.supports_before and "before" in self.placement.values and self._has_activity:
            raise SettingError("placement", one_of(("after",)), "before", where)
        self.constraint = _piece(constraint, Constraint, "constraint", where) or Constraint("none")
        unsupported = set(self.constraint.targets) - set(self.supported_constraint_targets)
        if self.constraint.constrains and unsupported:
            raise SettingError(
                "constraint targets",
                one_of(self.supported_constraint_targets),
                min(unsupported),
                where,
            )
        self.dropout = _piece(dropout, Dropout, "dropout", where) or Dropout("none")
        # None: not part of the space (Regularize keeps the model's own optimizer).
        self.optimizers = None if optimizer is None else as_choices(optimizer, "optimizer", OPTIMIZERS, where)
        self.learning_rates = (
            None if learning_rate is None else as_numbers(learning_rate, "learning_rate", where, positive=True)
        )
        self.patiences: tuple[int | str, ...] | None = None
        if patience is not None:
            values = (patience,) if isinstance(patience, (int, str)) else patience
            if (
                not isinstance(values, Sequence)
                or not values
                or any(
                    p != "none" and (not isinstance(p, int) or isinstance(p, bool) or p < 0)
                    for p in values
                )
            ):
                raise SettingError(
                    "patience", "an integer >= 0, 'none', or a list of them", patience, where
                )
            # Keras Tuner's Choice holds one type: with "none" among them, all become strings.
            strings = "none" in values
            self.patiences = tuple(str(p) if strings else p for p in values)

    # --- the space -------------------------------------------------------

    def describe(self, hp: kt.HyperParameters) -> dict[str, str | float | int | None]:
        """The flat configuration of this trial (the ``param_*`` columns of result tables).

        Declares the hyperparameters in ``hp`` if they are not there yet, so
        it also works on a fresh ``kt.HyperParameters()`` (giving the defaults).
        """
        config = self.regularizer.resolve(hp)
        if self._has_activity:
            placement = self.placement.resolve(hp)["placement"]
            config["placement"] = placement if "activity" in config["target"].split("+") else None
        config.update(self.constraint.resolve(hp))
        config.update(self.dropout.resolve(hp))
        if self.optimizers is not None:
            config["optimizer"] = declare_value(hp, "optimizer", self.optimizers)
        if self.learning_rates is not None:
            config["learning_rate"] = declare_value(hp, "learning_rate", self.learning_rates)
        if self.patiences is not None:
            patience_value = declare_value(hp, "patience", self.patiences)
            config["patience"] = None if patience_value == "none" else int(patience_value)
        # Keras Tuner may hand back NumPy scalars; tables and JSON want plain Python values.
        return {key: _plain(value) for key, value in config.items()}

    def searched(self) -> bool:
        """True if this HyperModel declares at least one hyperparameter."""
        hp = kt.HyperParameters()
        self.describe(hp)
        return bool(hp.space)

    # --- building --------------------------------------------------------

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """Builds and compiles the network for this trial's hyperparameters."""
        config = self.describe(hp)
        model = self._network(config)
        model.compile(
            optimizer=make_optimizer(config["optimizer"], config["learning_rate"]),
            **task_compile_settings(self.task),
            jit_compile=self.jit_compile,
        )
        return model

    def _network(self, config: dict[str, Any]) -> keras.Model:
        raise NotImplementedError

    def _output(self, h: Any) -> Any:
        if self.task == "binary":
            return keras.layers.Dense(1, activation="sigmoid", name="output")(h)
        if self.task == "multiclass":
            return keras.layers.Dense(self.classes, activation="softmax", name="output")(h)
        return keras.layers.Dense(1, name="output")(h)

    def _regularized(
        self, layer: type, h: Any, config: dict[str, Any], name: str, activation: str, **args: Any
    ) -> Any:
        """One layer carrying the configuration (if ``layers`` chooses it), through the rewriter's machinery.

        With activity placed ``before``: a linear layer, then an Activation named
        ``name``. The ``before`` structure is built even when this trial's kind
        is none, so that the model is what ``describe`` says (it computes the same function).
        """
        plain = layer(activation=activation, name=name, **args)
        if not self._chosen(name):
            return plain(h)
        for part in regularized(plain, config, self.constraint.targets):
            h = part(h)
        return h

    def _chosen(self, name: str) -> bool:
        """True if ``layers`` (names or glob patterns) picks this layer; every one when not given."""
        return self.layers is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.layers)

    def regularizable_layers(self) -> tuple[str, ...]:
        """The names of the layers this HyperModel regularizes (those ``layers`` chooses from)."""
        raise NotImplementedError

    def _check_layers(self, layers: str | Sequence[str] | None) -> tuple[str, ...] | None:
        if layers is None:
            return None
        patterns = (layers,) if isinstance(layers, str) else layers
        names = self.regularizable_layers()
        where = type(self).__name__
        if not isinstance(patterns, Sequence) or not patterns or not all(isinstance(p, str) for p in patterns):
            raise SettingError("layers", f"a list of names or glob patterns among {', '.join(names)}", layers, where)
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                raise SettingError("layers", f"names or glob patterns matching {one_of(names)}", pattern, where)
        return tuple(patterns)

    def _noise(self, h: Any, config: dict[str, Any], place: str, name: str, after: str | None = None) -> Any:
        """Adds the dropout layer if this trial puts noise at ``place`` ("input", or "hidden" after a chosen layer)."""
        if after is not None and not self._chosen(after):
            return h
        if config["dropout_kind"] != "none" and config["dropout_where"] in (place, "both"):
            return make_dropout(config, name)(h)
        return h

    # --- training --------------------------------------------------------

    def run(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        x: Any = None,
        y: Any = None,
        *,
        epochs: int | None = None,
        batch_size: int | None = 32,
        early_stopping: keras.callbacks.EarlyStopping | None = None,
        seed: int | None = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        **fit_options: Any,
    ) -> RunResult:
        """Trains ``model`` with :func:`regsearch.fit`, evaluates it, and leaves Keras Tuner's checkpoint.

        Takes ``model.fit``'s arguments (``validation_data`` or
        ``validation_split``, ``class_weight``, ``sample_weight``, ``shuffle``,
        ``initial_epoch``, ...) with their meaning there; ``epochs`` defaults
        to ``model.fit``'s 1, with a warning. Seeding the weights
        (``keras.utils.set_random_seed`` before ``build``) is the caller's job;
        ``seed`` makes the training itself reproducible. An ``EarlyStopping``
        in ``callbacks`` is used as ``early_stopping``; other callbacks act per
        epoch (:func:`regsearch.fit` then trains through ``model.fit``), except
        Keras Tuner's own (``SaveBestEpoch``, ``TunerCallback``), which are shown
        the best epoch once, with the restored model and its final metrics.

        Returns:
            A ``RunResult``; a diverged run returns one too (with NaNs), it does not raise.

        Raises:
            SettingError: No validation rows, early stopping given twice, or an
                argument ``model.fit`` does not take.
        """
        where = type(self).__name__
        plan = self._plan(hp, x, y, epochs=epochs, early_stopping=early_stopping, callbacks=callbacks,
                          fit_options=fit_options, where=where)
        history = engine_fit(
            model,
            x,
            y,
            epochs=plan.epochs,
            batch_size=batch_size,
            early_stopping=plan.early_stopping,
            seed=seed,
            callbacks=plan.users,
            **fit_options,
        )
        return self._concluded(model, history.history, bool(history.diverged), int(history.best_epoch), plan,
                               batch_size, int(fit_options.get("initial_epoch", 0)))

    def _plan(self, hp: kt.HyperParameters, x: Any, y: Any, *, epochs: int | None,
              early_stopping: keras.callbacks.EarlyStopping | None,
              callbacks: Sequence[keras.callbacks.Callback] | None, fit_options: dict[str, Any], where: str) -> _Plan:
        """Checks ``run``'s arguments and sorts its callbacks; the trial's patience replaces early stopping's."""
        for option in fit_options:
            if option not in FIT_OPTIONS:
                raise SettingError(option, f"an argument of model.fit regsearch takes: {one_of(FIT_OPTIONS)}",
                                   option, where)
        if epochs is None:
            warnings.warn(f"{where}: no 'epochs' given; training 1 epoch, model.fit's default.", stacklevel=3)
            epochs = 1
        callbacks = list(callbacks or [])
        found = [cb for cb in callbacks if isinstance(cb, keras.callbacks.EarlyStopping)]
        if len(found) + (early_stopping is not None) > 1:
            raise SettingError(
                "early_stopping",
                "given once (argument or one EarlyStopping callback)",
                len(found) + 1,
                where,
            )
        early_stopping = early_stopping or (found[0] if found else None)
        tuners_own = [cb for cb in callbacks if isinstance(cb, _tuner_callbacks())]
        users = [cb for cb in callbacks if cb not in tuners_own and not isinstance(cb, keras.callbacks.EarlyStopping)]
        config = self.describe(hp)
        if "patience" in config:
            early_stopping = (
                None
                if config["patience"] is None
                else _with_patience(early_stopping, config["patience"])
            )
        train_rows, validation_rows = _evaluation_rows(x, y, fit_options, where)
        return _Plan(epochs, early_stopping, tuners_own, users, train_rows, validation_rows)

    def _concluded(self, model: keras.Model, history: dict[str, list[Any]], diverged: bool, best_epoch: int,
                   plan: _Plan, batch_size: int | None, first_epoch: int,
                   scores: dict[str, dict[str, float]] | None = None) -> RunResult:
        """The run's metrics at the best epoch, train and test evaluation, sparsity; shows Keras Tuner's callbacks.

        ``scores`` are the evaluation's logs (``"train"``, ``"validation"``) where training computed them already.
        """
        logged = {key: _loggable(values) for key, values in history.items()}
        epochs_run = len(logged.get("loss", []))
        metrics = {key: _at(values, best_epoch - first_epoch) for key, values in logged.items()
                   if all(isinstance(v, float) for v in values)}

        if scores is None:
            train, test = evaluate_rows(model, *plan.train_rows), evaluate_rows(model, *plan.validation_rows)
        else:
            train, test = scores["train"], scores["validation"]
        for prefix, scores in (("train", train), ("test", test)):
            for key, value in scores.items():
                metrics[f"{prefix}_{key}"] = value
        metrics.update(
            best_epoch=float(best_epoch), epochs_run=float(epochs_run), diverged=float(diverged)
        )
        metrics.update(
            activation_sparsity(
                model, self.regularized_layer_name, plan.validation_rows[0], batch_size=max(batch_size or 32, 1024)
            )
        )
        _drive(plan.tuners_own, model, best_epoch, metrics)
        return RunResult(metrics=metrics, history=logged, diverged=diverged)

    def population_reason(self, fit_options: dict[str, Any], callbacks: Sequence[Any] | None) -> str | None:
        """Why these ``run`` arguments need the sequential engine; None when a population can train them."""
        for option in ("class_weight", "sample_weight", "steps_per_epoch", "validation_steps", "initial_epoch"):
            if fit_options.get(option):
                return f"'{option}'"
        if fit_options.get("validation_freq", 1) != 1:
            return "'validation_freq'"
        if any(not isinstance(cb, (*_tuner_callbacks(), keras.callbacks.EarlyStopping)) for cb in callbacks or []):
            return "callbacks that act every epoch"
        return None

    def run_population(
        self,
        runs: Sequence[tuple[kt.HyperParameters, keras.Model, int, Sequence[keras.callbacks.Callback]]],
        x: Any = None,
        y: Any = None,
        *,
        epochs: int | None = None,
        batch_size: int | None = 32,
        early_stopping: keras.callbacks.EarlyStopping | None = None,
        mode: str | None = None,
        rungs: Rungs | None = None,
        **fit_options: Any,
    ) -> list[RunResult | BaseException]:
        """``run`` for many (hp, model, seed, callbacks) at once: members of one structure train together.

        Each model holds its seed's initial weights (as for ``run``); the result
        of a member equals ``run``'s for it (see :mod:`regsearch.population`).
        A group that fails gives its error in place of each of its results.
        With ``rungs`` (:mod:`regsearch.population.rungs`), runs of one
        configuration (equal hyperparameter values) are compared with the others
        at each rung and the weakest stop there (``RunResult.rungs``).
        """
        from regsearch.population import group_by_structure, open_populations
        from regsearch.population.rungs import successive_halving

        where = type(self).__name__
        batch_size = 32 if batch_size is None else batch_size
        plans = [self._plan(hp, x, y, epochs=epochs, early_stopping=early_stopping, callbacks=callbacks,
                            fit_options=fit_options, where=where) for hp, _, _, callbacks in runs]
        first = plans[0]
        data = tuple(a for a in first.train_rows if a is not None)
        validation = tuple(a for a in first.validation_rows if a is not None)
        results: list[RunResult | BaseException] = [RuntimeError("not trained")] * len(runs)
        models = [model for _, model, _, _ in runs]
        by_rule: dict[tuple, list[int]] = {}
        for index, plan in enumerate(plans):
            rule = None if plan.early_stopping is None else _rule_key(plan.early_stopping)
            by_rule.setdefault(rule, []).append(index)
        groups = [[indices[i] for i in group] for indices in by_rule.values()
                  for group in group_by_structure([models[i] for i in indices])]

        def opened(members: list[int]) -> Any:
            """The group's populations, each with the runs (indices into ``runs``) it holds, opened one by one."""
            rule = plans[members[0]].early_stopping
            populations = open_populations(
                [models[i] for i in members], data, validation, epochs=first.epochs, batch_size=batch_size,
                validation_batch_size=fit_options.get("validation_batch_size"),
                shuffle=bool(fit_options.get("shuffle", True)), early_stopping=rule,
                patiences=[None if plans[i].early_stopping is None else plans[i].early_stopping.patience
                           for i in members],
                seeds=[runs[i][2] for i in members], mode=mode, evaluate=True)
            start = 0
            for population in populations:
                yield members[start:start + len(population.models)], population
                start += len(population.models)

        def conclude(members: list[int], outcomes: list[Any], rung_scores: list[list[Any]]) -> None:
            for i, outcome, scores in zip(members, outcomes, rung_scores):
                results[i] = self._concluded(models[i], outcome.history, outcome.diverged, outcome.best_epoch,
                                             plans[i], batch_size, 0, outcome.scores)
                results[i].rungs = scores

        if rungs is None:  # group after group, slice after slice: one in memory at a time
            for members in groups:
                try:
                    for part, population in opened(members):
                        population.advance()
                        conclude(part, population.finish(), [[] for _ in part])
                except Exception as error:  # noqa: BLE001 - reported per run by the tuner
                    for i in members:
                        if not isinstance(results[i], RunResult):
                            results[i] = error
            return results
        # Rungs compare every configuration of the batch: all its populations train side by side.
        try:
            owners, populations = zip(*[pair for members in groups for pair in opened(members)])
            names = [[_configuration(runs[i][0]) for i in part] for part in owners]
            scores = successive_halving(populations, names, rungs)
            for part, population, part_scores in zip(owners, populations, scores):
                conclude(part, population.finish(), part_scores)
        except Exception as error:  # noqa: BLE001 - reported per run by the tuner
            results = [error if not isinstance(r, RunResult) else r for r in results]
        return results

    def fit(
        self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any
    ) -> dict[str, float]:
        """Keras Tuner's entry point: ``run(...)`` and return its metrics (``verbose``: nothing is printed)."""
        kwargs.pop("verbose", None)
        return self.run(hp, model, *args, **kwargs).metrics


#: ``model.fit`` arguments ``run`` passes on to :func:`regsearch.fit` besides x, y, epochs, batch_size, callbacks.
FIT_OPTIONS = (
    "validation_data",
    "validation_split",
    "shuffle",
    "class_weight",
    "sample_weight",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
)


@dataclass
class _Plan:
    """What ``run`` settled before training: epochs, early stopping, callbacks and the rows to evaluate."""

    epochs: int
    early_stopping: keras.callbacks.EarlyStopping | None
    tuners_own: list[keras.callbacks.Callback]
    users: list[keras.callbacks.Callback]
    train_rows: tuple
    validation_rows: tuple


def _configuration(hp: kt.HyperParameters) -> tuple:
    """A configuration's name for rungs: its hyperparameter values (its seeds share them)."""
    return tuple(sorted((key, repr(value)) for key, value in hp.values.items()))


def _rule_key(callback: keras.callbacks.EarlyStopping) -> tuple:
    """Early stopping settings a population shares (patience is each member's own)."""
    return (callback.monitor, callback.mode, float(callback.min_delta), callback.baseline, callback.start_from_epoch,
            callback.restore_best_weights)


def _tuner_callbacks() -> tuple[type, ...]:
    """Keras Tuner's own callbacks: they save the trial's checkpoint and report, they do not train."""
    from regsearch.kt_internals import tuner_callback_types

    return tuner_callback_types()


def _evaluation_rows(x: Any, y: Any, options: dict[str, Any], where: str) -> tuple[tuple, tuple]:
    """The training and validation rows (x, y, sample_weight) that ``model.fit`` would use.

    ``validation_data`` wins over ``validation_split``, which holds out the
    last rows before any shuffling, as in Keras.
    """
    sample_weight = options.get("sample_weight")
    data = options.get("validation_data")
    if data is not None:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise SettingError("validation_data", "a tuple (x_val, y_val) or (x_val, y_val, sample_weight)",
                               type(data).__name__, where)
        return (x, y, sample_weight), (data[0], data[1], data[2] if len(data) == 3 else None)
    split = options.get("validation_split") or 0.0
    if not split:
        raise SettingError("validation_data", "a tuple (x_val, y_val), or validation_split > 0", None, where)
    try:
        return split_validation(x, y, sample_weight, split)
    except ValueError as error:
        raise SettingError("validation_split", "a fraction leaving rows to train and to validate", split,
                           where) from error


def _loggable(values: Any) -> list[Any]:
    """History values as plain floats (vector-valued metrics stay lists)."""
    out = []
    for value in values:
        if type(value) is float:
            out.append(value)
            continue
        array = np.asarray(value, dtype=float)
        out.append(float(array) if array.ndim == 0 else array.tolist())
    return out


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A new Keras optimizer from its name (``"adam"``) and learning rate."""
    return keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})


def task_compile_settings(task: str) -> dict[str, Any]:
    """The loss and metrics ``model.compile`` gets for a task: binary, multiclass or regression."""
    loss = {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy"}.get(
        task, "mean_squared_error"
    )
    return {"loss": loss, "metrics": [] if task == "regression" else ["accuracy"]}


def _drive(
    callbacks: list[keras.callbacks.Callback],
    model: keras.Model,
    epoch: int,
    metrics: dict[str, float],
) -> None:
    """Shows callbacks one epoch: the best, with the restored model.

    Keras Tuner's ``SaveBestEpoch`` then writes the restored weights if the
    objective beats earlier executions. A NaN objective is left out of the
    logs so that ``SaveBestEpoch`` still writes a checkpoint for ``get_best_models``.
    """
    logs = {key: value for key, value in metrics.items() if math.isfinite(value)}
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin(logs)
        callback.on_epoch_begin(epoch, logs)
        callback.on_epoch_end(epoch, logs)
        callback.on_train_end(logs)


def evaluate_rows(model: keras.Model, x: Any, y: Any, sample_weight: Any = None,
              batch_size: int = EVALUATION_BATCH) -> dict[str, float]:
    """``model.evaluate`` in inference mode, run eagerly through the model's own ``test_step``.

    Same numbers as ``evaluate`` (loss with regularization penalties, compiled
    metrics) without tracing a new function for every trial, which on small
    data costs more than the evaluation itself. Vector-valued metrics are left out.
    """
    if keras.backend.backend() != "tensorflow":
        # Only TensorFlow's test_step runs eagerly on a batch; JAX's is a pure (state, data) function.
        logs = model.evaluate(x, y, sample_weight=sample_weight, batch_size=batch_size, verbose=0, return_dict=True)
        return {key: float(value) for key, value in logs.items() if np.asarray(value).ndim == 0}
    model.reset_metrics()
    rows = len(keras.tree.flatten(x)[0])
    for start in range(0, rows, batch_size):
        batch = keras.tree.map_structure(
            lambda a: None if a is None else a[start : start + batch_size], (x, y, sample_weight)
        )
        model.test_step(batch if sample_weight is not None else batch[:2])
    scores = {}
    for key, value in model.get_metrics_result().items():
        array = np.asarray(value, dtype=float)
        if array.ndim == 0:
            scores[key] = float(array)
    return scores


def row_scores(model: keras.Model, x: Any, y: Any, rows: np.ndarray | None = None,
               batch_size: int = EVALUATION_BATCH) -> RowScores | None:
    """Each row's outcome under ``model`` in inference mode: whether it was right, and its loss.

    Right means what the compiled ``"accuracy"`` means for these shapes (binary
    above 0.5, sparse or one-hot categorical by the largest output), so that
    the mean over the rows is ``evaluate_rows``'s accuracy; ``correct`` is None
    for a loss that is not a classification's. The loss is the compiled loss
    per row, without the regularization penalty. None for a model with
    several outputs or losses (nothing is recorded).

    Args:
        rows: The rows' indices to record (default ``0..n-1``).
    """
    loss = getattr(model, "loss", None)
    outputs = keras.tree.flatten(getattr(model, "outputs", None) or [])
    if loss is None or isinstance(loss, (dict, list, tuple)) or len(outputs) > 1:
        return None
    loss = keras.losses.get(loss) if isinstance(loss, str) else loss
    name = str(getattr(loss, "name", None) or getattr(loss, "__name__", ""))
    count = len(keras.tree.flatten(x)[0])
    predictions = np.concatenate(list(inference_batches(model, x, batch_size=batch_size)))
    truth = np.asarray(y)
    if predictions.shape[-1] == 1 and truth.ndim == predictions.ndim - 1:
        truth = truth[..., None]
    per_row = np.asarray(loss.call(truth, predictions) if isinstance(loss, keras.losses.Loss)
                         else loss(truth, predictions), dtype=np.float32)
    per_row = per_row.reshape(count, -1).mean(axis=1)
    correct = None
    if "crossentropy" in name or "hinge" in name:
        # keras.metrics' binary, sparse and categorical accuracy, in numpy (a TensorFlow op costs more than 70 rows).
        if predictions.shape[-1] == 1:
            hits = (predictions > 0.5).astype(truth.dtype) == truth
        elif truth.ndim < predictions.ndim or truth.shape[-1] == 1:
            hits = np.argmax(predictions, axis=-1) == truth.reshape(predictions.shape[:-1])
        else:
            hits = np.argmax(predictions, axis=-1) == np.argmax(truth, axis=-1)
        correct = hits.reshape(count, -1).mean(axis=1).round().astype(np.uint8)
    index = np.arange(count, dtype=np.int32) if rows is None else np.asarray(rows, dtype=np.int32)
    return RowScores(index, correct, per_row)


def _with_patience(
    base: keras.callbacks.EarlyStopping | None, patience: int
) -> keras.callbacks.EarlyStopping:
    if base is None:
        return keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True
        )
    return keras.callbacks.EarlyStopping(
        monitor=base.monitor,
        min_delta=abs(base.min_delta),
        patience=patience,
        mode=base.mode,
        baseline=base.baseline,
        restore_best_weights=base.restore_best_weights,
        start_from_epoch=base.start_from_epoch,
    )


def _plain(value: Any) -> str | float | int | None:
    if isinstance(value, (str, type(None))):
        return value
    if isinstance(value, (bool, int, np.integer)):
        return int(value)
    return float(value)


def _at(values: list[float], index: int) -> float:
    return values[index] if 0 <= index < len(values) else float("nan")


def _piece(value: Any, kind: type, setting: str, where: str) -> Any:
    if value is not None and not isinstance(value, kind):
        raise SettingError(setting, f"a regsearch.{kind.__name__} or None", value, where)
    return value
