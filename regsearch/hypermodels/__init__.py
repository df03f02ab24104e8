"""Keras Tuner HyperModels whose search space is the regularization."""

from regsearch.hypermodels.base import RegularizedHyperModel, RunResult
from regsearch.hypermodels.cnn import RegularizedCNN
from regsearch.hypermodels.lstm import RegularizedLSTM
from regsearch.hypermodels.mlp import RegularizedMLP
from regsearch.hypermodels.regularize import Regularize

__all__ = [
    "Regularize",
    "RegularizedCNN",
    "RegularizedHyperModel",
    "RegularizedLSTM",
    "RegularizedMLP",
    "RunResult",
]
