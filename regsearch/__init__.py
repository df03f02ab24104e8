"""regsearch: find the right regularization for a Keras model with Keras Tuner.

The public API, imported lazily so that ``python -m regsearch list`` and error
messages do not wait for TensorFlow:

- the engine: :func:`fit`;
- the search space: :class:`Regularizer`, :class:`Decades`, :class:`FineGrid`,
  :class:`LogRange`, :class:`Range`, :class:`Placement`, :class:`Constraint`,
  :class:`Dropout`;
- HyperModels: :class:`Regularize` (any Keras model of yours), the presets
  :class:`RegularizedMLP`, :class:`RegularizedCNN`, :class:`RegularizedLSTM`
  (and their base, :class:`RegularizedHyperModel`);
- tuners that keep every run: :class:`GridSearch`, :class:`BayesianOptimization`;
- data and reports: :func:`load_dataset`, :func:`load_file` (your csv, parquet, npz), :func:`trials_frame`,
  :func:`summary_frame`, :func:`write_report` and the plots;
- named searches: :func:`load_definition`, :func:`run_search`;
- a finished search back in Python: :func:`open_results` (a :class:`Results`).
"""

from __future__ import annotations

import importlib
from typing import Any

from regsearch.errors import SearchFailedError, SettingError

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "regsearch.engine",
    "Regularizer": "regsearch.space",
    "Decades": "regsearch.space",
    "FineGrid": "regsearch.space",
    "LogRange": "regsearch.space",
    "Range": "regsearch.space",
    "Placement": "regsearch.space",
    "Constraint": "regsearch.space",
    "Dropout": "regsearch.space",
    "Regularize": "regsearch.hypermodels",
    "RegularizedHyperModel": "regsearch.hypermodels",
    "RegularizedMLP": "regsearch.hypermodels",
    "RegularizedCNN": "regsearch.hypermodels",
    "RegularizedLSTM": "regsearch.hypermodels",
    "RunResult": "regsearch.hypermodels",
    "activation_sparsity": "regsearch.sparsity",
    "GridSearch": "regsearch.tuners",
    "BayesianOptimization": "regsearch.tuners",
    "load_dataset": "regsearch.datasets",
    "load_file": "regsearch.datafiles",
    "dataset_names": "regsearch.datasets",
    "Split": "regsearch.datasets",
    "trials_frame": "regsearch.report",
    "summary_frame": "regsearch.report",
    "best_configuration": "regsearch.report",
    "write_report": "regsearch.report",
    "plot_accuracy_vs_strength": "regsearch.report",
    "plot_learning_curves": "regsearch.report",
    "plot_optimization_history": "regsearch.report",
    "load_definition": "regsearch.definition",
    "SearchDefinition": "regsearch.definition",
    "run_search": "regsearch.search",
    "open_results": "regsearch.results",
    "Results": "regsearch.results",
    "ResultsLock": "regsearch.atomic",
    "LockedError": "regsearch.atomic",
}

__all__ = sorted([*_EXPORTS, "SettingError", "SearchFailedError"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'regsearch' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
