"""Issue 10: validation apart from test, cross-validation, and the comparison with no regularization."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regsearch.cli import main
from regsearch.definition import load_definition
from regsearch.errors import SettingError
from regsearch.evaluation import Fold, Protocol, make_folds
from regsearch.evaluation import compare
from regsearch.report import trials_frame
from regsearch.search import fine_strengths, run_search
import fake_hypermodel as fake

Y = np.array([0] * 13 + [1] * 10)  # 23 rows: folds of 5 do not divide them evenly, classes are unequal


# --- folds ------------------------------------------------------------------------------------------------------


def test_kfold_folds_partition_the_training_rows_stratified_and_repeats_reshuffle() -> None:
    folds = make_folds(Protocol("kfold", folds=5, repeats=2), Y, classification=True, seed=3)
    assert [f.index for f in folds] == list(range(10))
    for start in (0, 5):
        partition = folds[start:start + 5]
        held = np.concatenate([f.validation for f in partition])
        assert sorted(held) == list(range(len(Y)))  # every row held out exactly once per partition
        for fold in partition:
            assert set(fold.train).isdisjoint(fold.validation)
            assert sorted(np.concatenate([fold.train, fold.validation])) == list(range(len(Y)))
            assert set(Y[fold.validation]) == {0, 1}  # stratified: both classes in every held-out fold
        assert sorted(len(f.validation) for f in partition) == [4, 4, 5, 5, 5]
    assert not all(np.array_equal(a.validation, b.validation) for a, b in zip(folds[:5], folds[5:]))


def test_holdout_is_stratified_seeded_and_sized_by_validation_size() -> None:
    first = make_folds(Protocol("holdout", validation_size=0.3), Y, classification=True, seed=0)[0]
    again = make_folds(Protocol("holdout", validation_size=0.3), Y, classification=True, seed=0)[0]
    other = make_folds(Protocol("holdout", validation_size=0.3), Y, classification=True, seed=1)[0]
    assert len(first.validation) == math.ceil(0.3 * len(Y)) == 7
    assert sorted(np.concatenate([first.train, first.validation])) == list(range(len(Y)))
    assert np.array_equal(first.validation, again.validation)
    assert not np.array_equal(first.validation, other.validation)
    assert abs(Y[first.validation].mean() - Y.mean()) < 0.15
    assert make_folds(Protocol("tutorial"), Y, classification=True, seed=0) is None


def test_regression_folds_are_plain_kfold() -> None:
    y = np.linspace(0, 1, 11)
    folds = make_folds(Protocol("kfold", folds=3), y, classification=False, seed=0)
    assert sorted(np.concatenate([f.validation for f in folds])) == list(range(11))


@pytest.mark.parametrize(("protocol", "setting", "allowed"), [
    (Protocol("kfold", folds=11), "evaluation.folds", "from 2 to 10"),  # the smallest class has 10 rows
    (Protocol("holdout", validation_size=0.04), "evaluation.validation_size", "each of the 2 classes"),
    (Protocol("holdout", validation_size=0.95), "evaluation.validation_size", "each of the 2 classes"),
])
def test_folds_the_data_cannot_honour_are_refused_by_name(protocol: Protocol, setting: str, allowed: str) -> None:
    with pytest.raises(SettingError) as error:
        make_folds(protocol, Y, classification=True, seed=0, where="s.toml")
    assert error.value.setting == setting and allowed in str(error.value) and "s.toml" in str(error.value)


# --- the definition -------------------------------------------------------------------------------------------

TINY = """
description = "tiny"
[data]
dataset = "moons"
train_size = 30
[model]
hypermodel = "RegularizedMLP"
hidden = [8]
[space.regularizer]
kinds = ["l2"]
strengths = [1e-1, 1e-4]
[search]
repeats = 2
[training]
epochs = 6
[early_stopping]
patience = 2
"""


def write(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_holdout_is_the_default_and_selects_on_validation(tmp_path: Path) -> None:
    definition = load_definition(write(tmp_path, TINY))
    assert definition.evaluation == Protocol("holdout")
    assert definition.objective == "val_accuracy"
    tutorial = load_definition(write(tmp_path, TINY + '[evaluation]\nprotocol = "tutorial"\n'))
    assert tutorial.objective == "test_accuracy"


@pytest.mark.parametrize(("table", "message"), [
    ('protocol = "kfolds"', "'evaluation.protocol' must be one of 'holdout', 'kfold', 'nested', 'tutorial' (nearest: 'kfold')"),
    ('protocol = "kfold"\nfolds = 1', "'evaluation.folds' must be an integer >= 2; got 1."),
    ('protocol = "kfold"\nfolds = 16', "'evaluation.folds' must be an integer from 2 to 14"),
    ('validation_size = 1.5', "'evaluation.validation_size' must be a fraction between 0 and 1; got 1.5."),
    ('validation_size = 0.01', "'evaluation.validation_size' must be a fraction that leaves each of the 2 classes"),
    ('folds = 3', "'evaluation.folds' must be given only with protocol 'kfold' or 'nested'; got 3."),
    ('protocol = "kfold"\nvalidation_size = 0.2', "'evaluation.validation_size' must be given only with protocol "
                                                   "'holdout'"),
    ('baseline = "no"', "'evaluation.baseline' must be true or false"),
    ('fold = 3', "evaluation.fold"),
])
def test_bad_evaluation_settings_fail_in_one_line(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(SettingError) as error:
        load_definition(write(tmp_path, TINY + "[evaluation]\n" + table + "\n"))
    assert message in str(error.value) and "tiny.toml" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_test_objective_is_refused_unless_the_protocol_is_tutorial(tmp_path: Path) -> None:
    text = TINY.replace("repeats = 2", 'repeats = 2\nobjective = "test_accuracy"')
    with pytest.raises(SettingError, match="'search.objective' must be a validation or training metric under "
                                           "protocol 'holdout'"):
        load_definition(write(tmp_path, text))
    assert load_definition(write(tmp_path, text + '[evaluation]\nprotocol = "tutorial"\n')).objective == \
        "test_accuracy"


def test_the_cli_refuses_bad_evaluation_with_exit_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, TINY + '[evaluation]\nprotocol = "kfold"\nfolds = 20\n')
    assert main([str(path), "--results", str(tmp_path / "results")]) == 2
    error = capsys.readouterr().err.strip()
    assert "'evaluation.folds' must be an integer from 2 to 14" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "results").exists()


# --- the tuners: every seed on every fold ---------------------------------------------------------------------


class RowCounting(fake.FakeHyperModel):
    """Scores a run by the rows it was given, so that a slip in slicing shows."""

    def run(self, hp, model, x, y, **kwargs):
        result = super().run(hp, model, x, y, **kwargs)
        validation = kwargs["validation_data"]
        result.metrics = {**result.metrics, "val_loss": float(len(x)), "train_loss": float(len(validation[0])),
                          "best_epoch": float(validation[1].sum()), "epochs_run": float(y.sum())}
        return result


def test_a_tuner_trains_every_seed_on_every_fold_with_that_folds_rows(tmp_path: Path) -> None:
    x = np.arange(23, dtype="float32").reshape(-1, 1)
    folds = make_folds(Protocol("kfold", folds=5), Y, classification=True, seed=0)
    tuner = fake.make_tuner("grid", RowCounting([50]), tmp_path, repeats=2, seed=7, folds=folds)
    with pytest.raises(SettingError, match="'validation_data' must be left out"):
        tuner.search(x, Y.astype("float32"), validation_data=(x, Y), epochs=1)
    tuner.search(x, Y.astype("float32"), epochs=1, verbose=0)
    from regsearch.tuners import read_runs

    records, histories = read_runs(tuner)
    assert [(r["repeat"], r["seed"], r["fold"]) for r in records] == [(r, 7 + r, f) for r in (0, 1) for f in range(5)]
    for record in records:
        fold = folds[record["fold"]]
        assert record["val_loss"] == len(fold.train) and record["train_loss"] == len(fold.validation)
        assert record["best_epoch"] == Y[fold.validation].sum() and record["epochs_run"] == Y[fold.train].sum()
        assert math.isnan(record["test_accuracy"])  # a fold run has no test score: the held-out fold is not test
    assert sorted(histories) == sorted(["grid-0000/0", "grid-0000/1"] +
                                       [f"grid-0000/{r}/{f}" for r in (0, 1) for f in range(1, 5)])


def test_folds_and_test_data_are_checked() -> None:
    with pytest.raises(SettingError, match="'folds' must be a non-empty list"):
        fake.make_tuner("grid", fake.FakeHyperModel([1]), "unused", folds=[])
    with pytest.raises(SettingError, match="'test_data' must be a tuple"):
        fake.make_tuner("grid", fake.FakeHyperModel([1]), "unused", test_data=np.zeros(3))


# --- the comparison with no regularization --------------------------------------------------------------------


def runs(kind: str, trial: str, values: list[float], strength: float | None = None, folds: int = 1) -> list[dict]:
    return [{"search": "s", "trial_id": trial, "phase": "grid", "repeat": seed, "seed": seed, "fold": fold,
             "status": "completed", "reason": "", "param_kind": kind, "param_strength": strength,
             "param_learning_rate": 0.001, "val_accuracy": value + 0.01 * fold, "test_accuracy": value}
            for seed, value in enumerate(values) for fold in range(folds)]


def test_a_configuration_identical_to_the_baseline_has_a_ci_containing_zero() -> None:
    base = [0.80, 0.85, 0.78, 0.90, 0.82]
    trials = trials_frame(runs("none", "grid-0", base) + runs("l2", "grid-1", base, 1e-3))
    table = compare.paired_differences(trials, "val_accuracy").set_index("trial_id")
    assert table.loc["grid-1", "ci_low"] <= 0 <= table.loc["grid-1", "ci_high"]
    assert table.loc["grid-1", "n_pairs"] == 5 and bool(table.loc["grid-0", "baseline"])
    # A HyperModel without a regularizer leaves the kind empty: that is the baseline too.
    unnamed = trials_frame([{**r, "param_kind": None} for r in runs("none", "grid-0", base)] +
                           runs("l2", "grid-1", [b + 0.1 for b in base], 1e-3))
    table = compare.paired_differences(unnamed, "val_accuracy").set_index("trial_id")
    assert table.loc["grid-1", "difference"] == pytest.approx(0.1) and bool(table.loc["grid-0", "baseline"])


def test_ties_of_validation_accuracy_are_broken_by_validation_loss_never_by_test_loss() -> None:
    from regsearch.report import summary_frame

    a = runs("l2", "grid-0", [0.8, 0.8], 1e-3)
    b = runs("l2", "grid-1", [0.8, 0.8], 1e-2)
    for record in a:
        record.update(val_loss=0.30, test_loss=0.90)
    for record in b:
        record.update(val_loss=0.40, test_loss=0.10)
    summary = summary_frame(trials_frame(a + b), "val_accuracy", "max")
    assert list(summary["trial_id"]) == ["grid-0", "grid-1"] and list(summary["rank"]) == [1, 2]


def test_the_paired_interval_is_students_t_over_seeds_and_pairs_by_seed() -> None:
    base = [0.70, 0.80, 0.75, 0.90, 0.60, 0.85]
    better = [b + d for b, d in zip(base, [0.05, 0.02, 0.04, 0.03, 0.06, 0.01])]
    trials = trials_frame(runs("none", "grid-0", base, folds=3) + runs("l2", "grid-1", better, 1e-3, folds=3))
    row = compare.paired_differences(trials, "val_accuracy").set_index("trial_id").loc["grid-1"]
    expected = stats.ttest_rel(better, base).confidence_interval(0.95)
    assert row["difference"] == pytest.approx(np.mean(np.subtract(better, base)))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected.low, expected.high))
    assert row["n_pairs"] == 6  # seeds, the three folds of a seed averaged first
    # Unpaired, the seeds' spread (0.60 to 0.90) would swamp a +0.035 difference; paired, it is clear.
    assert row["ci_low"] > 0


def best_of(trials: pd.DataFrame, trial_id: str) -> dict:
    return {"phase": "grid", "trial_id": trial_id, "objective": "val_accuracy"}


def test_the_answer_says_whether_the_selected_configuration_beats_no_regularization() -> None:
    base = [0.70, 0.80, 0.75, 0.90, 0.60]
    better = [b + 0.03 + 0.005 * i for i, b in enumerate(base)]
    trials = trials_frame(runs("none", "grid-0", base) + runs("l2", "grid-1", better, 3.2e-3))
    assessment = compare.assess(trials, best_of(trials, "grid-1"), "holdout")
    assert assessment.test[0] == pytest.approx(np.mean(better)) and assessment.baseline_test == pytest.approx(
        np.mean(base))
    line = compare.answer_line(assessment, "strength=0.0032")
    assert line.startswith("strength=0.0032 beats no regularization by +0.040 test accuracy (95% CI +0.")
    assert line.endswith("5 seeds).")
    worse = trials_frame(runs("none", "grid-0", better) + runs("l2", "grid-1", base, 3.2e-3))
    assert " is worse than no regularization by -0.040 " in compare.answer_line(
        compare.assess(worse, best_of(worse, "grid-1"), "holdout"), "x")
    noisy = trials_frame(runs("none", "grid-0", base) + runs("l2", "grid-1", base[::-1], 3.2e-3))
    assert compare.answer_line(compare.assess(noisy, best_of(noisy, "grid-1"), "holdout"), "x").startswith(
        "No configuration is distinguishable from no regularization")
    one = trials_frame(runs("none", "grid-0", base[:1]) + runs("l2", "grid-1", better[:1], 3.2e-3))
    assert "on one seed" in compare.answer_line(compare.assess(one, best_of(one, "grid-1"), "holdout"), "x")


def test_kfold_is_assessed_on_the_refit_runs_only() -> None:
    base, better = [0.7, 0.8, 0.75], [0.9, 0.95, 0.92]
    selection = runs("none", "grid-0", [0.1, 0.1, 0.1], folds=2) + runs("l2", "grid-1", [0.1, 0.1, 0.1], 1e-3, folds=2)
    refit = [{**r, "phase": "refit", "fold": None} for r in runs("none", "grid-0", base) + runs("l2", "grid-1", better, 1e-3)]
    trials = trials_frame(selection + refit)
    assessment = compare.assess(trials, best_of(trials, "grid-1"), "kfold")
    assert assessment.test[0] == pytest.approx(np.mean(better))
    assert assessment.difference.mean == pytest.approx(np.mean(np.subtract(better, base)))
    assert len(compare.selection_rows(trials)) == len(selection)


def test_fine_strengths_leave_out_what_the_coarse_grid_measured() -> None:
    decades = [1e-1, 1e-2, 1e-3, 1e-4]
    fine = fine_strengths(1e-2, decades, 7)
    assert 1e-2 not in fine and len(fine) == 6 and fine == sorted(fine)
    assert fine_strengths(1e-2, decades, 4) == [0.00251, 0.00631, 0.0158, 0.0398]  # none measured: all four


# --- end to end: the test rows never choose -------------------------------------------------------------------


def shuffled_test_labels(split):
    return dataclasses.replace(split, y_test=np.random.default_rng(0).permutation(split.y_test))


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ['protocol = "holdout"', 'protocol = "kfold"\nfolds = 3'])
def test_shuffling_the_test_labels_changes_no_selection(tmp_path: Path,
                                                        protocol: str) -> None:
    from regsearch.definition.build import load_data
    from regsearch.definition.plan import make_plan

    definition = load_definition(write(tmp_path, TINY + "[evaluation]\n" + protocol + "\n"))
    plain = run_search(definition, tmp_path / "plain")
    shuffled = run_search(make_plan(definition, shuffled_test_labels(load_data(definition))), tmp_path / "shuffled")
    a, b = trials_frame(plain.records), trials_frame(shuffled.records)
    check_outcomes(a, plain.outcomes, len(plain.split.y_train), protocol)
    selection = ["trial_id", "phase", "seed", "fold", "val_accuracy", "val_loss", "train_loss", "best_epoch"]
    pd.testing.assert_frame_equal(a[selection], b[selection])
    assert set(a["phase"]) >= {"grid", "baseline"}
    assert not np.allclose(a["test_accuracy"].dropna(), b["test_accuracy"].dropna())  # the test rows did change
    if "kfold" in protocol:
        refit = a[a["phase"] == "refit"]
        assert len(refit) == definition.repeats * refit["trial_id"].nunique()
        for trial_id, group in refit.groupby("trial_id"):
            folds = a[(a["trial_id"] == trial_id) & (a["phase"] != "refit")]
            assert set(group["epochs_run"]) == {round(float((folds["best_epoch"] + 1).mean()))}
        assert refit["test_accuracy"].notna().all() and a.loc[a["phase"] != "refit", "test_accuracy"].isna().all()


def check_outcomes(trials: pd.DataFrame, outcomes: dict, training_rows: int, protocol: str) -> None:
    """Each run's per-row outcomes (issue 26): exact against its scores; folds see the test rows never."""
    from regsearch.outcomes import run_key
    from test_outcomes import check_exact

    selection = trials[trials["phase"] != "refit"]
    if "kfold" in protocol:
        refit = trials[trials["phase"] == "refit"]
        assert check_exact(refit, outcomes) == len(refit) > 0
        for _, runs in selection.groupby(["trial_id", "seed"]):
            held = np.concatenate([outcomes[run_key(r)]["val"].rows for r in runs.to_dict("records")])
            assert sorted(held) == list(range(training_rows))  # each training row held out once per seed
            assert all("test" not in outcomes[run_key(r)] for r in runs.to_dict("records"))
    else:
        assert check_exact(selection, outcomes) == check_exact(selection, outcomes, "val_accuracy") == len(selection)


def test_the_results_index_checks_each_articles_claim_against_the_answer() -> None:
    from regsearch.report import index_markdown

    base = [0.70, 0.80, 0.75, 0.90, 0.60]
    cases = {"beats": [b + 0.03 + 0.005 * i for i, b in enumerate(base)], "indistinguishable": base[::-1],
             "worse": [b - 0.05 for b in base]}
    rows = []
    for expected, values in cases.items():
        trials = trials_frame(runs("none", "grid-0", base) + runs("l2", "grid-1", values, 1e-3))
        assert compare.verdict(compare.assess(trials, best_of(trials, "grid-1"), "holdout")) == expected
        rows.append({"search": expected, "best": None, "claim": "The article: it helps.", "verdict": expected,
                     "protocol": "tutorial"})
    trials = trials_frame(runs("none", "grid-0", base))
    assert compare.verdict(compare.assess(trials, best_of(trials, "grid-0"), "holdout")) == "baseline"
    page = index_markdown(rows)
    assert "The article: it helps. Supported" in page
    assert "The article: it helps. **Not supported**: no configuration beats no regularization beyond noise" in page
    assert "The article: it helps. **Contradicted**" in page
    assert "| tutorial (selected on the test rows: optimistic) |" in page


def test_the_plot_marks_the_baseline_when_it_ranks_first_and_the_point_otherwise() -> None:
    from regsearch.report import plot_accuracy_vs_strength

    def labels(baseline: float, loss: float) -> list[str]:
        records = runs("none", "grid-0", [baseline] * 2) + runs("l2", "grid-1", [0.8] * 2, 1e-3) + \
            runs("l2", "grid-2", [0.7] * 2, 1e-2)
        for record in records:
            record.update(val_accuracy=record["test_accuracy"], val_loss=loss if record["param_kind"] == "none"
                          else 0.5, train_accuracy=1.0)
        return plot_accuracy_vs_strength(trials_frame(records), held_out="val").get_legend_handles_labels()[1]

    assert "validation: no strength (best)" in labels(0.9, 0.5) and not any("best validation" in x
                                                                           for x in labels(0.9, 0.5))
    assert "validation: no strength (best)" in labels(0.8, 0.4)  # a tie, broken by the lower validation loss
    assert "best validation: 0.001" in labels(0.8, 0.6) and "validation: no strength" in labels(0.8, 0.6)


@pytest.mark.parametrize(("protocol", "sentence"), [
    ("holdout", "Selected by the validation score on a held-out split"),
    ("tutorial", "Selection saw the test set"),
])
def test_the_page_puts_the_answer_first_and_shows_test_scores_only_where_they_may_be_read(
        tmp_path: Path, protocol: str, sentence: str) -> None:
    from regsearch.report import write_report

    base = [0.70, 0.80, 0.75, 0.90, 0.60]
    records = runs("none", "grid-0", base) + runs("l2", "grid-1", [b + 0.05 for b in base], 1e-3)
    for record in records:
        record.update(train_accuracy=1.0, val_loss=0.3, test_loss=0.4)
    objective = "test_accuracy" if protocol == "tutorial" else "val_accuracy"
    write_report(tmp_path, records, {}, search_name="s", rerun_command="x", objective=objective, protocol=protocol)
    page = (tmp_path / "summary.md").read_text()
    assert page.splitlines()[2].startswith("**kind=l2, strength=0.001 beats no regularization by +0.050 test accuracy")
    assert sentence in page
    ranked = page.split("## All configurations, ranked")[1].split("## Search definition")[0]
    assert ("| test accuracy |" in ranked) == (protocol == "tutorial")
    assert (tmp_path / "comparison.csv").is_file()


def test_a_search_without_a_baseline_compares_nothing(tmp_path: Path) -> None:
    from regsearch.report import write_report

    records = runs("none", "grid-0", [0.7, 0.8]) + runs("none", "grid-1", [0.9, 0.95])
    for record, rate in zip(records, [1e-2, 1e-2, 1e-1, 1e-1]):
        record.update(param_learning_rate=rate, train_accuracy=1.0, test_loss=0.4, val_loss=0.3)
    write_report(tmp_path, records, {}, search_name="s", rerun_command="x", objective="test_accuracy",
                 protocol="tutorial", baseline=False)
    assert (tmp_path / "summary.md").read_text().splitlines()[2] == (
        "**learning_rate=0.1 was selected (test accuracy 0.925); there is no baseline to compare with.**")
    assert not (tmp_path / "comparison.csv").exists()


@pytest.mark.parametrize(("protocol", "split_per_seed", "shown"), [
    ("holdout", True, True),
    ("holdout", False, False),
    ("tutorial", False, None),  # its test rows validate: there is no split to draw, and no note
])
def test_both_pages_say_whether_the_intervals_cover_the_validation_split(
        tmp_path: Path, protocol: str, split_per_seed: bool, shown: bool | None) -> None:
    from regsearch.report import write_report
    from regsearch.report.sections import SPLIT_NOTES

    base = [0.70, 0.80, 0.75, 0.90, 0.60]
    records = runs("none", "grid-0", base) + runs("l2", "grid-1", [b + 0.05 for b in base], 1e-3)
    for record in records:
        record.update(train_accuracy=1.0, val_loss=0.3, test_loss=0.4)
    objective = "test_accuracy" if protocol == "tutorial" else "val_accuracy"
    write_report(tmp_path, records, {}, search_name="s", rerun_command="x", objective=objective, protocol=protocol,
                 split_per_seed=split_per_seed)
    markdown, page = (tmp_path / "summary.md").read_text(), (tmp_path / "report.html").read_text()
    assert "Each seed drew its own validation split" in SPLIT_NOTES[True]
    assert "Every seed used the same validation split" in SPLIT_NOTES[False]
    for key, note in SPLIT_NOTES.items():
        assert (note.strip() in markdown) == (key == shown), key
        assert (note.strip() in page) == (key == shown), key
