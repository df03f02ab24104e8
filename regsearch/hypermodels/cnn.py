"""RegularizedCNN: Conv2D blocks for small images such as sklearn's 8x8 digits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from regsearch.errors import SettingError
from regsearch.hypermodels.base import RegularizedHyperModel
from regsearch.hypermodels.mlp import _activation, _shape


class RegularizedCNN(RegularizedHyperModel):
    """Conv2D blocks and a dense head, with the searched regularization on every hidden layer.

    Layers: Input -> [noise "input_dropout"] -> for each block i: Conv2D
    "conv_i" (kernel 3, "same" padding; or "conv_i_linear" -> Activation
    "conv_i" with activity placed before) -> MaxPooling2D "pool_i" -> [noise
    "pool_i_dropout"] -> Flatten -> Dense "dense_i" -> [noise] -> softmax
    "output". Regularizer and constraint go on every Conv2D and hidden Dense
    layer (CNN weight decay often starts near 5e-4); kernel constraints of
    Conv2D act per filter (axis [0, 1, 2]).

    Args:
        input_shape: Image shape, default ``(8, 8, 1)``.
        filters: Filters of each Conv2D block.
        dense: Units of the hidden dense layers of the head (may be empty).
        kernel_size: Conv2D kernel size.
        activation: Activation of hidden layers.
        task: Default ``"multiclass"``.
        classes: Default 10.
        **kwargs: ``regularizer``, ``placement``, ``constraint``, ``dropout``,
            ``optimizer``, ``learning_rate``, ``patience``, ``layers`` (among
            ``conv_i`` and ``dense_i``), ``name``.

    Raises:
        SettingError: For any argument regsearch cannot use.
    """

    supported_targets = ("kernel", "bias", "activity")
    supported_constraint_targets = ("kernel", "bias")
    regularized_layer_name = "conv_1"

    def __init__(
        self,
        input_shape: Sequence[int] = (8, 8, 1),
        filters: Sequence[int] = (16, 32),
        dense: Sequence[int] = (64,),
        kernel_size: int = 3,
        activation: str = "relu",
        task: str = "multiclass",
        classes: int | None = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(task=task, classes=classes, **kwargs)
        where = type(self).__name__
        self.input_shape = _shape(input_shape, where)
        if len(self.input_shape) != 3:
            raise SettingError("input_shape", "(height, width, channels)", input_shape, where)
        self.filters = _sizes(filters, "filters", where, allow_empty=False)
        self.dense = _sizes(dense, "dense", where, allow_empty=True)
        if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1:
            raise SettingError("kernel_size", "a positive integer", kernel_size, where)
        self.kernel_size = kernel_size
        self.activation = _activation(activation, where)
        self.layers = self._check_layers(self.layers)

    def regularizable_layers(self) -> tuple[str, ...]:
        convs = tuple(f"conv_{i}" for i in range(1, len(self.filters) + 1))
        return convs + tuple(f"dense_{i}" for i in range(1, len(self.dense) + 1))

    def _network(self, config: dict[str, Any]) -> keras.Model:
        inputs = keras.Input(shape=self.input_shape, name="inputs")
        h = self._noise(inputs, config, "input", "input_dropout")
        for i, filters in enumerate(self.filters, start=1):
            h = self._regularized(
                keras.layers.Conv2D,
                h,
                config,
                f"conv_{i}",
                self.activation,
                filters=filters,
                kernel_size=self.kernel_size,
                padding="same",
            )
            h = keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}")(h)
            h = self._noise(h, config, "hidden", f"pool_{i}_dropout", after=f"conv_{i}")
        h = keras.layers.Flatten(name="flatten")(h)
        for i, units in enumerate(self.dense, start=1):
            h = self._regularized(
                keras.layers.Dense, h, config, f"dense_{i}", self.activation, units=units
            )
            h = self._noise(h, config, "hidden", f"dense_{i}_dropout", after=f"dense_{i}")
        return keras.Model(inputs, self._output(h), name=self.name or "regularized_cnn")


def _sizes(value: Any, setting: str, where: str, *, allow_empty: bool) -> tuple[int, ...]:
    if (
        isinstance(value, (str, int))
        or not isinstance(value, Sequence)
        or (not value and not allow_empty)
        or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in value)
    ):
        allowed = (
            "a list of positive sizes" if allow_empty else "a non-empty list of positive sizes"
        )
        raise SettingError(setting, allowed, value, where)
    return tuple(value)
