"""How sure a difference to the baseline is: intervals over test rows and seeds, family-wise, and power.

Pure numpy/scipy functions on arrays of paired differences (a configuration
minus its baseline), no pandas, no Keras.

- :func:`row_seed_family`: the paired two-way bootstrap. Each draw resamples
  the seeds and the scored rows (with replacement, independently), so the
  interval covers new rows from the same source as well as new seeds. All
  configurations share the draws, which gives their joint distribution: the
  corrected intervals are simultaneous (single-step max-t): with 95%
  probability every one of them holds its true difference, however many
  configurations were compared and whichever one was then chosen.
  For right/wrong outcomes (``bound=1``) the standard error is never taken
  below what the rows can resolve: when few rows or none differ, the
  bootstrap sees no variance, yet on new rows the two models may still
  disagree. The floor is the exact binomial bound on the share of new rows
  on which the two differ when none of the ``R`` scored rows did
  (``1 - (alpha / 2) ** (1 / R)``, about ``3.7 / R``), divided by ``z``: a
  configuration that agreed with its baseline on every row gets about
  ``±3.7 / R``, not ``[0, 0]``. The max-t deviations are taken on these
  same standard errors (so a configuration that differs on a row or two
  does not widen the others' simultaneous intervals), and the simultaneous
  quantile is never below ``z``.
- :func:`seed_family`: the fallback without per-row outcomes (results saved
  before they were recorded): Student's t over the seeds' differences,
  Bonferroni-corrected.
- :func:`holm`: Holm's step-down adjusted p-values (an alternative correction
  for :func:`regsearch.evaluation.compare.claims_improvement`).
- :func:`detectable_difference`, :func:`seeds_needed`: the paired t-test's
  power, from the seed-to-seed spread of the differences.

Cost: a draw is two weight vectors (seeds ``K``, rows ``R``), and each
configuration's resampled mean is ``w_seeds @ D @ w_rows`` over its ``K x R``
differences: time ``draws x C x K x R``, memory ``CHUNK x (K + R)`` at a time
(moons: 2000 draws x 13 configurations x 10 seeds x 70 rows, a few ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DRAWS", "Family", "detectable_difference", "holm", "resolution", "row_seed_family", "seed_family",
           "seeds_needed"]

DRAWS = 2000
CONFIDENCE = 0.95
#: Bootstrap draws computed at once (bounds memory: CHUNK x rows floats).
CHUNK = 250


@dataclass(frozen=True)
class Family:
    """Differences of ``C`` configurations to the baseline, each alone and all together.

    Attributes:
        estimate: The differences (C).
        low, high: Each one's 95% interval on its own (uncorrected).
        low_corrected, high_corrected: The family-wise (simultaneous) 95% intervals.
        p_value: Each one's two-sided p-value for "no difference", uncorrected.
        p_corrected: The same, corrected for the ``comparisons`` made.
        pairs: Seeds (pairing units) per configuration.
        comparisons: How many configurations the correction covers.
        method: What the intervals resample: ``"rows and seeds"`` or ``"seeds"``.
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    low_corrected: np.ndarray
    high_corrected: np.ndarray
    p_value: np.ndarray
    p_corrected: np.ndarray
    pairs: np.ndarray
    comparisons: int
    method: str


def _resampled_means(differences: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """Each configuration's mean difference under ``draws`` resamplings of seeds and rows (draws x C).

    Missing cells (NaN: a row a run did not score) drop out of both sums.
    """
    count, seeds, rows = differences.shape
    present = np.isfinite(differences).astype(float)
    values = np.where(present > 0, differences, 0.0)
    rng = np.random.default_rng(seed)
    out = np.empty((draws, count))
    for start in range(0, draws, CHUNK):
        n = min(CHUNK, draws - start)
        w_seeds = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=n).astype(float)
        w_rows = rng.multinomial(rows, np.full(rows, 1 / rows), size=n).astype(float)
        for c in range(count):
            total = ((w_seeds @ values[c]) * w_rows).sum(axis=1)
            weight = ((w_seeds @ present[c]) * w_rows).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start:start + n, c] = total / weight
    return out


def resolution(rows: int, bound: float, confidence: float = CONFIDENCE) -> float:
    """The largest difference ``rows`` rows can hide: if the outcomes of two models differ by at most ``bound`` per
    row and they differed on none of ``rows`` rows, the share of new rows on which they differ is below
    ``1 - (alpha / 2) ** (1 / rows)`` with two-sided ``confidence`` (exact binomial), so their difference on new
    rows is within ``bound`` times that."""
    if rows < 1:
        return math.nan
    return bound * (1 - ((1 - confidence) / 2) ** (1 / rows))


def row_seed_family(differences: np.ndarray, estimate: np.ndarray | None = None, *, draws: int = DRAWS,
                    seed: int = 0, confidence: float = CONFIDENCE, bound: float | None = None) -> Family:
    """Intervals from the paired bootstrap over seeds and rows, each alone and simultaneous over configurations.

    Args:
        differences: ``C x K x R``: configuration ``c``'s outcome minus its
            baseline's on seed ``k`` and scored row ``r`` (right or wrong: +1,
            0, -1; or a per-row loss), NaN where the pair has no such row.
        estimate: The differences to put the intervals around (C); default
            the mean of each configuration's cells.
        draws: Bootstrap draws; ``seed`` seeds them (the same numbers every time).
        confidence: The intervals' coverage.
        bound: The largest a cell can be in size (1 for right or wrong), or None (a per-row loss: unbounded).
            With a bound, the standard error is at least :func:`resolution` of the scored rows over ``z``.

    Returns:
        Normal intervals ``estimate ± z·se`` with ``se`` the draws' standard
        deviation times ``sqrt(K / (K - 1))`` (the bootstrap of a mean over ``K``
        seeds shrinks its variance by ``(K - 1) / K``); the simultaneous ones
        use the ``confidence`` quantile of the draws' largest standardized
        deviation over the configurations (max-t) instead of ``z``.
        A configuration with under two seeds gets NaN.
    """
    from scipy import stats

    differences = np.asarray(differences, dtype=float)
    count, seeds, _ = differences.shape
    pairs = np.array([int(np.isfinite(d).any(axis=1).sum()) for d in differences])
    present = np.isfinite(differences)
    cells = np.where(present, differences, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = cells / present.sum(axis=(1, 2))
    estimate = observed if estimate is None else np.asarray(estimate, dtype=float)
    usable = pairs >= 2
    nan = np.full(count, math.nan)
    if not usable.any():
        return Family(estimate, nan, nan, nan, nan, nan, nan, pairs, int(usable.sum()), "rows and seeds")
    means = _resampled_means(differences, draws, seed)
    spread = np.nanstd(means, axis=0, ddof=1)
    unbiased = np.sqrt(np.where(pairs >= 2, pairs / np.maximum(pairs - 1, 1), math.nan))  # K / (K - 1), rooted
    se = spread * unbiased
    z = stats.norm.ppf(0.5 + confidence / 2)
    if bound is not None:
        scored = present.any(axis=1).sum(axis=1)  # rows any seed scored, per configuration
        floor = np.array([resolution(int(n), bound, confidence) for n in scored]) / z
        se = np.where(usable, np.fmax(se, floor), se)
    # Each draw's deviations on the scale of the intervals' own standard errors (the floor included, less the
    # K / (K - 1) correction the draws do not have): a configuration whose few differing rows make its draws jump
    # by several bootstrap deviations does not inflate every interval's max-t quantile; one that never varies and
    # has no floor adds nothing to the max.
    raw = se / unbiased
    scale = np.where(raw > 0, raw, math.inf)
    deviation = np.abs(means - observed) / scale
    largest = np.nanmax(np.where(usable, deviation, 0.0), axis=1)
    # Never below z: where the floor, not the draws, sets the standard errors, the draws' largest deviation can
    # fall short of one interval's own, and a family-wise interval is never narrower than its uncorrected one.
    q = max(float(np.quantile(largest, confidence)), z)
    t = np.abs(estimate) / np.where(se > 0, se, math.nan)
    p = np.where(se > 0, 2 * stats.norm.sf(t), np.where(estimate == 0, 1.0, 0.0))
    exceed = (largest[:, None] >= np.where(np.isfinite(t), t, math.inf)[None, :]).sum(axis=0)
    p_corrected = np.where(se > 0, (1 + exceed) / (draws + 1), p)
    keep = np.where(usable, 1.0, math.nan)
    return Family(estimate, (estimate - z * se) * keep, (estimate + z * se) * keep,
                  (estimate - q * se) * keep, (estimate + q * se) * keep, p * keep, p_corrected * keep, pairs,
                  int(usable.sum()), "rows and seeds")


def seed_family(per_seed: np.ndarray, estimate: np.ndarray | None = None,
                confidence: float = CONFIDENCE) -> Family:
    """Student's t over the seeds' differences, Bonferroni-corrected: what results without per-row outcomes get.

    Args:
        per_seed: ``C x K`` differences per configuration and seed, NaN where unpaired.
        estimate: The differences to put the intervals around; default the seeds' mean.

    Returns:
        Each interval ``mean ± t(n-1)·sd/sqrt(n)``; corrected, ``t`` at ``alpha / C``.
        Zero spread gives a zero-width interval: the rows' own variance is not in it.
    """
    from scipy import stats

    per_seed = np.asarray(per_seed, dtype=float)
    count = per_seed.shape[0]
    pairs = np.isfinite(per_seed).sum(axis=1)
    usable = pairs >= 2
    comparisons = int(usable.sum())
    alpha = 1 - confidence
    out = {key: np.full(count, math.nan) for key in ("low", "high", "lowc", "highc", "p", "pc")}
    mean = np.array([np.nanmean(row) if n else math.nan for row, n in zip(per_seed, pairs)])
    estimate = mean if estimate is None else np.asarray(estimate, dtype=float)
    for c in np.flatnonzero(usable):
        n = pairs[c]
        se = float(np.nanstd(per_seed[c], ddof=1)) / math.sqrt(n)
        half = stats.t.ppf(1 - alpha / 2, n - 1) * se
        wide = stats.t.ppf(1 - alpha / (2 * comparisons), n - 1) * se
        out["low"][c], out["high"][c] = estimate[c] - half, estimate[c] + half
        out["lowc"][c], out["highc"][c] = estimate[c] - wide, estimate[c] + wide
        p = 2 * stats.t.sf(abs(estimate[c]) / se, n - 1) if se > 0 else float(estimate[c] == 0)
        out["p"][c], out["pc"][c] = p, min(1.0, p * comparisons)
    return Family(estimate, out["low"], out["high"], out["lowc"], out["highc"], out["p"], out["pc"], pairs,
                  comparisons, "seeds")


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


def _power(effect: float, seeds: int, alpha: float) -> float:
    """Power of the two-sided paired t-test at standardized ``effect`` with ``seeds`` pairs."""
    from scipy import stats

    df = seeds - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = effect * math.sqrt(seeds)
    # Far in the tail scipy's noncentral t gives NaN for what is 0 (shift > 0: the lower tail).
    lower = float(np.nan_to_num(stats.nct.cdf(-critical, df, shift), nan=0.0))
    return float(np.nan_to_num(stats.nct.sf(critical, df, shift), nan=1.0)) + lower


def detectable_difference(spread: float, seeds: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest difference a paired t-test over ``seeds`` seeds detects with ``power``.

    Args:
        spread: The seed-to-seed standard deviation of the paired differences.
        seeds: Pairs (at least 2).
        alpha: Two-sided level (divide it by the comparisons for a family-wise one).
    """
    from scipy import optimize

    if seeds < 2 or not math.isfinite(spread):
        return math.nan
    if spread == 0:
        return 0.0
    high = 1.0
    while _power(high, seeds, alpha) < power:  # bracket the root: few seeds at a small alpha need a large effect
        high *= 2
    effect = optimize.brentq(lambda e: _power(e, seeds, alpha) - power, 1e-9, high, xtol=1e-12)
    return effect * spread


def seeds_needed(difference: float, spread: float, *, alpha: float = 0.05, power: float = 0.8,
                 most: int = 100_000) -> int:
    """The fewest seeds (at least 2) whose paired t-test detects ``difference`` with ``power``.

    Returns:
        The count, or ``most + 1`` when even ``most`` seeds do not suffice.
    """
    if spread == 0:
        return 2
    effect = abs(difference) / spread
    if effect == 0:
        return most + 1
    # The normal approximation starts the search; the t-test needs a few more.
    from scipy import stats

    guess = max(2, int(((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / effect) ** 2) - 1)
    n = min(guess, most)
    while n > 2 and _power(effect, n - 1, alpha) >= power:
        n -= 1
    while n <= most and _power(effect, n, alpha) < power:
        n += 1
    return n
