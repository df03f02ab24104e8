"""RegularizedLSTM: an LSTM with kernel, recurrent and bias penalties, optionally fed by an Embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from regsearch.errors import SettingError
from regsearch.hypermodels.base import RegularizedHyperModel
from regsearch.hypermodels.mlp import _shape
from regsearch.rewrite import regularized
from regsearch.space import make_constraint, make_regularizer


class RegularizedLSTM(RegularizedHyperModel):
    """One LSTM layer and a dense head; the searched regularization goes on the LSTM (and Embedding).

    Layers: Input -> [Embedding "embedding"] -> [noise "input_dropout"] ->
    LSTM "lstm" -> [noise "lstm_dropout"] -> Dense "output". Regularizer
    targets: ``kernel``, ``recurrent``, ``bias``, ``activity`` (after the
    LSTM's own activations: placement ``"before"`` is not available) and
    ``embeddings``; constraint targets: ``kernel``, ``recurrent``, ``bias``,
    ``embeddings`` (embedding constraints act per word vector, axis 1).
    Sparsity is measured on the LSTM output. A common start is L2 1e-6 on
    kernel+recurrent+bias.

    Args:
        input_shape: ``(timesteps, features)`` for real-valued sequences, or
            ``(sequence_length,)`` of integer tokens when ``vocab_size`` is given.
        vocab_size: Adds an Embedding front with this vocabulary size.
        embedding_dim: Size of the embedding vectors.
        units: LSTM units.
        task: ``"binary"`` (default), ``"multiclass"`` or ``"regression"``.
        classes: Number of classes for ``"multiclass"``.
        **kwargs: ``regularizer``, ``placement``, ``constraint``, ``dropout``,
            ``optimizer``, ``learning_rate``, ``patience``, ``layers`` (``lstm``,
            ``embedding``), ``name``.

    Raises:
        SettingError: For any argument regsearch cannot use.
    """

    supported_targets = ("kernel", "recurrent", "bias", "activity", "embeddings")
    supported_constraint_targets = ("kernel", "recurrent", "bias", "embeddings")
    supports_before = False
    regularized_layer_name = "lstm"

    def __init__(
        self,
        input_shape: Sequence[int],
        vocab_size: int | None = None,
        embedding_dim: int = 32,
        units: int = 32,
        task: str = "binary",
        classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(task=task, classes=classes, **kwargs)
        where = type(self).__name__
        self.input_shape = _shape(input_shape, where)
        for setting, value in (("units", units), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingError(setting, "a positive integer", value, where)
        if vocab_size is not None:
            if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
                raise SettingError("vocab_size", "an integer >= 2 or None", vocab_size, where)
            if len(self.input_shape) != 1:
                raise SettingError(
                    "input_shape", "(sequence_length,) with an Embedding", input_shape, where
                )
        else:
            if len(self.input_shape) != 2:
                raise SettingError("input_shape", "(timesteps, features)", input_shape, where)
            uses_embeddings = "embeddings" in self.regularizer.target_parts() or (
                self.constraint.constrains and "embeddings" in self.constraint.targets
            )
            if uses_embeddings:
                raise SettingError("vocab_size", "given when a target is 'embeddings'", None, where)
        self.vocab_size, self.embedding_dim, self.units = vocab_size, embedding_dim, units
        self.layers = self._check_layers(self.layers)

    def regularizable_layers(self) -> tuple[str, ...]:
        return ("lstm",) if self.vocab_size is None else ("embedding", "lstm")

    def _network(self, config: dict[str, Any]) -> keras.Model:
        if self.vocab_size is None:
            inputs = keras.Input(shape=self.input_shape, name="inputs")
            h = inputs
        else:
            inputs = keras.Input(shape=self.input_shape, dtype="int32", name="inputs")
            kwargs: dict[str, Any] = {}
            chosen = self._chosen("embedding")
            if chosen and config["kind"] != "none" and "embeddings" in config["target"].split("+"):
                kwargs["embeddings_regularizer"] = make_regularizer(config)
            if chosen and config["constraint"] != "none" and "embeddings" in self.constraint.targets:
                kwargs["embeddings_constraint"] = make_constraint(config, axis=1)
            h = keras.layers.Embedding(
                self.vocab_size, self.embedding_dim, name="embedding", **kwargs
            )(inputs)
        h = self._noise(h, config, "input", "input_dropout")
        lstm = keras.layers.LSTM(self.units, name="lstm")
        for part in regularized(lstm, config, self.constraint.targets) if self._chosen("lstm") else [lstm]:
            h = part(h)
        h = self._noise(h, config, "hidden", "lstm_dropout", after="lstm")
        return keras.Model(inputs, self._output(h), name=self.name or "regularized_lstm")
