"""Per-row outcomes (issue 26): recorded for every run, kept through a resume, and what the intervals resample."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import regsearch
from regsearch.cli import main
from regsearch.definition import load_definition
from regsearch.evaluation import compare
from regsearch.evaluation.intervals import resolution
from regsearch.outcomes import OUTCOMES_FILE, RowScores, load_outcomes, outcomes_bytes, run_key
from regsearch.report import trials_frame
from regsearch.search import run_search
from test_cli import TINY

SMALL = TINY.replace("repeats = 1  # bookkeeping tests: one seed keeps them cheap (the default is 5)", "repeats = 2")


# --- the file ---------------------------------------------------------------------------------------------------


def test_outcomes_round_trip_through_the_file(tmp_path: Path) -> None:
    outcomes = {
        ("grid", "grid-0000", 0, -1): {"val": RowScores(np.array([3, 1, 2]), np.array([1, 0, 1], np.uint8),
                                                        np.array([0.1, 2.0, 0.3], np.float32)),
                                       "test": RowScores(np.arange(2), None, np.array([1.5, 0.5], np.float32))},
        ("refit", "grid-0000", 1, -1): {"test": RowScores(np.arange(4), np.array([1, 1, 0, 1], np.uint8),
                                                          np.zeros(4, np.float32))},
    }
    same = RowScores(np.arange(3), np.array([1, 1, 0], np.uint8), np.array([0.2, 0.1, 0.9], np.float32))
    outcomes[("grid", "grid-0001", 0, -1)] = {"val": same, "test": same}  # tutorial: the val rows are the test rows
    path = tmp_path / "outcomes.npz"
    path.write_bytes(outcomes_bytes(outcomes))
    with np.load(path) as saved:
        assert len(saved["val_rows"]) == 3 and len(saved["test_rows"]) == 2 + 4 + 3  # equal sets are kept once
    back = load_outcomes(path)
    assert sorted(back) == sorted(outcomes)
    for key, sets in outcomes.items():
        assert sorted(back[key]) == sorted(sets)
        for name, scores in sets.items():
            assert np.array_equal(back[key][name].rows, scores.rows)
            assert np.array_equal(back[key][name].loss, scores.loss)
            assert (back[key][name].correct is None) == (scores.correct is None)
            if scores.correct is not None:
                assert np.array_equal(back[key][name].correct, scores.correct)
    assert run_key({"phase": "grid", "trial_id": "grid-0000", "repeat": 0.0, "fold": float("nan")}) == (
        "grid", "grid-0000", 0, -1)


# --- what the comparison does with them -------------------------------------------------------------------------


def moons_like(seeds: int = 10, rows: int = 70) -> tuple[pd.DataFrame, dict]:
    """The baseline gets rows 0..64 right on every seed; the configuration gets one more, row 65, on every seed."""
    records, outcomes = [], {}
    for kind, trial, right in (("none", "grid-0", 65), ("l2", "grid-1", 66)):
        for seed in range(seeds):
            record = {"search": "s", "trial_id": trial, "phase": "grid", "repeat": seed, "seed": seed, "fold": None,
                      "status": "completed", "reason": "", "param_kind": kind,
                      "param_strength": None if kind == "none" else 1e-3, "param_learning_rate": 0.001,
                      "test_accuracy": right / rows, "val_accuracy": right / rows}
            records.append(record)
            correct = (np.arange(rows) < right).astype(np.uint8)
            scores = RowScores(np.arange(rows), correct, np.zeros(rows, np.float32))
            outcomes[run_key(record)] = {"val": scores, "test": scores}
    return trials_frame(records), outcomes


def test_one_more_row_right_on_every_seed_is_not_beyond_noise_with_rows_and_was_without() -> None:
    trials, outcomes = moons_like()
    seeds_only = compare.paired_differences(trials, "test_accuracy").set_index("trial_id").loc["grid-1"]
    assert seeds_only["interval"] == "seeds" and seeds_only["ci_low"] == seeds_only["ci_high"]
    assert bool(seeds_only["beyond_noise"])  # the zero-width interval the old pages showed
    rows = compare.paired_differences(trials, "test_accuracy", outcomes).set_index("trial_id").loc["grid-1"]
    assert rows["interval"] == "rows and seeds" and rows["difference"] == pytest.approx(1 / 70)
    assert rows["ci_low"] < 0 < rows["ci_high"] and not bool(rows["beyond_noise"])
    assessment = compare.assess(trials, {"phase": "grid", "trial_id": "grid-1", "objective": "test_accuracy"},
                                "tutorial", outcomes=outcomes)
    assert compare.verdict(assessment) == "indistinguishable"
    assert "over the test rows and 10 seeds" in compare.answer_line(assessment, "x")


def test_a_configuration_right_on_the_same_rows_as_the_baseline_gets_the_rows_resolution() -> None:
    """Identical right/wrong on every row and seed: the interval is what 70 rows can resolve, not [0, 0]."""
    trials, outcomes = moons_like()
    same = trials.copy()
    l2 = same["trial_id"] == "grid-1"
    same.loc[l2, "test_accuracy"] = 65 / 70
    for record in same[l2].to_dict("records"):
        outcomes[run_key(record)] = outcomes[run_key({**record, "trial_id": "grid-0"})]
    row = compare.paired_differences(same, "test_accuracy", outcomes).set_index("trial_id").loc["grid-1"]
    assert row["difference"] == 0.0
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-resolution(70, 1.0), resolution(70, 1.0)))
    # A loss per row has no bound: equal losses on every row stay a point.
    loss = compare.paired_differences(same.assign(test_loss=0.3), "test_loss", outcomes).set_index("trial_id")
    assert loss.loc["grid-1", "ci_low"] == loss.loc["grid-1", "ci_high"] == 0.0


def test_the_family_widens_the_interval_and_claims_improvement_reports_both() -> None:
    trials, outcomes = moons_like()
    records = trials.to_dict("records")
    rng = np.random.default_rng(0)
    # Eleven more configurations, each right on a random 66 of the 70 rows: the family grows to twelve.
    for index in range(2, 13):
        for seed in range(10):
            right = rng.permutation(70) < 66
            record = {**records[seed], "trial_id": f"grid-{index}", "param_kind": "l2",
                      "param_strength": 10.0 ** -index, "test_accuracy": right.mean(), "val_accuracy": right.mean()}
            records.append(record)
            scores = RowScores(np.arange(70), right.astype(np.uint8), np.zeros(70, np.float32))
            outcomes[run_key(record)] = {"val": scores, "test": scores}
    trials = trials_frame(records)
    table = compare.paired_differences(trials, "test_accuracy", outcomes)
    compared = table[~table["baseline"].astype(bool)]
    assert set(compared["comparisons"]) == {12}
    assert ((compared["ci_high_corrected"] - compared["ci_low_corrected"])
            > (compared["ci_high"] - compared["ci_low"])).all()
    found = compare.claims_improvement(trials, outcomes, objective="test_accuracy", direction="max",
                                       protocol="tutorial")
    assert found["comparisons"] == 12 and found["interval"] == "rows and seeds"
    assert found["ci"][0] < found["ci_uncorrected"][0] and found["ci"][1] > found["ci_uncorrected"][1]
    assert found["p_corrected"] >= found["p_uncorrected"]
    assert found["claims"] is False
    holm = compare.claims_improvement(trials, outcomes, objective="test_accuracy", direction="max",
                                      protocol="tutorial", correction="holm")
    assert holm["p_corrected"] >= holm["p_uncorrected"] and holm["claims_uncorrected"] == found["claims_uncorrected"]
    with pytest.raises(regsearch.SettingError, match="'correction' must be one of 'max-t', 'holm'"):
        compare.claims_improvement(trials, outcomes, objective="test_accuracy", direction="max",
                                   protocol="tutorial", correction="bonferroni")


# --- end to end: recorded, exact, and kept through a resume ----------------------------------------------------


def check_exact(trials: pd.DataFrame, outcomes: dict, metric: str = "test_accuracy") -> int:
    """Every completed run with a score has its rows, and their mean is the score (to float32's rounding)."""
    name = metric.split("_", 1)[0]
    checked = 0
    for record in trials[trials["status"].astype(str) == "completed"].to_dict("records"):
        if math.isnan(record[metric]):
            continue
        scores = outcomes[run_key(record)][name]
        assert scores.correct is not None
        assert scores.correct.mean() == pytest.approx(record[metric], abs=1e-6), run_key(record)
        assert int(scores.correct.sum()) == round(record[metric] * len(scores.rows))
        checked += 1
    return checked


@pytest.mark.slow
def test_outcomes_are_recorded_exactly_and_survive_a_resume(tmp_path: Path) -> None:
    """The articles' protocol (the main job's): the test rows validate, so a run's val rows are its test rows."""
    definition = tmp_path / "tiny.toml"
    tutorial = SMALL + '[evaluation]\nprotocol = "tutorial"\n'
    definition.write_text(tutorial.replace('strategy = "grid"', 'strategy = "grid"\ntime_limit = 0.001'))
    results, folder = tmp_path / "results", tmp_path / "results" / "tiny"
    assert main([str(definition), "--results", str(results), "--quiet"]) == 0  # the grid only: stopped
    first = load_outcomes(folder / OUTCOMES_FILE)
    assert {key[0] for key in first} == {"grid"}
    definition.write_text(tutorial)
    assert main([str(definition), "--results", str(results), "--quiet"]) == 0  # resumed: the baseline trains
    trials = trials_frame(pd.read_csv(folder / "trials.csv").to_dict("records"))
    outcomes = load_outcomes(folder / OUTCOMES_FILE)
    assert {key[0] for key in outcomes} == {"grid", "baseline"}
    for key, sets in first.items():  # the first process's rows, read back from its trials
        assert np.array_equal(outcomes[key]["test"].correct, sets["test"].correct)
        assert np.array_equal(outcomes[key]["val"].rows, sets["val"].rows)
    assert check_exact(trials, outcomes) == len(trials) == 6
    assert check_exact(trials, outcomes, "val_accuracy") == 6
    test_rows = {len(sets["test"].rows) for sets in outcomes.values()}
    assert len(test_rows) == 1  # every run scored on the same test rows
    for sets in outcomes.values():
        assert np.array_equal(sets["val"].correct, sets["test"].correct)
    opened = regsearch.open_results(folder)
    assert opened.outcomes.keys() == outcomes.keys()
    grid = trials[trials["phase"] == "grid"]["trial_id"].iloc[0]
    assessment = compare.assess(trials, {"phase": "grid", "trial_id": grid, "objective": "test_accuracy"}, "tutorial",
                                outcomes=opened.outcomes)
    assert assessment.interval == "rows and seeds" and assessment.comparisons == 2
    assert " over the test rows and 2 seeds, family-wise over 2 configurations)" in compare.answer_line(assessment, "x")
    page = (folder / "summary.md").read_text()
    assert "paired bootstrap over the scored rows and the seeds" in page and "corrected for the 2 configurations" in page
    assert "## How sure, and how many seeds" in page and "How sure, and how many seeds" in (
        folder / "report.html").read_text()
    # A rebuild from trials.csv and outcomes.npz alone (a fresh clone: no tuner state) gives the same page.
    import shutil

    shutil.rmtree(folder / "tuner")
    assert main(["report", "tiny", "--results", str(results), "--quiet"]) == 0
    assert (folder / "summary.md").read_text().split("## Provenance")[0] == page.split("## Provenance")[0]


# --- one model's rows -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "labels"), [("binary", 2), ("multiclass", 4), ("regression", 0)])
def test_row_scores_average_to_what_evaluate_reports(task: str, labels: int) -> None:
    import keras
    import keras_tuner as kt

    from regsearch.hypermodels.base import evaluate_rows, row_scores
    from regsearch.hypermodels.mlp import RegularizedMLP
    from regsearch.space import Regularizer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 3)).astype("float32")
    y = rng.integers(0, labels, size=70).astype("float32") if labels else rng.normal(size=70).astype("float32")
    keras.utils.set_random_seed(1)
    model = RegularizedMLP((3,), hidden=[8], task=task, classes=labels or None,
                           regularizer=Regularizer("none")).build(kt.HyperParameters())
    scores, evaluated = row_scores(model, x, y), evaluate_rows(model, x, y)
    assert list(scores.rows) == list(range(70))
    assert scores.loss.mean() == pytest.approx(evaluated["loss"], rel=1e-5)  # no penalty: the loss is the rows'
    if labels:
        assert int(scores.correct.sum()) == round(evaluated["accuracy"] * 70)
        # Row by row, the compiled accuracy of that row alone.
        alone = [evaluate_rows(model, x[i:i + 1], y[i:i + 1])["accuracy"] for i in range(70)]
        assert list(scores.correct) == [round(a) for a in alone]
        assert 0 < scores.correct.sum() < 70
    else:
        assert scores.correct is None
    assert list(row_scores(model, x[:5], y[:5], rows=[9, 3, 4, 1, 0]).rows) == [9, 3, 4, 1, 0]


def test_a_runs_penalty_moves_its_rows_to_its_score() -> None:
    """Per-row losses leave the penalty out; shifted to each run's test_loss, the seeds' spread of it is kept."""
    trials, outcomes = moons_like(seeds=6)
    records = trials.to_dict("records")
    for record in records:  # the same rows' losses, but the configuration's penalty differs from seed to seed
        record["test_loss"] = 0.3 + (0.01 * record["seed"] if record["param_kind"] == "l2" else 0.0)
    table = compare.paired_differences(trials_frame(records), "test_loss", outcomes).set_index("trial_id")
    row = table.loc["grid-1"]
    assert row["interval"] == "rows and seeds" and row["difference"] == pytest.approx(0.025)
    assert row["ci_low"] < 0.025 - 0.005 and row["ci_high"] > 0.025 + 0.005


def test_beyond_noise_is_the_family_wise_verdict() -> None:
    """Five more rows right of 70 on every seed: beyond noise on its own, not among four configurations."""
    records, outcomes = [], {}
    rng = np.random.default_rng(5)
    for index, kind in enumerate(["none", "l2", "l2", "l2", "l2"]):
        for seed in range(10):
            right = np.arange(70) < 60
            if index == 1:
                right = np.arange(70) < 65
            elif index > 1:
                right = rng.permutation(70) < 60
            record = {"search": "s", "trial_id": f"grid-{index}", "phase": "grid", "repeat": seed, "seed": seed,
                      "fold": None, "status": "completed", "reason": "", "param_kind": kind,
                      "param_strength": None if kind == "none" else 10.0 ** -index, "param_learning_rate": 0.001,
                      "test_accuracy": right.mean()}
            records.append(record)
            outcomes[run_key(record)] = {"test": RowScores(np.arange(70), right.astype(np.uint8),
                                                           np.zeros(70, np.float32))}
    row = compare.paired_differences(trials_frame(records), "test_accuracy", outcomes).set_index("trial_id").loc[
        "grid-1"]
    assert row["comparisons"] == 4 and row["ci_low"] > 0 > row["ci_low_corrected"]
    assert row["p_value"] < 0.05 < row["p_corrected"]
    assert not bool(row["beyond_noise"])


def test_how_sure_pools_the_seeds_spread_of_differences_that_vary() -> None:
    from regsearch.evaluation.intervals import detectable_difference, seeds_needed
    from regsearch.report.sections import how_sure_sentences

    comparison = pd.DataFrame({"baseline": [True, False, False, False], "n_pairs": [10, 10, 10, 10],
                               "seed_sd": [math.nan, 0.0, 0.03, 0.04], "difference": [0.0, 0.0, 0.02, 0.01]})
    how = compare.how_sure(comparison, 0.02)
    assert how.spread == pytest.approx(math.sqrt((0.03 ** 2 + 0.04 ** 2) / 2))
    assert how.comparisons == 3 and how.alpha == pytest.approx(0.05 / 3)
    assert how.detectable == pytest.approx(detectable_difference(how.spread, 10, alpha=0.05 / 3))
    assert how.seeds_for_difference == seeds_needed(0.02, how.spread, alpha=0.05 / 3)
    text = " ".join(how_sure_sentences(how, "test_accuracy"))
    assert f"a difference of {how.detectable:.4f} or more" in text and f"{how.seeds_for_difference} seeds" in text
    still = compare.how_sure(comparison.assign(seed_sd=[math.nan, 0.0, 0.0, 0.0]), 0.02)
    assert still.spread == 0 and "more seeds add nothing" in how_sure_sentences(still, "test_accuracy")[0]
    assert compare.how_sure(comparison.assign(n_pairs=1, seed_sd=math.nan)) is None
