"""What every regularization HyperModel shares: the space, compiling, and ``run``.

A subclass says how to build its network from a resolved configuration
(``_network``); this class turns constructor arguments into Keras Tuner
hyperparameters, compiles the model, trains it with :func:`regsearch.fit`,
evaluates the restored model and reports the metrics Keras Tuner scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from regsearch.engine import fit as engine_fit
from regsearch.errors import SettingError, one_of
from regsearch.space import (
    Constraint,
    Dropout,
    Placement,
    Regularizer,
    Values,
    as_choices,
    as_numbers,
    declare_value,
    make_constraint,
    make_dropout,
    make_regularizer,
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
    """

    metrics: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)
    diverged: bool = False


class RegularizedHyperModel(kt.HyperModel):
    """Base class: a network whose regularization is searched.

    Subclasses set ``supported_targets``, ``supports_before`` and
    ``regularized_layer_name`` and implement ``_network(config)``.

    Args:
        task: ``"binary"`` (sigmoid, binary cross-entropy, accuracy),
            ``"multiclass"`` (softmax, sparse categorical cross-entropy,
            accuracy) or ``"regression"`` (linear, mse).
        classes: Number of classes; required for ``"multiclass"``.
        regularizer: The penalty to search; None means no regularization.
        placement: Where activity regularization goes: ``"after"``,
            ``"before"``, a list of both, or a ``Placement``.
        constraint: A weight constraint; None means none.
        dropout: Noise layers; None means none.
        optimizer: An optimizer name, or a list of names (searched).
        learning_rate: A number, a list, ``Decades``, ``FineGrid`` or ``LogRange``.
        patience: Early-stopping patience, an int or a list (searched); ``"none"``
            in the list means a run without early stopping;
            None leaves early stopping to the ``early_stopping`` argument of ``run``.
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
        task: str = "binary",
        classes: int | None = None,
        regularizer: Regularizer | None = None,
        placement: str | Sequence[str] | Placement = "after",
        constraint: Constraint | None = None,
        dropout: Dropout | None = None,
        optimizer: str | Sequence[str] = "adam",
        learning_rate: Values = 1e-3,
        patience: int | Sequence[int | str] | None = None,
        jit_compile: bool | str = "auto",
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        if jit_compile not in (True, False, "auto"):
            raise SettingError("jit_compile", "true, false or 'auto'", jit_compile, type(self).__name__)
        self.jit_compile = jit_compile
        where = type(self).__name__
        if task not in TASKS:
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
        self.optimizers = as_choices(optimizer, "optimizer", OPTIMIZERS, where)
        self.learning_rates = as_numbers(learning_rate, "learning_rate", where, positive=True)
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
        config["optimizer"] = declare_value(hp, "optimizer", self.optimizers)
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
        optimizer = keras.optimizers.get(
            {
                "class_name": config["optimizer"],
                "config": {"learning_rate": config["learning_rate"]},
            }
        )
        loss = {
            "binary": "binary_crossentropy",
            "multiclass": "sparse_categorical_crossentropy",
        }.get(self.task, "mean_squared_error")
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=[] if self.task == "regression" else ["accuracy"],
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

    def _penalties(
        self, config: dict[str, Any], kernel_axis: int | list[int] = 0
    ) -> dict[str, Any]:
        """Regularizer and constraint keyword arguments of one Keras layer (new objects every call)."""
        kwargs: dict[str, Any] = {}
        if config["kind"] != "none":
            for target in config["target"].split("+"):
                if target in ("kernel", "bias", "recurrent", "activity"):
                    kwargs[f"{target}_regularizer"] = make_regularizer(config)
        if config["constraint"] != "none":
            for target in self.constraint.targets:
                if target in ("kernel", "bias", "recurrent"):
                    kwargs[f"{target}_constraint"] = make_constraint(
                        config, kernel_axis if target == "kernel" else 0
                    )
        return kwargs

    def _regularized(
        self, layer: type, h: Any, config: dict[str, Any], name: str, activation: str, **args: Any
    ) -> Any:
        """One regularized layer; with activity placed ``before``, a linear layer then an Activation named ``name``.

        The ``before`` structure is built even when this trial's kind is none,
        so that the model is what ``describe`` says (it computes the same function).
        """
        kwargs = self._penalties(
            config, kernel_axis=[0, 1, 2] if layer is keras.layers.Conv2D else 0
        )
        if config.get("placement") == "before":
            h = layer(activation="linear", name=f"{name}_linear", **args, **kwargs)(h)
            return keras.layers.Activation(activation, name=name)(h)
        return layer(activation=activation, name=name, **args, **kwargs)(h)

    @staticmethod
    def _noise(h: Any, config: dict[str, Any], place: str, name: str) -> Any:
        """Adds the dropout layer if this trial puts noise at ``place`` ("input" or "hidden")."""
        if config["dropout_kind"] != "none" and config["dropout_where"] in (place, "both"):
            return make_dropout(config, name)(h)
        return h

    # --- training --------------------------------------------------------

    def run(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        x: Any,
        y: Any,
        *,
        validation_data: tuple[Any, Any] | None = None,
        epochs: int,
        batch_size: int = 32,
        early_stopping: keras.callbacks.EarlyStopping | None = None,
        seed: int | None = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        shuffle: bool = True,
    ) -> RunResult:
        """Trains ``model`` with :func:`regsearch.fit`, evaluates it, and leaves Keras Tuner's checkpoint.

        Seeding the weights (``keras.utils.set_random_seed`` before ``build``)
        is the caller's job; ``seed`` makes the training itself reproducible.
        An ``EarlyStopping`` found in ``callbacks`` is used as ``early_stopping``;
        the other callbacks (Keras Tuner's ``SaveBestEpoch`` among them) see one
        epoch, the best one, with the restored model and the final metrics.

        Returns:
            A ``RunResult``; a diverged run returns one too (with NaNs), it does not raise.

        Raises:
            SettingError: No validation data, or early stopping given twice.
        """
        where = type(self).__name__
        if validation_data is None:
            raise SettingError("validation_data", "a tuple (x_val, y_val)", None, where)
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
        others = [cb for cb in callbacks if not isinstance(cb, keras.callbacks.EarlyStopping)]
        config = self.describe(hp)
        if "patience" in config:
            early_stopping = (
                None
                if config["patience"] is None
                else _with_patience(early_stopping, config["patience"])
            )

        history = engine_fit(
            model,
            x,
            y,
            validation_data=validation_data,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            early_stopping=early_stopping,
            seed=seed,
        )
        logged = {key: [float(v) for v in values] for key, values in history.history.items()}
        diverged = bool(getattr(history, "diverged", False))
        epochs_run = len(logged.get("loss", []))
        best_epoch = int(getattr(history, "best_epoch", epochs_run - 1))
        metrics = {key: _at(values, best_epoch) for key, values in logged.items()}

        x_val, y_val = validation_data[0], validation_data[1]
        train, test = _evaluate(model, x, y), _evaluate(model, x_val, y_val)
        for prefix, scores in (("train", train), ("test", test)):
            for key, value in scores.items():
                metrics[f"{prefix}_{key}"] = float(value)
        metrics.update(
            best_epoch=float(best_epoch), epochs_run=float(epochs_run), diverged=float(diverged)
        )
        metrics.update(
            activation_sparsity(
                model, self.regularized_layer_name, x_val, batch_size=max(batch_size, 1024)
            )
        )
        _drive(others, model, best_epoch, metrics)
        return RunResult(metrics=metrics, history=logged, diverged=diverged)

    def fit(
        self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any
    ) -> dict[str, float]:
        """Keras Tuner's entry point: ``run(...)`` and return its metrics (``verbose`` is ignored)."""
        kwargs.pop("verbose", None)
        return self.run(hp, model, *args, **kwargs).metrics


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


def _evaluate(model: keras.Model, x: Any, y: Any, batch_size: int = 1024) -> dict[str, float]:
    """``model.evaluate`` in inference mode, run eagerly through the model's own ``test_step``.

    Same numbers as ``evaluate`` (loss with regularization penalties, compiled
    metrics) without tracing a new function for every trial, which on small
    data costs more than the evaluation itself.
    """
    model.reset_metrics()
    for start in range(0, len(y), batch_size):
        model.test_step((x[start : start + batch_size], y[start : start + batch_size]))
    return {key: float(value) for key, value in model.get_metrics_result().items()}


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
