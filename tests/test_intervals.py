"""regsearch.evaluation.intervals: the bootstrap over rows and seeds, its corrections, and power, on fixed numbers."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from regsearch.evaluation.intervals import (
    detectable_difference,
    holm,
    resolution,
    row_seed_family,
    seed_family,
    seeds_needed,
)


def moons_like(configurations: int = 1, seeds: int = 10, rows: int = 70) -> np.ndarray:
    """Every seed gets exactly one more of the rows right (row 17), the same row every time."""
    differences = np.zeros((configurations, seeds, rows))
    differences[:, :, 17] = 1.0
    return differences


def test_the_moons_case_is_not_zero_width_and_not_beyond_noise():
    family = row_seed_family(moons_like())
    assert family.estimate[0] == pytest.approx(1 / 70)
    # One row of 70: the rows' sampling variance, sqrt(p (1 - p) / n) with a little over n/(n-1).
    width = family.high[0] - family.low[0]
    assert width == pytest.approx(2 * 1.96 * math.sqrt((1 / 70) * (69 / 70) / 70) * math.sqrt(10 / 9), rel=0.1)
    assert family.low[0] < 0 < family.high[0]
    assert family.p_value[0] > 0.05
    # The seed-only interval the old pages showed collapses to a point, "beyond seed noise".
    seeds_only = seed_family(moons_like().mean(axis=2))
    assert seeds_only.low[0] == seeds_only.high[0] == pytest.approx(1 / 70)


def test_the_rule_of_three_bound_is_the_exact_binomial_one():
    # No row of 70 differs: the share that differs on new rows is below the Clopper-Pearson upper limit for 0 of 70.
    upper = stats.beta.ppf(0.975, 1, 70)
    assert resolution(70, 1.0) == pytest.approx(upper)
    assert resolution(7000, 1.0) == pytest.approx(3.69 / 7000, rel=0.01)  # about 3.7 / R
    assert resolution(70, 2.0) == pytest.approx(2 * upper)
    assert math.isnan(resolution(0, 1.0))


def test_a_configuration_that_agrees_on_every_row_gets_the_rows_resolution_not_zero_width():
    """L2 1e-6 predicts what the baseline predicts on every test row and seed: the bootstrap alone says [0, 0]."""
    agree = np.zeros((2, 10, 70))
    agree[1, :, 5] = 1.0  # a second configuration, so the family has two members
    unbounded = row_seed_family(agree)
    assert unbounded.low[0] == unbounded.high[0] == 0.0
    family = row_seed_family(agree, bound=1.0)
    assert (family.low[0], family.high[0]) == pytest.approx((-resolution(70, 1.0), resolution(70, 1.0)))
    assert family.p_value[0] == pytest.approx(1.0)
    # family-wise: never narrower, never beyond noise
    assert family.low_corrected[0] <= family.low[0] < 0 < family.high[0] <= family.high_corrected[0]
    # The rows scored count, not the cells: seeds do not add rows.
    assert row_seed_family(agree[:, :3], bound=1.0).high[0] == pytest.approx(resolution(70, 1.0))
    assert row_seed_family(agree[:, :, :35], bound=1.0).high[0] == pytest.approx(resolution(35, 1.0))
    # A difference the rows resolve well keeps its bootstrap interval.
    rng = np.random.default_rng(0)
    busy = rng.choice([-1.0, 0.0, 1.0], p=[0.2, 0.5, 0.3], size=(1, 10, 70))
    assert row_seed_family(busy, bound=1.0).high[0] == pytest.approx(row_seed_family(busy).high[0])


def test_configurations_that_differ_on_a_row_or_two_do_not_widen_the_others_family_wise_intervals():
    """Their draws jump by several bootstrap deviations (a row drawn 0 or 3 times); on the floor's scale they do not."""
    rng = np.random.default_rng(0)
    busy = rng.choice([-1.0, 0.0, 1.0], p=[0.05, 0.7, 0.25], size=(1, 5, 70))  # a real gain
    others = rng.choice([-1.0, 0.0, 1.0], p=[0.1, 0.8, 0.1], size=(4, 5, 70))
    sparse = np.zeros((2, 5, 70))
    sparse[0, :, 3] = 1.0  # one row differs, on every seed
    sparse[1, 0, 5] = 1.0  # one row, on one seed
    without = row_seed_family(np.concatenate([busy, others]), bound=1.0)
    with_sparse = row_seed_family(np.concatenate([busy, others, sparse]), bound=1.0)
    assert with_sparse.comparisons == without.comparisons + 2
    # Two more comparisons cost a little width at most, not the jump the sparse ones' raw draws would cause.
    width = lambda f: f.high_corrected[0] - f.low_corrected[0]  # noqa: E731
    assert width(without) <= width(with_sparse) <= 1.1 * width(without)
    assert with_sparse.low_corrected[0] > 0  # the real gain stays beyond noise


def test_the_interval_widens_when_rows_vary():
    rng = np.random.default_rng(3)
    per_seed = 0.02 + rng.normal(0, 0.005, size=10)
    flat = np.repeat(per_seed[None, :, None], 70, axis=2)
    noise = rng.normal(0, 0.3, size=(10, 70))
    varied = flat + (noise - noise.mean(axis=1, keepdims=True))  # the same per-seed means
    calm, busy = row_seed_family(flat), row_seed_family(varied)
    assert calm.estimate[0] == pytest.approx(busy.estimate[0])
    assert busy.high[0] - busy.low[0] > 3 * (calm.high[0] - calm.low[0])
    # Without row variance the bootstrap agrees with the seeds' own spread (normal approximation).
    assert calm.high[0] - calm.low[0] == pytest.approx(2 * 1.96 * per_seed.std(ddof=1) / math.sqrt(10), rel=0.15)


def test_few_seeds_get_the_seeds_unbiased_spread():
    """The bootstrap of a mean over K seeds shrinks its variance by (K - 1) / K; the interval undoes it."""
    per_seed = np.array([0.01, 0.04, 0.025])
    family = row_seed_family(np.repeat(per_seed[None, :, None], 5, axis=2), draws=20000)
    half = stats.norm.ppf(0.975) * per_seed.std(ddof=1) / math.sqrt(3)
    assert (family.low[0], family.high[0]) == pytest.approx((per_seed.mean() - half, per_seed.mean() + half),
                                                            rel=0.03)


def test_simultaneous_intervals_of_independent_configurations_follow_sidak():
    rng = np.random.default_rng(0)
    count = 8
    differences = rng.normal(0.0, 1.0, size=(count, 10, 300))
    family = row_seed_family(differences, draws=4000)
    ratio = (family.high_corrected - family.low_corrected) / (family.high - family.low)
    sidak = stats.norm.ppf(1 - (1 - 0.95 ** (1 / count)) / 2) / stats.norm.ppf(0.975)
    assert ratio == pytest.approx(np.full(count, sidak), rel=0.06)
    assert family.comparisons == count


def test_simultaneous_intervals_of_identical_configurations_are_the_single_ones():
    one = np.random.default_rng(1).normal(0.1, 1.0, size=(1, 10, 200))
    family = row_seed_family(np.repeat(one, 5, axis=0))
    assert family.high_corrected - family.low_corrected == pytest.approx(family.high - family.low, rel=0.06)


def test_p_values_agree_with_the_intervals():
    rng = np.random.default_rng(2)
    differences = rng.normal(0, 1, size=(6, 10, 100)) + np.array([0, 0, 0.05, 0.1, 0.2, 0.4])[:, None, None]
    family = row_seed_family(differences)
    se = (family.high - family.low) / (2 * stats.norm.ppf(0.975))
    assert family.p_value == pytest.approx(2 * stats.norm.sf(np.abs(family.estimate) / se))
    assert list((family.low > 0) | (family.high < 0)) == list(family.p_value < 0.05)
    clear = np.abs(family.p_corrected - 0.05) > 0.01  # away from the bootstrap's resolution
    assert list(((family.low_corrected > 0) | (family.high_corrected < 0))[clear]) == list(
        (family.p_corrected < 0.05)[clear])
    assert (family.p_corrected >= family.p_value - 1e-12).all()


def test_the_bootstrap_is_seeded_and_skips_unscored_cells():
    differences = np.random.default_rng(4).normal(0, 1, size=(2, 4, 30))
    holes = differences.copy()
    holes[0, 1, :10] = np.nan
    assert row_seed_family(differences).low == pytest.approx(row_seed_family(differences).low)
    family = row_seed_family(holes)
    assert family.estimate[0] == pytest.approx(np.nanmean(holes[0]))
    assert np.isfinite(family.low).all()


def test_one_seed_gives_no_interval():
    family = row_seed_family(np.ones((2, 1, 20)))
    assert np.isnan(family.low).all() and family.comparisons == 0
    assert list(family.pairs) == [1, 1]


def test_seed_family_is_students_t_with_bonferroni():
    per_seed = np.array([[0.01, 0.03, 0.02, 0.05], [0.0, -0.01, 0.02, np.nan], [0.1, 0.12, 0.09, 0.11]])
    family = seed_family(per_seed)
    p = []
    for row, low, high in zip(per_seed, family.low, family.high):
        values = row[np.isfinite(row)]
        test = stats.ttest_1samp(values, 0.0)
        interval = test.confidence_interval(0.95)
        assert (low, high) == pytest.approx((interval.low, interval.high))
        p.append(test.pvalue)
    assert family.p_value == pytest.approx(p)
    assert family.p_corrected == pytest.approx(multipletests(p, method="bonferroni")[1])
    assert family.comparisons == 3 and family.method == "seeds"
    first = per_seed[0]
    wide = stats.t.ppf(1 - 0.05 / 6, 3) * first.std(ddof=1) / 2  # alpha / 3 comparisons, two-sided, 4 seeds
    assert (family.low_corrected[0], family.high_corrected[0]) == pytest.approx((first.mean() - wide,
                                                                                first.mean() + wide))


def test_holm_matches_statsmodels():
    for p in (np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.0001, 0.5]), np.array([0.012, 0.01, 0.011, 0.3, 0.02])):
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    with_nan = np.array([0.01, np.nan, 0.04])
    assert holm(with_nan)[[0, 2]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1])
    assert np.isnan(holm(with_nan)[1])


@pytest.mark.parametrize(("seeds", "alpha"), [(3, 0.05), (5, 0.05), (10, 0.05), (30, 0.05), (10, 0.05 / 13),
                                              (30, 0.05 / 13)])
def test_detectable_difference_is_the_paired_t_tests(seeds, alpha):
    spread = 0.02
    found = detectable_difference(spread, seeds, alpha=alpha)
    reference = spread * TTestPower().solve_power(effect_size=None, nobs=seeds, alpha=alpha, power=0.8)
    assert found == pytest.approx(reference, rel=1e-5)
    # Normal approximation, the closed form it tends to with many seeds.
    if seeds == 30 and alpha == 0.05:
        closed = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * spread / math.sqrt(seeds)
        assert found == pytest.approx(closed, rel=0.05)


@pytest.mark.parametrize("difference", [0.005, 0.01, 0.03])
def test_seeds_needed_is_the_smallest_count_with_the_power(difference):
    spread = 0.02
    needed = seeds_needed(difference, spread)
    power = TTestPower()
    assert power.power(difference / spread, needed, 0.05) >= 0.8 > power.power(difference / spread, needed - 1, 0.05)
    assert needed == math.ceil(power.solve_power(effect_size=difference / spread, nobs=None, alpha=0.05, power=0.8))


def test_power_edges():
    assert detectable_difference(0.0, 10) == 0.0
    assert math.isnan(detectable_difference(0.02, 1))
    assert seeds_needed(0.01, 0.0) == 2
    assert seeds_needed(0.0, 0.02, most=50) == 51
