"""Plots of a search: accuracy against strength, learning curves, optimization history.

Each plot takes a table (or a history) and an optional Axes, draws on it and
returns it; without an Axes it makes a new ``matplotlib.figure.Figure``, which
needs no GUI backend and is freed when the caller drops it (no pyplot state).
The data each plot draws is computed first by a pure ``*_data`` function, so
tests and other front ends can check it without looking at pixels.
Error bars are the population standard deviation over repeats, as in
``summary_frame``.
"""

from __future__ import annotations

import math
import textwrap

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.container import Container
from matplotlib.figure import Figure

from regsearch.errors import SettingError, one_of
from regsearch.report.tables import (
    CONFIG_COLUMNS,
    PARAM_PREFIX,
    format_params,
    format_value,
    param_columns,
    trials_frame,
)

__all__ = [
    "accuracy_vs_strength_data",
    "new_axes",
    "plot_accuracy_vs_strength",
    "plot_learning_curves",
    "plot_optimization_history",
    "plot_rungs",
    "rung_data",
]

DPI = 120
_LINESTYLES = {"train": "--", "test": "-", "validation": "-"}
_MARKERS = {"train": "s", "test": "o", "validation": "o"}
#: The rows a held-out score comes from, by the prefix of its metric.
HELD_OUT = {"test": "test", "val": "validation"}
_AXIS_LABELS = {
    "accuracy": "accuracy (fraction correct)",
    "loss": "loss (training objective)",
}


def new_axes(ncols: int = 1, *, width: float = 8.5, height: float = 4.5) -> list[Axes]:
    """Makes a figure with ``ncols`` side-by-side Axes, at the report's DPI."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return list(np.atleast_1d(fig.subplots(1, ncols)))


def accuracy_vs_strength_data(
    trials: pd.DataFrame,
    *,
    x: str = "param_strength",
    hue: str | Sequence[str] | None = None,
    held_out: str = "test",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Computes what ``plot_accuracy_vs_strength`` draws.

    Args:
        trials: A table from ``trials_frame``.
        x: The numeric parameter for the log x axis.
        hue: Parameter column(s) that split the lines; by default every other
            ``param_*`` column that varies.
        held_out: The rows drawn beside the training rows: ``"test"``, or
            ``"val"`` where the validation rows select (their loss then breaks ties).

    Returns:
        A table with columns ``label`` (the line), ``x``, ``split`` (train,
        and test or validation), ``mean``, ``sd`` and ``n`` (runs), for accuracy
        also the ``tie_loss`` mean of held-out points (it breaks ties), and facts about it:
        ``metric`` (accuracy, or loss for regression), ``categorical`` (no
        usable x values: ``x`` holds configuration labels instead),
        ``x_name``, ``hue_names``, and ``baseline`` (label -> mean test value
        of runs without an x value, e.g. kind none).

    Raises:
        SettingError: If no run completed or a hue column does not exist.
    """
    where = "plot_accuracy_vs_strength"
    if held_out not in HELD_OUT:
        raise SettingError("held_out", "'test' or 'val'", held_out, where=where)
    held = HELD_OUT[held_out]
    runs = trials[trials["status"].astype(str) != "failed"]
    metric = "accuracy" if runs[["train_accuracy", "test_accuracy"]].notna().any().any() else "loss"
    columns = {"train": f"train_{metric}", held: f"{held_out}_{metric}"}
    runs = runs[runs[list(columns.values())].notna().any(axis=1)]
    if runs.empty:
        raise SettingError("trials", "a table with at least one completed run", "none", where=where)

    values = pd.to_numeric(runs[x], errors="coerce") if x in runs.columns else None
    has_x = values.gt(0) if values is not None else pd.Series(False, index=runs.index)
    categorical = values is None or values[has_x].nunique() < 2
    baseline: dict[str, float] = {}
    baseline_ties: dict[str, float] = {}  # their mean loss on the same rows, which breaks ties
    if categorical:
        curve = runs
        varying = [c for c in param_columns(runs) if runs[c].nunique(dropna=False) > 1]
        # One varying setting: its values are the labels and its name the axis label.
        x_values = (
            _labels(runs, varying, with_names=len(varying) > 1, separator="\n", skip_missing=True)
            if varying
            else runs["trial_id"].astype(str)
        )
        hue_names: list[str] = []
        labels = pd.Series("", index=runs.index)
    else:
        curve = runs[has_x]
        x_values = values[has_x]
        hue_names = _hue_columns(curve, x, hue, where)
        labels = _labels(runs, hue_names)
        rest = runs.loc[~has_x, columns[held]]
        tie_losses = runs.loc[~has_x, f"{held_out}_loss"] if f"{held_out}_loss" in runs else rest * np.nan
        for label, group in rest.groupby(labels[rest.index], sort=False):
            if group.notna().any():
                name = label or f"no {x.removeprefix(PARAM_PREFIX)}"
                baseline[name] = float(group.mean())
                baseline_ties[name] = float(tie_losses[group.index].mean())

    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "label": labels[curve.index],
                    "x": x_values,
                    "split": split,
                    "value": curve[column],
                }
            )
            for split, column in columns.items()
        ]
    )
    table = (
        long.dropna(subset=["value"])
        .groupby(["label", "x", "split"], sort=False)["value"]
        .agg(mean="mean", sd=lambda v: v.std(ddof=0), n="size")
        .reset_index()
    )
    tie = f"{held_out}_loss"
    if metric == "accuracy" and tie in curve:
        # The ranked table breaks ties of accuracy by the lower loss on the same rows; so does the best mark.
        losses = pd.DataFrame({"label": labels[curve.index], "x": x_values, "tie_loss": curve[tie]})
        mean_loss = losses.groupby(["label", "x"], sort=False)["tie_loss"].mean().rename("tie_loss")
        table = table.join(mean_loss, on=["label", "x"])
        table.loc[table["split"] != held, "tie_loss"] = np.nan
    if not categorical:
        table = table.sort_values(["label", "x"], kind="stable").reset_index(drop=True)
    info = {
        "metric": metric,
        "categorical": categorical,
        "x_name": x.removeprefix(PARAM_PREFIX)
        if not categorical
        else ", ".join(c.removeprefix(PARAM_PREFIX) for c in varying) or "trial",
        "hue_names": hue_names,
        "baseline": baseline,
        "baseline_ties": baseline_ties,
        "search": _search_name(trials),
        "held": held,
    }
    return table, info


def plot_accuracy_vs_strength(
    trials: pd.DataFrame,
    *,
    x: str = "param_strength",
    hue: str | Sequence[str] | None = None,
    ax: Axes | None = None,
    held_out: str = "test",
) -> Axes:
    """Plots train and held-out (test, or validation) accuracy against the regularization strength.

    One line per hue value and data split (test solid, train dashed) on a
    log x axis, with error bars over repeats and a star on the best mean
    test value. Runs without a strength (kind none) become a dotted
    horizontal baseline. When ``x`` is absent or constant (a constraint or
    dropout search), draws train/test bars per configuration instead.
    Regression searches (no accuracy) plot loss.

    Args:
        trials: A table from ``trials_frame`` (or the records).
        x: The numeric parameter for the x axis.
        hue: Parameter column(s) that split the lines; default: every other
            varying ``param_*`` column (e.g. kind and placement).
        ax: Axes to draw on; a new figure if None.
        held_out: ``"test"`` or ``"val"``: the rows drawn beside the training rows (and starred).

    Returns:
        The Axes.
    """
    if not isinstance(trials, pd.DataFrame):
        trials = trials_frame(trials)
    table, info = accuracy_vs_strength_data(trials, x=x, hue=hue, held_out=held_out)
    ax = ax if ax is not None else new_axes()[0]
    metric = info["metric"]
    held = info["held"]
    best = _best_point(table, metric, held)
    if best is not None and not info["categorical"] and _baseline_wins(best, info, metric):
        best = None  # the runs without a strength rank first: their line is marked instead

    if info["categorical"]:
        _draw_bars(ax, table, best, held)
        ax.set_xlabel(info["x_name"])
        title = f"train and {held} {metric} per configuration"
    else:
        _draw_lines(ax, table, info, best)
        ax.set_xscale("log")
        name = info["x_name"]
        ax.set_xlabel(
            "regularization strength (log scale)" if name == "strength" else f"{name} (log scale)"
        )
        title = f"train and {held} {metric} vs {name}"
    n_max = int(table["n"].max())
    note = f"mean ± sd over up to {n_max} runs per point" if n_max > 1 else "one run per configuration"
    ax.set_title(f"{info['search']}: {title}\n({note})" if info["search"] else f"{title}\n({note})")
    ax.set_ylabel(_AXIS_LABELS[metric])
    ax.grid(True, which="major", alpha=0.3)
    # Data lines and bars first, then the baseline and the best mark.
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(handles)), key=lambda i: not isinstance(handles[i], Container))
    # Outside the plot area, so that it never hides a point.
    ax.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    return ax


def plot_learning_curves(
    history: Mapping[str, Sequence[float]],
    *,
    ax: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    validation: str = "test data",
) -> list[Axes]:
    """Plots accuracy and loss per epoch for one run, train against validation.

    Args:
        history: Keras ``History.history``: ``loss``, ``val_loss`` and, for
            classification, ``accuracy`` and ``val_accuracy``.
        ax: Two Axes (accuracy, loss), or one when there is only loss; a new
            figure if None.
        title: Figure title, e.g. the configuration.
        validation: Which rows validated, for the legend (``"test data"``, ``"held-out fold"``).

    Returns:
        The Axes, accuracy first when drawn.

    Raises:
        SettingError: If the history has no loss or accuracy, or too few Axes.
    """
    where = "plot_learning_curves"
    panels = [
        (name, [key for key in (name, f"val_{name}") if len(history.get(key, ())) > 0])
        for name in ("accuracy", "loss")
    ]
    panels = [(name, keys) for name, keys in panels if keys]
    if not panels:
        known = ["loss", "val_loss", "accuracy", "val_accuracy"]
        raise SettingError("history", f"a dict with any of {known}", sorted(history), where=where)
    if ax is None:
        axes = new_axes(len(panels), width=5.0 * len(panels) + 1, height=4.0)
    else:
        axes = list(np.atleast_1d(ax))
        if len(axes) < len(panels):
            raise SettingError(
                "ax", f"{len(panels)} Axes for {[p for p, _ in panels]}", len(axes), where=where
            )

    val_loss = np.asarray(history.get("val_loss", ()), dtype=float)
    best_epoch = int(np.nanargmin(val_loss)) + 1 if np.isfinite(val_loss).any() else None
    colors = sns.color_palette("colorblind", 2)
    for axis, (name, keys) in zip(axes, panels):
        for key in keys:
            values = np.asarray(history[key], dtype=float)
            is_val = key.startswith("val_")
            axis.plot(
                np.arange(1, len(values) + 1),
                values,
                color=colors[1 if is_val else 0],
                linestyle="-" if is_val else "--",
                linewidth=1.2,
                label=f"validation ({validation})" if is_val else "train",
            )
        if best_epoch is not None:
            axis.axvline(
                best_epoch,
                color="gray",
                linestyle=":",
                label=f"lowest val_loss (epoch {best_epoch})",
            )
        axis.set_xlabel("epoch")
        axis.set_ylabel(_AXIS_LABELS[name])
        axis.set_title(f"{name} per epoch")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small", loc="best")
    if title:
        axes[0].get_figure().suptitle(textwrap.fill(title, width=110))
    return axes[: len(panels)]


def plot_optimization_history(
    trials: pd.DataFrame,
    *,
    objective: str = "test_accuracy",
    direction: str = "max",
    ax: Axes | None = None,
) -> Axes:
    """Plots each configuration's mean objective in run order and the best so far.

    Args:
        trials: A table from ``trials_frame`` (or the records).
        objective: The metric, e.g. ``test_accuracy``.
        direction: ``max`` or ``min``: which way is better.
        ax: Axes to draw on; a new figure if None.

    Returns:
        The Axes.

    Raises:
        SettingError: For an unknown objective or direction.
    """
    where = "plot_optimization_history"
    if not isinstance(trials, pd.DataFrame):
        trials = trials_frame(trials)
    if direction not in ("max", "min"):
        raise SettingError("direction", one_of(("max", "min")), direction, where=where)
    if objective not in trials.columns or objective.startswith(PARAM_PREFIX):
        raise SettingError("objective", "a metric column of the trials", objective, where=where)
    keys = [c for c in CONFIG_COLUMNS if c in trials.columns]
    per_config = (
        trials.assign(_value=pd.to_numeric(trials[objective], errors="coerce"))
        .groupby(keys, sort=False, dropna=False)
        .agg(value=("_value", "mean"), phase=("phase", "first"))
        .reset_index(drop=True)
    )
    order = np.arange(1, len(per_config) + 1)
    values = per_config["value"].to_numpy(dtype=float)
    accumulate = np.fmax.accumulate if direction == "max" else np.fmin.accumulate
    best_so_far = accumulate(values)

    ax = ax if ax is not None else new_axes()[0]
    phases = list(dict.fromkeys(per_config["phase"].astype(str)))
    colors = sns.color_palette("colorblind", max(len(phases), 1))
    for color, phase in zip(colors, phases):
        mask = (per_config["phase"].astype(str) == phase).to_numpy()
        ax.scatter(order[mask], values[mask], color=color, s=30, label=f"{phase} configuration")
    ax.step(order, best_so_far, where="post", color="black", linewidth=1.5, label="best so far")
    ax.set_xlabel("configuration (in run order)")
    ax.set_ylabel(f"mean {objective.replace('_', ' ')}")
    search = _search_name(trials)
    ax.set_title(f"{search}: optimization history" if search else "optimization history")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return ax


def rung_data(rungs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration and rung: the seeds' mean ``score`` at that rung's ``budget``.

    Columns: phase, trial_id, rung, budget, score, kept (the configuration trained on past this rung).
    """
    if rungs.empty:
        return pd.DataFrame(columns=["phase", "trial_id", "rung", "budget", "score", "kept"])
    return (rungs.groupby(["phase", "trial_id", "rung"], sort=False)
            .agg(budget=("budget", "first"), score=("score", "mean"), kept=("kept", "all"))
            .reset_index())


def plot_rungs(rungs: pd.DataFrame, *, score: str, selected: tuple[str, str] | None = None,
               ax: Axes | None = None) -> Axes:
    """Each configuration's score at each rung against epochs: one line per configuration, ending where it stopped.

    Args:
        rungs: Rung rows (``rungs.csv``: phase, trial_id, repeat, rung, budget, score, kept).
        score: The selection score the rungs compared, for the axis label (``val_accuracy``, say).
        selected: ``(phase, trial_id)`` of the selected configuration, drawn in black.
        ax: Axes to draw on; a new figure if None.

    Returns:
        The Axes.
    """
    data = rung_data(rungs)
    ax = ax if ax is not None else new_axes()[0]
    phases = list(dict.fromkeys(data["phase"].astype(str)))
    colors = dict(zip(phases, sns.color_palette("colorblind", max(len(phases), 1))))
    for (phase, trial_id), line in data.groupby(["phase", "trial_id"], sort=False):
        line = line.sort_values("rung")
        ax.plot(line["budget"], line["score"], color=colors[str(phase)], alpha=0.45, linewidth=1, marker="o",
                markersize=3)
        ax.scatter(line["budget"].iloc[-1:], line["score"].iloc[-1:], color=colors[str(phase)], marker="x", s=25)
    for phase in phases:
        ax.plot([], [], color=colors[phase], marker="o", markersize=3, label=f"{phase} configuration")
    if selected is not None:
        line = data[(data["phase"] == selected[0]) & (data["trial_id"] == selected[1])].sort_values("rung")
        if not line.empty:
            ax.plot(line["budget"], line["score"], color="black", linewidth=2.2, marker="o", label="selected")
    ax.scatter([], [], color="gray", marker="x", label="last rung reached")
    ax.set_xscale("log")
    budgets = sorted(set(int(b) for b in data["budget"]))
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("epochs trained (rung budget)")
    ax.set_ylabel(f"mean {score.replace('_', ' ')} over seeds")
    search = _search_name(rungs)
    ax.set_title(f"{search}: score at each rung (the weakest stop there)" if search else "score at each rung")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return ax


def _draw_lines(
    ax: Axes, table: pd.DataFrame, info: dict[str, Any], best: pd.Series | None
) -> None:
    labels = list(dict.fromkeys(table["label"]))
    colors = sns.color_palette("colorblind", max(len(labels), 1))
    for color, label in zip(colors, labels):
        for split in ("train", info["held"]):
            line = table[(table["label"] == label) & (table["split"] == split)]
            if line.empty:
                continue
            ax.errorbar(
                line["x"].to_numpy(dtype=float),
                line["mean"].to_numpy(dtype=float),
                yerr=line["sd"].to_numpy(dtype=float),
                color=color,
                linestyle=_LINESTYLES[split],
                marker=_MARKERS[split],
                markersize=5,
                capsize=3,
                label=f"{split}: {label}" if label else split,
            )
    winner = None if best is not None else _best_baseline(info, info["metric"])
    for label, value in info["baseline"].items():
        ax.axhline(value, color="gray", linestyle=":", linewidth=2.5 if label == winner else 1.5,
                   label=f"{info['held']}: {label}" + (" (best)" if label == winner else ""))
    if best is not None:
        label = format_value(best["x"]) + (f" ({best['label']})" if best["label"] else "")
        _mark_best(ax, best["x"], best["mean"], label, info["held"])


def _best_point(table: pd.DataFrame, metric: str, held: str = "test") -> pd.Series | None:
    """The held-out point with the best mean; ties of accuracy go to the lower mean loss, as in the ranking."""
    test = table[(table["split"] == held) & table["mean"].notna()]
    if test.empty:
        return None
    if metric != "accuracy":
        return test.loc[test["mean"].idxmin()]
    keys = ["mean", "tie_loss"] if "tie_loss" in test else ["mean"]
    ascending = [False, True][: len(keys)]
    return test.sort_values(keys, ascending=ascending, kind="stable", na_position="last").iloc[0]


def _best_baseline(info: dict[str, Any], metric: str) -> str | None:
    """The baseline line that ranks first (by mean, then by the lower loss on the same rows)."""
    if not info["baseline"]:
        return None
    sign = -1 if metric == "accuracy" else 1
    return min(info["baseline"], key=lambda k: (sign * info["baseline"][k], _or_inf(info["baseline_ties"].get(k))))


def _baseline_wins(best: pd.Series, info: dict[str, Any], metric: str) -> bool:
    """True if a line without a strength ranks before the best point, as the ranked table would order them."""
    name = _best_baseline(info, metric)
    if name is None:
        return False
    sign = -1 if metric == "accuracy" else 1
    line = (sign * info["baseline"][name], _or_inf(info["baseline_ties"].get(name)))
    point = (sign * float(best["mean"]), _or_inf(best.get("tie_loss")))
    return line < point


def _or_inf(value: Any) -> float:
    return math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _mark_best(ax: Axes, x: float, y: float, label: str, held: str = "test") -> None:
    """A gold star on the best mean held-out value."""
    ax.scatter([x], [y], marker="*", s=260, color="gold", edgecolor="black", zorder=5, label=f"best {held}: {label}")


def _draw_bars(ax: Axes, table: pd.DataFrame, best: pd.Series | None, held: str = "test") -> None:
    configs = list(dict.fromkeys(table["x"]))
    positions = {config: i for i, config in enumerate(configs)}
    colors = dict(zip(("train", held), sns.color_palette("colorblind", 2)))
    width = 0.38
    offsets = {"train": -width / 2, held: width / 2}
    for split in ("train", held):
        bars = table[table["split"] == split]
        ax.bar(
            [positions[c] + offsets[split] for c in bars["x"]],
            bars["mean"],
            width=width,
            yerr=bars["sd"],
            capsize=3,
            color=colors[split],
            hatch="//" if split == "train" else None,
            edgecolor="white",
            label=split,
        )
    if best is not None:
        _mark_best(ax, positions[best["x"]] + offsets[held], best["mean"], str(best["x"]).replace("\n", ", "), held)
    # Multi-line labels (one setting per line) stay upright; long single lines tilt.
    tilt = len(configs) > 3 and not any("\n" in str(c) for c in configs)
    ax.set_xticks(
        range(len(configs)), configs, rotation=30 if tilt else 0, ha="right" if tilt else "center", fontsize=8
    )


def _hue_columns(
    curve: pd.DataFrame, x: str, hue: str | Sequence[str] | None, where: str
) -> list[str]:
    if hue is None:
        return [c for c in param_columns(curve) if c != x and curve[c].nunique(dropna=False) > 1]
    names = [hue] if isinstance(hue, str) else list(hue)
    for name in names:
        if name not in curve.columns:
            raise SettingError("hue", one_of(param_columns(curve)), name, where=where)
    return names


def _labels(
    runs: pd.DataFrame,
    columns: Sequence[str],
    *,
    with_names: bool = True,
    separator: str = ", ",
    skip_missing: bool = False,
) -> pd.Series:
    """One readable label per run from parameter columns: ``kind=l2, placement=after``.

    ``skip_missing`` leaves out settings that do not apply to a run (a
    constraint's ``max_value`` when it is ``unit_norm``), one per line with
    ``separator="\n"`` for tick labels.
    """
    if not columns:
        return pd.Series("", index=runs.index, dtype=object)
    rows = runs[list(columns)].itertuples(index=False)
    if with_names:
        labels = [
            separator.join(
                # On separate lines the first setting needs no name: the axis label gives it.
                format_value(v) if (i == 0 and separator == "\n") else format_params({c: v}, skip_missing=False)
                for i, (c, v) in enumerate(zip(columns, row))
                if not (skip_missing and _missing(v))
            )
            for row in rows
        ]
    else:
        labels = [separator.join(format_value(value) for value in row) for row in rows]
    return pd.Series(labels, index=runs.index, dtype=object)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _search_name(trials: pd.DataFrame) -> str:
    names = [
        str(n) for n in trials.get("search", pd.Series(dtype=object)).dropna().unique() if str(n)
    ]
    return ", ".join(names)
