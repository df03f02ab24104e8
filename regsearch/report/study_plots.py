"""Plots a regularization study needs that no general tuner draws.

A heatmap of the selection score over two settings, each configuration's paired
difference to no regularization with its confidence interval, activation
sparsity against strength, and the best configuration's learning curves beside the
baseline's (decision boundaries are in ``regsearch.report.boundary``).

As in ``regsearch.report.plots``: each plot takes a table (or histories, or
models) and an optional Axes, draws and returns it, making a new
``matplotlib.figure.Figure`` (no pyplot state) when none is given; what it draws
comes from a pure ``*_data`` function that tests check without pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from regsearch.errors import SettingError, one_of
from regsearch.report.plots import new_axes
from regsearch.report.tables import PARAM_PREFIX, format_params, format_value, param_columns

__all__ = [
    "heatmap_axes",
    "heatmap_data",
    "learning_curves_against_baseline_data",
    "paired_differences_data",
    "plot_activation_sparsity",
    "plot_learning_curves_against_baseline",
    "plot_paired_differences",
    "plot_score_heatmap",
    "sparsity_data",
]

_COLORS = sns.color_palette("colorblind")
#: Colours of a paired difference: helps, hurts, or cannot be told from seed noise.
EFFECT_COLORS = {"better": _COLORS[2], "worse": _COLORS[3], "indistinguishable": "0.55"}
_AXIS_LABELS = {"accuracy": "accuracy (fraction correct)", "loss": "loss (training objective)"}
SPARSITY_MEASURES = {
    "zero_fraction": "fraction of zero activations",
    "mean_activation": "mean activation",
}


def _name(column: str) -> str:
    return column.removeprefix(PARAM_PREFIX).replace("_", " ")


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _ordered_labels(values: pd.Series) -> list[str]:
    """Readable labels of a setting's values, missing ('none') first, numbers ascending, then text."""
    distinct = list(dict.fromkeys(values.tolist()))

    def key(value: Any) -> tuple[int, float, str]:
        if _is_missing(value) or str(value) == "none":
            return (0, 0.0, "")
        number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        return (1, float(number), "") if pd.notna(number) else (2, 0.0, str(value))

    return list(dict.fromkeys(format_value(v) for v in sorted(distinct, key=key)))


def _direction(score: str, direction: str | None, frame: pd.DataFrame) -> str:
    if direction is None:
        recorded = frame.attrs.get("direction") if frame.attrs.get("objective") == score else None
        direction = recorded or ("min" if score.endswith("loss") else "max")
    if direction not in ("max", "min"):
        raise SettingError("direction", one_of(("max", "min")), direction, where="study_plots")
    return direction


def _search_name(frame: pd.DataFrame) -> str:
    names = [str(n) for n in frame.get("search", pd.Series(dtype=object)).dropna().unique() if str(n)]
    return ", ".join(names)


def _varying(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    return [c for c in param_columns(frame) if c not in exclude and frame[c].nunique(dropna=False) > 1]


def _determines(frame: pd.DataFrame, given: str, other: str) -> bool:
    """True if each value of ``given`` comes with one value of ``other`` (NaN counted as a value)."""
    keys = frame[[given, other]].astype(object).where(frame[[given, other]].notna(), "")
    return bool(keys.groupby(given)[other].nunique().max() <= 1)


def _informative(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """``columns`` less those another one already tells (``dropout_kind`` beside ``dropout_rate``), in order."""
    kept: list[str] = []
    for column in sorted(columns, key=lambda c: -frame[c].nunique(dropna=False)):
        if not any(_determines(frame, k, column) for k in kept):
            kept.append(column)
    return [c for c in columns if c in kept]


# --- 1. score heatmap -------------------------------------------------------------------------


def heatmap_axes(summary: pd.DataFrame) -> tuple[str, str] | None:
    """Picks ``(x, y)``: two varying ``param_*`` columns for ``plot_score_heatmap``, or None.

    The column with the most distinct values goes on x (a numeric one on a
    tie); y is the next one that is not determined by it (``kind`` repeats what a missing ``strength`` says).
    None when fewer than two settings vary independently.
    """
    def order(column: str) -> tuple[int, bool]:  # ties: a numeric setting (strength) goes across
        numeric = pd.to_numeric(summary[column], errors="coerce").notna().any()
        return -summary[column].nunique(dropna=False), not numeric

    varying = sorted(_varying(summary), key=order)
    for i, x in enumerate(varying):
        for y in varying[i + 1:]:
            if not _determines(summary, x, y) and not _determines(summary, y, x):
                return x, y
    return None


def heatmap_data(
    summary: pd.DataFrame, score: str, x: str, y: str, *, direction: str | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Computes what ``plot_score_heatmap`` draws: the mean score per (y, x) cell.

    Args:
        summary: A table from ``summary_frame`` (or ``summary.csv``).
        score: The selection metric, with or without ``mean_`` (``test_accuracy``).
        x: The ``param_*`` column of the columns.
        y: The ``param_*`` column of the rows.
        direction: ``max`` or ``min``; by default the summary's, else ``min`` for a loss.

    Returns:
        The grid (index: y labels, columns: x labels; values formatted like
        ``1e-05``, a missing value as ``none``, numbers ascending; NaN where no
        configuration ran) and facts: ``score`` (the column), ``direction``,
        ``counts`` (configurations per cell, same shape), ``best`` (``(y label,
        x label)`` of the best cell), ``x_name`` and ``y_name``. Where several
        configurations share a cell (other settings vary, or Hyperband ran one
        twice), the cell shows the best of them by the summary's rank.

    Raises:
        SettingError: If a column is missing or no configuration has a score.
    """
    where = "heatmap_data"
    column = score if score.startswith("mean_") else f"mean_{score}"
    means = [c for c in summary.columns if c.startswith("mean_")]
    if column not in summary.columns:
        raise SettingError("score", one_of(c.removeprefix("mean_") for c in means), score, where=where)
    for name, value in (("x", x), ("y", y)):
        if value not in summary.columns:
            raise SettingError(name, one_of(param_columns(summary)), value, where=where)
    if x == y:
        raise SettingError("y", f"a column other than x ({x!r})", y, where=where)
    direction = _direction(column.removeprefix("mean_"), direction, summary)
    scored = summary[summary[column].notna()].copy()
    if scored.empty:
        raise SettingError("summary", f"a table with a {column} value", "none", where=where)

    scored["_x"] = scored[x].map(format_value)
    scored["_y"] = scored[y].map(format_value)
    if "rank" in scored.columns:  # the ranking already breaks ties and knows Hyperband's rungs
        order = scored.sort_values("rank", kind="stable")
    else:
        order = scored.sort_values(column, ascending=direction == "min", kind="stable")
    best_rows = order.drop_duplicates(["_y", "_x"])
    x_labels, y_labels = _ordered_labels(scored[x]), _ordered_labels(scored[y])
    grid = best_rows.pivot(index="_y", columns="_x", values=column).reindex(index=y_labels, columns=x_labels)
    counts = scored.groupby(["_y", "_x"]).size().unstack(fill_value=0)
    counts = counts.reindex(index=y_labels, columns=x_labels, fill_value=0)
    grid.index.name, grid.columns.name = _name(y), _name(x)
    first = order.iloc[0]
    info = {
        "score": column,
        "direction": direction,
        "counts": counts,
        "best": (first["_y"], first["_x"]),
        "x_name": _name(x),
        "y_name": _name(y),
        "search": _search_name(summary),
    }
    return grid, info


def plot_score_heatmap(
    summary: pd.DataFrame,
    *,
    score: str,
    x: str,
    y: str,
    direction: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Draws the mean score over two settings as an annotated heatmap, the best cell outlined.

    Args:
        summary: A table from ``summary_frame``.
        score: The selection metric (``test_accuracy``, ``val_loss``, ...).
        x: The ``param_*`` column across (e.g. ``param_strength``).
        y: The ``param_*`` column down (e.g. ``param_kind``).
        direction: ``max`` or ``min``; see ``heatmap_data``.
        ax: Axes to draw on; a new figure if None.

    Returns:
        The Axes.
    """
    grid, info = heatmap_data(summary, score, x, y, direction=direction)
    if ax is None:
        ax = new_axes(width=max(6.0, 0.8 * grid.shape[1] + 3.0), height=max(3.0, 0.55 * grid.shape[0] + 2.2))[0]
    words = info["score"].removeprefix("mean_").replace("_", " ")
    sns.heatmap(
        grid.astype(float),
        annot=True,
        fmt=".3f",
        annot_kws={"fontsize": 8},
        cmap="viridis" if info["direction"] == "max" else "viridis_r",
        linewidths=0.5,
        linecolor="white",
        cbar_kws={"label": f"mean {words}"},
        ax=ax,
    )
    row, col = grid.index.get_loc(info["best"][0]), grid.columns.get_loc(info["best"][1])
    ax.add_patch(Rectangle((col, row), 1, 1, fill=False, edgecolor="red", linewidth=2.5, label="best"))
    ax.set_xlabel(info["x_name"])
    ax.set_ylabel(info["y_name"])
    ax.tick_params(axis="y", rotation=0)
    ax.tick_params(axis="x", rotation=45 if grid.shape[1] > 6 else 0)
    shared = " (best of the configurations sharing a cell)" if int(info["counts"].to_numpy().max()) > 1 else ""
    title = f"mean {words} by {info['y_name']} and {info['x_name']}{shared};\nred: best, blank: not run"
    ax.set_title(f"{info['search']}: {title}" if info["search"] else title, fontsize=10)
    return ax


# --- 2. paired differences ---------------------------------------------------------------------


def paired_differences_data(comparison: pd.DataFrame, *, metric: str) -> pd.DataFrame:
    """Computes what ``plot_paired_differences`` draws: one row per regularized configuration.

    Args:
        comparison: A table from ``paired_differences`` (``comparison.csv``).
        metric: The compared metric; a loss is better when lower.

    Returns:
        Columns ``label`` (the varying settings, with the trial id where two
        share them), ``phase``, ``trial_id``, ``n_pairs``, ``difference``,
        ``ci_low``, ``ci_high`` (the family-wise interval where the table has
        one, ``ci_*_corrected``), ``excludes_zero`` and ``effect`` (better, worse
        or indistinguishable), largest difference first. Baseline rows and rows
        without pairs are left out.
    """
    rows = comparison[~comparison["baseline"].astype(str).str.lower().eq("true")]
    rows = rows[pd.to_numeric(rows["difference"], errors="coerce").notna()].copy()
    varying = _informative(rows, _varying(rows))
    if not varying:  # one configuration: name it by all its settings
        varying = [c for c in param_columns(rows) if rows[c].notna().any()]
    labels = pd.Series(
        [format_params({c: row[c] for c in varying}, skip_missing=False) for _, row in rows.iterrows()],
        index=rows.index, dtype=object,
    )
    twice = labels.duplicated(keep=False)
    labels[twice] = labels[twice] + " (" + rows.loc[twice, "trial_id"].astype(str) + ")"
    if "ci_low_corrected" in rows.columns:  # the family-wise interval, which the verdicts use
        rows["ci_low"], rows["ci_high"] = rows["ci_low_corrected"], rows["ci_high_corrected"]
    for column in ("difference", "ci_low", "ci_high"):
        rows[column] = pd.to_numeric(rows[column], errors="coerce").astype(float)
    excludes = (rows["ci_low"] > 0) | (rows["ci_high"] < 0)
    higher_is_better = not metric.endswith("loss")
    better = (rows["difference"] > 0) == higher_is_better
    table = pd.DataFrame({
        "label": labels,
        "phase": rows["phase"],
        "trial_id": rows["trial_id"],
        "n_pairs": rows["n_pairs"],
        "difference": rows["difference"],
        "ci_low": rows["ci_low"],
        "ci_high": rows["ci_high"],
        "excludes_zero": excludes,
        "effect": np.where(excludes, np.where(better, "better", "worse"), "indistinguishable"),
    })
    return table.sort_values("difference", ascending=False, kind="stable").reset_index(drop=True)


def plot_paired_differences(comparison: pd.DataFrame, *, metric: str, ax: Axes | None = None) -> Axes:
    """Draws each configuration's difference to no regularization with its 95% interval, one row each.

    Rows are sorted by difference, largest at the top; rows whose interval
    excludes 0 are coloured (better or worse), the others grey. The figure grows
    with the number of rows.

    Args:
        comparison: A table from ``paired_differences``.
        metric: The compared metric (``test_accuracy``), for the axis label and which way is better.
        ax: Axes to draw on; a new figure if None.

    Returns:
        The Axes.
    """
    table = paired_differences_data(comparison, metric=metric)
    if ax is None:
        width = max(7.5, 0.065 * max((len(s) for s in table["label"]), default=0) + 6.0)
        ax = new_axes(width=width, height=max(3.0, 0.24 * len(table) + 1.8))[0]
    positions = np.arange(len(table))
    for effect, color in EFFECT_COLORS.items():
        rows = table[table["effect"] == effect]
        if rows.empty:
            continue
        where = positions[table["effect"].to_numpy() == effect]
        low = (rows["difference"] - rows["ci_low"]).clip(lower=0).fillna(0)
        high = (rows["ci_high"] - rows["difference"]).clip(lower=0).fillna(0)
        word = {"better": "better than", "worse": "worse than"}.get(effect, "indistinguishable from")
        ax.errorbar(rows["difference"], where, xerr=[low.to_numpy(), high.to_numpy()], fmt="o", color=color,
                    markersize=5, capsize=3, linewidth=1.5, label=f"{word} no regularization")
    ax.axvline(0, color="black", linewidth=1, linestyle="--", label="no regularization (0)")
    ax.set_yticks(positions, table["label"].tolist(), fontsize=8 if len(table) <= 30 else 7)
    ax.set_ylim(len(table) - 0.5, -0.5)  # the largest difference on top
    ax.set_xlabel(f"{metric.replace('_', ' ')} minus no regularization's (paired by seed)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.grid(True, axis="x", alpha=0.3)
    pairs = pd.to_numeric(table["n_pairs"], errors="coerce")
    seeds = f"{int(pairs.min())}" if pairs.nunique() == 1 else f"{int(pairs.min())}-{int(pairs.max())}"
    family = "family-wise " if "ci_low_corrected" in comparison.columns else ""
    resampled = set(comparison["interval"].dropna().astype(str)) if "interval" in comparison.columns else set()
    over = f"the scored rows and {seeds} seeds" if resampled == {"rows and seeds"} else f"{seeds} seeds"
    ax.set_title(f"difference to no regularization, mean and {family}95% CI\nover {over}", fontsize=10)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


# --- 3. activation sparsity --------------------------------------------------------------------


def sparsity_data(
    trials: pd.DataFrame, *, x: str = "param_strength"
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Computes what ``plot_activation_sparsity`` draws: zero fraction and mean activation against ``x``.

    Args:
        trials: A table from ``trials_frame`` (or ``trials.csv``).
        x: The numeric setting of the log x axis.

    Returns:
        A table with columns ``label`` (the other varying settings, e.g.
        ``placement=after``), ``x``, ``measure`` (zero_fraction or
        mean_activation), ``mean``, ``sd`` (population, over repeats) and ``n``
        (runs), sorted by label and x; and facts: ``x_name``, ``hue_names``,
        ``baseline`` ({measure: (mean, sd, n)} of runs without an x value, e.g.
        kind none). Only completed runs with both values count.

    Raises:
        SettingError: If ``x`` is no column or no completed run has sparsity values.
    """
    where = "sparsity_data"
    if x not in trials.columns:
        raise SettingError("x", one_of(param_columns(trials)), x, where=where)
    measures = list(SPARSITY_MEASURES)
    missing = [m for m in measures if m not in trials.columns]
    if missing:
        raise SettingError("trials", f"a table with columns {measures}", f"no {missing}", where=where)
    runs = trials[trials["status"].astype(str) == "completed"].copy()
    for measure in measures:
        runs[measure] = pd.to_numeric(runs[measure], errors="coerce")
    runs = runs[runs[measures].notna().all(axis=1)]
    values = pd.to_numeric(runs[x], errors="coerce")
    has_x = values.gt(0)
    if not has_x.any():
        raise SettingError("trials", f"completed runs with {measures} and a positive {x}", "none", where=where)
    curve = runs[has_x]
    hue_names = _informative(curve, _varying(curve, exclude=[x]))
    labels = pd.Series([format_params({c: row[c] for c in hue_names}, skip_missing=False) if hue_names else ""
                        for _, row in curve.iterrows()], index=curve.index, dtype=object)
    long = pd.concat([
        pd.DataFrame({"label": labels, "x": values[has_x], "measure": m, "value": curve[m]}) for m in measures
    ])
    table = (long.groupby(["label", "x", "measure"], sort=False)["value"]
             .agg(mean="mean", sd=lambda v: v.std(ddof=0), n="size").reset_index()
             .sort_values(["measure", "label", "x"], kind="stable").reset_index(drop=True))
    rest = runs[~has_x]
    baseline = {m: (float(rest[m].mean()), float(rest[m].std(ddof=0)), len(rest)) for m in measures if len(rest)}
    info = {"x_name": _name(x), "hue_names": hue_names, "baseline": baseline, "search": _search_name(trials)}
    return table, info


def plot_activation_sparsity(
    trials: pd.DataFrame, *, x: str = "param_strength", ax: Sequence[Axes] | None = None
) -> list[Axes]:
    """Draws the fraction of zero activations and the mean activation against strength, in two panels.

    One line per other varying setting (placement, kind, ...), mean ± sd over
    repeats on a log x axis; runs without a strength (no regularization) are a
    dotted horizontal line.

    Args:
        trials: A table from ``trials_frame``.
        x: The numeric setting of the x axis.
        ax: Two Axes (zero fraction, mean activation); a new figure if None.

    Returns:
        The two Axes.

    Raises:
        SettingError: If fewer than two Axes are given; see ``sparsity_data``.
    """
    table, info = sparsity_data(trials, x=x)
    if ax is None:
        axes = new_axes(2, width=11.0, height=4.2)
    else:
        axes = list(np.atleast_1d(ax))
        if len(axes) < 2:
            raise SettingError("ax", "two Axes (zero fraction, mean activation)", len(axes),
                               where="plot_activation_sparsity")
    labels = list(dict.fromkeys(table["label"]))
    colors = dict(zip(labels, sns.color_palette("colorblind", max(len(labels), 1))))
    for axis, (measure, words) in zip(axes, SPARSITY_MEASURES.items()):
        for label in labels:
            line = table[(table["measure"] == measure) & (table["label"] == label)]
            axis.errorbar(line["x"], line["mean"], yerr=line["sd"], color=colors[label], marker="o", markersize=4,
                          capsize=3, label=label or "regularized")
        if measure in info["baseline"]:
            axis.axhline(info["baseline"][measure][0], color="gray", linestyle=":", linewidth=1.5,
                         label="no regularization")
        axis.set_xscale("log")
        axis.set_xlabel("regularization strength (log scale)" if info["x_name"] == "strength"
                        else f"{info['x_name']} (log scale)")
        axis.set_ylabel(words)
        axis.set_title(f"{words} vs {info['x_name']}")
        axis.grid(True, which="major", alpha=0.3)
    axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    n_max = int(table["n"].max())
    note = f"mean ± sd over up to {n_max} runs per point" if n_max > 1 else "one run per point"
    search = f"{info['search']}: " if info["search"] else ""
    axes[0].get_figure().suptitle(f"{search}activation sparsity ({note})", fontsize=11)
    return axes[:2]


# --- 4. learning curves against the baseline -----------------------------------------------------


def learning_curves_against_baseline_data(
    best_history: Mapping[str, Sequence[float]],
    baseline_history: Mapping[str, Sequence[float]],
    *,
    metric: str = "accuracy",
    labels: tuple[str, str] = ("best configuration", "no regularization"),
) -> pd.DataFrame:
    """Computes what ``plot_learning_curves_against_baseline`` draws.

    Returns:
        A long table with columns ``model`` (one of ``labels``), ``split``
        (train or validation), ``epoch`` (from 1) and ``value``.

    Raises:
        SettingError: If neither history has ``metric`` or ``val_<metric>``.
    """
    parts = []
    for label, history in zip(labels, (best_history, baseline_history)):
        for split, key in (("train", metric), ("validation", f"val_{metric}")):
            values = np.asarray(history.get(key, ()), dtype=float)
            if len(values):
                parts.append(pd.DataFrame({"model": label, "split": split,
                                           "epoch": np.arange(1, len(values) + 1), "value": values}))
    if not parts:
        known = sorted(set(best_history) | set(baseline_history))
        raise SettingError("metric", f"a key of the histories ({known})", metric,
                           where="plot_learning_curves_against_baseline")
    return pd.concat(parts, ignore_index=True)


def plot_learning_curves_against_baseline(
    best_history: Mapping[str, Sequence[float]],
    baseline_history: Mapping[str, Sequence[float]],
    *,
    metric: str = "accuracy",
    validation: str = "test data",
    labels: tuple[str, str] = ("best configuration", "no regularization"),
    ax: Axes | None = None,
) -> Axes:
    """Draws the best configuration's and the baseline's train and validation curves on one Axes.

    Colour tells the model, line style the rows (train dashed, validation
    solid); a dotted line marks each model's lowest validation loss, the
    weights early stopping restores.

    Args:
        best_history: Keras ``History.history`` of the best configuration's run.
        baseline_history: The same for a run without regularization.
        metric: ``accuracy`` or ``loss``.
        validation: Which rows validated, for the legend (``test data``, ``held-out fold``).
        labels: Names of the two models.
        ax: Axes to draw on; a new figure if None.

    Returns:
        The Axes.
    """
    table = learning_curves_against_baseline_data(best_history, baseline_history, metric=metric, labels=labels)
    ax = ax if ax is not None else new_axes(width=9.5, height=4.5)[0]
    colors = dict(zip(labels, (_COLORS[0], _COLORS[1])))
    for (model, split), line in table.groupby(["model", "split"], sort=False):
        rows = f"validation ({validation})" if split == "validation" else split
        ax.plot(line["epoch"], line["value"], color=colors[model], linestyle="-" if split == "validation" else "--",
                linewidth=1.1, label=f"{model}: {rows}")
    for model, history in zip(labels, (best_history, baseline_history)):
        val_loss = np.asarray(history.get("val_loss", ()), dtype=float)
        if np.isfinite(val_loss).any():
            epoch = int(np.nanargmin(val_loss)) + 1
            ax.axvline(epoch, color=colors[model], linestyle=":", linewidth=1.2,
                       label=f"{model}: lowest val_loss (epoch {epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(_AXIS_LABELS.get(metric, metric))
    ax.set_title(f"{metric} per epoch: {labels[0]} vs {labels[1]}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


# --- 5. decision boundaries --------------------------------------------------------------------
