"""Standard scaling of input values, computed the way the saved model computes it.

``scale = "standard"`` fits scikit-learn's ``StandardScaler`` on the training
rows; the statistics travel with the search's data (``Split.scaling``) so that
the saved model can carry them in a Keras ``Normalization`` layer
(:mod:`regsearch.predictor`). The rows the runs train on are scaled here with
``Normalization``'s formula, ``(x - mean) / max(scale, keras epsilon)``: the
same numbers the saved model computes from raw rows. ``StandardScaler`` already
uses scale 1 for a constant column, where ``Normalization`` would divide by its
epsilon; passing it ``scale ** 2`` as the variance makes the two agree there.
Only a column whose spread is below ``EPSILON`` differs from
``StandardScaler.transform``: both the runs and the saved model divide it by
``EPSILON``.

Nothing here imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.preprocessing import StandardScaler

__all__ = ["EPSILON", "Standardization"]

#: ``keras.backend.epsilon()``'s default, the floor ``Normalization`` puts under every scale.
EPSILON = 1e-7


@dataclass(frozen=True, eq=False)
class Standardization:
    """Per-value mean and scale fitted on training rows (scikit-learn's ``mean_`` and ``scale_``).

    Attributes:
        mean: Mean of each input value, in the shape of one input row.
        scale: Standard deviation of each input value (1 where it is constant), same shape.
    """

    mean: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)

    @classmethod
    def fit(cls, x_train: np.ndarray) -> Standardization:
        """Fits ``StandardScaler`` on the rows of ``x_train`` (each input value separately)."""
        scaler = StandardScaler().fit(np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1))
        shape = np.shape(x_train)[1:]
        return cls(mean=scaler.mean_.reshape(shape), scale=scaler.scale_.reshape(shape))

    @property
    def divisor(self) -> np.ndarray:
        """What each value is divided by: its scale, at least ``EPSILON`` (as ``Normalization``)."""
        return np.maximum(self.scale, EPSILON)

    @property
    def variance(self) -> np.ndarray:
        """The variance to give ``keras.layers.Normalization`` so that it divides by ``divisor``."""
        return np.asarray(self.scale, dtype=np.float64) ** 2

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Scaled rows: ``(x - mean) / divisor``."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.divisor

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Rows in the user's units again: ``x * divisor + mean``."""
        return np.asarray(x, dtype=np.float64) * self.divisor + self.mean
