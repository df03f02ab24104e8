"""Regularize: regsearch's search space on any Keras model, as a Keras Tuner HyperModel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import keras_tuner as kt

from regsearch.errors import SettingError, one_of
from regsearch.hypermodels.base import (
    TASKS,
    RegularizedHyperModel,
    make_optimizer,
    task_compile_settings,
)
from regsearch.rewrite import LayerPlan, is_rewritable, plan_layers, rewrite, select_layers
from regsearch.space import TARGETS, Constraint, Dropout, Placement, Regularizer, Values

ModelSource = keras.Model | Callable[[kt.HyperParameters], keras.Model]


class Regularize(RegularizedHyperModel):
    """Searches the regularization of your own model.

    For every build the model's architecture is cloned with fresh weights and
    the trial's configuration attached to the chosen layers (see
    :mod:`regsearch.rewrite`): penalties and constraints on the weights each
    layer has, activity penalties after or before the activation, noise layers
    after the chosen layers (and after the float inputs with ``where="input"``).
    The model keeps its own compile settings (loss, metrics, optimizer)
    unless ``optimizer`` or ``learning_rate`` are given. It trains with
    :func:`regsearch.fit` and reports what the built-in HyperModels report.

    Args:
        model: A Sequential (started with ``keras.Input`` or built with
            ``build(shape)``) or functional ``keras.Model``, with one input or
            several, possibly holding nested Sequential or functional models;
            or a function ``build(hp) -> keras.Model`` that may declare
            hyperparameters of its own.
        layers: The layers to regularize: names, paths into nested models
            (``"encoder/dense_1"``), glob patterns (``"dense_*"``), layer
            classes, or a list of them. Default: every Dense, Conv, recurrent
            and Embedding layer except the output layers, nested models' included.
        regularizer, placement, constraint, dropout, patience: The space, as in
            :class:`RegularizedHyperModel`, whose rule holds here: given none of them (nor ``optimizer``
            or ``learning_rate``), the space is ``Regularizer("l2")``: an L2
            penalty on the kernels, its strength drawn from ``LogRange(1e-6, 1e-1)``.
        optimizer: An optimizer name or a list (searched); None keeps the model's.
        learning_rate: A learning rate or values to search; None keeps the model's.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``: the loss and
            metrics of a model that is not compiled. None: the model must be compiled.
        name: The HyperModel's name.
        tunable: Keras Tuner's flag.

    Raises:
        SettingError: A model regsearch cannot rewrite (subclassed), a layer
            selector matching nothing, a target or placement no chosen layer has.
    """

    supported_targets = TARGETS
    supported_constraint_targets = ("kernel", "bias", "recurrent", "embeddings")

    def __init__(
        self,
        model: ModelSource,
        *,
        layers: str | type | Sequence[str | type] | None = None,
        regularizer: Regularizer | None = None,
        placement: str | Sequence[str] | Placement = "after",
        constraint: Constraint | None = None,
        dropout: Dropout | None = None,
        optimizer: str | Sequence[str] | None = None,
        learning_rate: Values | None = None,
        patience: int | Sequence[int | str] | None = None,
        task: str | None = None,
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        where = "Regularize"
        if not isinstance(model, keras.Model) and not callable(model):
            raise SettingError("model", "a keras.Model or a function build(hp) -> keras.Model", model, where)
        if task is not None and task not in TASKS:
            raise SettingError("task", one_of(TASKS), task, where)
        super().__init__(
            task=None, regularizer=regularizer, placement=placement, constraint=constraint, dropout=dropout,
            optimizer=optimizer, learning_rate=learning_rate, patience=patience, name=name, tunable=tunable,
        )
        self.task, self.model, self.layers = task, model, layers
        self._last_source: tuple[Any, keras.Model] | None = None
        if isinstance(model, keras.Model):
            self._check_source(model)

    # --- the model ------------------------------------------------------

    def source(self, hp: kt.HyperParameters) -> keras.Model:
        """The model to rewrite for ``hp``: the given one, or ``build(hp)`` (declaring its hyperparameters)."""
        if isinstance(self.model, keras.Model):
            return self.model
        key = repr(sorted(hp.values.items()))
        if self._last_source is None or self._last_source[0] != key:
            built = self.model(hp)
            self._check_source(built)
            self._last_source = (repr(sorted(hp.values.items())), built)
        return self._last_source[1]

    def plans(self, hp: kt.HyperParameters) -> list[LayerPlan]:
        """The chosen layers of ``hp``'s model and what each can take."""
        source = self.source(hp)
        return plan_layers(select_layers(source, self.layers), source)

    def _check_source(self, model: Any) -> None:
        where = "Regularize"
        if not isinstance(model, keras.Model):
            raise SettingError("model", "a function returning a keras.Model", type(model).__name__, where)
        if not is_rewritable(model):
            raise SettingError("model", "a Sequential or functional keras.Model (a subclassed model's layers are "
                               "made in Python code that cannot be rewritten)", type(model).__name__, where)
        if isinstance(model, keras.Sequential) and not getattr(model, "inputs", None):
            raise SettingError("model", "a built Sequential model: start it with keras.Input(shape), or call "
                               "model.build((None, *shape)) before handing it over", f"{model.name} (not built)", where)
        if not model.compiled and self.task is None:
            raise SettingError("task", f"given for a model that is not compiled: {one_of(TASKS)}", None, where)
        plans = plan_layers(select_layers(model, self.layers, where), model)
        wanted = self.regularizer.target_parts()
        for target in sorted(wanted):
            if not any(target in plan.targets for plan in plans):
                raise SettingError("regularizer target", _offered(plans, "targets"), target, where)
        if self.constraint.constrains:
            for target in self.constraint.targets:
                if not any(target in plan.constraint_targets for plan in plans):
                    raise SettingError("constraint targets", _offered(plans, "constraint_targets"), target, where)
        if "before" in self.placement.values and "activity" in wanted and not any(p.can_go_before for p in plans):
            raise SettingError("placement", "'after': no chosen layer has an activation to move", "before", where)

    # --- the space ------------------------------------------------------

    def describe(self, hp: kt.HyperParameters) -> dict[str, str | float | int | None]:
        """The trial's configuration, the regularized layers and the model's own hyperparameters.

        ``layers`` lists the chosen layers; a layer that takes less than the
        configuration asks for (no bias, no activation to move) says what it
        gets in parentheses.
        """
        config = super().describe(hp)
        fresh = kt.HyperParameters()
        super().describe(fresh)
        ours = set(fresh.values)
        config["layers"] = _layers_summary(self.plans(hp), config, self.constraint.targets)
        for key, value in hp.values.items():
            if key not in ours and not key.startswith("tuner/"):
                config[key] = value
        return config

    # --- building -------------------------------------------------------

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """The trial's model: the source rewritten and compiled."""
        config = self.describe(hp)
        source = self.source(hp)
        plans = self.plans(hp)
        model = rewrite(source, plans, config, self.constraint.targets)
        model.compile(**self._compile_settings(source, config))
        self.regularized_layer_name = plans[0].name
        return model

    def _compile_settings(self, source: keras.Model, config: dict[str, Any]) -> dict[str, Any]:
        """The source's own compile settings (fresh objects), with the searched optimizer or learning rate."""
        if source.compiled:
            settings = keras.saving.deserialize_keras_object(source.get_compile_config())
        else:
            settings = {**task_compile_settings(self.task), "optimizer": make_optimizer("adam", 1e-3)}
        if "optimizer" in config:
            settings["optimizer"] = make_optimizer(config["optimizer"], config.get("learning_rate", 1e-3))
        elif "learning_rate" in config:
            optimizer = settings["optimizer"]
            optimizer_config = optimizer.get_config()
            optimizer_config["learning_rate"] = config["learning_rate"]
            settings["optimizer"] = optimizer.__class__.from_config(optimizer_config)
        return settings


def _offered(plans: list[LayerPlan], attribute: str) -> str:
    offered = sorted({t for plan in plans for t in getattr(plan, attribute)})
    names = ", ".join(plan.name for plan in plans)
    return f"a target the chosen layers ({names}) have: {one_of(offered)}"


def _layers_summary(plans: list[LayerPlan], config: dict[str, Any], constraint_targets: Sequence[str]) -> str:
    """``"dense_1, dense_2"``; a layer that takes less than asked says what it gets: ``"embedding (embeddings)"``."""
    asked = config["target"].split("+") if config.get("kind", "none") != "none" else []
    constrained = list(constraint_targets) if config.get("constraint", "none") != "none" else []
    parts = []
    for plan in plans:
        notes = []
        targets = [t for t in asked if t in plan.targets]
        if targets != asked:
            notes.append("+".join(targets) or "no penalty")
        if [t for t in constrained if t in plan.constraint_targets] != constrained:
            kept = [t for t in constrained if t in plan.constraint_targets]
            notes.append(f"constraint on {'+'.join(kept) or 'nothing'}")
        if config.get("placement") == "before" and not plan.can_go_before:
            notes.append("after")
        parts.append(f"{plan.name} ({', '.join(notes)})" if notes else plan.name)
    return ", ".join(parts)
