"""Tests for regsearch.report on synthetic trial records: no training at all."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from regsearch.errors import SearchFailedError, SettingError
from regsearch.report import (
    best_configuration,
    index_markdown,
    markdown_table,
    plot_accuracy_vs_strength,
    plot_learning_curves,
    plot_optimization_history,
    summary_frame,
    summary_markdown,
    trials_frame,
    write_report,
)

KINDS = ("l1", "l2")
STRENGTHS = (1e-1, 1e-3, 1e-5)
# Mean test accuracy per (kind, strength); repeats add -0.01 and +0.01.
TEST_ACCURACY = {
    ("l1", 1e-1): 0.70,
    ("l1", 1e-3): 0.84,
    ("l1", 1e-5): 0.76,
    ("l2", 1e-1): 0.74,
    ("l2", 1e-3): 0.90,
    ("l2", 1e-5): 0.80,
}


def make_records(*, regression: bool = False) -> list[dict]:
    """2 kinds x 3 strengths x 2 repeats, then one failed run of a seventh configuration."""
    records = []
    for number, (kind, strength) in enumerate(TEST_ACCURACY):
        for repeat, offset in enumerate((-0.01, 0.01)):
            test = TEST_ACCURACY[kind, strength] + offset
            record = {
                "search": "moons_reg",
                "trial_id": f"{number:04d}",
                "phase": "coarse",
                "repeat": repeat,
                "seed": 10 + repeat,
                "status": "completed",
                "reason": "",
                "param_kind": kind,
                "param_strength": strength,
                "train_accuracy": 1.0 - 0.02 * repeat,
                "test_accuracy": test,
                "train_loss": 0.05 + 0.01 * repeat,
                "test_loss": 1.0 - test,
                "val_loss": 1.0 - test,
                "best_epoch": 100 + 10 * repeat,
                "epochs_run": 300,
                "diverged": False,
                "mean_activation": 0.5,
                "zero_fraction": 0.4,
                "seconds": 1.5,
            }
            if regression:
                del record["train_accuracy"], record["test_accuracy"]
            records.append(record)
    records.append(
        {
            "search": "moons_reg",
            "trial_id": "0006",
            "phase": "coarse",
            "repeat": 0,
            "seed": 10,
            "status": "failed",
            "reason": "ResourceExhaustedError",
            "param_kind": "l2",
            "param_strength": 1e-6,
            "train_accuracy": math.nan,
            "test_accuracy": math.nan,
        }
    )
    return records


def make_history(epochs: int = 50, *, accuracy: bool = True) -> dict[str, list[float]]:
    epoch = np.arange(epochs)
    history = {"loss": list(np.exp(-epoch / 10)), "val_loss": list(0.5 + ((epoch - 20) / 30) ** 2)}
    if accuracy:
        history["accuracy"] = list(1 - 0.5 * np.exp(-epoch / 10))
        history["val_accuracy"] = list(0.8 - 0.3 * np.exp(-epoch / 10))
    return history


@pytest.fixture
def trials() -> pd.DataFrame:
    return trials_frame(make_records())


@pytest.fixture
def summary(trials: pd.DataFrame) -> pd.DataFrame:
    return summary_frame(trials)


def test_trials_frame_has_one_row_per_run_in_a_stable_column_order(trials: pd.DataFrame) -> None:
    assert len(trials) == 13
    assert list(trials.columns[:10]) == [
        "search",
        "trial_id",
        "phase",
        "repeat",
        "seed",
        "fold",
        "status",
        "reason",
        "param_kind",
        "param_strength",
    ]
    assert list(trials.columns[10:14]) == ["train_accuracy", "test_accuracy", "val_accuracy", "gap"]
    assert trials.columns[-1] == "seconds"
    np.testing.assert_allclose(trials["gap"], trials["train_accuracy"] - trials["test_accuracy"])
    assert trials["gap"].isna().sum() == 1  # the failed run
    assert trials.loc[12, "reason"] == "ResourceExhaustedError"
    shuffled = trials_frame(list(reversed(make_records())))
    assert list(shuffled.columns) == list(trials.columns)


def test_summary_mean_std_match_numpy(trials: pd.DataFrame, summary: pd.DataFrame) -> None:
    assert len(summary) == 7
    for _, row in summary.iterrows():
        runs = trials[trials["trial_id"] == row["trial_id"]]
        if row["n_failed"]:
            continue
        for metric in ("test_accuracy", "train_accuracy", "gap", "best_epoch"):
            values = runs[metric].to_numpy(dtype=float)
            assert row[f"mean_{metric}"] == pytest.approx(np.mean(values))
            assert row[f"std_{metric}"] == pytest.approx(np.std(values, ddof=0))
        assert row["n_runs"] == 2


def test_summary_ranks_best_first_and_failed_last(summary: pd.DataFrame) -> None:
    expected = sorted(TEST_ACCURACY, key=TEST_ACCURACY.get, reverse=True)
    ranked = list(zip(summary["param_kind"][:6], summary["param_strength"][:6]))
    assert ranked == expected
    assert list(summary["rank"]) == [1, 2, 3, 4, 5, 6, 7]
    last = summary.iloc[-1]
    assert (last["n_failed"], last["n_runs"], last["param_strength"]) == (1, 1, 1e-6)
    assert math.isnan(last["mean_test_accuracy"])


def test_summary_column_order_is_like_cv_results(summary: pd.DataFrame) -> None:
    assert list(summary.columns[:12]) == [
        "rank",
        "search",
        "phase",
        "trial_id",
        "param_kind",
        "param_strength",
        "n_runs",
        "n_failed",
        "n_diverged",
        "mean_test_accuracy",
        "std_test_accuracy",
        "mean_train_accuracy",
    ]
    assert summary.attrs == {"objective": "test_accuracy", "direction": "max"}


def test_summary_minimizing_a_loss_reverses_the_order(trials: pd.DataFrame) -> None:
    by_loss = summary_frame(trials, objective="test_loss", direction="min")
    assert by_loss.columns[9] == "mean_test_loss"
    assert list(by_loss["trial_id"][:2]) == ["0004", "0001"]
    assert by_loss["trial_id"].iloc[-1] == "0006"


def test_ties_share_a_rank() -> None:
    records = [r for r in make_records() if r["status"] == "completed"]
    for record in records:
        record["test_accuracy"] = 0.5
        record["test_loss"] = 0.7
    summary = summary_frame(trials_frame(records))
    assert set(summary["rank"]) == {1}


def test_accuracy_ties_are_broken_by_the_lower_test_loss() -> None:
    records = [r for r in make_records() if r["status"] == "completed"]
    losses = {}
    for i, record in enumerate(records):
        record["test_accuracy"] = 0.5
        record["test_loss"] = losses.setdefault(record["trial_id"], 1.0 - 0.1 * len(losses))
    summary = summary_frame(trials_frame(records))
    assert list(summary["rank"]) == list(range(1, len(summary) + 1))
    assert summary["mean_test_loss"].is_monotonic_increasing


def test_single_run_has_zero_std() -> None:
    summary = summary_frame(trials_frame(make_records()[:1]))
    assert summary.loc[0, "std_test_accuracy"] == 0.0


def test_phases_reusing_trial_ids_are_separate_configurations() -> None:
    records = make_records()[:2] + [dict(r, phase="fine") for r in make_records()[:2]]
    assert len(summary_frame(trials_frame(records))) == 2


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {"objective": "test_acc"},
            "summary_frame: 'objective' must be one of 'train_accuracy', 'test_accuracy'",
        ),
        ({"objective": "param_kind"}, "got 'param_kind'"),
        ({"direction": "up"}, "'direction' must be one of 'max', 'min'; got 'up'."),
    ],
)
def test_summary_rejects_bad_settings(trials: pd.DataFrame, kwargs: dict, fragment: str) -> None:
    with pytest.raises(SettingError) as caught:
        summary_frame(trials, **kwargs)
    assert fragment in str(caught.value)


def test_best_configuration_is_rank_one(summary: pd.DataFrame) -> None:
    best = best_configuration(summary)
    assert best["params"] == {"kind": "l2", "strength": 0.001}
    assert best["trial_id"] == "0004" and best["rank"] == 1
    assert best["mean_test_accuracy"] == pytest.approx(0.90)
    assert best["objective"] == "test_accuracy"
    assert type(best["n_runs"]) is int


def test_best_configuration_when_every_run_failed() -> None:
    summary = summary_frame(trials_frame(make_records()[-1:]))
    with pytest.raises(SearchFailedError):
        best_configuration(summary)


def test_regression_records_without_accuracy() -> None:
    trials = trials_frame(make_records(regression=True))
    assert trials["test_accuracy"].isna().all() and trials["gap"].isna().all()
    summary = summary_frame(trials, objective="val_loss", direction="min")
    assert "mean_test_accuracy" not in summary.columns
    assert best_configuration(summary)["params"] == {"kind": "l2", "strength": 0.001}
    with pytest.raises(SettingError, match="'objective'"):
        summary_frame(trials)  # no accuracy to rank by
    ax = plot_accuracy_vs_strength(trials)
    assert ax.get_ylabel().startswith("loss")
    axes = plot_learning_curves(make_history(accuracy=False))
    assert len(axes) == 1 and axes[0].get_ylabel().startswith("loss")


def _errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_accuracy_vs_strength_draws_train_and_test_per_kind_on_a_log_axis(
    trials: pd.DataFrame,
) -> None:
    ax = plot_accuracy_vs_strength(trials)
    assert ax.get_xscale() == "log"
    lines = _errorbars(ax)
    assert len(lines) == 4  # 2 kinds x (train, test)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[:4] == ["train: kind=l1", "test: kind=l1", "train: kind=l2", "test: kind=l2"]
    assert labels[4] == "best test: 0.001 (kind=l2)"
    test_l2 = lines[3].lines[0]
    np.testing.assert_allclose(test_l2.get_xdata(), [1e-5, 1e-3, 1e-1])
    np.testing.assert_allclose(test_l2.get_ydata(), [0.80, 0.90, 0.74])
    assert "accuracy" in ax.get_ylabel() and "log scale" in ax.get_xlabel()


def test_accuracy_vs_strength_draws_on_a_given_axes_with_chosen_hue(trials: pd.DataFrame) -> None:
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    one_hue = trials[trials["param_kind"] == "l2"]
    assert plot_accuracy_vs_strength(one_hue, ax=ax) is ax
    assert len(_errorbars(ax)) == 2


def test_accuracy_vs_strength_separates_placements_too() -> None:
    records = make_records()[:12]
    records += [dict(r, param_placement="before", trial_id=f"b{r['trial_id']}") for r in records]
    records = [dict(r, param_placement=r.get("param_placement", "after")) for r in records]
    ax = plot_accuracy_vs_strength(trials_frame(records))
    assert len(_errorbars(ax)) == 8  # 2 kinds x 2 placements x (train, test)


def test_runs_without_strength_become_a_baseline() -> None:
    records = make_records() + [
        dict(make_records()[0], trial_id="0009", param_kind="none", param_strength=None, repeat=r)
        for r in range(2)
    ]
    ax = plot_accuracy_vs_strength(trials_frame(records))
    assert len(_errorbars(ax)) == 4
    assert "test: kind=none" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_constant_strength_falls_back_to_bars_per_configuration() -> None:
    constraints = ["max_norm", "unit_norm", "non_neg"]
    records = [
        dict(r, param_strength=None, param_kind="none", param_constraint=constraints[i // 2 % 3])
        for i, r in enumerate(make_records()[:6])
    ]
    ax = plot_accuracy_vs_strength(trials_frame(records))
    assert ax.get_xscale() == "linear"
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and all(len(b) == 3 for b in bars)
    assert [t.get_text() for t in ax.get_xticklabels()] == constraints
    assert ax.get_xlabel() == "constraint"


def test_learning_curves_have_two_panels_with_train_and_validation() -> None:
    axes = plot_learning_curves(make_history(), title="best run")
    assert len(axes) == 2
    assert [len(ax.get_lines()) for ax in axes] == [3, 3]  # train, validation, best epoch
    assert axes[0].get_xlabel() == "epoch"
    assert axes[1].get_lines()[2].get_xdata()[0] == 21  # lowest val_loss, counted from 1
    with pytest.raises(SettingError, match="'history'"):
        plot_learning_curves({"lr": [0.1]})


def test_optimization_history_steps_to_the_best(trials: pd.DataFrame) -> None:
    ax = plot_optimization_history(trials)
    best_so_far = ax.get_lines()[0].get_ydata()
    np.testing.assert_allclose(best_so_far[:6], [0.70, 0.84, 0.84, 0.84, 0.90, 0.90])


def test_markdown_table_escapes_and_aligns() -> None:
    table = markdown_table(pd.DataFrame({"name": ["a|b", None], "value": [1.5, math.nan]}))
    assert table.splitlines() == [
        "| name | value |",
        "|---|---:|",
        "| a\\|b | 1.5 |",
        "|  |  |",
    ]


def test_summary_markdown_names_the_best_configuration(summary: pd.DataFrame) -> None:
    text = summary_markdown(
        summary,
        search_name="moons_reg",
        rerun_command="python -m regsearch moons_reg",
        definition_text='name = "moons_reg"',
        figures=["accuracy_vs_strength.png"],
    )
    assert "# Search `moons_reg`" in text
    assert "**kind=l2, strength=0.001**" in text
    assert "| test accuracy | 0.900 ± 0.010 |" in text
    assert "| 1 | coarse | 0004 | l2 | 0.001 | 0.900 ± 0.010 |" in text
    assert "![accuracy vs strength](accuracy_vs_strength.png)" in text
    assert 'name = "moons_reg"' in text and "python -m regsearch moons_reg" in text


def test_summary_markdown_when_every_run_failed() -> None:
    summary = summary_frame(trials_frame(make_records()[-1:]))
    text = summary_markdown(
        summary, search_name="broken", rerun_command="python -m regsearch broken"
    )
    assert "every run failed" in text


def test_index_markdown_has_one_row_per_search(summary: pd.DataFrame) -> None:
    text = index_markdown(
        [
            {
                "search": "moons_reg",
                "best": best_configuration(summary),
                "link": "moons_reg/summary.md",
            },
            {"search": "broken", "best": None},
        ]
    )
    assert "| [moons_reg](moons_reg/summary.md) | kind=l2, strength=0.001 | 0.900 ± 0.010 |" in text
    assert "| broken | every run failed |" in text
    assert "No search has results yet." in index_markdown([])


@pytest.mark.parametrize(("protocol", "held_out"), [("tutorial", "test"), ("holdout", "val")])
def test_write_report_plots_the_rows_its_protocol_held_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str, held_out: str) -> None:
    from regsearch.report import write

    asked = []

    def recorded(*args, **kwargs):  # the real plot, its arguments kept
        asked.append(kwargs["held_out"])
        return plot_accuracy_vs_strength(*args, **kwargs)

    monkeypatch.setattr(write, "plot_accuracy_vs_strength", recorded)
    records = [{**r, "val_accuracy": r["test_accuracy"], "val_loss": r.get("test_loss")} for r in make_records()]
    write_report(tmp_path / "s", records, {}, search_name="s", objective="val_accuracy", direction="max",
                 rerun_command="python -m regsearch s", protocol=protocol, baseline=False, tensorboard=False)
    assert asked == [held_out]


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    histories = {"0004/0": make_history(), "0000/0": make_history(epochs=3)}
    paths = write_report(
        tmp_path / "moons_reg",
        make_records(),
        histories,
        search_name="moons_reg",
        objective="test_accuracy",
        direction="max",
        definition_text='name = "moons_reg"',
        rerun_command="python -m regsearch moons_reg",
    )
    names = [p.name for p in paths]
    assert names == [
        "trials.csv",
        "summary.csv",
        "summary.md",
        "report.html",
        "tensorboard",
        "accuracy_vs_strength.png",
        "learning_curves.png",
        "score_heatmap.png",  # kind x strength
    ]
    assert sorted(p.name for p in (tmp_path / "moons_reg").iterdir()) == sorted(names)
    assert len(list(paths[4].iterdir())) == 13 + 1  # a TensorBoard run per training run, and the experiment
    for png in paths[5:]:
        assert png.stat().st_size > 10_000 and png.read_bytes().startswith(b"\x89PNG")
    assert len(pd.read_csv(paths[0])) == 13
    summary = pd.read_csv(paths[1], dtype={"trial_id": str})
    assert summary.loc[0, "trial_id"] == "0004"
    assert "(trial 0004, repeat 0)" not in paths[2].read_text()  # the title is in the PNG only
    assert "![learning curves](learning_curves.png)" in paths[2].read_text()


def test_write_report_skips_plots_without_data(tmp_path: Path) -> None:
    paths = write_report(
        tmp_path,
        make_records()[-1:],
        {},
        search_name="broken",
        rerun_command="python -m regsearch broken",
    )
    assert [p.name for p in paths] == ["trials.csv", "summary.csv", "summary.md", "report.html", "tensorboard"]
    assert "![" not in paths[2].read_text()
    assert "<img" not in paths[3].read_text() and "every run failed" in paths[3].read_text()


def test_write_report_refuses_a_bad_objective_before_writing(tmp_path: Path) -> None:
    with pytest.raises(SettingError):
        write_report(
            tmp_path / "out",
            make_records(),
            {},
            search_name="x",
            rerun_command="x",
            objective="nope",
        )
    assert not (tmp_path / "out").exists()


def test_write_report_adds_the_optimization_history_for_bayesian_searches(tmp_path: Path) -> None:
    records = make_records()
    for record in records:
        record["phase"] = "bayesian"
    paths = write_report(tmp_path, records, {}, search_name="moons_bayes", rerun_command="python -m regsearch moons_bayes")
    assert "optimization_history.png" in [p.name for p in paths]
    assert (tmp_path / "optimization_history.png").stat().st_size > 0
    assert "![optimization history](optimization_history.png)" in (tmp_path / "summary.md").read_text()


def test_the_best_mark_breaks_ties_by_test_loss_like_the_ranking() -> None:
    records = [r for r in make_records() if r["status"] == "completed" and r["param_kind"] == "l2"]
    for record in records:
        if record["param_strength"] == 1e-1:  # as accurate as 1e-3, with the lower loss
            record["test_accuracy"] += 0.90 - 0.74
            record["test_loss"] = 0.01
    trials = trials_frame(records)
    summary = summary_frame(trials, objective="test_accuracy", direction="max")
    assert best_configuration(summary)["params"]["strength"] == 0.1
    labels = [text.get_text() for text in plot_accuracy_vs_strength(trials).get_legend().get_texts()]
    assert labels[-1] == "best test: 0.1"


def _with_baseline(records: list[dict]) -> list[dict]:
    baseline = [{**records[0], "trial_id": "0007", "phase": "baseline", "repeat": repeat, "seed": 10 + repeat,
                 "param_kind": "none", "param_strength": math.nan, "test_accuracy": 0.8, "test_loss": 0.3}
                for repeat in (0, 1)]
    return records + baseline


def test_the_baseline_history_is_the_baselines_first_completed_run() -> None:
    from regsearch.report.write import baseline_history

    trials = trials_frame(_with_baseline(make_records()))
    summary = summary_frame(trials, "test_accuracy", "max")
    histories = {"0004/0": make_history(epochs=5), "0007/0": make_history(epochs=7), "0007/1": make_history(9)}
    found = baseline_history(trials, summary, histories)
    assert found is not None and len(found[0]["loss"]) == 7 and "(trial 0007, repeat 0)" in found[1]
    # The best configuration being its own baseline: nothing to set beside it.
    only = trials[trials["phase"] == "baseline"]
    assert baseline_history(only, summary_frame(only, "test_accuracy", "max"), histories) is None


def _tiny_model(weight: float):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([np.array([[weight], [0.0]], "float32"), np.zeros(1, "float32")])
    return model


@pytest.mark.parametrize("features, drawn", [(2, True), (3, False)])
def test_the_decision_boundary_is_drawn_for_two_features_only(tmp_path: Path, features: int, drawn: bool) -> None:
    from regsearch.datasets import Split

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, features)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    data = Split("toy", x[:12], y[:12], x[12:], y[12:], input_shape=(features,), n_classes=2)
    models = {"best_model": _tiny_model(5.0), "baseline_model": _tiny_model(1.0)} if features == 2 else {
        "best_model": object(), "baseline_model": object()}
    paths = write_report(tmp_path, _with_baseline(make_records()), {}, search_name="toy", rerun_command="x",
                         tensorboard=False, data=data, **models)
    names = [p.name for p in paths]
    assert ("decision_boundary.png" in names) is drawn
    assert "differences_to_baseline.png" in names and "tensorboard" not in names
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img") == len([n for n in names if n.endswith(".png")])


def test_activation_sparsity_is_drawn_for_activity_searches_only(tmp_path: Path) -> None:
    records = [{**r, "param_target": "activity", "param_placement": "after" if r["repeat"] else "before"}
               for r in make_records()]
    names = [p.name for p in write_report(tmp_path / "a", records, {}, search_name="a", rerun_command="x",
                                          tensorboard=False)]
    assert "activation_sparsity.png" in names
    kernel = [{**r, "param_target": "kernel"} for r in make_records()]
    names = [p.name for p in write_report(tmp_path / "k", kernel, {}, search_name="k", rerun_command="x",
                                          tensorboard=False)]
    assert "activation_sparsity.png" not in names


def test_the_comparison_note_of_a_search_with_only_the_baseline_says_there_is_nothing_to_compare() -> None:
    from regsearch.report.sections import comparison_note

    only_baseline = pd.DataFrame({"phase": ["grid"], "trial_id": ["grid-0000"], "baseline": [True],
                                  "interval": [None], "comparisons": [0]})
    note = comparison_note("test_accuracy", only_baseline)
    assert "no configuration but the baseline" in note and "paired seeds" not in note
    one_seed = pd.DataFrame({"phase": ["grid", "baseline"], "trial_id": ["grid-0000", "baseline-0000"],
                             "baseline": [False, True], "interval": [None, None], "comparisons": [1, 1]})
    assert "needs two paired seeds" in comparison_note("test_accuracy", one_seed)
