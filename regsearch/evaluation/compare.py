"""Does regularization help? Paired differences to the unregularized baseline, and the one-line answer.

Pure functions over the trials table (:func:`regsearch.report.trials_frame`).
A configuration is paired with the baseline run that shares its seed (and
its other searched settings: optimizer, learning rate, patience), so the
noise of one initialization and one data order cancels. Folds are averaged
within a seed first; the 95% confidence interval is Student's t over the
seeds' differences (``n - 1`` degrees of freedom), so it needs two seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["REGULARIZATION_PARAMS", "Assessment", "assess", "baseline_mask", "baselines_of", "context_columns",
           "paired_differences", "answer_line", "verdict", "selection_rows", "REFIT_PHASE"]

#: The ``param_*`` columns that say how a configuration regularizes; the others (optimizer,
#: learning rate, patience) are its context, shared with the baseline it is paired with.
REGULARIZATION_PARAMS = tuple(f"param_{name}" for name in (
    "kind", "strength", "l1", "l2", "target", "placement", "constraint", "max_value", "min_value", "rate",
    "constraint_target", "dropout_kind", "dropout_rate", "dropout_where"))
#: The phase of ``kfold``'s retraining on every training row (not ranked: it is the assessment).
REFIT_PHASE = "refit"
CONFIDENCE = 0.95


def selection_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The runs that select (every phase but the refit)."""
    return trials[trials["phase"].astype(str) != REFIT_PHASE]


def context_columns(trials: pd.DataFrame) -> list[str]:
    """The searched settings that are not regularization, which pair a configuration with its baseline."""
    return [c for c in trials.columns if c.startswith("param_") and c not in REGULARIZATION_PARAMS]


def baseline_mask(frame: pd.DataFrame) -> pd.Series:
    """Rows (runs or configurations) without penalty, constraint or noise."""
    mask = pd.Series(True, index=frame.index)
    for column in ("param_kind", "param_constraint", "param_dropout_kind"):
        if column in frame.columns:
            values = frame[column].astype(object)
            mask &= values.isna() | (values.astype(str) == "none")
    return mask


def _per_seed(runs: pd.DataFrame, metric: str, keys: list[str]) -> pd.Series:
    """The metric averaged over folds, per (keys..., seed)."""
    done = runs[(runs["status"].astype(str) == "completed") & runs[metric].notna()]
    if done.empty:
        return pd.Series(dtype=float)
    frame = done[keys + ["seed", metric]].copy()
    frame[keys] = frame[keys].astype(object).where(frame[keys].notna(), "")
    return frame.groupby(keys + ["seed"], sort=False)[metric].mean()


@dataclass(frozen=True)
class Difference:
    """A paired difference over seeds: mean, its t confidence interval, and how many seeds pair up."""

    mean: float
    low: float
    high: float
    pairs: int

    @property
    def distinguishable(self) -> bool:
        return self.pairs >= 2 and (self.low > 0 or self.high < 0)


def _difference(values: np.ndarray) -> Difference:
    from scipy import stats

    n = len(values)
    if n == 0:
        return Difference(math.nan, math.nan, math.nan, 0)
    mean = float(np.mean(values))
    if n < 2:
        return Difference(mean, math.nan, math.nan, n)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return Difference(mean, mean - half, mean + half, n)


def _paired(own: pd.Series, reference: pd.Series) -> Difference:
    """``own - reference`` over the (context, seed) keys both have; no pairs when either has no runs."""
    if own.empty or reference.empty:
        return _difference(np.zeros(0))
    shared = own.index.intersection(reference.index)
    return _difference((own[shared] - reference[shared]).to_numpy(dtype=float))


def paired_differences(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each configuration's ``metric`` minus its baseline's, paired by seed, with a 95% t interval.

    Returns:
        One row per configuration with a baseline to pair with: ``phase``,
        ``trial_id``, the ``param_*`` columns, ``n_pairs``, ``difference``,
        ``ci_low``, ``ci_high``, ``baseline`` (True for the baseline itself).
        Empty when the runs have no baseline.
    """
    runs = selection_rows(trials)
    context = context_columns(runs)
    is_baseline = baseline_mask(runs)
    reference = _per_seed(runs[is_baseline], metric, context)
    columns = ["phase", "trial_id", *[c for c in runs.columns if c.startswith("param_")], "n_pairs",
               "difference", "ci_low", "ci_high", "baseline"]
    if reference.empty:
        return pd.DataFrame(columns=columns)
    reference = reference.groupby(level=list(range(reference.index.nlevels))).mean()  # one baseline per context
    rows = []
    for (phase, trial_id), config in runs.groupby(["phase", "trial_id"], sort=False):
        found = _paired(_per_seed(config, metric, context), reference)
        first = config.iloc[0]
        rows.append({"phase": phase, "trial_id": trial_id,
                     **{c: first[c] for c in runs.columns if c.startswith("param_")},
                     "n_pairs": found.pairs, "difference": found.mean, "ci_low": found.low, "ci_high": found.high,
                     "baseline": bool(baseline_mask(config.iloc[:1]).iloc[0])})
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Assessment:
    """The selected configuration scored on the test rows, against the baseline.

    Attributes:
        protocol: ``holdout``, ``kfold`` or ``tutorial``.
        metric: The test metric (``test_accuracy``, or ``test_loss`` without accuracy).
        selection_metric: What selected (the search's objective).
        selection: Mean and std of the selection score over the selected configuration's runs.
        test: Mean and std of its test score over seeds (for ``kfold``: the refit runs).
        baseline_test: The baseline's test mean, or NaN without one.
        difference: The selected configuration minus the baseline on the test rows, paired by seed.
        is_baseline: The baseline itself was selected.
    """

    protocol: str
    metric: str
    selection_metric: str
    selection: tuple[float, float]
    test: tuple[float, float]
    baseline_test: float
    difference: Difference
    is_baseline: bool

    @property
    def optimism(self) -> float:
        """Selection score minus test score, where both measure the same thing (accuracy or loss)."""
        same = self.selection_metric.split("_", 1)[-1] == self.metric.split("_", 1)[-1]
        return self.selection[0] - self.test[0] if same else math.nan


def baselines_of(configs: pd.DataFrame, configuration: pd.Series) -> pd.DataFrame:
    """The baseline rows of ``configs`` that share ``configuration``'s context (optimizer, learning rate, ...)."""
    baselines = configs[baseline_mask(configs)]
    context = [c for c in context_columns(configs) if c in configuration.index]
    if not context or baselines.empty:
        return baselines
    same = baselines[context].astype(object).where(baselines[context].notna(), "")
    mine = configuration[context].astype(object).where(configuration[context].notna(), "")
    return baselines[(same == mine.to_numpy()).all(axis=1)]


def _test_runs(trials: pd.DataFrame, protocol: str, phase: str, trial_id: str) -> pd.DataFrame:
    if protocol == "kfold":
        return trials[(trials["phase"].astype(str) == REFIT_PHASE) & (trials["trial_id"] == trial_id)]
    return trials[(trials["phase"].astype(str) == phase) & (trials["trial_id"] == trial_id)]


def assess(trials: pd.DataFrame, best: dict[str, Any], protocol: str, baseline: bool = True) -> Assessment:
    """The selected configuration (``best``, a row of the summary) on the test rows, paired with the baseline's.

    ``baseline=False`` (a search without one, ``[evaluation] baseline = false``): nothing is compared.
    """
    metric = "test_accuracy" if trials["test_accuracy"].notna().any() else "test_loss"
    objective = best["objective"]
    runs = selection_rows(trials)
    chosen = runs[(runs["phase"] == best["phase"]) & (runs["trial_id"] == best["trial_id"])]
    chosen = chosen[chosen["status"].astype(str) == "completed"]
    tested = _test_runs(trials, protocol, best["phase"], best["trial_id"])
    context = context_columns(runs)
    own = _per_seed(tested, metric, context)
    configs = runs.drop_duplicates(["phase", "trial_id"])
    is_baseline = baseline and (bool(baseline_mask(chosen.iloc[:1]).all()) if len(chosen) else False)
    reference = pd.Series(dtype=float)
    if baseline and len(chosen):
        baselines = baselines_of(configs, chosen.iloc[0])
        parts = [_per_seed(_test_runs(trials, protocol, row["phase"], row["trial_id"]), metric, context)
                 for _, row in baselines.iterrows()]
        parts = [p for p in parts if not p.empty]
        if parts:
            reference = pd.concat(parts)
            reference = reference.groupby(level=list(range(reference.index.nlevels))).mean()
    difference = _paired(own, reference)
    values = own.to_numpy(dtype=float)
    return Assessment(
        protocol=protocol, metric=metric, selection_metric=objective,
        selection=(float(chosen[objective].mean()), float(chosen[objective].std(ddof=0))) if len(chosen)
        else (math.nan, math.nan),
        test=(float(values.mean()), float(values.std(ddof=0))) if len(values) else (math.nan, math.nan),
        baseline_test=float(reference.mean()) if len(reference) else math.nan,
        difference=difference, is_baseline=is_baseline,
    )


def verdict(assessment: Assessment) -> str:
    """Whether the selected configuration helped, in a word: ``beats``, ``worse``, ``indistinguishable``,
    ``baseline`` (no regularization was selected), ``one seed`` or ``no baseline``."""
    d = assessment.difference
    if assessment.is_baseline:
        return "baseline"
    if d.pairs == 0:
        return "no baseline"
    if d.pairs < 2:
        return "one seed"
    if not d.distinguishable:
        return "indistinguishable"
    return "beats" if (d.mean > 0) == assessment.metric.endswith("accuracy") else "worse"


def answer_line(assessment: Assessment, configuration: str) -> str:
    """The report's first line: whether the selected configuration beats no regularization beyond seed noise."""
    words = assessment.metric.replace("_", " ")
    d = assessment.difference
    found = verdict(assessment)
    if found == "baseline":
        return (f"No regularization was selected: no configuration scored better than the baseline by "
                f"{assessment.selection_metric.replace('_', ' ')} (the baseline's {words}: {assessment.test[0]:.3f}).")
    if found == "no baseline":
        return f"{configuration} was selected ({words} {assessment.test[0]:.4g}); there is no baseline to compare with."
    if found == "one seed":
        return (f"{configuration} differs from no regularization by {d.mean:+.3f} {words} on one seed: "
                "run at least two seeds to tell a difference from seed noise.")
    interval = f"(95% CI {d.low:+.3f} to {d.high:+.3f}, {d.pairs} seeds)"
    if found == "indistinguishable":
        return (f"No configuration is distinguishable from no regularization: the selected {configuration} "
                f"differs by {d.mean:+.3f} {words} {interval}.")
    verb = "beats" if found == "beats" else "is worse than"
    return f"{configuration} {verb} no regularization by {d.mean:+.3f} {words} {interval}."
