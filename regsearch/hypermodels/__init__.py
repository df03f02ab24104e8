"""Keras Tuner HyperModels whose search space is the regularization."""

from regsearch.hypermodels.base import RegularizedHyperModel, RunResult
from regsearch.hypermodels.cnn import RegularizedCNN
from regsearch.hypermodels.lstm import RegularizedLSTM
from regsearch.hypermodels.mlp import RegularizedMLP

__all__ = [
    "RegularizedCNN",
    "RegularizedHyperModel",
    "RegularizedLSTM",
    "RegularizedMLP",
    "RunResult",
]
