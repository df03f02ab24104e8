"""``nested``'s assessment: what the search procedure scores on rows it never saw, fold by outer fold.

Pure functions over the runs of a nested search's outer folds (each a whole
``kfold`` search on the outer fold's training rows, its ``refit`` scored on
the outer fold's rows: the runs' ``test_*``), told apart by their ``outer``
column. For each outer fold: the configuration its search chose, that
choice's inner score (the mean cross-validation score it was chosen by), its
score on the outer rows after the refit, and the baseline's (no
regularization, retrained the same way). Over the outer folds: the
procedure's expected score with its spread, how often each configuration
was chosen, and the optimism (inner score minus outer score, for a score
where higher is better): the winner's curse of selection, measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from regsearch.evaluation import compare

__all__ = ["OUTER_COLUMN", "NestedAssessment", "assess_nested", "assessed_metric", "outer_fold_table"]

#: The column that numbers a nested search's outer folds in its runs.
OUTER_COLUMN = "outer"


def assessed_metric(objective: str) -> str:
    """The metric the outer rows score for an objective: ``val_accuracy`` -> ``test_accuracy``."""
    return "test_" + objective.split("_", 1)[1]


def outer_fold_table(runs: pd.DataFrame, objective: str, direction: str) -> pd.DataFrame:
    """One row per outer fold: the choice, its inner score, its outer score, the baseline's, the optimism.

    Args:
        runs: Every run of the outer folds' searches (``trials_frame`` of ``SearchResult.nested``),
            with an ``outer`` column; the ``refit`` runs' ``test_*`` are the outer rows' scores.
        objective: The selection metric, e.g. ``val_accuracy``.
        direction: ``max`` or ``min``.

    Returns:
        Columns ``outer``, ``phase``, ``trial_id``, the choice's ``param_*``, ``configuration``
        (its regularization settings as text), ``inner`` (its mean ``objective`` over inner folds and
        seeds), ``outer_score`` and ``baseline_score`` (mean over seeds of the refit's score on the
        outer rows), ``difference`` (outer minus baseline: positive is better when ``direction`` is
        ``max``) and ``optimism`` (how much better the inner score was than the outer one).
        Empty when there are no outer runs.
    """
    from regsearch.report.tables import best_configuration, format_params, summary_frame

    metric = assessed_metric(objective)
    sign = 1.0 if direction == "max" else -1.0
    rows = []
    for outer, fold_runs in runs.groupby(OUTER_COLUMN, sort=True):
        selection = compare.selection_rows(fold_runs)
        summary = summary_frame(selection, objective=objective, direction=direction)
        if not summary[f"mean_{objective}"].notna().any():
            continue
        best = best_configuration(summary)
        chosen = summary[(summary["phase"] == best["phase"]) & (summary["trial_id"] == best["trial_id"])].iloc[0]
        baselines = compare.baselines_of(summary, chosen)
        refit = fold_runs[fold_runs["phase"].astype(str) == compare.REFIT_PHASE]
        done = refit[refit["status"].astype(str) == "completed"]
        own = _mean(done.loc[done["trial_id"] == best["trial_id"], metric])
        base = _mean(done.loc[done["trial_id"] == baselines["trial_id"].iloc[0], metric]) if not baselines.empty \
            else math.nan
        # Named by what regularizes (settings at "none" left out): "kind=l2, strength=0.01, target=kernel".
        regularization = {k: v for k, v in best["params"].items()
                          if f"param_{k}" in compare.REGULARIZATION_PARAMS and v is not None and v != "none"}
        inner = float(chosen[f"mean_{objective}"])
        rows.append({
            OUTER_COLUMN: int(outer), "phase": best["phase"], "trial_id": best["trial_id"],
            **{f"param_{k}": v for k, v in best["params"].items()},
            "configuration": format_params(regularization) if regularization else "no regularization",
            "inner": inner, "outer_score": own, "baseline_score": base,
            "difference": own - base, "optimism": sign * (inner - own),
        })
    return pd.DataFrame.from_records(rows)


@dataclass(frozen=True)
class NestedAssessment:
    """The search procedure's score on rows it never saw, over ``len(folds)`` outer folds.

    Attributes:
        objective: The selection metric; ``metric`` the outer rows' (``test_accuracy`` for ``val_accuracy``).
        folds: :func:`outer_fold_table`.
        choices: How often each configuration was chosen: ``configuration``, ``chosen`` (outer folds),
            ``share`` (of the outer folds), most chosen first.
    """

    objective: str
    metric: str
    folds: pd.DataFrame
    choices: pd.DataFrame

    def spread(self, column: str) -> tuple[float, float, float, float]:
        """Mean, standard deviation (``ddof=1``, NaN for one fold), min and max over outer folds of a column."""
        values = self.folds[column].astype(float).dropna().to_numpy() if not self.folds.empty else np.array([])
        if not len(values):
            return (math.nan,) * 4
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        return float(values.mean()), std, float(values.min()), float(values.max())


def assess_nested(runs: pd.DataFrame, objective: str, direction: str) -> NestedAssessment:
    """The procedure's expected score, its choices and its optimism (:class:`NestedAssessment`)."""
    folds = outer_fold_table(runs, objective, direction)
    if folds.empty:
        choices = pd.DataFrame(columns=["configuration", "chosen", "share"])
    else:
        counts = folds["configuration"].value_counts(sort=False)
        choices = pd.DataFrame({"configuration": counts.index, "chosen": counts.to_numpy()})
        choices["share"] = choices["chosen"] / len(folds)
        choices = choices.sort_values("chosen", ascending=False, kind="stable").reset_index(drop=True)
    return NestedAssessment(objective, assessed_metric(objective), folds, choices)


def _mean(values: pd.Series) -> float:
    values = values.astype(float).dropna()
    return float(values.mean()) if len(values) else math.nan
