"""RegularizedMLP: dense networks such as the moons model, Dense(500, relu) -> Dense(1, sigmoid)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from regsearch.errors import SettingError
from regsearch.hypermodels.base import RegularizedHyperModel


class RegularizedMLP(RegularizedHyperModel):
    """A multilayer perceptron whose hidden layers carry the searched regularization.

    Layers: Input -> [noise "input_dropout"] -> for each hidden layer i:
    Dense "hidden_i" (or Dense "hidden_i_linear" -> Activation "hidden_i" with
    activity regularization placed before the activation) -> [noise
    "hidden_i_dropout"] -> Dense "output". The regularizer and constraint go on
    every hidden layer, not on the output layer.

    Args:
        input_shape: Shape of one example, e.g. ``(2,)``.
        hidden: Units of each hidden layer (default one layer of 500).
        activation: Activation of the hidden layers.
        **kwargs: ``task``, ``classes``, ``regularizer``, ``placement``,
            ``constraint``, ``dropout``, ``optimizer``, ``learning_rate``,
            ``patience``, ``layers`` (among ``hidden_1``, ``hidden_2``, ...),
            ``name`` (see ``RegularizedHyperModel``).

    Raises:
        SettingError: For any argument regsearch cannot use.
    """

    supported_targets = ("kernel", "bias", "activity")
    supported_constraint_targets = ("kernel", "bias")
    regularized_layer_name = "hidden_1"

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: Sequence[int] = (500,),
        activation: str = "relu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        self.input_shape = _shape(input_shape, where)
        if (
            isinstance(hidden, (str, int))
            or not isinstance(hidden, Sequence)
            or not hidden
            or any(not isinstance(u, int) or isinstance(u, bool) or u < 1 for u in hidden)
        ):
            raise SettingError("hidden", "a non-empty list of positive layer sizes", hidden, where)
        self.hidden = tuple(hidden)
        self.activation = _activation(activation, where)
        self.layers = self._check_layers(self.layers)

    def regularizable_layers(self) -> tuple[str, ...]:
        return tuple(f"hidden_{i}" for i in range(1, len(self.hidden) + 1))

    def _network(self, config: dict[str, Any]) -> keras.Model:
        inputs = keras.Input(shape=self.input_shape, name="inputs")
        h = self._noise(inputs, config, "input", "input_dropout")
        for i, units in enumerate(self.hidden, start=1):
            h = self._regularized(
                keras.layers.Dense, h, config, f"hidden_{i}", self.activation, units=units
            )
            h = self._noise(h, config, "hidden", f"hidden_{i}_dropout", after=f"hidden_{i}")
        return keras.Model(inputs, self._output(h), name=self.name or "regularized_mlp")


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    if (
        isinstance(shape, (str, int))
        or not isinstance(shape, Sequence)
        or not shape
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape)
    ):
        raise SettingError("input_shape", "a tuple of positive sizes such as (2,)", shape, where)
    return tuple(shape)


def _activation(name: Any, where: str) -> str:
    try:
        keras.activations.get(name)
    except (ValueError, TypeError):
        raise SettingError(
            "activation", "a Keras activation name such as 'relu'", name, where
        ) from None
    if not isinstance(name, str):
        raise SettingError("activation", "a Keras activation name such as 'relu'", name, where)
    return name
