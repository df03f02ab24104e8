"""Decision boundaries of 2-feature binary classifiers: the overfit and the regularized model side by side.

As in ``regsearch.report.plots``: the plot takes models and points and an
optional list of Axes, draws and returns them, making a new
``matplotlib.figure.Figure`` (no pyplot state) when none is given; what it draws
comes from the pure ``decision_boundary_data``, which tests check without pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap, to_rgb
from matplotlib.lines import Line2D

from regsearch.errors import SettingError
from regsearch.report.plots import new_axes

if TYPE_CHECKING:
    import keras

__all__ = ["BoundaryGrid", "decision_boundary_data", "plot_decision_boundaries"]

_COLORS = sns.color_palette("colorblind")
#: How far the grid reaches beyond the points, in feature units.
MARGIN = 0.5


@dataclass(frozen=True)
class BoundaryGrid:
    """A model's predicted probability of class 1 over a grid: ``probability[i, j]`` at ``(x0[j], x1[i])``."""

    x0: np.ndarray
    x1: np.ndarray
    probability: np.ndarray


def _class_one_probability(output: Any, rows: int) -> np.ndarray:
    """Class 1's probability from one sigmoid column, a flat vector, or two softmax columns."""
    values = np.asarray(output, dtype=float)
    if values.ndim == 2 and values.shape[1] in (1, 2):
        values = values[:, -1]
    if values.shape != (rows,):
        raise SettingError("model", "a binary classifier with 1 sigmoid or 2 softmax outputs",
                           f"output shape {np.asarray(output).shape}", where="decision_boundary_data")
    return values


def decision_boundary_data(
    model: keras.Model, x: np.ndarray, *, resolution: int = 200, margin: float = MARGIN
) -> BoundaryGrid:
    """Predicts class 1's probability over a grid covering the points ``x`` (2 features) plus ``margin``.

    The whole grid is predicted in one batch, by the Keras ``model`` in inference mode.

    Raises:
        SettingError: If ``x`` does not have two features or the model is no binary classifier.
    """
    grid, _ = _grid_and_points_predicted(model, x, np.empty((0, 2)), resolution=resolution, margin=margin)
    return grid


def _grid_and_points_predicted(
    model: keras.Model, x: np.ndarray, points: np.ndarray, *, resolution: int, margin: float
) -> tuple[BoundaryGrid, np.ndarray]:
    """``decision_boundary_data`` and class 1's probability at ``points``, from one inference pass.

    One pass over every row (:func:`regsearch.forward.inference_batches`): on TensorFlow an eager call, on JAX a
    pass compiled once per model structure. Keras's ``predict`` traced a predict function for each new model,
    most of a small model's cost.
    """
    covered = np.asarray(x, dtype=float)
    if covered.ndim != 2 or covered.shape[1] != 2 or len(covered) == 0:
        raise SettingError("x", "an array of shape (n, 2)", f"shape {covered.shape}",
                           where="decision_boundary_data")
    low, high = covered.min(axis=0) - margin, covered.max(axis=0) + margin
    x0, x1 = np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    mesh0, mesh1 = np.meshgrid(x0, x1)
    grid = np.column_stack([mesh0.ravel(), mesh1.ravel()])
    from regsearch.forward import inference_batches  # Keras, where a model is predicted

    rows = np.vstack([grid, np.asarray(points, dtype=float).reshape(-1, 2)]).astype("float32")
    probability = _class_one_probability(np.concatenate(list(inference_batches(model, rows, batch_size=len(rows)))),
                                         len(rows))
    return (BoundaryGrid(x0=x0, x1=x1, probability=probability[: len(grid)].reshape(resolution, resolution)),
            probability[len(grid):])


def plot_decision_boundaries(
    models: Mapping[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    axes: Sequence[Axes] | None = None,
    resolution: int = 200,
) -> list[Axes]:
    """Draws each model's predicted probability and 0.5 boundary, one panel per model, on shared limits.

    Training points are circles, test points crosses, coloured by class; each
    panel's title gives the model's accuracy on the test points.

    Args:
        models: Name -> Keras model (2 features, binary), e.g. ``{"no regularization": ..., "best": ...}``.
        x_train, y_train: Training points and their 0/1 labels.
        x_test, y_test: Test points and their labels.
        axes: One Axes per model; a new figure if None.
        resolution: Grid points per axis.

    Returns:
        The Axes, in the order of ``models``.

    Raises:
        SettingError: If there are no models or too few Axes.
    """
    where = "plot_decision_boundaries"
    if not models:
        raise SettingError("models", "at least one named model", "none", where=where)
    if axes is None:
        axes = new_axes(len(models), width=4.6 * len(models) + 1.4, height=4.6)
    axes = list(np.atleast_1d(axes))
    if len(axes) < len(models):
        raise SettingError("axes", f"{len(models)} Axes, one per model", len(axes), where=where)
    x_train, x_test = np.asarray(x_train, dtype=float), np.asarray(x_test, dtype=float)
    y_train, y_test = _labels_01(y_train), _labels_01(y_test)
    points = np.vstack([x_train, x_test])
    class_colors = (_COLORS[0], _COLORS[1])
    # Pale versions of the class colours behind the saturated points, so that every point stands out.
    pale = [tuple(0.3 * np.asarray(to_rgb(c)) + 0.7) for c in class_colors]
    background = LinearSegmentedColormap.from_list("classes", [pale[0], (1.0, 1.0, 1.0), pale[1]])
    filled = None
    for axis, (name, model) in zip(axes, models.items()):
        grid, test_probability = _grid_and_points_predicted(model, points, x_test, resolution=resolution, margin=MARGIN)
        filled = axis.contourf(grid.x0, grid.x1, grid.probability, levels=np.linspace(0, 1, 11), cmap=background,
                               vmin=0, vmax=1)
        axis.contour(grid.x0, grid.x1, grid.probability, levels=[0.5], colors="black", linewidths=1.5)
        for label, color in enumerate(class_colors):
            train, test = x_train[y_train == label], x_test[y_test == label]
            axis.scatter(train[:, 0], train[:, 1], color=color, marker="o", s=30, edgecolor="black", linewidth=0.6,
                         label=f"train, class {label}")
            axis.scatter(test[:, 0], test[:, 1], color=color, marker="X", s=30, edgecolor="black", linewidth=0.4,
                         label=f"test, class {label}")
        accuracy = float(np.mean((test_probability > 0.5) == (y_test == 1))) if len(y_test) else math.nan
        axis.set_title(f"{name}\ntest accuracy {accuracy:.3f}", fontsize=10)
        axis.set_xlim(grid.x0[0], grid.x0[-1])
        axis.set_ylim(grid.x1[0], grid.x1[-1])
        axis.set_xlabel("feature 0")
        axis.set_ylabel("feature 1")
    handles, names = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", linewidth=1.5))
    names.append("boundary (p = 0.5)")
    figure = axes[0].get_figure()
    figure.colorbar(filled, ax=axes[: len(models)], label="predicted probability of class 1", shrink=0.85)
    figure.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize="small")
    return axes[: len(models)]


def _labels_01(labels: np.ndarray) -> np.ndarray:
    """0/1 labels from a vector, a column, or one-hot rows."""
    values = np.asarray(labels)
    if values.ndim == 2 and values.shape[1] > 1:
        return values.argmax(axis=1)
    return values.reshape(-1).astype(int)
