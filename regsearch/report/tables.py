"""Trial records to tables: one row per run, one row per configuration, the best one.

The configuration table follows scikit-learn's ``cv_results_``: ``param_*``
columns, ``mean_<metric>`` and ``std_<metric>`` over repeated runs (population
standard deviation, ``ddof=0``, so a single run has std 0), and a ``rank``
column where 1 is the best mean objective. All functions here are pure.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from regsearch.errors import SearchFailedError, SettingError, one_of

__all__ = [
    "history_key",
    "whole_budget_runs",
    "best_configuration",
    "format_params",
    "format_value",
    "metric_columns",
    "param_columns",
    "summary_frame",
    "trials_frame",
]

PARAM_PREFIX = "param_"
IDENTITY_COLUMNS = ("search", "trial_id", "phase", "repeat", "seed", "fold", "status", "reason")
METRIC_COLUMNS = (
    "train_accuracy",
    "test_accuracy",
    "val_accuracy",
    "gap",
    "train_loss",
    "test_loss",
    "val_loss",
    "best_epoch",
    "epochs_run",
    "diverged",
    "mean_activation",
    "zero_fraction",
    "seconds",
)
# A configuration is one (search, phase, trial_id): phases may reuse trial ids.
CONFIG_COLUMNS = ("search", "phase", "trial_id")
COUNT_COLUMNS = ("n_runs", "n_failed", "n_diverged")
DIRECTIONS = ("max", "min")
_INT_COLUMNS = ("repeat", "seed", "fold", "best_epoch", "epochs_run")
_FLOAT_COLUMNS = tuple(c for c in METRIC_COLUMNS if c not in _INT_COLUMNS + ("diverged",))


def param_columns(frame: pd.DataFrame) -> list[str]:
    """Returns the ``param_*`` columns of a table, in their order."""
    return [c for c in frame.columns if c.startswith(PARAM_PREFIX)]


def metric_columns(trials: pd.DataFrame) -> list[str]:
    """Returns the numeric per-run metrics of a trials table that hold any value.

    Known metrics come first in their usual order, then any extra numeric
    columns a search recorded. ``diverged`` is counted, not averaged.
    """
    known = [c for c in METRIC_COLUMNS if c in trials.columns and c != "diverged"]
    taken = set(IDENTITY_COLUMNS) | set(METRIC_COLUMNS)
    extra = [
        c
        for c in trials.columns
        if c not in taken
        and not c.startswith(PARAM_PREFIX)
        and pd.api.types.is_numeric_dtype(trials[c])
        and not pd.api.types.is_bool_dtype(trials[c])
    ]
    return [c for c in known + extra if trials[c].notna().any()]


def trials_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Builds the table of runs: one row per training run.

    Args:
        records: Trial records, one dict per run (see the module docs of
            ``regsearch.report`` for the keys). Missing keys become NaN, so
            regression searches simply have NaN accuracy.

    Returns:
        Columns in a stable order: identity columns (search, trial_id, phase,
        repeat, seed, status, reason), ``param_*`` columns in order of first
        appearance, the metrics with ``gap = train_accuracy - test_accuracy``,
        then any other recorded columns.
    """
    frame = pd.DataFrame.from_records([dict(record) for record in records])
    for column in IDENTITY_COLUMNS + METRIC_COLUMNS:
        if column not in frame.columns:
            frame[column] = "" if column == "reason" else np.nan
    frame["reason"] = frame["reason"].fillna("").astype(str)
    for column in _FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in _INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame["diverged"] = frame["diverged"].astype("boolean")
    frame["gap"] = frame["train_accuracy"] - frame["test_accuracy"]
    params = param_columns(frame)
    known = list(IDENTITY_COLUMNS) + params + list(METRIC_COLUMNS)
    extra = [c for c in frame.columns if c not in known]
    return frame[known + extra].reset_index(drop=True)


def summary_frame(
    trials: pd.DataFrame | Iterable[Mapping[str, Any]],
    objective: str = "test_accuracy",
    direction: str = "max",
) -> pd.DataFrame:
    """Aggregates runs into one row per configuration, ranked like ``cv_results_``.

    Args:
        trials: A table from ``trials_frame`` (or the records themselves).
        objective: The metric to rank by, e.g. ``test_accuracy`` or ``val_loss``.
        direction: ``max`` if a larger objective is better, else ``min``.

    Returns:
        Columns ``rank``, search, phase, trial_id, ``param_*``, n_runs,
        n_failed, n_diverged, then ``mean_<m>``/``std_<m>`` per metric, the
        objective first. Means skip runs without a value (failed runs, NaN
        losses of diverged runs; the counts tell how many runs are behind a
        mean), while an infinite loss makes the mean infinite. Std is the
        population std (``ddof=0``, 0 for one run). Rank 1 is the best
        mean objective, ties share a rank, and configurations without any
        objective value (all runs failed) come last. Rows are sorted by rank.
        ``attrs`` holds the objective and direction.

    Raises:
        SettingError: If the objective is not a recorded metric or the
            direction is neither ``max`` nor ``min``.
    """
    if not isinstance(trials, pd.DataFrame):
        trials = trials_frame(trials)
    where = "summary_frame"
    if direction not in DIRECTIONS:
        raise SettingError("direction", one_of(DIRECTIONS), direction, where=where)
    metrics = metric_columns(trials)
    if objective not in metrics:
        # Diverged runs without best weights to restore have no values either.
        all_failed = bool(trials["status"].astype(str).isin(("failed", "diverged")).all())
        if not (all_failed and objective in METRIC_COLUMNS and objective != "diverged"):
            raise SettingError("objective", one_of(metrics), objective, where=where)
        metrics.insert(0, objective)  # no values because every run failed
    metrics.remove(objective)
    metrics.insert(0, objective)

    keys = [c for c in CONFIG_COLUMNS if c in trials.columns]
    work = trials[keys + param_columns(trials)].copy()
    # Missing ids become "" so that every configuration is a group and joins align.
    work[keys] = work[keys].astype(object).where(work[keys].notna(), "")
    work[metrics] = trials[metrics].astype("float64")
    status = trials["status"].astype(str)
    work["n_runs"] = 1
    work["n_failed"] = (status == "failed").astype(int)
    work["n_diverged"] = (status == "diverged").astype(int)

    grouped = work.groupby(keys, sort=False)
    summary = pd.concat(
        [
            work.drop_duplicates(keys).set_index(keys)[param_columns(trials)],
            grouped[list(COUNT_COLUMNS)].sum(),
            grouped[metrics].mean().add_prefix("mean_"),
            grouped[metrics].std(ddof=0).add_prefix("std_"),
        ],
        axis=1,
    ).reset_index()

    summary["rank"] = _rank(summary, objective, direction, metrics)
    stats = [f"{kind}_{m}" for m in metrics for kind in ("mean", "std")]
    order = ["rank", *keys, *param_columns(summary), *COUNT_COLUMNS, *stats]
    summary = summary[order].sort_values("rank", kind="stable").reset_index(drop=True)
    summary.attrs = {"objective": objective, "direction": direction}
    return summary


def _rank(summary: pd.DataFrame, objective: str, direction: str, metrics: list[str]) -> pd.Series:
    """Ranks by mean objective; ties are broken by the lower mean loss on the objective's rows.

    Accuracy on a few dozen rows takes few distinct values, so ties are
    common; the loss on the same rows (``val_loss`` for ``val_accuracy``)
    separates them, and rows that do not select never break a tie. Equal on
    both, configurations share a rank. With rungs (a ``budget`` column), a
    configuration stopped at a lower rung ranks below every one trained on.
    """
    columns = [f"mean_{objective}"]
    tie_breaker = tie_breaker_of(objective)
    if tie_breaker is not None and tie_breaker in metrics:
        columns.append(f"mean_{tie_breaker}")
    values = summary[columns].astype("float64")
    values[columns[0]] = values[columns[0]].fillna(np.inf if direction == "min" else -np.inf)
    values = values.fillna(np.inf)  # a missing tie-breaker breaks no tie
    ascending = [direction == "min"] + [True] * (len(columns) - 1)
    if "budget" in metrics:  # rungs: a configuration stopped at a rung ranks below every one trained on
        # A run without rungs (the baseline) trained its whole budget.
        budget = summary["mean_budget"].astype("float64")
        values.insert(0, "budget", -budget.fillna(budget.max()))
        ascending.insert(0, True)
    ordered = values.sort_values(list(values.columns), ascending=ascending, kind="stable")
    key = ordered.apply(tuple, axis=1)
    position = pd.Series(np.arange(1, len(ordered) + 1), index=ordered.index)
    ranks = position.groupby(key.to_numpy()).transform("min") if len(ordered) else position
    return ranks.reindex(summary.index).astype(int)


def tie_breaker_of(objective: str) -> str | None:
    """The loss on the objective's own rows (``val_loss`` for ``val_accuracy``); None for a loss objective."""
    loss = f"{objective.split('_', 1)[0]}_loss"
    return None if loss == objective else loss


def whole_budget_runs(trials: pd.DataFrame) -> pd.Series:
    """Which runs trained the whole budget, each once: with rungs, those that reached the last.

    Hyperband may train one configuration to the end in two brackets: the same
    seeds, the same runs, counted once. Without a ``budget`` column, every run.
    """
    if "budget" not in trials.columns:
        return pd.Series(True, index=trials.index)
    budget = pd.to_numeric(trials["budget"], errors="coerce")
    whole = budget.isna() | (budget == budget.max())  # no budget: a run without rungs (the baseline)
    same_run = [c for c in trials.columns if c.startswith(PARAM_PREFIX)] + ["repeat", "fold"]
    whole[whole] = ~trials.loc[whole, same_run].astype(str).duplicated().to_numpy()
    return whole


def history_key(metric: str) -> str:
    """The per-epoch history's name for a recorded metric: ``val_accuracy`` for the tutorial's ``test_accuracy``.

    A run's ``test_*`` are its restored model scored on the rows that validated it;
    ``train_*`` are the history's plain ``accuracy`` and ``loss``.
    """
    rows, _, name = metric.partition("_")
    return {"test": f"val_{name}", "val": metric}.get(rows, name)


def best_configuration(summary: pd.DataFrame, objective: str | None = None) -> dict[str, Any]:
    """Returns the rank-1 configuration of a summary table.

    Args:
        summary: A table from ``summary_frame``.
        objective: The metric it was ranked by; defaults to the one recorded
            in ``summary.attrs``.

    Returns:
        ``{"rank", "search", "phase", "trial_id", "params": {name: value},
        "n_runs", "n_failed", "n_diverged", "objective", "mean_<m>",
        "std_<m>", ...}`` with plain Python values (NaN params become None).

    Raises:
        SearchFailedError: If no configuration has a value for the objective.
    """
    objective = objective or summary.attrs.get("objective")
    if summary.empty:
        raise SearchFailedError("The summary has no configuration, so there is no best one.")
    row = summary.sort_values("rank", kind="stable").iloc[0]
    no_value = (
        _is_missing(row.get(f"mean_{objective}")) if objective else row["n_failed"] == row["n_runs"]
    )
    if no_value:
        raise SearchFailedError(
            f"No configuration has a {objective or 'completed run'} value: every run failed."
        )
    best: dict[str, Any] = {}
    for column, value in row.items():
        if column.startswith(PARAM_PREFIX):
            param = None if _is_missing(value) else _plain(value)
            best.setdefault("params", {})[column.removeprefix(PARAM_PREFIX)] = param
        else:
            best[column] = _plain(value)
    best.setdefault("params", {})
    best["objective"] = objective
    return best


def format_value(value: Any) -> str:
    """Formats a parameter or metric value compactly: ``0.001``, ``1e-06``, ``l2``, ``none``."""
    if _is_missing(value):
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    return str(value)


def format_params(params: Mapping[str, Any], *, skip_missing: bool = True) -> str:
    """Formats parameters as ``kind=l2, strength=0.001`` (``default`` if empty)."""
    parts = [
        f"{name.removeprefix(PARAM_PREFIX)}={format_value(value)}"
        for name, value in params.items()
        if not (skip_missing and _is_missing(value))
    ]
    return ", ".join(parts) or "default"


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    return math.isnan(float(value))


def _plain(value: Any) -> Any:
    """Numpy scalars to Python scalars, missing values to None (NaN metrics stay NaN)."""
    if value is pd.NA or value is None:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
