"""From a checked definition to what a search trains: the data split, the HyperModel, folds and brackets.

Errors of the objects built here (a negative strength, a missing column, a
model whose output does not fit the task) come back as one-line
``SettingError``s naming the TOML key they came from.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

from regsearch.datasets import Split, load_dataset
import numpy as np

from regsearch.definition.schema import OBJECTIVES, RUNG_STRATEGIES, SearchDefinition
from regsearch.errors import SettingError
from regsearch.evaluation import Fold, OuterFold

__all__ = ["Bracket", "brackets", "check_model_file", "load_data", "load_model_file", "make_folds",
           "make_hypermodel", "make_outer_folds", "make_space", "outer_split", "resolve_objective"]

# Which TOML table a space piece's settings come from, by the class that raised.
_PIECE_KEYS = {"Regularizer": "space.regularizer", "Constraint": "space.constraint", "Dropout": "space.dropout",
               "Placement": "space", "Decades": "space.regularizer.strengths.decades",
               "LogRange": "space.regularizer.strengths.log_range", "Range": "space.dropout.rates.range",
               "FineGrid": "space.regularizer.strengths.fine"}

_LOADABLE = "a Keras model of built-in layers that loads in safe mode"

# Settings a HyperModel checks against its layers, named as the [space] keys they come from.
_SPACE_SETTINGS = {"regularizer target": "space.regularizer.target", "constraint targets": "space.constraint.targets",
                   "placement": "space.placement"}


def load_data(definition: SearchDefinition) -> Split:
    """The definition's data: a named dataset, or the user's file split as ``[data]`` says.

    Raises:
        SettingError: naming the ``data.*`` key and the definition file.
    """
    options = dict(definition.data)
    where = str(definition.path)
    try:
        if "file" in options:
            from regsearch.datafiles import load_file

            return load_file(options.pop("file"), **options, where=where)
        return load_dataset(options.pop("dataset"), **options)
    except SettingError as error:
        setting = error.setting if error.setting.startswith("data.") else f"data.{error.setting}"
        raise SettingError(setting, error.allowed, error.received, where) from None


def resolve_objective(definition: SearchDefinition, split: Split) -> SearchDefinition:
    """The definition with its objective set: as given, else validation accuracy (loss for regression).

    Under the ``tutorial`` protocol the validation rows are the test rows, and the
    default keeps the articles' name for them: test accuracy (test loss).
    """
    if definition.objective is not None:
        return definition
    prefix = "test" if definition.evaluation.selects_on_test else "val"
    objective = f"{prefix}_loss" if split.task == "regression" else f"{prefix}_accuracy"
    return dataclasses.replace(definition, objective=objective, direction=OBJECTIVES[objective])


def make_folds(definition: SearchDefinition, split: Split) -> list[Fold] | None:
    """The definition's folds of its training rows (None for the tutorial protocol).

    ``nested``: the inner folds of the whole training rows (the final search's), once every
    outer fold's training rows are checked to hold its inner folds too.

    Raises:
        SettingError: ``evaluation.folds``, ``evaluation.outer_folds`` or ``evaluation.validation_size``
            that the data cannot honour.
    """
    from regsearch import evaluation

    protocol, where = definition.evaluation, str(definition.path)
    classification = split.task != "regression"
    if protocol.kind == "nested":
        def fewest(outer: OuterFold) -> int:  # the outer fold with the fewest rows of a class is checked first
            labels = np.asarray(split.y_train[outer.train]).reshape(len(outer.train), -1)[:, 0]
            return int(np.unique(labels, return_counts=True)[1].min()) if classification else len(outer.train)

        for outer in sorted(make_outer_folds(definition, split), key=fewest):
            evaluation.make_folds(protocol, split.y_train[outer.train], classification=classification,
                                  seed=definition.seed, seeds=definition.repeats, where=where)
    return evaluation.make_folds(protocol, split.y_train, classification=classification, seed=definition.seed,
                                 seeds=definition.repeats, where=where)


def make_outer_folds(definition: SearchDefinition, split: Split) -> list[OuterFold]:
    """``nested``'s outer folds of the definition's training rows (none for other protocols).

    Raises:
        SettingError: ``evaluation.outer_folds`` that the data cannot honour.
    """
    from regsearch import evaluation

    if definition.evaluation.kind != "nested":
        return []
    return evaluation.outer_folds(definition.evaluation, split.y_train, classification=split.task != "regression",
                                  seed=definition.seed, where=str(definition.path))


def outer_split(split: Split, outer: OuterFold) -> Split:
    """The data one outer fold's search sees: its training rows train, its assessed rows are its test rows.

    The real test rows are not in it: the outer fold's search can neither train, validate nor score on them.
    """
    def take(data: Any, rows: np.ndarray) -> Any:
        import keras

        return keras.tree.map_structure(lambda a: np.asarray(a)[rows], data)

    return dataclasses.replace(split, x_train=take(split.x_train, outer.train), y_train=split.y_train[outer.train],
                               x_test=take(split.x_train, outer.assess), y_test=split.y_train[outer.assess],
                               test_rows=None)


def make_hypermodel(definition: SearchDefinition, split: Split | None = None, model: Any = None) -> Any:
    """Builds the definition's HyperModel; the data (loaded when not given) fills in shapes, task, classes.

    ``model`` is the ``[model] file`` loaded already (:class:`regsearch.definition.plan.Plan` shares it
    between phases); left out, the file is loaded.

    Raises:
        SettingError: A value the HyperModel, a space piece or the model file refuses, named by its TOML key.
    """
    split = load_data(definition) if split is None else split
    try:
        return _make_hypermodel(definition, split, model)
    except SettingError as error:
        raise _named(error, definition) from None


def make_space(definition: SearchDefinition) -> dict[str, Any]:
    """The definition's ``[space]`` as the HyperModels' arguments: Regularizer, Constraint, Dropout, placement.

    The pieces check their values without Keras (a search file's are checked before it is imported).

    Raises:
        SettingError: A value a piece refuses, named by its TOML key.
    """
    try:
        return _make_space(definition)
    except SettingError as error:
        raise _named(error, definition) from None


def _named(error: SettingError, definition: SearchDefinition) -> SettingError:
    """An error of a space piece or HyperModel, named by the TOML key its value came from."""
    if error.where == str(definition.path):
        return error
    key = _SPACE_SETTINGS.get(error.setting) or f"{_PIECE_KEYS.get(error.where, 'model')}.{error.setting}"
    return SettingError(key, error.allowed, error.received, str(definition.path))


def _make_space(definition: SearchDefinition) -> dict[str, Any]:
    from regsearch import space

    arguments: dict[str, Any] = {}
    pieces = definition.space
    if "regularizer" in pieces:
        # A search file's default strengths are the tutorials' decades, a grid every strategy can walk.
        arguments["regularizer"] = space.Regularizer(**{"strengths": space.DEFAULT_GRID, **pieces["regularizer"]})
    else:
        # A file without one searches no penalty (the classes' own default, for a space given nowhere, is L2).
        arguments["regularizer"] = space.Regularizer("none")
    if "constraint" in pieces:
        arguments["constraint"] = space.Constraint(**pieces["constraint"])
    if "dropout" in pieces:
        arguments["dropout"] = space.Dropout(**pieces["dropout"])
    if "placement" in pieces:
        arguments["placement"] = pieces["placement"]
    return arguments


def _make_hypermodel(definition: SearchDefinition, split: Split, model: Any = None) -> Any:
    from regsearch import hypermodels

    arguments = {**definition.model, **_make_space(definition)}
    if definition.hypermodel == "Regularize":
        path = arguments.pop("file")
        model = load_model_file(path, split, str(definition.path)) if model is None else model
        return hypermodels.Regularize(model, task=split.task, **arguments)
    arguments.setdefault("input_shape", split.input_shape)
    arguments.setdefault("task", split.task)
    if arguments["task"] == "multiclass":
        arguments.setdefault("classes", split.n_classes)
    if definition.hypermodel == "RegularizedLSTM" and split.vocab_size is not None:
        arguments.setdefault("vocab_size", split.vocab_size)
    return getattr(hypermodels, definition.hypermodel)(**arguments)


def load_model_file(path: Path, split: Split, where: str) -> Any:
    """A saved ``.keras`` model in safe mode, checked against the data it will train on.

    Raises:
        SettingError (``model.file``): missing or not a Keras model, needs custom
            objects or unsafe code, or inputs/outputs that do not fit the data and task.
    """
    import keras

    check_model_file(path, where)
    try:
        with warnings.catch_warnings():
            # Only the architecture and compile settings are used: the saved optimizer state is not wanted.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a file it cannot load
        text = str(error).strip().splitlines()
        reason = text[0][:160] if text else type(error).__name__
        raise SettingError("model.file", f"{_LOADABLE} (custom objects and Lambda layers are not loaded)",
                           f"{path} ({reason})", where) from None
    if isinstance(model, keras.Sequential) and not getattr(model, "inputs", None):
        model.build((None, *split.input_shape))  # saved before it was built: the data says its input
    inputs, outputs = model.inputs or [], model.outputs or []
    if len(inputs) > 1:
        shapes = [tuple(t.shape[1:]) for t in inputs]
        raise SettingError("model.file", "a model with one input: a data file gives one array of rows, so a model "
                           "of several inputs is searched through regsearch.Regularize, given its data as a list "
                           "or dict of arrays", f"{path.name} with inputs {shapes}", where)
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != tuple(split.input_shape):
        shapes = [tuple(t.shape[1:]) for t in inputs]
        raise SettingError("model.file", f"a model with one input of shape {tuple(split.input_shape)} "
                           "(one row of the data)", f"{path.name} with inputs {shapes}", where)
    units = [t.shape[-1] for t in outputs]
    expected = {"binary": (1, 2), "multiclass": (split.n_classes,), "regression": (1,)}[split.task]
    if len(units) != 1 or units[0] not in expected:
        task = f"'{split.task}'" + (f" with {split.n_classes} classes" if split.task == "multiclass" else "")
        allowed = " or ".join(str(u) for u in expected)
        raise SettingError("model.file", f"a model with one output of {allowed} units for the task {task}",
                           f"{path.name} with output units {units}", where)
    return model


def check_model_file(path: Path, where: str) -> None:
    """Refuses, without importing Keras, a model file that cannot be a saved ``.keras`` model.

    A ``.keras`` file is a zip archive whose ``config.json`` describes the model
    (``keras.saving.save_model``); whether Keras can load it is checked by
    :func:`load_model_file`.

    Raises:
        SettingError (``model.file``): missing, a folder, unreadable, not named .keras, or not such an archive.
    """
    import json
    import zipfile

    allowed = f"{_LOADABLE} (a .keras file: the zip archive model.save writes)"
    if path.is_dir():
        raise SettingError("model.file", allowed, f"{path} (a folder)", where)
    if not path.is_file():
        raise SettingError("model.file", "an existing .keras file", str(path), where)
    if path.suffix != ".keras":
        raise SettingError("model.file", "a .keras file (the format Keras 3 saves models in)", str(path), where)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json").decode("utf-8"))
        problem = None if isinstance(config, dict) else "its config.json is not a model's"
    except OSError as error:
        problem = error.strerror or type(error).__name__
    except zipfile.BadZipFile:
        problem = "an empty file" if path.stat().st_size == 0 else "not a zip archive"
    except KeyError:
        problem = "no config.json in the archive"
    except (UnicodeDecodeError, ValueError):  # json's JSONDecodeError is a ValueError
        problem = "its config.json is not JSON"
    if problem is not None:
        raise SettingError("model.file", allowed, f"{path} ({problem})", where)


@dataclasses.dataclass(frozen=True)
class Bracket:
    """One successive-halving phase: its configurations and their rungs."""

    phase: str
    configurations: list[dict[str, Any]]
    rungs: Any  # regsearch.population.rungs.Rungs


def brackets(definition: SearchDefinition, hypermodel: Any) -> list[Bracket]:
    """The brackets of ``successive_halving`` (one, the whole grid) or ``hyperband``; none for other strategies.

    Rungs sit at ``min_epochs * factor**k`` epochs below ``epochs``, then at
    ``epochs``. Hyperband's bracket ``b`` starts at rung ``b`` with as many
    configurations as Keras Tuner's Hyperband gives it, drawn (with ``seed``)
    from those no earlier bracket drew; once the grid is used up, a bracket
    takes what is left, and brackets that find none are left out.

    Raises:
        SettingError: ``min_epochs`` above ``epochs``, or rungs that would keep no
            configuration (fewer than ``factor ** halvings`` in the space).
    """
    from regsearch.oracles import grid_configurations
    from regsearch.population.rungs import Rungs, hyperband_brackets, rung_budgets
    from regsearch.report.tables import history_key, tie_breaker_of

    if definition.strategy not in RUNG_STRATEGIES:
        return []
    grid = grid_configurations(hypermodel)
    factor, epochs, where = definition.factor, definition.epochs, str(definition.path)
    halvings = max(0, int(math.floor(math.log(len(grid), factor) + 1e-9)))
    min_epochs = definition.min_epochs or max(1, math.ceil(epochs / factor**halvings))
    if min_epochs > epochs:
        raise SettingError("search.min_epochs", f"an integer from 1 to training.epochs ({epochs})", min_epochs, where)
    budgets = rung_budgets(min_epochs, factor, epochs)
    if len(grid) < factor ** (len(budgets) - 1):
        raise SettingError(
            "search.min_epochs", f"rungs the space's {len(grid)} configurations can fill: rungs at "
            f"{', '.join(map(str, budgets))} epochs need {factor ** (len(budgets) - 1)} configurations for the last "
            f"to keep one ({definition.repeats} members, its seeds); raise min_epochs or factor, or widen the space",
            min_epochs, where)
    objective = definition.objective or "val_accuracy"
    tie_breaker = tie_breaker_of(objective)
    rungs = Rungs(budgets, factor, history_key(objective), definition.direction == "min",
                  None if tie_breaker is None else history_key(tie_breaker))
    if definition.strategy == "successive_halving":
        return [Bracket("rungs", grid, rungs)]
    # Configurations no earlier bracket drew, as Keras Tuner's oracle never retries tried values: on a finite
    # grid a configuration drawn twice would train the same runs twice.
    untried = np.random.default_rng(definition.seed).permutation(len(grid))
    planned = []
    for b, size in enumerate(hyperband_brackets(len(budgets), factor)):
        chosen, untried = np.sort(untried[:size]), untried[size:]
        if len(chosen):
            planned.append(Bracket(f"bracket{b}", [grid[i] for i in chosen],
                                   dataclasses.replace(rungs, budgets=budgets[b:])))
    return planned
