"""Tests for regsearch.report.study_plots on tiny hand-made tables and one hand-set Keras model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import Rectangle

from regsearch.errors import SettingError
from regsearch.report.boundary import decision_boundary_data, plot_decision_boundaries
from regsearch.report.study_plots import (
    heatmap_axes,
    heatmap_data,
    learning_curves_against_baseline_data,
    paired_differences_data,
    plot_activation_sparsity,
    plot_learning_curves_against_baseline,
    plot_paired_differences,
    plot_score_heatmap,
    sparsity_data,
)


def make_summary() -> pd.DataFrame:
    """Kind x strength, ranked; l2 at 0.00562 is best and sits at row 'l2', column '0.00562'."""
    rows = [
        # rank, trial, kind, strength, mean_val_accuracy
        (1, "t3", "l2", 0.00562, 0.95),
        (2, "t0", "l1", 1e-05, 0.90),
        (3, "t1", "l1", 0.00562, 0.85),
        (4, "t2", "l2", 1e-05, 0.80),
        (5, "b0", "none", math.nan, 0.70),
    ]
    return pd.DataFrame({
        "rank": [r[0] for r in rows],
        "search": "toy",
        "phase": ["grid"] * 4 + ["baseline"],
        "trial_id": [r[1] for r in rows],
        "param_kind": [r[2] for r in rows],
        "param_strength": [r[3] for r in rows],
        "param_target": ["kernel"] * 4 + ["none"],
        "param_optimizer": "adam",
        "n_runs": 2,
        "mean_val_accuracy": [r[4] for r in rows],
        "mean_val_loss": [0.2, 0.3, 0.4, 0.5, 0.6],
    })


# --- heatmap ------------------------------------------------------------------------------------


def test_heatmap_data_puts_each_score_in_its_cell():
    grid, info = heatmap_data(make_summary(), "val_accuracy", x="param_strength", y="param_kind")
    assert list(grid.index) == ["none", "l1", "l2"]
    assert list(grid.columns) == ["none", "1e-05", "0.00562"]
    assert grid.loc["l1", "1e-05"] == pytest.approx(0.90)
    assert grid.loc["l2", "1e-05"] == pytest.approx(0.80)
    assert grid.loc["l1", "0.00562"] == pytest.approx(0.85)
    assert grid.loc["none", "none"] == pytest.approx(0.70)
    assert math.isnan(grid.loc["none", "1e-05"])  # not run
    assert info["best"] == ("l2", "0.00562")
    assert info["score"] == "mean_val_accuracy"
    assert info["direction"] == "max"
    assert info["counts"].loc["l2", "0.00562"] == 1


def test_heatmap_data_swapped_axes_transpose_the_grid():
    grid, info = heatmap_data(make_summary(), "mean_val_accuracy", x="param_kind", y="param_strength")
    assert list(grid.index) == ["none", "1e-05", "0.00562"]
    assert grid.loc["1e-05", "l2"] == pytest.approx(0.80)
    assert info["best"] == ("0.00562", "l2")


def test_heatmap_data_keeps_the_best_ranked_configuration_of_a_shared_cell():
    summary = make_summary()
    summary = pd.concat([summary, summary.iloc[[0]].assign(rank=6, trial_id="t9", mean_val_accuracy=0.5)])
    grid, info = heatmap_data(summary, "val_accuracy", x="param_strength", y="param_kind")
    assert grid.loc["l2", "0.00562"] == pytest.approx(0.95)
    assert info["counts"].loc["l2", "0.00562"] == 2


def test_heatmap_data_of_a_loss_takes_the_lowest():
    summary = make_summary().drop(columns="rank")
    _, info = heatmap_data(summary, "val_loss", x="param_strength", y="param_kind")
    assert info["direction"] == "min"
    assert info["best"] == ("l2", "0.00562")  # val_loss 0.2


def test_heatmap_data_rejects_unknown_columns():
    with pytest.raises(SettingError, match="score"):
        heatmap_data(make_summary(), "test_accuracy", x="param_strength", y="param_kind")
    with pytest.raises(SettingError, match="'y'"):
        heatmap_data(make_summary(), "val_accuracy", x="param_strength", y="param_rate")


def test_heatmap_axes_picks_independent_varying_settings():
    assert heatmap_axes(make_summary()) == ("param_strength", "param_kind")
    one_kind = make_summary()[lambda s: s["param_kind"] != "l1"]
    assert heatmap_axes(one_kind) is None  # kind only repeats whether strength is missing
    assert heatmap_axes(make_summary().iloc[:1]) is None


def test_plot_score_heatmap_annotates_every_run_cell_and_outlines_the_best():
    summary = make_summary()
    summary.loc[summary["trial_id"] == "t2", ["rank", "mean_val_accuracy"]] = [0, 0.99]  # off the diagonal
    ax = plot_score_heatmap(summary, score="val_accuracy", x="param_strength", y="param_kind")
    assert isinstance(ax, Axes)
    assert ax.get_xlabel() == "strength"
    assert ax.get_ylabel() == "kind"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none", "1e-05", "0.00562"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["none", "l1", "l2"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.700", "0.850", "0.900", "0.950", "0.990"]
    outlines = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_label() == "best"]
    assert len(outlines) == 1 and outlines[0].get_xy() == (1, 2)  # column 1e-05, row l2
    assert "val accuracy" in ax.get_title()


# --- paired differences -------------------------------------------------------------------------


def make_comparison() -> pd.DataFrame:
    return pd.DataFrame({
        "phase": ["grid", "grid", "grid", "baseline"],
        "trial_id": ["t0", "t1", "t2", "b0"],
        "param_kind": ["l2", "l2", "l2", "none"],
        "param_strength": [1e-05, 0.00562, 0.1, math.nan],
        "param_optimizer": "adam",
        "n_pairs": [3, 3, 2, 3],
        # 1e-05: CI includes 0; 0.00562 helps; 0.1 hurts.
        "difference": [0.01, 0.03, -0.08, 0.0],
        "ci_low": [-0.02, 0.01, -0.10, 0.0],
        "ci_high": [0.05, 0.05, -0.06, 0.0],  # 1e-05's is asymmetric, as a bootstrap's may be
        "baseline": [False, False, False, True],
    })


def test_paired_differences_data_sorts_labels_and_drops_the_baseline():
    table = paired_differences_data(make_comparison(), metric="test_accuracy")
    assert table["label"].tolist() == ["strength=0.00562", "strength=1e-05", "strength=0.1"]
    assert table["difference"].tolist() == [0.03, 0.01, -0.08]
    assert table["excludes_zero"].tolist() == [True, False, True]
    assert table["effect"].tolist() == ["better", "indistinguishable", "worse"]
    assert "b0" not in table["trial_id"].tolist()


def test_paired_differences_data_of_a_loss_calls_a_decrease_better():
    table = paired_differences_data(make_comparison(), metric="test_loss")
    assert dict(zip(table["label"], table["effect"])) == {
        "strength=0.00562": "worse", "strength=1e-05": "indistinguishable", "strength=0.1": "better"}


def test_paired_differences_data_reads_a_csv_baseline_column_and_names_twins():
    comparison = make_comparison()
    comparison["baseline"] = comparison["baseline"].astype(str)  # as read back without dtypes
    comparison.loc[2, "param_strength"] = 1e-05  # the same settings twice (Hyperband brackets)
    table = paired_differences_data(comparison, metric="test_accuracy")
    assert len(table) == 3
    assert set(table["label"]) == {"strength=0.00562", "strength=1e-05 (t0)", "strength=1e-05 (t2)"}


def test_plot_paired_differences_draws_one_row_per_configuration_top_down():
    ax = plot_paired_differences(make_comparison(), metric="test_accuracy")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["strength=0.00562", "strength=1e-05", "strength=0.1"]
    bottom, top = ax.get_ylim()
    assert top < bottom  # first row on top
    rows = {c.get_label(): (c.lines[0].get_ydata().tolist(), c.lines[0].get_xdata().tolist())
            for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert rows == {  # (row positions, differences), one group per effect
        "better than no regularization": ([0], [0.03]),
        "indistinguishable from no regularization": ([1], [0.01]),
        "worse than no regularization": ([2], [-0.08]),
    }
    spans = {c.get_label(): [sorted(x for x, _ in segment) for segment in c.lines[2][0].get_segments()]
             for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert spans["indistinguishable from no regularization"] == [[pytest.approx(-0.02), pytest.approx(0.05)]]
    assert spans["worse than no regularization"] == [[pytest.approx(-0.10), pytest.approx(-0.06)]]
    assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [0]
    assert "test accuracy" in ax.get_xlabel()
    assert len(ax.get_legend().get_texts()) == 4


def test_plot_paired_differences_grows_with_the_rows():
    rows = pd.concat([make_comparison().iloc[:1]] * 45, ignore_index=True)
    rows["trial_id"] = [f"t{i}" for i in range(45)]
    rows["param_strength"] = np.logspace(-6, -1, 45)
    small = plot_paired_differences(make_comparison(), metric="test_accuracy").get_figure()
    large_ax = plot_paired_differences(rows, metric="test_accuracy")
    assert len(large_ax.get_yticklabels()) == 45
    assert large_ax.get_figure().get_size_inches()[1] > 2 * small.get_size_inches()[1]


# --- activation sparsity ------------------------------------------------------------------------


def make_sparsity_trials() -> pd.DataFrame:
    """Two placements x two strengths with 2 or 3 repeats, a baseline, and runs that must not count."""
    rows = []

    def add(trial, placement, strength, zero, activation, status="completed"):
        rows.append({"search": "toy", "trial_id": trial, "phase": "grid", "repeat": len(rows), "status": status,
                     "param_kind": "none" if math.isnan(strength) else "l1", "param_strength": strength,
                     "param_placement": placement, "zero_fraction": zero, "mean_activation": activation})

    add("a1", "after", 1e-04, 0.40, 0.30)
    add("a1", "after", 1e-04, 0.60, 0.10)  # mean 0.5 / 0.2
    add("a2", "after", 1e-02, 0.80, 0.05)
    add("a2", "after", 1e-02, 0.90, 0.03)
    add("a2", "after", 1e-02, 1.00, 0.01)  # three repeats: mean 0.9 / 0.03
    add("b1", "before", 1e-04, 0.30, 0.40)
    add("b1", "before", 1e-04, 0.30, 0.40)
    add("b2", "before", 1e-02, 0.50, 0.20)
    add("b2", "before", 1e-02, 0.99, 0.99, status="failed")  # left out
    add("b2", "before", 1e-02, math.nan, math.nan)  # no values: left out
    add("n0", math.nan, math.nan, 0.25, 0.50)
    add("n0", math.nan, math.nan, 0.35, 0.50)
    return pd.DataFrame(rows)


def test_sparsity_data_averages_completed_runs_per_placement_and_strength():
    table, info = sparsity_data(make_sparsity_trials())
    zero = table[table["measure"] == "zero_fraction"].set_index(["label", "x"])
    assert zero.loc[("placement=after", 1e-04), "mean"] == pytest.approx(0.5)
    assert zero.loc[("placement=after", 1e-04), "sd"] == pytest.approx(0.1)
    assert zero.loc[("placement=after", 1e-02), "mean"] == pytest.approx(0.9)
    assert zero.loc[("placement=after", 1e-02), "n"] == 3
    assert zero.loc[("placement=before", 1e-02), "mean"] == pytest.approx(0.5)
    assert zero.loc[("placement=before", 1e-02), "n"] == 1
    activation = table[table["measure"] == "mean_activation"].set_index(["label", "x"])
    assert activation.loc[("placement=after", 1e-02), "mean"] == pytest.approx(0.03)
    assert info["hue_names"] == ["param_placement"]
    assert info["baseline"]["zero_fraction"][0] == pytest.approx(0.30)
    assert info["baseline"]["zero_fraction"][2] == 2


def test_sparsity_data_needs_runs_with_values():
    trials = make_sparsity_trials().assign(zero_fraction=math.nan)
    with pytest.raises(SettingError, match="completed runs"):
        sparsity_data(trials)


def test_plot_activation_sparsity_draws_two_log_panels():
    axes = plot_activation_sparsity(make_sparsity_trials())
    assert len(axes) == 2
    assert [a.get_ylabel() for a in axes] == ["fraction of zero activations", "mean activation"]
    for axis in axes:
        assert axis.get_xscale() == "log"
        assert axis.get_xlabel() == "regularization strength (log scale)"
        assert len([c for c in axis.containers if isinstance(c, ErrorbarContainer)]) == 2  # after, before
    texts = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert texts == ["no regularization", "placement=after", "placement=before"]


def test_plot_activation_sparsity_wants_two_axes():
    with pytest.raises(SettingError, match="ax"):
        plot_activation_sparsity(make_sparsity_trials(), ax=[plot_paired_differences(
            make_comparison(), metric="test_accuracy")])


# --- learning curves against the baseline -------------------------------------------------------

BEST = {"accuracy": [0.6, 0.8, 0.9], "val_accuracy": [0.5, 0.7, 0.8], "loss": [0.7, 0.5, 0.3],
        "val_loss": [0.8, 0.5, 0.6]}
BASELINE = {"accuracy": [0.7, 1.0], "val_accuracy": [0.6, 0.65], "loss": [0.6, 0.1], "val_loss": [0.7, 0.9]}


def test_learning_curves_against_baseline_data_keeps_each_model_and_split():
    table = learning_curves_against_baseline_data(BEST, BASELINE, labels=("best", "none"))
    sizes = table.groupby(["model", "split"]).size().to_dict()
    assert sizes == {("best", "train"): 3, ("best", "validation"): 3, ("none", "train"): 2,
                     ("none", "validation"): 2}
    none_val = table[(table["model"] == "none") & (table["split"] == "validation")]
    assert none_val["epoch"].tolist() == [1, 2]
    assert none_val["value"].tolist() == [0.6, 0.65]


def test_learning_curves_against_baseline_data_rejects_an_unknown_metric():
    with pytest.raises(SettingError, match="metric"):
        learning_curves_against_baseline_data(BEST, BASELINE, metric="auc")


def test_plot_learning_curves_against_baseline_styles_models_and_splits():
    ax = plot_learning_curves_against_baseline(BEST, BASELINE, labels=("best", "none"), validation="held-out fold")
    curves = [line for line in ax.lines if line.get_linestyle() in ("-", "--")]
    assert len(curves) == 4
    styles = {line.get_label(): (line.get_linestyle(), line.get_color()) for line in curves}
    assert styles["best: train"][0] == "--" and styles["best: validation (held-out fold)"][0] == "-"
    assert styles["best: train"][1] == styles["best: validation (held-out fold)"][1]
    assert styles["best: train"][1] != styles["none: train"][1]
    stops = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert sorted(line.get_xdata()[0] for line in stops) == [1, 2]  # lowest val_loss: epoch 2 and 1
    assert ax.get_ylabel() == "accuracy (fraction correct)"
    assert len(ax.get_legend().get_texts()) == 6


# --- decision boundaries ------------------------------------------------------------------------


def boundary_model(outputs: int = 1):
    """A hand-set classifier of class 1 exactly where x0 > 0 (sigmoid of 10*x0, or its 2-column softmax)."""
    import keras

    activation = "sigmoid" if outputs == 1 else "softmax"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(outputs, activation=activation)])
    if outputs == 1:
        model.layers[0].set_weights([np.array([[10.0], [0.0]]), np.array([0.0])])
    else:
        model.layers[0].set_weights([np.array([[-5.0, 5.0], [0.0, 0.0]]), np.zeros(2)])
    return model


POINTS = np.array([[-1.0, -2.0], [1.0, 2.0], [0.5, -1.0]])


@pytest.mark.parametrize("outputs", [1, 2])
def test_decision_boundary_data_is_class_one_right_of_zero(outputs):
    grid = decision_boundary_data(boundary_model(outputs), POINTS, resolution=21, margin=0.5)
    assert grid.x0[0] == pytest.approx(-1.5) and grid.x0[-1] == pytest.approx(1.5)
    assert grid.x1[0] == pytest.approx(-2.5) and grid.x1[-1] == pytest.approx(2.5)
    assert grid.probability.shape == (21, 21)
    right, left = grid.x0 > 0.05, grid.x0 < -0.05
    assert (grid.probability[:, right] > 0.5).all()
    assert (grid.probability[:, left] < 0.5).all()
    # Rows follow x1, columns x0: the probability does not change down a column.
    assert np.allclose(grid.probability, grid.probability[:1, :], atol=1e-6)


def test_decision_boundary_data_wants_two_features():
    with pytest.raises(SettingError, match="'x'"):
        decision_boundary_data(boundary_model(), np.zeros((3, 3)))


def test_plot_decision_boundaries_draws_one_panel_per_model_on_shared_limits():
    x_train, y_train = np.array([[-1.0, 0.0], [1.0, 0.5]]), np.array([0, 1])
    x_test, y_test = np.array([[-0.5, 1.0], [0.5, -1.0], [-0.2, 0.0]]), np.array([[0], [1], [1]])
    models = {"sigmoid": boundary_model(1), "softmax": boundary_model(2)}
    axes = plot_decision_boundaries(models, x_train, y_train, x_test, y_test, resolution=30)
    assert len(axes) == 2
    assert axes[0].get_xlim() == axes[1].get_xlim() and axes[0].get_ylim() == axes[1].get_ylim()
    for axis, name in zip(axes, models):
        assert axis.get_title() == f"{name}\ntest accuracy 0.667"  # the third test point is misclassified
        points = [c for c in axis.collections if isinstance(c, PathCollection)]
        assert [c.get_label() for c in points] == ["train, class 0", "test, class 0", "train, class 1",
                                                   "test, class 1"]
        assert [len(c.get_offsets()) for c in points] == [1, 1, 1, 2]
    legend = axes[0].get_figure().legends[0]
    assert [t.get_text() for t in legend.get_texts()][-1] == "boundary (p = 0.5)"


def test_paired_differences_data_draws_the_family_wise_interval_where_there_is_one():
    comparison = make_comparison()
    corrected = comparison.assign(ci_low_corrected=comparison["ci_low"] - 0.05,
                                  ci_high_corrected=comparison["ci_high"] + 0.05)
    plain, family = (paired_differences_data(c, metric="test_accuracy") for c in (comparison, corrected))
    assert list(family["ci_low"]) == pytest.approx(list(plain["ci_low"] - 0.05))
    assert (family["effect"] == "indistinguishable").sum() > (plain["effect"] == "indistinguishable").sum()


def test_plot_paired_differences_says_what_its_intervals_resample():
    comparison = make_comparison()
    titles = {interval: plot_paired_differences(comparison.assign(interval=interval, ci_low_corrected=comparison[
        "ci_low"], ci_high_corrected=comparison["ci_high"]), metric="test_accuracy").get_title()
        for interval in ("rows and seeds", "seeds")}
    assert "family-wise 95% CI\nover the scored rows and" in titles["rows and seeds"]
    assert "rows" not in titles["seeds"] and "family-wise 95% CI\nover " in titles["seeds"]
    assert "family-wise" not in plot_paired_differences(comparison, metric="test_accuracy").get_title()
