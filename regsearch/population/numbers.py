"""Numbers as state: what a population's members may differ in without a new compiled program.

A regularization grid varies numbers that Keras bakes into a model as Python
floats: the strengths of ``L1``/``L2``/``L1L2`` penalties on weights and
activities, the rate of ``Dropout``/``GaussianDropout``, the deviation of
``GaussianNoise`` and the bounds of ``MaxNorm``/``MinMaxNorm``. This module
reads those numbers out of a built model (:func:`numbers_of`), describes the
model with them masked (:func:`structure_of`: members with equal structures
train in one program), and, while a program is traced, lets the model read
them from the member's row of a table instead (:func:`bound`). The learning
rate needs none of this: Keras keeps it in an optimizer variable, which is
member state already.

Every kind of penalty is two coefficients (l1, l2), so ``none``, ``l1``,
``l2`` and ``l1_l2`` members of one model share a program; a constraint's
kind, a noise layer's kind and where layers sit stay structure. The swapped
objects live only while tracing; the models themselves, and what is saved of
them, keep their plain Keras objects.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import keras
from keras import ops

__all__ = ["numbers_of", "structure_of", "bound", "Table"]

_PENALTIES = (keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2)
_NOISE = {keras.layers.Dropout: "rate", keras.layers.GaussianDropout: "rate", keras.layers.GaussianNoise: "stddev"}
_CONSTRAINTS = {keras.constraints.MaxNorm: ("max_value",), keras.constraints.MinMaxNorm: ("min_value", "max_value", "rate")}
_MASK = "<number>"


def _layers(model: keras.Model) -> list[keras.layers.Layer]:
    # Private, as in the engine: the only walk that reaches layers inside wrappers and nested models.
    return list(model._flatten_layers(include_self=False))


def _penalty(regularizer: Any) -> tuple[float, float] | None:
    """(l1, l2) of a built-in penalty, None for anything else."""
    if isinstance(regularizer, keras.regularizers.L1L2):
        return float(regularizer.l1), float(regularizer.l2)
    if isinstance(regularizer, keras.regularizers.L1):
        return float(regularizer.l1), 0.0
    if isinstance(regularizer, keras.regularizers.L2):
        return 0.0, float(regularizer.l2)
    return None


def numbers_of(model: keras.Model) -> dict[str, float]:
    """The model's varying numbers by position, e.g. ``"w0:l2"`` (trainable variable 0) or ``"n3:rate"`` (layer 3).

    Keys are positions, not names, so that two builds of one structure with
    different automatic names match. A weight or activity without a built-in
    penalty has no entry; a table of several members reads a missing penalty as zero.
    """
    numbers: dict[str, float] = {}
    for i, variable in enumerate(model.trainable_variables):
        penalty = _penalty(getattr(variable, "regularizer", None))
        if penalty is not None:
            numbers[f"w{i}:l1"], numbers[f"w{i}:l2"] = penalty
        constraint = getattr(variable, "constraint", None)
        for name in _CONSTRAINTS.get(type(constraint), ()):
            numbers[f"w{i}:{name}"] = float(getattr(constraint, name))
    for j, layer in enumerate(_layers(model)):
        penalty = _penalty(layer.activity_regularizer)
        if penalty is not None:
            numbers[f"a{j}:l1"], numbers[f"a{j}:l2"] = penalty
        name = _NOISE.get(type(layer))
        if name is not None and getattr(layer, name):  # a zero rate is structure: the layer then draws nothing
            numbers[f"n{j}:{name}"] = float(getattr(layer, name))
    return numbers


def structure_of(model: keras.Model) -> str:
    """The model, its compile settings and its optimizer with every varying number masked.

    Two members with equal structures differ only in :func:`numbers_of` and
    state (weights, learning rate, seeds), so one traced program trains both.
    """

    def masked(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("module") == "keras.regularizers" or node.get("class_name") in ("L1", "L2", "L1L2"):
                return _MASK
            out = {}
            for key, value in node.items():
                if key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                           "recurrent_regularizer", "embeddings_regularizer", "depthwise_regularizer",
                           "pointwise_regularizer", "beta_regularizer", "gamma_regularizer"):
                    out[key] = _MASK if value is None or _is_penalty_config(value) else masked(value)
                elif key in ("rate", "stddev", "max_value", "min_value", "learning_rate") and isinstance(value, (int, float)):
                    out[key] = _MASK if value or key not in ("rate", "stddev") else 0
                else:
                    out[key] = masked(value)
            return out
        if isinstance(node, (list, tuple)):
            return [masked(v) for v in node]
        return node

    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    # Automatic names (dense_3, adam_1, functional_7) differ between builds of one structure: positions instead.
    names = [model.name, *(layer.name for layer in model.layers), *(layer.name for layer in _layers(model))]
    if getattr(model, "optimizer", None) is not None:
        names.append(model.optimizer.name)
    canonical = {name: f"<name {i}>" for i, name in reversed(list(enumerate(names)))}

    def renamed(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: renamed(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [renamed(v) for v in node]
        return canonical.get(node, node) if isinstance(node, str) else node

    try:
        config = model.get_config()
    except NotImplementedError:
        # A subclassed model Keras cannot describe: a structure of its own, shared with no other model.
        return f"<model without a config {id(model)}>"
    # The class too: a subclassed model's config need not name it, and its own train_step is structure.
    described = {"class": f"{type(model).__module__}.{type(model).__qualname__}", "model": masked(config),
                 "compile": masked(compiled)}
    return json.dumps(renamed(described), sort_keys=True, default=str)


def _is_penalty_config(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") in ("L1", "L2", "L1L2")


class Table:
    """Numbers of a group of members: one row per member, one column per key (missing penalties are 0)."""

    def __init__(self, members: list[dict[str, float]]) -> None:
        self.keys = tuple(sorted({key for numbers in members for key in numbers}))
        self.rows = [[numbers.get(key, 0.0) for key in self.keys] for numbers in members]

    def __len__(self) -> int:
        return len(self.keys)


class _Current:
    """The traced row of the member being traced: key -> scalar tensor."""

    def __init__(self) -> None:
        self.values: Mapping[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


class _Penalty(keras.regularizers.Regularizer):
    """``L1L2`` whose coefficients are the member's numbers (same arithmetic as Keras's ``L1L2``)."""

    def __init__(self, current: _Current, key: str) -> None:
        self.current, self.key = current, key

    def __call__(self, x: Any) -> Any:
        l1, l2 = self.current[f"{self.key}:l1"], self.current[f"{self.key}:l2"]
        total = ops.convert_to_tensor(0.0, dtype=x.dtype)
        total += ops.cast(l1, x.dtype) * ops.sum(ops.absolute(x))
        return total + ops.cast(l2, x.dtype) * ops.sum(ops.square(x))


class _Constraint(keras.constraints.Constraint):
    """A ``MaxNorm``/``MinMaxNorm`` rebuilt around the member's numbers at each call."""

    def __init__(self, current: _Current, key: str, original: keras.constraints.Constraint) -> None:
        self.current, self.key, self.original = current, key, original

    def __call__(self, w: Any) -> Any:
        kind = type(self.original)
        numbers = {name: self.current[f"{self.key}:{name}"] for name in _CONSTRAINTS[kind]}
        # Keras's own arithmetic, with tensors where it had floats (its __init__ checks floats).
        constraint = kind.__new__(kind)
        constraint.__dict__.update(self.original.__dict__, **numbers)
        return kind.__call__(constraint, w)


def _noise_call(layer: keras.layers.Layer, current: _Current, key: str, dropout: Any) -> Any:
    kind = type(layer)

    def call(inputs: Any, training: bool = False) -> Any:
        if not training:
            return inputs
        value = ops.cast(current[key], layer.compute_dtype)
        if kind is keras.layers.Dropout:
            return dropout(inputs, value, layer.noise_shape, layer.seed_generator)
        if kind is keras.layers.GaussianNoise:
            return inputs + keras.random.normal(ops.shape(inputs), mean=0.0, stddev=value,
                                                dtype=layer.compute_dtype, seed=layer.seed_generator)
        stddev = ops.sqrt(value / (1.0 - value))
        return inputs * keras.random.normal(ops.shape(inputs), mean=1.0, stddev=stddev,
                                            dtype=layer.compute_dtype, seed=layer.seed_generator)

    return call


@contextlib.contextmanager
def bound(model: keras.Model, keys: tuple[str, ...], dropout: Any) -> Iterator[Any]:
    """While open, ``model`` reads the numbers in ``keys`` from the row set with the yielded function.

    ``dropout(inputs, rate, noise_shape, seed_generator)`` is the backend's
    dropout with the same random draws as its ``keras.random.dropout``, for a
    rate that is a tensor (Keras's compares the rate with 0 and 1 in Python).
    ``set_row(row)`` takes a sequence of scalars (tensors while tracing) in
    the order of ``keys``. On exit every original object is back in place.
    """
    current = _Current()
    restore: list[tuple[Any, str, Any]] = []

    def swap(owner: Any, attribute: str, value: Any) -> None:
        # A layer's "call" is a method: only an instance attribute is put back.
        previous = owner.__dict__.get(attribute, _ABSENT) if attribute == "call" else getattr(owner, attribute)
        restore.append((owner, attribute, previous))
        setattr(owner, attribute, value)

    wanted = set(keys)
    for i, variable in enumerate(model.trainable_variables):
        if f"w{i}:l2" in wanted:
            swap(variable, "regularizer", _Penalty(current, f"w{i}"))
        constraint = getattr(variable, "constraint", None)
        if type(constraint) in _CONSTRAINTS and f"w{i}:{_CONSTRAINTS[type(constraint)][0]}" in wanted:
            swap(variable, "constraint", _Constraint(current, f"w{i}", constraint))
    for j, layer in enumerate(_layers(model)):
        if f"a{j}:l2" in wanted:
            swap(layer, "activity_regularizer", _Penalty(current, f"a{j}"))
        name = _NOISE.get(type(layer))
        if name is not None and f"n{j}:{name}" in wanted:
            swap(layer, "call", _noise_call(layer, current, f"n{j}:{name}", dropout))

    def set_row(row: Any) -> None:
        current.values = {key: row[i] for i, key in enumerate(keys)}

    try:
        yield set_row
    finally:
        for owner, attribute, value in reversed(restore):
            if value is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, value)


_ABSENT = object()
