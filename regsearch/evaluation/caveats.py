"""When not to trust the answer: one sentence per reason, from the trials and summary tables alone.

Pure functions over :func:`regsearch.report.trials_frame` and
:func:`regsearch.report.summary_frame` tables. The console, ``summary.md``
and ``report.html`` show the same sentences (:func:`caveats`), so a search
that stopped improving at its last epoch, chose the edge of its range, ran
too few seeds or lost runs says so wherever its answer is read.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["MIN_SEEDS", "NEAR_LAST_EPOCH", "caveats", "edge_of_range", "failed_runs", "too_few_seeds",
           "undertrained"]

#: A best epoch in the last tenth of the budget is "at or near the last epoch".
NEAR_LAST_EPOCH = 0.9
#: Fewer seeds than this give no confidence interval worth reading (Student's t on 2 seeds spans +-12.7 sd).
MIN_SEEDS = 3
#: Numeric settings whose range a search can choose the edge of, each compared within its kind.
RANGE_PARAMS = {"strength": "kind", "dropout_rate": "dropout_kind", "learning_rate": "optimizer",
                "max_value": "constraint"}


def caveats(trials: pd.DataFrame, summary: pd.DataFrame, *, epochs: int | None = None,
            early_stopping: bool = True) -> list[str]:
    """Every warning that applies to a search's answer, one sentence each, in a fixed order.

    Args:
        trials: Every run (``trials_frame``), the refit of ``kfold`` included.
        summary: The ranked configurations (``summary_frame``); its rank 1 is the selected one.
        epochs: The search's epoch budget (``[training] epochs``); None: the most epochs any run trained.
        early_stopping: Whether the runs stopped early (restoring their best weights); without it a run's
            best epoch is its last by definition, and says nothing of undertraining.
    """
    found = [undertrained(trials, summary, epochs=epochs, early_stopping=early_stopping), *edge_of_range(summary), too_few_seeds(trials, summary),
             failed_runs(trials)]
    return [sentence for sentence in found if sentence]


def _selected(summary: pd.DataFrame) -> pd.Series | None:
    """The rank-1 configuration, or None when no configuration has a result."""
    objective = summary.attrs.get("objective")
    if summary.empty:
        return None
    best = summary.sort_values("rank", kind="stable").iloc[0]
    column = f"mean_{objective}" if objective else None
    if (column in summary.columns and pd.isna(best[column])) or best["n_failed"] == best["n_runs"]:
        return None
    return best


def _selected_runs(trials: pd.DataFrame, best: pd.Series) -> pd.DataFrame:
    runs = trials[(trials["phase"].astype(str) == str(best["phase"])) & (trials["trial_id"] == best["trial_id"])]
    return runs[runs["status"].astype(str) == "completed"]


def undertrained(trials: pd.DataFrame, summary: pd.DataFrame, *, epochs: int | None = None,
                 early_stopping: bool = True) -> str | None:
    """The selected configuration's best epoch (mean over its runs) is in the last tenth of the epoch budget.

    Only for runs that stop early: one without early stopping keeps its last epoch (a searched
    ``patience = "none"`` included).
    """
    best = _selected(summary)
    if best is None or not early_stopping or str(best.get("param_patience")) == "none":
        return None
    runs = _selected_runs(trials, best)
    runs = runs[runs["best_epoch"].notna()]
    if runs.empty:
        return None
    if "budget" in runs.columns and runs["budget"].notna().any():  # rung strategies: a run's budget is its own
        budget = float(pd.to_numeric(runs["budget"], errors="coerce").max())
    else:
        budget = float(epochs if epochs is not None else pd.to_numeric(trials["epochs_run"], errors="coerce").max())
    if not budget or math.isnan(budget):
        return None
    last = float(runs["best_epoch"].astype(float).mean()) + 1  # best_epoch counts from 0
    if last < NEAR_LAST_EPOCH * budget:
        return None
    return (f"The selected configuration's best epoch is at or near the last one ({last:.0f} of {budget:.0f} on "
            "average): it may still have been improving, so raise [training] epochs.")


def edge_of_range(summary: pd.DataFrame) -> list[str]:
    """The selected strength (or dropout rate, learning rate, max norm) is the smallest or largest value tried,
    among at least three values with a result and the same kind."""
    best = _selected(summary)
    if best is None:
        return []
    scored = f"mean_{summary.attrs.get('objective')}"
    if scored in summary.columns:  # a configuration without a result (every run failed) tells nothing of the range
        summary = summary[summary[scored].notna()]
    found = []
    for name, kind in RANGE_PARAMS.items():
        column, kind_column = f"param_{name}", f"param_{kind}"
        value = pd.to_numeric(pd.Series([best.get(column)]), errors="coerce").iloc[0]
        if column not in summary.columns or pd.isna(value):
            continue
        same = summary
        if kind_column in summary.columns:
            same = summary[summary[kind_column].astype(str) == str(best[kind_column])]
        tried = sorted(set(pd.to_numeric(same[column], errors="coerce").dropna()))
        if len(tried) < 3 or value not in (tried[0], tried[-1]):
            continue
        end, way = ("largest", "upward") if value == tried[-1] else ("smallest", "downward")
        found.append(f"The selected {name.replace('_', ' ')} {value:.3g} is the {end} of the {len(tried)} values "
                     f"tried ({tried[0]:.3g} to {tried[-1]:.3g}): widen the range {way} to see whether the best "
                     "lies beyond it.")
    return found


def too_few_seeds(trials: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    """The selected configuration ran fewer than :data:`MIN_SEEDS` seeds."""
    best = _selected(summary)
    if best is None:
        return None
    seeds = _selected_runs(trials, best)["seed"].nunique()
    if seeds >= MIN_SEEDS:
        return None
    interval = "no confidence interval" if seeds < 2 else "a confidence interval too wide to tell much"
    return (f"The selected configuration ran {seeds} seed{'s' if seeds != 1 else ''}, which gives {interval}: "
            f"set [search] repeats to {MIN_SEEDS} or more.")


def failed_runs(trials: pd.DataFrame) -> str | None:
    """Some runs failed or diverged (their reasons are in trials.csv)."""
    status = trials["status"].astype(str)
    failed, diverged = int((status == "failed").sum()), int((status == "diverged").sum())
    if not failed and not diverged:
        return None
    parts = [f"{failed} failed" if failed else "", f"{diverged} diverged" if diverged else ""]
    return (f"Of {len(trials)} runs, {' and '.join(p for p in parts if p)}: the answer rests on the others "
            "(the reasons are in the reason column of trials.csv).")
