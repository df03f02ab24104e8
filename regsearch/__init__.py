"""regsearch: find the right regularization for a Keras model with Keras Tuner."""

from regsearch.engine import fit
from regsearch.errors import SettingError
from regsearch.hypermodels import RegularizedCNN, RegularizedHyperModel, RegularizedLSTM, RegularizedMLP, RunResult
from regsearch.space import Constraint, Decades, Dropout, FineGrid, LogRange, Placement, Range, Regularizer
from regsearch.sparsity import activation_sparsity

__all__ = ["fit", "SettingError"]
__all__ += ["Regularizer", "Decades", "FineGrid", "LogRange", "Range", "Placement", "Constraint", "Dropout"]
__all__ += ["RegularizedHyperModel", "RegularizedMLP", "RegularizedCNN", "RegularizedLSTM", "RunResult"]
__all__ += ["activation_sparsity"]
__version__ = "0.1.0"
