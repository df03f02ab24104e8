"""Does regularization help? Paired differences to the unregularized baseline, and the one-line answer.

Pure functions over the trials table (:func:`regsearch.report.trials_frame`)
and, where the runs recorded them, each row's outcome (:mod:`regsearch.outcomes`).
A configuration is paired with the baseline run that shares its seed (and
its other searched settings: optimizer, learning rate, patience), so the
noise of one initialization and one data order cancels; with per-row
outcomes it is paired row by row as well. Folds are averaged within a seed
first. The intervals (:mod:`regsearch.evaluation.intervals`) resample the
seeds and the scored rows (a paired bootstrap), so they cover new rows as
well as new seeds; each comes alone (uncorrected) and family-wise over every
configuration compared with the baseline (simultaneous), and the verdicts use
the family-wise one. Runs without per-row outcomes (results saved before they
were recorded) fall back to Student's t over the seeds, Bonferroni-corrected.
Every interval needs two seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from regsearch.evaluation.intervals import DRAWS, Family, detectable_difference, holm, row_seed_family, seed_family, \
    seeds_needed
from regsearch.outcomes import SETS, Outcomes, run_key

__all__ = ["REGULARIZATION_PARAMS", "Assessment", "Difference", "HowSure", "assess", "baseline_mask", "baselines_of",
           "claims_improvement", "context_columns", "how_sure", "paired_differences", "answer_line", "verdict",
           "selection_rows", "REFIT_PHASE", "assessed_runs"]

#: The ``param_*`` columns that say how a configuration regularizes; the others (optimizer,
#: learning rate, patience) are its context, shared with the baseline it is paired with.
REGULARIZATION_PARAMS = tuple(f"param_{name}" for name in (
    "kind", "strength", "l1", "l2", "target", "placement", "constraint", "max_value", "min_value", "rate",
    "constraint_target", "dropout_kind", "dropout_rate", "dropout_where"))
#: The phase of ``kfold``'s retraining on every training row (not ranked: it is the assessment).
REFIT_PHASE = "refit"
CONFIDENCE = 0.95
#: What the intervals resample, in the page's words.
METHODS = {"rows and seeds": "a paired bootstrap over the scored rows and the seeds",
           "seeds": "Student's t over the seeds only (these runs recorded no per-row outcomes, so the rows' own "
                    "variance is not in the interval)"}
#: The family-wise correction of each method, in the page's words.
CORRECTIONS = {"rows and seeds": "simultaneous intervals (max-t over the bootstrap draws)",
               "seeds": "Bonferroni"}


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


def _key_frame(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = runs[keys + ["seed"]].copy()
    frame[keys] = frame[keys].astype(object).where(frame[keys].notna(), "")
    return frame


def _row_values(runs: pd.DataFrame, metric: str, keys: list[str], outcomes: Outcomes) -> pd.Series | None:
    """Each completed run's per-row values of ``metric``, per (keys..., seed, row); None when a run has none.

    A run's values are shifted so that their mean is its score in the table
    (for a loss, that adds the run's penalty; for accuracy, float32 rounding).
    """
    rows_of, _, kind = metric.partition("_")
    if rows_of not in SETS or kind not in ("accuracy", "loss"):
        return None
    done = runs[(runs["status"].astype(str) == "completed") & runs[metric].notna()]
    if done.empty:
        return pd.Series(dtype=float)
    labels = _key_frame(done, keys)
    rows, values, sizes = [], [], []
    for (_, run) in done.iterrows():
        scores = outcomes.get(run_key(run), {}).get(rows_of)
        own = None if scores is None else scores.values(kind)
        if own is None or not len(own):
            return None
        rows.append(scores.rows)
        values.append(own - own.mean() + float(run[metric]))
        sizes.append(len(own))
    frame = pd.DataFrame({name: np.repeat(labels[name].to_numpy(dtype=object), sizes) for name in keys + ["seed"]})
    frame["row"] = np.concatenate(rows)
    frame["value"] = np.concatenate(values)
    return frame.groupby(keys + ["seed", "row"], sort=False)["value"].mean()


def _family(runs: pd.DataFrame, metric: str, outcomes: Outcomes | None, draws: int,
            seed: int) -> tuple[list[tuple], Family | None]:
    """Every configuration of ``runs`` against the baseline of its context, and the family of those compared.

    Returns:
        Per configuration (phase, trial_id, its runs, its per-seed scores, its
        paired ``Difference``, whether it is a baseline); the ``Family`` of the
        regularized ones with a pair (in that order), None without any.
    """
    context = context_columns(runs)
    is_baseline = baseline_mask(runs)
    reference = _per_seed(runs[is_baseline], metric, context)
    if not reference.empty:  # one baseline per context
        reference = reference.groupby(level=list(range(reference.index.nlevels))).mean()
    configs = []
    for (phase, trial_id), config in runs.groupby(["phase", "trial_id"], sort=False):
        own = _per_seed(config, metric, context)
        configs.append((phase, trial_id, config, own, _paired(own, reference),
                        bool(baseline_mask(config.iloc[:1]).iloc[0])))
    compared = [c for c in configs if not c[5] and c[4].pairs >= 1]
    if reference.empty or not compared:
        return configs, None
    estimate = np.array([c[4].mean for c in compared])
    by_row = None
    if outcomes:
        base_rows = _row_values(runs[is_baseline], metric, context, outcomes)
        own_rows = [_row_values(c[2], metric, context, outcomes) for c in compared]
        if base_rows is not None and not base_rows.empty and all(r is not None for r in own_rows):
            base_rows = base_rows.groupby(level=list(range(base_rows.index.nlevels))).mean()
            by_row = [(r - base_rows).dropna() for r in own_rows]
    if by_row is not None:
        units = pd.Index(sorted({k[:-1] for d in by_row for k in d.index}, key=repr))
        columns = pd.Index(sorted({k[-1] for d in by_row for k in d.index}))
        cube = np.full((len(compared), len(units), len(columns)), np.nan)
        for c, d in enumerate(by_row):
            if d.empty:
                continue
            cube[c, units.get_indexer([k[:-1] for k in d.index]), columns.get_indexer([k[-1] for k in d.index])] = \
                d.to_numpy(dtype=float)
        bound = 1.0 if metric.endswith("accuracy") else None  # right or wrong per row; a loss has no bound
        family = row_seed_family(cube, estimate, draws=draws, seed=seed, bound=bound)
    else:
        units = pd.Index(sorted({k for c in compared for k in c[3].index}, key=repr))
        per_seed = np.full((len(compared), len(units)), np.nan)
        for c, (_, _, _, own, _, _) in enumerate(compared):
            shared = own.index.intersection(reference.index)
            per_seed[c, units.get_indexer(shared)] = (own[shared] - reference[shared]).to_numpy(dtype=float)
        family = seed_family(per_seed, estimate)
    return configs, family


def paired_differences(trials: pd.DataFrame, metric: str, outcomes: Outcomes | None = None, *,
                       draws: int = DRAWS, seed: int = 0, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each configuration's ``metric`` minus its baseline's, paired by seed (and row), with 95% intervals.

    Args:
        trials: The trials table; its selection runs are compared (kfold's refit is not).
        metric: The compared column (``val_accuracy``, ``test_loss``, ...).
        outcomes: Each run's per-row outcomes (:mod:`regsearch.outcomes`); without them for
            every compared run, the intervals are over seeds only.
        draws, seed: The bootstrap's draws and seed.
        runs: Compare these runs instead of the selection runs (the assessment's refit).

    Returns:
        One row per configuration with a baseline to pair with: ``phase``,
        ``trial_id``, the ``param_*`` columns, ``n_pairs``, ``difference``,
        ``ci_low``, ``ci_high`` and ``p_value`` (each configuration on its own),
        ``ci_low_corrected``, ``ci_high_corrected``, ``p_corrected`` and
        ``beyond_noise`` (family-wise over the ``comparisons`` regularized
        configurations), ``seed_sd`` (the seeds' spread of the paired
        differences), ``interval`` (what is resampled: ``rows and seeds`` or
        ``seeds``), ``comparisons``, ``baseline`` (True for the baseline
        itself, 0 and no interval). Empty when the runs have no baseline.
    """
    runs = selection_rows(trials) if runs is None else runs
    columns = ["phase", "trial_id", *[c for c in runs.columns if c.startswith("param_")], "n_pairs",
               "difference", "ci_low", "ci_high", "p_value", "ci_low_corrected", "ci_high_corrected", "p_corrected",
               "beyond_noise", "seed_sd", "interval", "comparisons", "baseline"]
    if runs.empty or not baseline_mask(runs).any():
        return pd.DataFrame(columns=columns)
    configs, family = _family(runs, metric, outcomes, draws, seed)
    context = context_columns(runs)
    reference = _per_seed(runs[baseline_mask(runs)], metric, context)
    if not reference.empty:
        reference = reference.groupby(level=list(range(reference.index.nlevels))).mean()
    rows = []
    position = 0
    for phase, trial_id, config, own, found, is_baseline in configs:
        first = config.iloc[0]
        row = {"phase": phase, "trial_id": trial_id, **{c: first[c] for c in runs.columns if c.startswith("param_")},
               "n_pairs": found.pairs, "difference": found.mean, "baseline": is_baseline,
               "interval": None if family is None else family.method,
               "comparisons": 0 if family is None else family.comparisons}
        shared = own.index.intersection(reference.index) if not own.empty and not reference.empty else []
        row["seed_sd"] = float(np.std((own[shared] - reference[shared]).to_numpy(dtype=float), ddof=1)) \
            if len(shared) >= 2 else math.nan
        if is_baseline or found.pairs < 1 or family is None:
            zero = 0.0 if is_baseline and found.pairs >= 2 else math.nan
            row.update(ci_low=zero, ci_high=zero, p_value=math.nan, ci_low_corrected=zero, ci_high_corrected=zero,
                       p_corrected=math.nan, beyond_noise=False)
        else:
            row.update(ci_low=family.low[position], ci_high=family.high[position], p_value=family.p_value[position],
                       ci_low_corrected=family.low_corrected[position],
                       ci_high_corrected=family.high_corrected[position], p_corrected=family.p_corrected[position],
                       beyond_noise=bool(family.low_corrected[position] > 0 or family.high_corrected[position] < 0))
            position += 1
        rows.append(row)
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
        difference: The selected configuration minus the baseline on the test rows, paired by seed
            (and row), with the family-wise interval over the ``comparisons`` made on the test rows.
        is_baseline: The baseline itself was selected.
        uncorrected: The same difference with its interval on its own (None where nothing was compared).
        comparisons: How many configurations were compared with the baseline on the test rows (the
            family the interval is corrected over: every configuration for ``holdout`` and
            ``tutorial``, the refit one for ``kfold``).
        interval: What the interval resamples: ``rows and seeds``, or ``seeds`` (no per-row outcomes).
        optimism_seeds: Selection score minus test score per seed, with its t interval over seeds
            (None where they measure different things).
    """

    protocol: str
    metric: str
    selection_metric: str
    selection: tuple[float, float]
    test: tuple[float, float]
    baseline_test: float
    difference: Difference
    is_baseline: bool
    uncorrected: Difference | None = None
    comparisons: int = 1
    interval: str = "seeds"
    optimism_seeds: Difference | None = None

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


def assessed_runs(trials: pd.DataFrame, protocol: str, phase: str, trial_id: str) -> pd.DataFrame:
    """A configuration's runs whose test scores assess it: kfold's refit of it, else its runs in ``phase``."""
    if protocol == "kfold":
        return trials[(trials["phase"].astype(str) == REFIT_PHASE) & (trials["trial_id"] == trial_id)]
    return trials[(trials["phase"].astype(str) == phase) & (trials["trial_id"] == trial_id)]


def _tested_runs(trials: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The runs whose test scores assess: kfold's refit, else the selection runs (scored on the test rows too)."""
    if protocol == "kfold":
        return trials[trials["phase"].astype(str) == REFIT_PHASE]
    return selection_rows(trials)


def assess(trials: pd.DataFrame, best: dict[str, Any], protocol: str, baseline: bool = True,
           outcomes: Outcomes | None = None, *, draws: int = DRAWS) -> Assessment:
    """The selected configuration (``best``, a row of the summary) on the test rows, paired with the baseline's.

    ``baseline=False`` (a search without one, ``[evaluation] baseline = false``): nothing is compared.
    ``outcomes``: each run's per-row outcomes; without them the interval is over seeds only.
    """
    metric = "test_accuracy" if trials["test_accuracy"].notna().any() else "test_loss"
    objective = best["objective"]
    runs = selection_rows(trials)
    chosen = runs[(runs["phase"] == best["phase"]) & (runs["trial_id"] == best["trial_id"])]
    chosen = chosen[chosen["status"].astype(str) == "completed"]
    tested = assessed_runs(trials, protocol, best["phase"], best["trial_id"])
    context = context_columns(runs)
    own = _per_seed(tested, metric, context)
    configs = runs.drop_duplicates(["phase", "trial_id"])
    is_baseline = baseline and (bool(baseline_mask(chosen.iloc[:1]).all()) if len(chosen) else False)
    reference = pd.Series(dtype=float)
    if baseline and len(chosen):
        baselines = baselines_of(configs, chosen.iloc[0])
        parts = [_per_seed(assessed_runs(trials, protocol, row["phase"], row["trial_id"]), metric, context)
                 for _, row in baselines.iterrows()]
        parts = [p for p in parts if not p.empty]
        if parts:
            reference = pd.concat(parts)
            reference = reference.groupby(level=list(range(reference.index.nlevels))).mean()
    difference = _paired(own, reference)
    uncorrected, comparisons, interval = None, 1, "seeds"
    if not reference.empty and not is_baseline and difference.pairs >= 1:
        table = paired_differences(trials, metric, outcomes, draws=draws, runs=_tested_runs(trials, protocol))
        mine = table["trial_id"] == best["trial_id"]
        if protocol != "kfold":
            mine &= table["phase"] == best["phase"]
        if mine.any():
            row = table[mine].iloc[0]
            difference = Difference(difference.mean, float(row["ci_low_corrected"]), float(row["ci_high_corrected"]),
                                    difference.pairs)
            uncorrected = Difference(difference.mean, float(row["ci_low"]), float(row["ci_high"]), difference.pairs)
            comparisons, interval = int(row["comparisons"]), str(row["interval"])
    same = objective.split("_", 1)[-1] == metric.split("_", 1)[-1]
    optimism = _paired(_per_seed(chosen, objective, context), own) if same and len(chosen) else None
    values = own.to_numpy(dtype=float)
    return Assessment(
        protocol=protocol, metric=metric, selection_metric=objective,
        selection=(float(chosen[objective].mean()), float(chosen[objective].std(ddof=0))) if len(chosen)
        else (math.nan, math.nan),
        test=(float(values.mean()), float(values.std(ddof=0))) if len(values) else (math.nan, math.nan),
        baseline_test=float(reference.mean()) if len(reference) else math.nan,
        difference=difference, is_baseline=is_baseline, uncorrected=uncorrected, comparisons=comparisons,
        interval=interval, optimism_seeds=optimism,
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


def interval_words(assessment: Assessment) -> str:
    """What the answer's interval covers, after its bounds: ``", 5 seeds"`` or
    ``" over the test rows and 10 seeds, family-wise over 12 configurations"``."""
    d = assessment.difference
    family = ""
    if assessment.comparisons > 1:
        method = "family-wise" if assessment.interval == "rows and seeds" else "Bonferroni"
        family = f", {method} over {assessment.comparisons} configurations"
    if assessment.interval == "rows and seeds":
        return f" over the test rows and {d.pairs} seeds{family}"
    return f", {d.pairs} seeds{family}"


def answer_line(assessment: Assessment, configuration: str) -> str:
    """The report's first line: whether the selected configuration beats no regularization beyond noise (its family-wise
    interval on the test rows, :attr:`Assessment.difference`)."""
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
    interval = f"(95% CI {d.low:+.3f} to {d.high:+.3f}{interval_words(assessment)})"
    if found == "indistinguishable":
        return (f"No configuration is distinguishable from no regularization: the selected {configuration} "
                f"differs by {d.mean:+.3f} {words} {interval}.")
    verb = "beats" if found == "beats" else "is worse than"
    return f"{configuration} {verb} no regularization by {d.mean:+.3f} {words} {interval}."


@dataclass(frozen=True)
class HowSure:
    """What the search could have told apart, from its seed-to-seed spread (:func:`how_sure`).

    Attributes:
        spread: The seeds' standard deviation of the paired differences, pooled over the regularized
            configurations of the comparison whose difference varies between seeds (0 when none does).
        seeds: The seeds each configuration was paired on (the most common count).
        comparisons: The family the correction covers; each test runs at ``alpha / comparisons``.
        alpha: That per-comparison level.
        detectable: The smallest difference a paired t-test over ``seeds`` detects with 80% power at ``alpha``.
        difference: The difference asked about (the selected configuration's), or NaN.
        seeds_for_difference: The seeds that difference would need, or None.
    """

    spread: float
    seeds: int
    comparisons: int
    alpha: float
    detectable: float
    difference: float
    seeds_for_difference: int | None


POWER = 0.8
ALPHA = 0.05


def how_sure(comparison: pd.DataFrame, difference: float = math.nan) -> HowSure | None:
    """The smallest difference the search could detect (80% power, two-sided 5% family-wise, Bonferroni's share
    per comparison) and the seeds ``difference`` would need, from ``comparison`` (:func:`paired_differences`).

    The spread is the seeds' only: more seeds shrink it, not the test rows' own
    variance, which the bootstrap's intervals carry as well. None without two
    paired seeds in any regularized configuration.
    """
    if comparison.empty or "seed_sd" not in comparison:
        return None
    rows = comparison[~comparison["baseline"].astype(str).str.lower().eq("true")]
    sd = pd.to_numeric(rows["seed_sd"], errors="coerce")
    pairs = pd.to_numeric(rows["n_pairs"], errors="coerce")
    usable = sd.notna() & (pairs >= 2)
    if not usable.any():
        return None
    # A configuration that differs from the baseline by the same amount on every seed (often: not at all) says
    # nothing about the seeds' spread of a real difference: pooled over the others.
    varying = usable & (sd > 0)
    spread = float(np.sqrt(np.mean(np.square(sd[varying])))) if varying.any() else 0.0
    seeds = int(pairs[usable].mode().max())
    comparisons = max(1, int(usable.sum()))
    alpha = ALPHA / comparisons
    detectable = detectable_difference(spread, seeds, alpha=alpha, power=POWER)
    needed = None
    if math.isfinite(difference) and difference != 0:
        needed = seeds_needed(difference, spread, alpha=alpha, power=POWER)
    return HowSure(spread, seeds, comparisons, alpha, detectable, float(difference), needed)


def claims_improvement(trials: pd.DataFrame, outcomes: Outcomes | None, *, objective: str, direction: str,
                       protocol: str, correction: str = "max-t", draws: int = DRAWS) -> dict[str, Any]:
    """Whether a search's answer claims that regularization helps, with and without the family-wise correction.

    What a false-claim simulation counts (``benchmarks/null.py``): the search is
    summarised as its report would be (selected by ``objective``, assessed on
    the test rows) and its claim read off the assessment's intervals.

    Args:
        trials: The search's trials table (``trials_frame(result.records)``).
        outcomes: Its per-row outcomes (``SearchResult.outcomes``); None: intervals over seeds only.
        objective, direction: What selected (the definition's).
        protocol: ``holdout``, ``kfold`` or ``tutorial``.
        correction: ``max-t`` (the pages' simultaneous intervals) or ``holm`` (Holm's step-down
            on the same family's p-values).

    Returns:
        ``selected`` (trial id), ``is_baseline``, ``difference`` (test rows, selected minus baseline),
        ``ci`` and ``ci_uncorrected`` (low, high), ``p_uncorrected``, ``p_corrected``, ``claims``
        (corrected) and ``claims_uncorrected`` (an improvement beyond noise), ``comparisons``, ``interval``.
    """
    from regsearch.errors import SettingError, one_of
    from regsearch.report.tables import best_configuration, summary_frame

    if correction not in ("max-t", "holm"):
        raise SettingError("correction", one_of(("max-t", "holm")), correction, "claims_improvement")
    best = best_configuration(summary_frame(selection_rows(trials), objective, direction))
    assessment = assess(trials, best, protocol, True, outcomes, draws=draws)
    higher = assessment.metric.endswith("accuracy")
    d, raw = assessment.difference, assessment.uncorrected or assessment.difference

    def beyond(low: float, high: float) -> bool:
        return bool(low > 0) if higher else bool(high < 0)

    found = {"selected": best["trial_id"], "is_baseline": assessment.is_baseline, "difference": d.mean,
             "ci": (d.low, d.high), "ci_uncorrected": (raw.low, raw.high), "p_uncorrected": math.nan,
             "p_corrected": math.nan, "comparisons": assessment.comparisons, "interval": assessment.interval,
             "claims": False, "claims_uncorrected": False}
    if assessment.is_baseline or d.pairs < 2:
        return found
    table = paired_differences(trials, assessment.metric, outcomes, draws=draws, runs=_tested_runs(trials, protocol))
    compared = table[~table["baseline"].astype(bool) & table["p_value"].notna()]
    mine = compared["trial_id"] == best["trial_id"]
    if protocol != "kfold":
        mine &= compared["phase"] == best["phase"]
    if mine.any():
        position = int(np.flatnonzero(mine.to_numpy())[0])
        found["p_uncorrected"] = float(compared["p_value"].iloc[position])
        found["p_corrected"] = (float(holm(compared["p_value"].to_numpy(dtype=float))[position])
                                if correction == "holm" else float(compared["p_corrected"].iloc[position]))
    found["claims_uncorrected"] = beyond(raw.low, raw.high)
    if correction == "holm":
        found["claims"] = bool(found["p_corrected"] < ALPHA) and ((d.mean > 0) == higher)
    else:
        found["claims"] = beyond(d.low, d.high)
    return found
