"""Tables, plots and Markdown pages from trial records; ``write_report`` writes them.

A trial record is a dict per training run (a configuration may run several
times with different seeds):

- identity: ``search``, ``trial_id``, ``phase`` (grid, coarse, fine,
  bayesian, baseline, and ``refit`` for kfold's assessment), ``repeat``,
  ``seed``, ``fold`` (empty without folds), ``status`` (completed, diverged,
  failed), ``reason`` ("" if none);
- ``param_<name>`` per configuration value (``param_kind``, ``param_strength``, ...);
- metrics: ``train_accuracy``, ``test_accuracy``, ``val_accuracy``, ``train_loss``,
  ``test_loss``, ``val_loss``, ``best_epoch``, ``epochs_run``, ``diverged``,
  ``mean_activation``, ``zero_fraction``, ``seconds``. Failed runs have NaN
  metrics; regression searches have no accuracy.

Everything here is pure except ``write_report``.
"""

from regsearch.report.markdown import index_markdown, markdown_table, mean_std, summary_markdown
from regsearch.report.plots import (
    accuracy_vs_strength_data,
    plot_accuracy_vs_strength,
    plot_learning_curves,
    plot_optimization_history,
)
from regsearch.report.tables import (
    best_configuration,
    format_params,
    metric_columns,
    summary_frame,
    trials_frame,
)
from regsearch.report.write import REPORT_FILES, best_history, index_row, write_index, write_report

__all__ = [
    "REPORT_FILES",
    "accuracy_vs_strength_data",
    "best_configuration",
    "best_history",
    "format_params",
    "index_markdown",
    "index_row",
    "markdown_table",
    "mean_std",
    "metric_columns",
    "plot_accuracy_vs_strength",
    "plot_learning_curves",
    "plot_optimization_history",
    "summary_frame",
    "summary_markdown",
    "trials_frame",
    "write_index",
    "write_report",
]
