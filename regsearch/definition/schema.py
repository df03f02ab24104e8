"""The schema of search definitions: TOML files that say what to search, read and checked here.

A definition is data, never code: ``tomllib`` parses it and every key is
checked against the schema below before anything runs, so a typo fails in
well under a second with one line naming the file, the key, the allowed values
and what was received. Turning it into data and a HyperModel (and the checks
that needs) is :mod:`regsearch.definition.build`.

```toml
description = "L2 weight decay on the hidden layer, coarse decades then a fine grid"

[data]
dataset = "moons"          # regsearch.dataset_names()
train_size = 30            # first N rows train, the rest test (and validate)

[model]
hypermodel = "RegularizedMLP"
hidden = [500]

[space.regularizer]
kinds = ["l2"]
strengths = { decades = [1e-1, 1e-6] }   # or a list, or { log_range = [1e-6, 1e-1] }
target = "kernel"

[search]
strategy = "coarse_to_fine"  # grid | coarse_to_fine | bayesian | successive_halving | hyperband
time_limit = 3600            # optional: seconds; then no new trial starts (rerun to resume)
checkpoint_seconds = 300     # optional: seconds of training between a population's checkpoints

[training]
epochs = 4000

[early_stopping]
patience = 200

[evaluation]
protocol = "holdout"       # holdout (default) | kfold | nested | tutorial (validation = test, as the articles did)
validation_size = 0.25     # holdout: the share of the training rows that validates
split_per_seed = false     # true: each seed draws its own split (or folds)
```
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from regsearch.errors import SettingError, one_of
from regsearch.evaluation.splits import PROTOCOLS, Protocol

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SearchDefinition", "read_definition", "find_definition", "known_searches", "PACKAGED_SEARCHES"]

PACKAGED_SEARCHES = Path(__file__).parent.parent / "searches"


class _Nothing:
    """What error messages show as received for a missing value: ``got nothing``."""

    def __repr__(self) -> str:
        return "nothing"


NOTHING = _Nothing()
STRATEGIES = ("grid", "coarse_to_fine", "bayesian", "successive_halving", "hyperband")
#: Strategies that compare configurations at rungs inside one population.
RUNG_STRATEGIES = ("successive_halving", "hyperband")
HYPERMODELS = ("RegularizedMLP", "RegularizedCNN", "RegularizedLSTM")
SCALES = ("none", "standard")
DATASET_KEYS = {"dataset", "train_size", "n_samples", "noise", "random_state"}
FILE_KEYS = {"file", "target", "features", "test_size", "scale", "task", "random_state"}
MODEL_FILE_KEYS = {"file", "layers", "optimizer", "learning_rate"}
# Constructor arguments the [space] and [early_stopping] tables fill in, not [model].
SPACE_ARGUMENTS = {"regularizer", "constraint", "dropout", "placement", "patience"}
_SHARED_MODEL_KEYS = {"task", "classes", "optimizer", "learning_rate", "layers", "jit_compile", "input_shape"}
#: The ``[model]`` keys of each built-in HyperModel: its constructor's arguments but SPACE_ARGUMENTS.
#: Written out so that a search file is checked without importing Keras (which the HyperModels need);
#: tests/test_definition.py keeps it equal to the constructors' signatures.
MODEL_KEYS = {
    "RegularizedMLP": _SHARED_MODEL_KEYS | {"hidden", "activation"},
    "RegularizedCNN": _SHARED_MODEL_KEYS | {"filters", "dense", "kernel_size", "activation"},
    "RegularizedLSTM": _SHARED_MODEL_KEYS | {"vocab_size", "embedding_dim", "units"},
}
MODES = ("auto", "min", "max")
# Defaults that give an answer to trust (README, "Every key of a search file"): several seeds, so the
# comparison with no regularization has a confidence interval, and early stopping restoring the best weights.
DEFAULT_EPOCHS = 200
DEFAULT_REPEATS = 5
#: Seconds of training between a population's checkpoints (regsearch.population.checkpoints.DEFAULT_SECONDS).
DEFAULT_CHECKPOINT_SECONDS = 300.0


def default_patience(epochs: int) -> int:
    """Early stopping's patience when the file gives none: a tenth of the epochs (at least 1)."""
    return max(1, epochs // 10)

# Objectives regsearch can select on, and which way is better.
OBJECTIVES = {
    "test_accuracy": "max",
    "val_accuracy": "max",
    "train_accuracy": "max",
    "test_loss": "min",
    "val_loss": "min",
}


@dataclass(frozen=True)
class SearchDefinition:
    """A validated search definition.

    Attributes:
        name: The search's name (the file name without ``.toml``).
        path: Where the definition was read from.
        text: The file's text, copied into the results folder.
        description: One line saying what the search answers.
        data: ``dataset`` plus ``load_dataset`` options (``train_size``, ``n_samples``, ...),
            or ``file`` (resolved against the definition's folder) plus ``load_file`` options.
        hypermodel: The HyperModel class name, or ``"Regularize"`` for ``[model] file``.
        model: Fixed constructor arguments of the HyperModel (``file`` and
            ``layers`` for Regularize; ``layers`` for the built-in ones too).
        space: The searched pieces as constructor arguments: ``regularizer``,
            ``constraint``, ``dropout`` (dicts) and ``placement``.
        strategy: ``grid``, ``coarse_to_fine``, ``bayesian``, ``successive_halving`` or ``hyperband``.
        objective: The metric that ranks configurations (default ``test_accuracy``,
            ``test_loss`` for regression data; None until the data is known); ``direction``
            says which way is better.
        max_trials: Trials of a Bayesian search.
        batch: Trials the population engine asks the oracle for at once; None: a
            grid phase's every trial, 8 for a Bayesian search.
        fine_points: Values of the fine grid of ``coarse_to_fine``.
        factor: ``successive_halving`` and ``hyperband`` keep the best ``1/factor`` at each rung.
        min_epochs: Their first rung's budget (rungs at ``min_epochs * factor**k``, then
            ``epochs``); None: the smallest budget whose rungs the space's configurations fill.
        time_limit: Seconds after which no new trial (or population of trials) starts; what
            finished is reported, and running the search again resumes it. None: no limit.
        checkpoint_seconds: Seconds of training between two checkpoints of a population
            (:mod:`regsearch.population.checkpoints`): what a kill mid-population costs at most.
        repeats: Training runs per configuration, with seeds ``seed``, ``seed + 1``, ...
        seed: The first seed.
        epochs: Maximum epochs per run.
        batch_size: Minibatch size.
        early_stopping: ``keras.callbacks.EarlyStopping`` arguments, or None for none.
        report: Plot settings: ``x`` (the param column on the x axis), ``hue``; ``claim``:
            what the search's article says, shown in the results index beside the answer.
        evaluation: The protocol that validates and selects, and whether the baseline runs
            (:class:`regsearch.evaluation.Protocol`; ``holdout`` unless ``[evaluation]`` says otherwise).
    """

    name: str
    path: Path
    text: str
    description: str
    data: dict[str, Any]
    hypermodel: str
    model: dict[str, Any]
    space: dict[str, Any]
    strategy: str
    objective: str | None
    direction: str | None
    max_trials: int
    batch: int | None
    fine_points: int
    repeats: int
    seed: int
    epochs: int
    batch_size: int
    early_stopping: dict[str, Any] | None
    report: dict[str, Any] = field(default_factory=dict)
    evaluation: Protocol = field(default_factory=Protocol)
    factor: int = 3
    min_epochs: int | None = None
    time_limit: float | None = None
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS

    def with_epochs(self, epochs: int) -> SearchDefinition:
        """The same definition trained for at most ``epochs`` epochs (quick looks)."""
        from dataclasses import replace

        return replace(self, epochs=epochs)


def known_searches(folder: Path | None = None) -> dict[str, Path]:
    """Search names and files: the packaged ones, overridden by ``./searches`` (or ``folder``)."""
    found = {path.stem: path for path in sorted(PACKAGED_SEARCHES.glob("*.toml"))}
    local = Path("searches") if folder is None else folder
    if local.is_dir() and local.resolve() != PACKAGED_SEARCHES.resolve():
        found.update({path.stem: path for path in sorted(local.glob("*.toml"))})
    return dict(sorted(found.items()))


def find_definition(name_or_path: str) -> Path:
    """Resolves a search name (``./searches/NAME.toml``, then the packaged one) or a path.

    Raises:
        SettingError: No such file or search; the message lists the known names.
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or len(candidate.parts) > 1:
        if candidate.is_file() or candidate.is_dir():  # a folder is refused when read, saying so
            return candidate
        raise SettingError("search", "an existing .toml file", name_or_path, where="command line")
    searches = known_searches()
    if name_or_path in searches:
        return searches[name_or_path]
    close = difflib.get_close_matches(name_or_path, list(searches), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise SettingError("search", one_of(searches) + hint, name_or_path, where="command line")


def read_definition(name_or_path: str | Path) -> SearchDefinition:
    """Reads a search definition and checks it against the schema (see ``load_definition`` for the rest).

    Raises:
        SettingError: For malformed TOML (with line and column), unknown keys
            (with the nearest known key), wrong types and out-of-range values.
    """
    path = name_or_path if isinstance(name_or_path, Path) else find_definition(name_or_path)
    where = str(path)
    text = _read_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, where) from None
    return _validate(raw, path, text)


def _read_text(path: Path) -> str:
    """The definition's text: UTF-8 (a byte-order mark is dropped), as TOML requires.

    Raises:
        SettingError: naming the file and why it cannot be a search file (missing, a folder,
            unreadable, empty, another encoding, binary).
    """
    allowed = "a search file: UTF-8 TOML text"
    if path.is_dir():
        raise SettingError("search", allowed, f"{path} (a folder)", where="command line")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SettingError("search", "a readable file", f"{path} ({error.strerror})", where="command line") from None
    if not data.strip():
        raise SettingError("search", allowed, f"{path} (an empty file)", where="command line")
    for bom, encoding in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                          (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if data.startswith(bom):
            raise SettingError("search", f"{allowed} (save it as UTF-8)", f"{path} ({encoding} text)",
                               where="command line")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SettingError("search", allowed, f"{path} (byte 0x{data[error.start]:02x} on line {line} is not UTF-8)",
                           where="command line") from None


def _syntax_error(error: Exception, where: str) -> SettingError:
    """tomllib's message ("Invalid value (at line 5, column 14)") with the position as the setting."""
    import re

    found = re.fullmatch(r"(.*) \(at (line \d+, column \d+)\)", str(error))
    if found is None:
        return SettingError("file", "valid TOML", str(error), where)
    problem = found.group(1)
    return SettingError(found.group(2), "valid TOML (key = value, [table], \"strings\", [lists])", problem, where)


# --- validation ----------------------------------------------------------------------------

Checker = Callable[[str, Any, str], Any]


def _validate(raw: dict[str, Any], path: Path, text: str) -> SearchDefinition:
    where = str(path)
    _known_keys("", raw, {"description", "data", "model", "space", "search", "training", "early_stopping", "report",
                          "evaluation"}, where)
    description = _string("description", _required(raw, "description", where), where)

    data_options = _data(_table(raw, "data", where, required=True), path, where)
    hypermodel, model = _model(_table(raw, "model", where, required=True), path, where)

    space_table = _table(raw, "space", where)
    _known_keys("space", space_table, {"regularizer", "constraint", "dropout", "placement"}, where)
    space: dict[str, Any] = {}
    for piece in ("regularizer", "constraint", "dropout"):
        if piece in space_table:
            space[piece] = _piece(piece, space_table[piece], where)
    if "placement" in space_table:
        space["placement"] = _strings("space.placement", space_table["placement"], where)

    search = _table(raw, "search", where)
    _known_keys("search", search, {"strategy", "objective", "max_trials", "batch", "fine_points", "repeats", "seed",
                                   "factor", "min_epochs", "time_limit", "checkpoint_seconds"}, where)
    strategy = _choice("search.strategy", search.get("strategy", "grid"), STRATEGIES, where)
    for key in ("factor", "min_epochs"):
        if key in search and strategy not in RUNG_STRATEGIES:
            raise SettingError(f"search.{key}", f"left out unless strategy is {one_of(RUNG_STRATEGIES)}", strategy,
                               where)
    if strategy in RUNG_STRATEGIES and "batch" in search:
        raise SettingError("search.batch", f"left out for strategy '{strategy}': its rungs compare every "
                           "configuration of a bracket in one population", search["batch"], where)
    objective = _choice("search.objective", search["objective"], OBJECTIVES, where) if "objective" in search else None
    if strategy == "coarse_to_fine" and not _has_strength_grid(space):
        raise SettingError(
            "search.strategy", "'grid' or 'bayesian' unless [space.regularizer] has several strengths", strategy, where
        )

    training = _table(raw, "training", where)
    _known_keys("training", training, {"epochs", "batch_size"}, where)
    epochs = _integer("training.epochs", training.get("epochs", DEFAULT_EPOCHS), where, low=1)

    # Early stopping is on by default (a careful user's choice); patience = "none" turns it off.
    stopping = _table(raw, "early_stopping", where)
    early_stopping = None
    if stopping.get("patience") == "none" and len(stopping) > 1:
        raise SettingError("early_stopping", 'only patience = "none" (no early stopping uses no other key)',
                           sorted(set(stopping) - {"patience"}), where)
    if stopping.get("patience") != "none":
        _known_keys(
            "early_stopping", stopping,
            {"monitor", "patience", "min_delta", "mode", "baseline", "restore_best_weights", "start_from_epoch"}, where,
        )
        early_stopping = dict(stopping)
        patience = early_stopping.get("patience", default_patience(epochs))
        if isinstance(patience, list):
            if not patience:
                raise SettingError("early_stopping.patience", "an integer >= 0 or a non-empty list", patience, where)
            model["patience"] = [p if p == "none" else _integer("early_stopping.patience", p, where, low=0)
                                 for p in patience]
            early_stopping["patience"] = 0  # each run's patience comes from the searched value
        else:
            early_stopping["patience"] = _integer("early_stopping.patience", patience, where, low=0)
        early_stopping["monitor"] = _string("early_stopping.monitor", early_stopping.get("monitor", "val_loss"), where)
        early_stopping["mode"] = _choice("early_stopping.mode", early_stopping.get("mode", "auto"), MODES, where)
        early_stopping["min_delta"] = _number("early_stopping.min_delta", early_stopping.get("min_delta", 0), where, low=0)
        early_stopping["start_from_epoch"] = _integer(
            "early_stopping.start_from_epoch", early_stopping.get("start_from_epoch", 0), where, low=0
        )
        early_stopping["restore_best_weights"] = _boolean(
            "early_stopping.restore_best_weights", early_stopping.get("restore_best_weights", True), where
        )
        if "baseline" in early_stopping:
            early_stopping["baseline"] = _number("early_stopping.baseline", early_stopping["baseline"], where)

    report = _table(raw, "report", where)
    _known_keys("report", report, {"x", "hue", "claim"}, where)
    evaluation = _evaluation(_table(raw, "evaluation", where), where)
    if strategy in RUNG_STRATEGIES and evaluation.kind in ("kfold", "nested"):
        raise SettingError("evaluation.protocol", f"'holdout' or 'tutorial' for strategy '{strategy}' (its rungs "
                           "compare configurations on one validation split)", evaluation.kind, where)
    if strategy in RUNG_STRATEGIES and evaluation.split_per_seed:
        raise SettingError("evaluation.split_per_seed", f"false for strategy '{strategy}' (its rungs compare every "
                           "seed of a configuration in one population, on one validation split)", True, where)
    if evaluation.kind == "nested" and "time_limit" in search:
        raise SettingError("search.time_limit", "left out for protocol 'nested' (each outer fold runs the whole "
                           "search; a search stopped part-way has no procedure to assess)", search["time_limit"], where)
    if objective is not None and objective.startswith("test_") and not evaluation.selects_on_test:
        raise SettingError("search.objective", f"a validation or training metric under protocol "
                           f"'{evaluation.kind}' (the test rows never choose; protocol 'tutorial' lets them)",
                           objective, where)

    definition = SearchDefinition(
        name=path.stem,
        path=path,
        text=text,
        description=description,
        data=data_options,
        hypermodel=hypermodel,
        model=model,
        space=space,
        strategy=strategy,
        objective=objective,
        direction=None if objective is None else OBJECTIVES[objective],
        max_trials=_integer("search.max_trials", search.get("max_trials", 20), where, low=1),
        batch=_integer("search.batch", search["batch"], where, low=1) if "batch" in search else None,
        fine_points=_integer("search.fine_points", search.get("fine_points", 7), where, low=1),
        factor=_integer("search.factor", search.get("factor", 3), where, low=2),
        min_epochs=_integer("search.min_epochs", search["min_epochs"], where, low=1) if "min_epochs" in search
        else None,
        time_limit=check_seconds("search.time_limit", search["time_limit"], where) if "time_limit" in search else None,
        checkpoint_seconds=check_seconds("search.checkpoint_seconds", search.get("checkpoint_seconds",
                                                                                  DEFAULT_CHECKPOINT_SECONDS), where),
        repeats=_integer("search.repeats", search.get("repeats", DEFAULT_REPEATS), where, low=1),
        seed=_integer("search.seed", search.get("seed", 0), where, low=0),
        epochs=epochs,
        batch_size=_integer("training.batch_size", training.get("batch_size", 32), where, low=1),
        early_stopping=early_stopping,
        report={key: _string(f"report.{key}", value, where) for key, value in report.items()},
        evaluation=evaluation,
    )
    return definition


def check_seconds(key: str, value: Any, where: str) -> float:
    """A time budget in seconds: a finite number > 0 (``[search] time_limit``, ``--time-limit``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise SettingError(key, "a number of seconds > 0", value, where)
    return float(value)


def _evaluation(table: dict[str, Any], where: str) -> Protocol:
    """``[evaluation]``: the protocol and its settings (checked against the data later, in ``make_folds``)."""
    _known_keys("evaluation", table, {"protocol", "validation_size", "folds", "repeats", "baseline", "outer_folds",
                                      "split_per_seed"}, where)
    kind = _choice("evaluation.protocol", table.get("protocol", "holdout"), PROTOCOLS, where)
    for key, allowed in (("validation_size", ("holdout",)), ("folds", ("kfold", "nested")),
                         ("repeats", ("kfold", "nested")), ("outer_folds", ("nested",)),
                         ("split_per_seed", ("holdout", "kfold", "nested"))):
        if key in table and kind not in allowed:
            raise SettingError(f"evaluation.{key}", "given only with protocol " + " or ".join(map(repr, allowed)),
                               table[key], where)
    validation_size = _number("evaluation.validation_size", table.get("validation_size", 0.25), where, low=0,
                              low_open=True)
    if validation_size >= 1:
        raise SettingError("evaluation.validation_size", "a fraction between 0 and 1", validation_size, where)
    return Protocol(
        kind=kind,
        validation_size=validation_size,
        folds=_integer("evaluation.folds", table.get("folds", 5), where, low=2),
        repeats=_integer("evaluation.repeats", table.get("repeats", 1), where, low=1),
        baseline=_boolean("evaluation.baseline", table.get("baseline", True), where),
        outer_folds=_integer("evaluation.outer_folds", table.get("outer_folds", 5), where, low=2),
        split_per_seed=_boolean("evaluation.split_per_seed", table.get("split_per_seed", False), where),
    )


def _data(data: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """``[data]``: a named dataset and its options, or a file of the user's and how to read it."""
    from regsearch.datasets import dataset_names

    if ("dataset" in data) == ("file" in data):
        raise SettingError("data.dataset", "given, or data.file instead (exactly one of them)",
                           "both" if "dataset" in data else NOTHING, where)
    if "file" in data:
        _known_keys("data", data, FILE_KEYS, where)
        options: dict[str, Any] = {"file": _file_path("data.file", data["file"], path, where)}
        if "target" in data:
            options["target"] = _string("data.target", data["target"], where)
        if "features" in data:
            features = data["features"]
            if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
                raise SettingError("data.features", "a non-empty list of column names", features, where)
            options["features"] = features
        if "test_size" in data:
            options["test_size"] = _number("data.test_size", data["test_size"], where, low=0, low_open=True)
        if "scale" in data:
            options["scale"] = _choice("data.scale", data["scale"], SCALES, where)
        if "task" in data:
            from regsearch.datasets import TASKS

            options["task"] = _choice("data.task", data["task"], TASKS, where)
        if "random_state" in data:
            options["random_state"] = _integer("data.random_state", data["random_state"], where, low=0)
        return options
    _known_keys("data", data, DATASET_KEYS, where)
    options = {"dataset": _choice("data.dataset", data["dataset"], dataset_names(), where)}
    if "train_size" in data:
        options["train_size"] = _number("data.train_size", data["train_size"], where, low=0, low_open=True)
    for key in ("n_samples", "random_state"):
        if key in data:
            options[key] = _integer(f"data.{key}", data[key], where, low=0)
    if "noise" in data:
        options["noise"] = _number("data.noise", data["noise"], where, low=0)
    return options


def _model(model: dict[str, Any], path: Path, where: str) -> tuple[str, dict[str, Any]]:
    """``[model]``: a built-in HyperModel and its arguments, or a saved model of the user's (Regularize)."""
    model = dict(model)
    if ("hypermodel" in model) == ("file" in model):
        raise SettingError("model.hypermodel", f"given, or model.file instead (exactly one of them): {one_of(HYPERMODELS)}",
                           "both" if "hypermodel" in model else NOTHING, where)
    if "layers" in model:
        model["layers"] = _strings("model.layers", model["layers"], where)
    if "file" in model:
        _known_keys("model", model, MODEL_FILE_KEYS, where)
        model["file"] = _file_path("model.file", model["file"], path, where)
        return "Regularize", model
    hypermodel = _choice("model.hypermodel", model.pop("hypermodel"), HYPERMODELS, where)
    _known_keys("model", model, MODEL_KEYS[hypermodel], where)
    return hypermodel, model


def _file_path(key: str, value: Any, definition_path: Path, where: str) -> Path:
    """A path from the definition: relative ones resolve against the definition's folder."""
    text = _string(key, value, where)
    candidate = Path(text).expanduser()
    return candidate if candidate.is_absolute() else definition_path.parent / candidate


PIECE_KEYS = {
    "regularizer": {"kinds", "strengths", "target", "l1_strengths"},
    "constraint": {"kinds", "max_value", "min_value", "rate", "targets"},
    "dropout": {"kinds", "rates", "where"},
}
GRID_FORMS = {"decades": 2, "log_range": 2, "fine": None, "range": None}


def _piece(piece: str, table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise SettingError(f"space.{piece}", "a table", table, where)
    _known_keys(f"space.{piece}", table, PIECE_KEYS[piece], where)
    return {key: _values(f"space.{piece}.{key}", value, where) for key, value in table.items()}


def _values(key: str, value: Any, where: str) -> Any:
    """A plain value, or one of the inline tables ``{decades|log_range|fine|range = ...}``."""
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or next(iter(value)) not in GRID_FORMS:
        raise SettingError(key, "a value, a list, or one of {decades = [a, b]}, {log_range = [low, high]}, "
                           "{fine = {center = c, n = 7, span = 1}}, {range = [low, high, step]}", value, where)
    form, arguments = next(iter(value.items()))
    from regsearch import space

    if form == "fine":
        if not isinstance(arguments, dict):
            raise SettingError(f"{key}.fine", "a table {center = c, n = 7, span = 1}", arguments, where)
        _known_keys(f"{key}.fine", arguments, {"center", "n", "span"}, where)
        return _construct(space.FineGrid, f"{key}.fine", arguments, where)
    if not isinstance(arguments, list) or not (2 <= len(arguments) <= (GRID_FORMS[form] or 3)):
        size = "two numbers" if GRID_FORMS[form] == 2 else "two or three numbers"
        raise SettingError(f"{key}.{form}", f"a list of {size}", arguments, where)
    cls = {"decades": space.Decades, "log_range": space.LogRange, "range": space.Range}[form]
    return _construct(cls, f"{key}.{form}", arguments, where)


def _construct(cls: type, key: str, arguments: Any, where: str) -> Any:
    try:
        return cls(**arguments) if isinstance(arguments, dict) else cls(*arguments)
    except SettingError as error:
        raise SettingError(f"{key}.{error.setting}", error.allowed, error.received, where) from None
    except TypeError as error:
        raise SettingError(key, "the documented arguments", f"{arguments!r} ({error})", where) from None


def _has_strength_grid(space: dict[str, Any]) -> bool:
    strengths = space.get("regularizer", {}).get("strengths")
    if strengths is None:
        return "regularizer" in space  # the default is Decades(1e-1, 1e-6)
    values = getattr(strengths, "values", strengths)
    return isinstance(values, (list, tuple)) and len(values) > 1


def _known_keys(section: str, table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (nearest: '{close[0]}')" if close else ""
            setting = f"{section}.{key}" if section else key
            label = f"[{section}]" if section else "the top level"
            raise SettingError(setting, f"a known key of {label}{hint}: {one_of(sorted(allowed))}", key, where)


def _table(raw: dict[str, Any], key: str, where: str, required: bool = False) -> dict[str, Any]:
    if key not in raw:
        if required:
            raise SettingError(f"[{key}]", "a table (it is required)", NOTHING, where)
        return {}
    if not isinstance(raw[key], dict):
        raise SettingError(key, "a table", raw[key], where)
    return raw[key]


def _required(table: dict[str, Any], key: str, where: str, prefix: str = "") -> Any:
    if key not in table:
        raise SettingError(prefix + key, "given (it is required)", NOTHING, where)
    return table[key]


def _choice(key: str, value: Any, allowed: Any, where: str) -> str:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=1)
        hint = f" (nearest: '{close[0]}')" if close else ""
        raise SettingError(key, one_of(allowed) + hint, value, where)
    return value


def _string(key: str, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(key, "a non-empty string", value, where)
    return value


def _strings(key: str, value: Any, where: str) -> list[str] | str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SettingError(key, "a string or a list of strings", value, where)
    return value


def _boolean(key: str, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SettingError(key, "true or false", value, where)
    return value


def _integer(key: str, value: Any, where: str, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        allowed = "an integer" + (f" >= {low}" if low is not None else "")
        raise SettingError(key, allowed, value, where)
    return value


def _number(key: str, value: Any, where: str, low: float | None = None, low_open: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if not bad and low is not None:
        bad = value <= low if low_open else value < low
    if bad:
        allowed = "a number" + ("" if low is None else (f" > {low}" if low_open else f" >= {low}"))
        raise SettingError(key, allowed, value, where)
    return value
