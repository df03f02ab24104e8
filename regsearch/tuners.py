"""Keras Tuner's own tuners, keeping every training run instead of only the mean.

``executions_per_trial`` averages the runs of a trial and throws the runs away
(keras-tuner #526, #702). These tuners (a grid on :class:`~regsearch.oracles.PlannedOracle`,
``keras_tuner.BayesianOptimization``, successive halving) train each configuration ``repeats`` times with seeds
``seed, seed + 1, ...``, write every run (metrics, per-epoch history, status)
to ``runs.json`` in the trial's folder, and report the mean over the runs that
completed to the oracle. A run that raises or diverges is recorded with its
reason; a trial whose every run failed is marked failed and the search goes on.

With ``folds`` (:mod:`regsearch.evaluation`) every seed trains once per fold
(per fold of its own, for folds drawn per seed):
on the fold's training rows, validated (early stopping, the objective) on its
held-out rows. ``test_data`` then scores each restored model on rows that
neither train nor validate (``test_*``); without it a fold run has no test score.

While a tuner is built, searches, saves or reloads, Keras Tuner writes its own
state (oracle.json, trial.json, tuner0.json) atomically
(:func:`regsearch.kt_internals.atomic_keras_tuner_state`); Keras Tuner itself
is left as it was for every other use in the process.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import keras_tuner as kt
import numpy as np

from regsearch import kt_internals
from regsearch.atomic import write_bytes_atomic, write_refused, write_text_atomic
from regsearch.errors import SettingError, one_of
from regsearch.evaluation import Fold
from regsearch.hypermodels.base import FIT_OPTIONS, evaluate_rows, row_scores
from regsearch.oracles import PlannedOracle, grid_configurations
from regsearch.outcomes import TRIAL_ROWS_FILE, Outcomes, load_outcomes, outcomes_bytes, run_key
from regsearch.population import checkpoints, memory
from regsearch.population.rungs import Rungs
from regsearch.repair import HYPERPARAMETERS_KEY, repair_project
from regsearch.runs import RECORD_METRICS, RUNS_FILE, failed_trial_record, load_runs

__all__ = ["GridSearch", "BayesianOptimization", "SuccessiveHalving", "RUNS_FILE", "read_outcomes", "read_runs",
           "read_rungs", "failed_trial_record"]


#: ``sequential``: each run its own compiled loop; ``population``: a batch of trials' runs trained together.
ENGINES = ("population", "sequential")

#: The folder of a phase's population checkpoints, inside its Keras Tuner project folder.
CHECKPOINT_FOLDER = "checkpoints"

#: What ``search`` passes on: ``model.fit``'s arguments and regsearch's ``early_stopping`` settings.
SEARCH_ARGUMENTS = ("epochs", "batch_size", "verbose", "callbacks", "early_stopping", *FIT_OPTIONS)


class _RecordingTuner:
    """The part shared by both tuners: repeats, records, failure handling and atomic state files."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with kt_internals.atomic_keras_tuner_state():  # building may reload, and a later version may save
            super().__init__(*args, **kwargs)

    def _setup(self, repeats: int, seed: int, phase: str, search_name: str, on_run: Callable[[dict], None] | None,
               engine: str = "sequential", batch: int = 1, folds: Sequence[Fold] | None = None,
               test_data: tuple | None = None, rungs: Rungs | None = None,
               stop_when: Callable[[], bool] | None = None,
               checkpoint_seconds: float = checkpoints.DEFAULT_SECONDS) -> None:
        where = type(self).__name__
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"{where}: 'repeats' must be an integer >= 1; got {repeats!r}.")
        if engine not in ENGINES:
            raise SettingError("engine", one_of(ENGINES), engine, where)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise SettingError("batch", "an integer >= 1", batch, where)
        self.repeats, self.base_seed, self.phase = repeats, int(seed), phase
        self.search_name, self.on_run = search_name, on_run
        self.engine, self.batch = engine, batch
        if folds is not None and (not folds or not all(isinstance(f, Fold) for f in folds)):
            raise SettingError("folds", "a non-empty list of regsearch.evaluation.Fold", folds, where)
        if test_data is not None and (not isinstance(test_data, (tuple, list)) or len(test_data) != 2):
            raise SettingError("test_data", "a tuple (x_test, y_test)", type(test_data).__name__, where)
        self.folds, self.test_data = (None if folds is None else list(folds)), test_data
        if rungs is not None and self.folds is not None and len(self.folds) > 1:
            raise SettingError("folds", "one validation split (holdout or tutorial): rungs compare one "
                               "population at a time", f"{len(self.folds)} folds", where)
        self.rungs = rungs
        if stop_when is not None and not callable(stop_when):
            raise SettingError("stop_when", "a function of no arguments returning True to stop", stop_when, where)
        self.stop_when = stop_when
        if (isinstance(checkpoint_seconds, bool) or not isinstance(checkpoint_seconds, (int, float))
                or not 0 < checkpoint_seconds < math.inf):
            raise SettingError("checkpoint_seconds", "a number of seconds > 0", checkpoint_seconds, where)
        self.checkpoint_seconds = float(checkpoint_seconds)
        self._checkpoints: list[checkpoints.Checkpoints] = []  # the running batch's, removed once it is recorded
        self._batch_leader: str | None = None
        #: True once ``search`` ended because ``stop_when`` said so, with trials left to run.
        self.stopped_early = False
        #: Every trial's runs: (repeat, fold), seeds outermost; a fold of one repeat (``split_per_seed``) only its own.
        self.runs = [(repeat, fold) for repeat in range(repeats) for fold in (self.folds or [None])
                     if fold is None or fold.repeat in (None, repeat)]
        missing = sorted(set(range(repeats)) - {repeat for repeat, _ in self.runs})
        if missing:
            raise SettingError("folds", f"folds for every repeat 0 to {repeats - 1} (Fold.repeat None, or the "
                               "repeat)", f"none for repeat {missing[0]}", where)
        self._warned = False  # that the population engine falls back, said once
        self._trained: dict[str, dict[tuple, Any]] = {}  # trial id -> (repeat, fold) -> result trained with a batch
        self._search_args: tuple[tuple, dict] = ((), {})

    def pre_create_trial(self) -> None:
        """Keras Tuner's hook before each trial is asked of the oracle: where ``stop_when`` may end the search.

        With the population engine this comes before each batch, whose extra
        trials :meth:`on_trial_begin` asks for itself: a batch is never split.
        """
        super().pre_create_trial()
        if self.stop_when is not None and self._work_left() and self.stop_when():
            raise _Stopped

    def _work_left(self) -> bool:
        """Whether the oracle has a trial to hand out (one that a killed process left unfinished included)."""
        oracle = self.oracle
        if isinstance(oracle, PlannedOracle):
            return oracle.next_configuration() is not None
        if any(trial.status == kt.engine.trial.TrialStatus.RUNNING for trial in oracle.trials.values()):
            return True
        return oracle.max_trials is None or len(oracle.trials) < oracle.max_trials

    def on_trial_begin(self, trial: kt.engine.trial.Trial) -> None:
        """With the population engine, asks the oracle for up to ``batch - 1`` more trials and trains all together.

        The extra trials are handed out under their own tuner ids (as to
        workers) and reported, recorded and ended here, one by one, as Keras
        Tuner ends a trial; ``trial`` itself goes on through Keras Tuner's loop.
        """
        super().on_trial_begin(trial)
        if self.engine != "population" or trial.trial_id in self._trained:
            return
        args, kwargs = self._search_args
        if not hasattr(self.hypermodel, "run_population"):
            reason = f"a {type(self.hypermodel).__name__} (it has no run_population)"
        else:
            reason = self.hypermodel.population_reason(kwargs, kwargs.get("callbacks"))
        if reason is not None and self.rungs is not None:
            raise SettingError("engine", "a population: rungs stop members inside one", reason,
                               type(self).__name__)
        if reason is not None:
            if not self._warned:
                warnings.warn(f"{type(self).__name__}: the population engine cannot train {reason}; "
                              "each run trains on its own (the sequential engine).", stacklevel=2)
                self._warned = True
            return
        batch = [trial]
        self._batch_leader = trial.trial_id
        for i in range(1, self.batch):
            extra = self.oracle.create_trial(f"{self.tuner_id}+{i}")
            if extra.status != kt.engine.trial.TrialStatus.RUNNING:
                break
            batch.append(extra)
        self._train_batch(batch, *args, **kwargs)
        for extra in batch[1:]:
            super().on_trial_begin(extra)
            self._try_run_and_update_trial(extra, *args, **kwargs)
            self.on_trial_end(extra)

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        """Keras Tuner's end of a trial; after a batch's first trial, the last of it recorded, its checkpoints go."""
        super().on_trial_end(trial)
        if trial.trial_id == self._batch_leader:
            for batch_checkpoints in self._checkpoints:
                batch_checkpoints.remove()
            self._checkpoints.clear()
            self._batch_leader = None

    def on_search_end(self) -> None:
        """Keras Tuner's end of a search; a process searching alone removes checkpoints no population took.

        (A batch formed otherwise after a kill leaves its first form's.) A
        distributed worker leaves the folder to the others still training.
        """
        super().on_search_end()
        if not kt_internals.is_worker(self):
            checkpoints.sweep(self._checkpoint_folder())

    def _checkpoint_folder(self) -> Path:
        return Path(self.project_dir) / CHECKPOINT_FOLDER

    def _train_batch(self, trials: list[kt.engine.trial.Trial], *fit_args: Any,
                     early_stopping: dict[str, Any] | None = None, callbacks: list | None = None, verbose: Any = None,
                     **fit_kwargs: Any) -> None:
        """Builds the batch's runs, as many at a time as memory holds (estimated from the first), and trains them.

        Runs of one fold share their rows and train together; each fold's population reuses the
        compiled program of the last when the folds are of one size.
        """
        pending = [(trial, repeat, fold) for trial in trials for repeat, fold in self.runs]
        fit: int | None = None
        while pending:
            runs: list[tuple] = []
            owners: list[tuple] = []
            while pending and (fit is None or len(runs) < fit or self.rungs is not None):
                trial, repeat, fold = pending.pop(0)
                seed = self.base_seed + repeat
                keras.utils.set_random_seed(seed)
                try:
                    model = self.hypermodel.build(trial.hyperparameters)
                    if fit is None:
                        fit = memory.members_that_fit(model, _rows(fit_args, fit_kwargs), type(self).__name__)
                except MemoryError as error:  # the structure does not fit: no run of the batch can train
                    for owner, r, f in [(trial, repeat, fold), *pending]:
                        self._trained.setdefault(owner.trial_id, {})[(r, _index(f))] = error
                    pending.clear()
                    continue
                except Exception as error:  # noqa: BLE001 - recorded as this run's failure
                    self._trained.setdefault(trial.trial_id, {})[(repeat, _index(fold))] = error
                    continue
                checkpoint = kt_internals.best_epoch_checkpoint(self, trial.trial_id)
                runs.append((trial.hyperparameters, model, seed,
                             [checkpoint, *kt_internals.copy_callbacks(self, callbacks or [])]))
                owners.append((trial.trial_id, repeat, fold))
            for fold in _unique(owner[2] for owner in owners):
                members = [i for i, owner in enumerate(owners) if owner[2] is fold]
                args, kwargs = self._fold_arguments(fold, fit_args, fit_kwargs)
                start = time.perf_counter()
                rungs = {} if self.rungs is None else {"rungs": self.rungs}
                with checkpoints.checkpointing(self._checkpoint_folder(), self.checkpoint_seconds) as used:
                    self._checkpoints.append(used)
                    results = self.hypermodel.run_population([runs[i] for i in members], *args,
                                                             early_stopping=_early_stopping(early_stopping),
                                                             **rungs, **kwargs)
                seconds = (time.perf_counter() - start) / len(members)
                for i, result in zip(members, results):
                    trial_id, repeat, _ = owners[i]
                    if not isinstance(result, BaseException):
                        self._assess(result, runs[i][1])
                        self._score_rows(result, runs[i][1], fold, kwargs.get("validation_data"))
                    self._trained.setdefault(trial_id, {})[(repeat, _index(fold))] = (result, seconds)

    def _fold_arguments(self, fold: Fold | None, fit_args: tuple, fit_kwargs: dict[str, Any]) -> tuple[tuple, dict]:
        """``search``'s arguments for one fold: its training rows, and its held-out rows as validation data."""
        if fold is None:
            return fit_args, fit_kwargs
        kwargs = dict(fit_kwargs)
        args = list(fit_args)
        rows = {}
        for position, name in enumerate(("x", "y")):
            rows[name] = args[position] if position < len(args) else kwargs.get(name)
        weights = kwargs.get("sample_weight")

        def take(data: Any, index: np.ndarray) -> Any:
            return None if data is None else keras.tree.map_structure(lambda a: np.asarray(a)[index], data)

        train = [take(rows["x"], fold.train), take(rows["y"], fold.train)]
        kwargs.pop("x", None)
        kwargs.pop("y", None)
        if weights is not None:
            kwargs["sample_weight"] = take(weights, fold.train)
            kwargs["validation_data"] = (take(rows["x"], fold.validation), take(rows["y"], fold.validation),
                                         take(weights, fold.validation))
        else:
            kwargs["validation_data"] = (take(rows["x"], fold.validation), take(rows["y"], fold.validation))
        return (*train, *args[2:]), kwargs

    def _assess(self, result: Any, model: Any) -> None:
        """With folds, a run's ``test_*`` are the test rows' scores (``test_data``), never the held-out fold's."""
        if self.folds is None:
            return
        metrics = {key: value for key, value in result.metrics.items() if not key.startswith("test_")}
        if self.test_data is not None and _finite(metrics, "train_loss"):
            for key, value in evaluate_rows(model, *self.test_data).items():
                metrics[f"test_{key}"] = value
        result.metrics = metrics

    def _score_rows(self, result: Any, model: Any, fold: Fold | None, validation_data: Any) -> None:
        """Each row's outcome (:func:`~regsearch.hypermodels.base.row_scores`) on the rows of the run's ``val_*``
        and ``test_*`` scores; none where rows are weighted (a row's weight is not in its outcome)."""
        if not _finite(result.metrics, "train_loss") or not hasattr(result, "rows"):
            return
        rows = {}
        if validation_data is not None and (len(validation_data) == 2 or validation_data[2] is None):
            scores = row_scores(model, validation_data[0], validation_data[1],
                                None if fold is None else fold.validation)
            if scores is not None:
                rows["val"] = scores
        if self.folds is None:  # test_* are the validation rows' scores (see _assess)
            if "val" in rows:
                rows["test"] = rows["val"]
        elif self.test_data is not None:
            scores = row_scores(model, *self.test_data)
            if scores is not None:
                rows["test"] = scores
        result.rows = rows

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Keras Tuner's search; every argument of ``model.fit`` reaches each run, others are refused.

        Raises:
            SettingError: An argument ``model.fit`` does not take (named), before any trial runs.
        """
        allowed = SEARCH_ARGUMENTS
        for name in fit_kwargs:
            if name not in allowed:
                raise SettingError(name, f"an argument of model.fit or 'early_stopping': {one_of(allowed)}",
                                   name, f"{type(self).__name__}.search")
            if self.folds is not None and name in ("validation_data", "validation_split"):
                raise SettingError(name, "left out: the tuner's folds say which rows validate", "given",
                                   f"{type(self).__name__}.search")
        # Keras Tuner saves oracle, trials and tuner after every trial; a failed trial's
        # reason is in runs.json (or trial.json, see read_runs), so no traceback is printed.
        self._search_args = (fit_args, fit_kwargs)
        self.stopped_early = False
        with kt_internals.atomic_keras_tuner_state(), kt_internals.quiet_failed_trials():
            try:
                super().search(*fit_args, **fit_kwargs)
            except _Stopped:  # raised before a trial was asked for: the state on disk is whole
                self.stopped_early = True
                self.on_search_end()
            except _WriteRefused as error:  # the disk's own error, past Keras Tuner's trial handling
                raise error.__cause__ from None

    def save(self) -> None:
        """Keras Tuner's save (oracle.json, tuner0.json), each file written atomically."""
        with kt_internals.atomic_keras_tuner_state():
            super().save()

    def reload(self) -> None:
        """Keras Tuner's reload, under the same atomic writer as every other step that may write state.

        A damaged file of the saved state is rebuilt first, or its trial trained again
        (:func:`regsearch.repair.repair_project`); a distributed worker leaves the state to its chief.
        """
        with kt_internals.atomic_keras_tuner_state():
            if not kt_internals.is_worker(self):
                repair_project(self)
            super().reload()

    def run_trial(
        self,
        trial: kt.engine.trial.Trial,
        *fit_args: Any,
        early_stopping: dict[str, Any] | None = None,
        callbacks: list[keras.callbacks.Callback] | None = None,
        verbose: Any = None,
        **fit_kwargs: Any,
    ) -> dict[str, float]:
        """Trains the trial's configuration ``repeats`` times; ``fit_kwargs`` are ``model.fit``'s.

        Each run gets its own deep copy of ``callbacks``, as Keras Tuner gives
        each execution (an ``EarlyStopping`` among them keeps state between epochs).
        ``verbose`` changes nothing: runs print nothing.
        """
        hp = trial.hyperparameters
        # Keras Tuner's own checkpoint callback, so that get_best_models() works as usual.
        checkpoint = kt_internals.best_epoch_checkpoint(self, trial.trial_id)
        params = {f"param_{key}": value for key, value in self.hypermodel.describe(hp).items()}
        records, histories, rung_scores = [], {}, {}
        trial_rows: Outcomes = {}
        model = None
        trained = self._trained.pop(trial.trial_id, None)
        for repeat, fold in self.runs:
            seed = self.base_seed + repeat
            start = time.perf_counter()
            metrics: dict[str, float] = {}
            rows: dict = {}
            try:
                if trained is not None:
                    found = trained[(repeat, _index(fold))]
                    result, seconds = found if isinstance(found, tuple) else (found, 0)
                    start -= seconds  # the run's share of its batch
                    if isinstance(result, BaseException):
                        raise result
                else:
                    model = self._initial_model(hp, seed, model)
                    args, kwargs = self._fold_arguments(fold, fit_args, fit_kwargs)
                    result = self.hypermodel.run(
                        hp, model, *args, early_stopping=_early_stopping(early_stopping), seed=seed,
                        callbacks=[checkpoint, *kt_internals.copy_callbacks(self, callbacks or [])], **kwargs,
                    )
                    self._assess(result, model)
                    self._score_rows(result, model, fold, kwargs.get("validation_data"))
                metrics, histories[_history_key(repeat, fold)] = result.metrics, result.history
                rows = getattr(result, "rows", None) or {}
                if getattr(result, "rungs", None):  # a HyperModel of its own may return less
                    rung_scores[_history_key(repeat, fold)] = [dataclasses.asdict(score) for score in result.rungs]
                status, reason = ("diverged", "the loss became NaN or infinite") if result.diverged else ("completed", "")
                if result.diverged and not _finite(metrics, "train_loss", "test_loss" if self.folds is None else
                                                   "val_loss"):
                    # No best weights to go back to: accuracies of NaN weights are not results.
                    metrics = {key: value for key, value in metrics.items() if key in ("best_epoch", "epochs_run")}
            except Exception as error:  # noqa: BLE001 - one run failing must not end the search
                _raise_if_write_refused(error)  # a full disk is not the run's failure: it ends the search
                status, reason = "failed", _one_line(error)
                model = None  # whatever state it was left in, the next run builds afresh
            record = {
                "search": self.search_name,
                "trial_id": f"{self.phase}-{trial.trial_id}",
                "phase": self.phase,
                "repeat": repeat,
                "seed": seed,
                "fold": _index(fold),
                "status": status,
                "reason": reason,
                **params,
                **{key: float(metrics.get(key, math.nan)) for key in RECORD_METRICS},
                "diverged": status == "diverged",
                "seconds": round(time.perf_counter() - start, 4),
                # Which process ran it: a distributed worker's id, else Keras Tuner's own ("tuner0").
                "worker": str(self.tuner_id).rpartition("@")[0] or str(self.tuner_id),
            }
            if self.rungs is not None:  # the last rung the run reached, and its budget of epochs
                reached = rung_scores.get(_history_key(repeat, fold), [{}])[-1]
                record.update(rung=reached.get("rung", math.nan), budget=reached.get("budget", math.nan))
            records.append(record)
            if rows and status == "completed":
                trial_rows[run_key(record)] = rows
            if self.on_run is not None:
                self.on_run(record)
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        # "tuner_id" says which process ran the trial (distributed workers: "<worker>@<phase>").
        saved = {"runs": records, "histories": histories, "tuner_id": str(self.tuner_id),
                 HYPERPARAMETERS_KEY: hp.values,  # what rebuilds a damaged trial.json (regsearch.repair)
                 **({"rungs": rung_scores} if self.rungs is not None else {})}
        try:
            if trial_rows:  # before runs.json: a trial with runs.json has its rows
                write_bytes_atomic(trial_dir / TRIAL_ROWS_FILE, outcomes_bytes(trial_rows))
            write_text_atomic(trial_dir / RUNS_FILE, json.dumps(saved, default=float))
        except OSError as error:
            _raise_if_write_refused(error)
            raise
        completed = [r for r in records if r["status"] == "completed"]
        if not completed:
            raise kt.errors.FailedTrialError("; ".join(sorted({r["reason"] for r in records})))
        return _mean_metrics(completed, self.oracle.objective.name)

    def _initial_model(self, hp: kt.HyperParameters, seed: int, model: keras.Model | None) -> keras.Model:
        """The configuration's model as a fresh build under ``seed`` makes it.

        The first run of a configuration (``model`` None) clears the session
        first, as Keras Tuner's own build does. Nothing is traced again for
        the repeats, nor for the next configuration of the same structure:
        ``regsearch.fit`` keeps the compiled program per structure.
        """
        if model is None:
            keras.backend.clear_session(free_memory=False)  # Python's collector frees the rest: gc.collect() ~0.3 s
        keras.utils.set_random_seed(seed)
        return self.hypermodel.build(hp)


class _WriteRefused(kt.errors.FatalError):
    """The disk refused a write inside a trial; Keras Tuner lets a ``FatalError`` end the search (see ``search``)."""


def _raise_if_write_refused(error: BaseException) -> None:
    """Keras Tuner would record an error inside a trial as the trial's failure: a full disk ends the search."""
    refused = write_refused(error)
    if refused is not None:
        raise _WriteRefused(str(refused)) from refused


class _Stopped(Exception):
    """``stop_when`` said to stop before the next trial: ends Keras Tuner's search loop, caught in ``search``."""


class GridSearch(_RecordingTuner, kt.Tuner):
    """Keras Tuner's grid search with repeated runs and every run kept.

    The grid is every combination of the HyperModel's declared values, in
    ``keras_tuner.GridSearch``'s order, handed out by :class:`~regsearch.oracles.PlannedOracle`:
    all of a phase is known up front, so a population batch or each free
    distributed worker gets the next configuration at once.

    Args:
        hypermodel: A regsearch HyperModel (it has ``run`` and ``describe``).
        repeats: Training runs per configuration.
        seed: Seed of the first run; run ``r`` uses ``seed + r`` for weights and training.
        phase: A label for this search's rows (``"grid"``, ``"coarse"``, ``"fine"``).
        search_name: Written into every record.
        on_run: Called with each run's record as soon as it finishes.
        engine: ``"sequential"`` (each run its own loop) or ``"population"``
            (a batch of trials asked of the oracle at once, their runs trained
            together; see :mod:`regsearch.population`).
        batch: With the population engine, trials per batch (a grid: all of a phase).
        folds: Splits of ``search``'s rows (:func:`regsearch.evaluation.make_folds`): every seed
            trains on each fold's rows and validates on its held-out rows; ``search`` then takes
            no ``validation_data``. None: ``search``'s own validation data, as in Keras Tuner.
        test_data: ``(x, y)`` rows that neither train nor validate, scoring each restored model
            (``test_*``; with ``folds`` only).
        stop_when: Asked before each trial (each batch, with the population engine) starts;
            once it returns True, ``search`` returns, leaving the rest to a later ``search``
            (which resumes them) and ``stopped_early`` True. None: the search runs to its end.
        checkpoint_seconds: With the population engine, seconds of training between two
            checkpoints of a population (:mod:`regsearch.population.checkpoints`): a search killed
            mid-population resumes each run from its last checkpoint.
        configurations: The configurations to visit (hyperparameter values, one dict each);
            None: the whole grid. ``max_trials`` keeps the first ones, as in ``keras_tuner.GridSearch``.
        **kwargs: ``keras_tuner.Tuner``'s and ``keras_tuner.Oracle``'s (objective, max_trials,
            directory, project_name, ...).
    """

    def __init__(self, hypermodel: kt.HyperModel, *, repeats: int = 1, seed: int = 0, phase: str = "grid",
                 search_name: str = "", on_run: Callable[[dict], None] | None = None, engine: str = "sequential",
                 batch: int = 1_000_000, folds: Sequence[Fold] | None = None, test_data: tuple | None = None,
                 configurations: Sequence[dict] | None = None, rungs: Rungs | None = None,
                 stop_when: Callable[[], bool] | None = None,
                 checkpoint_seconds: float = checkpoints.DEFAULT_SECONDS, **kwargs: Any) -> None:
        self._setup(repeats, seed, phase, search_name, on_run, engine, batch, folds, test_data, rungs, stop_when,
                    checkpoint_seconds)
        options = {key: kwargs.pop(key) for key in _ORACLE_OPTIONS if key in kwargs}
        options.setdefault("max_consecutive_failed_trials", 1_000_000)
        if configurations is None:
            configurations = grid_configurations(hypermodel, options.get("hyperparameters"))
        max_trials = options.pop("max_trials", None)
        oracle = PlannedOracle(list(configurations)[:max_trials], seed=seed, **options)
        super().__init__(oracle, hypermodel=hypermodel, **kwargs)


#: ``keras_tuner.Oracle``'s arguments, which a tuner built on an oracle passes to it.
_ORACLE_OPTIONS = ("objective", "max_trials", "hyperparameters", "allow_new_entries", "tune_new_entries",
                   "max_retries_per_trial", "max_consecutive_failed_trials")


class BayesianOptimization(_RecordingTuner, kt.BayesianOptimization):
    """``keras_tuner.BayesianOptimization`` with repeated runs and every run kept.

    Arguments as :class:`GridSearch`; ``**kwargs`` go to ``keras_tuner.BayesianOptimization``
    (objective, max_trials, num_initial_points, directory, ...).
    """

    def __init__(self, hypermodel: kt.HyperModel, *, repeats: int = 1, seed: int = 0, phase: str = "bayesian",
                 search_name: str = "", on_run: Callable[[dict], None] | None = None, engine: str = "sequential",
                 batch: int = 8, folds: Sequence[Fold] | None = None, test_data: tuple | None = None,
                 stop_when: Callable[[], bool] | None = None,
                 checkpoint_seconds: float = checkpoints.DEFAULT_SECONDS, **kwargs: Any) -> None:
        self._setup(repeats, seed, phase, search_name, on_run, engine, batch, folds, test_data, stop_when=stop_when,
                    checkpoint_seconds=checkpoint_seconds)
        kwargs.setdefault("max_consecutive_failed_trials", 1_000_000)
        kwargs.setdefault("seed", seed)
        super().__init__(hypermodel, **kwargs)


class SuccessiveHalving(GridSearch):
    """Successive halving inside one population: configurations compared at rungs, the weakest stopped there.

    Every configuration (default: the whole grid of the HyperModel's values;
    a Hyperband bracket passes its own sample) is trained as one population
    with the population engine. At each of ``rungs.budgets`` but the last,
    the best ``1/rungs.factor`` configurations by their seeds' mean score
    train on from where they stand, and the others stop
    (:mod:`regsearch.population.rungs`). Each run's record says the last rung
    it reached (``rung``) and its budget (``budget``); its score at every
    rung is in runs.json (:func:`read_rungs`).

    Args:
        hypermodel: A regsearch HyperModel.
        rungs: The budgets, factor and score of the comparisons.
        configurations: Hyperparameter values, one dict per configuration; None: the whole grid.
        **kwargs: As :class:`GridSearch`'s (``folds``: one split at most); the engine is the population.
    """

    def __init__(self, hypermodel: kt.HyperModel, *, rungs: Rungs, phase: str = "rungs", **kwargs: Any) -> None:
        if not isinstance(rungs, Rungs):
            raise SettingError("rungs", "a regsearch.population.rungs.Rungs", type(rungs).__name__,
                               type(self).__name__)
        for name in ("engine", "batch"):
            if name in kwargs:
                raise SettingError(name, "left out: rungs train every configuration in one population",
                                   kwargs[name], type(self).__name__)
        super().__init__(hypermodel, rungs=rungs, phase=phase, engine="population", **kwargs)


def read_rungs(tuner: kt.engine.base_tuner.BaseTuner) -> list[dict]:
    """Every run's score at every rung it reached, from the finished trials' runs.json (see ``load_rungs``)."""
    from regsearch.runs import load_rungs

    rows: list[dict] = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        path = Path(tuner.project_dir) / f"trial_{trial_id}" / RUNS_FILE
        if trial.status == "COMPLETED" and path.is_file():
            rows.extend(load_rungs(path))
    return rows


def read_runs(tuner: kt.engine.base_tuner.BaseTuner) -> tuple[list[dict], dict[str, dict[str, list[float]]]]:
    """Every run the tuner's finished trials recorded, and their histories keyed ``trial_id/repeat``."""
    records: list[dict] = []
    histories: dict[str, dict[str, list[float]]] = {}
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        if trial.status not in ("COMPLETED", "FAILED"):
            continue
        path = Path(tuner.project_dir) / f"trial_{trial_id}" / RUNS_FILE
        if not path.is_file():
            if trial.status == "FAILED":  # it raised outside the runs (in Keras Tuner or our bookkeeping)
                phase = getattr(tuner, "phase", tuner.project_name)
                records.append(failed_trial_record(getattr(tuner, "search_name", ""), phase, trial_id,
                                                   trial.hyperparameters.values, trial.message))
            continue
        trial_records, trial_histories = load_runs(path)
        records.extend(trial_records)
        histories.update(trial_histories)
    return records, histories


def read_outcomes(tuner: kt.engine.base_tuner.BaseTuner) -> Outcomes:
    """Each row's outcome of every run of the tuner's finished trials (their ``rows.npz``)."""
    outcomes: Outcomes = {}
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        path = Path(tuner.project_dir) / f"trial_{trial_id}" / TRIAL_ROWS_FILE
        if trial.status == "COMPLETED" and path.is_file():
            outcomes.update(load_outcomes(path))
    return outcomes


def _index(fold: Fold | None) -> int | None:
    return None if fold is None else fold.index


def _history_key(repeat: int, fold: Fold | None) -> str:
    """Where a run's history sits in runs.json: its repeat, and its fold after the first."""
    return str(repeat) if fold is None or fold.index == 0 else f"{repeat}/{fold.index}"


def _unique(items: Any) -> list[Any]:
    """Items in first-seen order, by identity (folds hold arrays)."""
    seen: list[Any] = []
    for item in items:
        if not any(item is s for s in seen):
            seen.append(item)
    return seen


def _rows(fit_args: tuple, fit_kwargs: dict[str, Any]) -> int:
    """The most rows one step of a run handles: a training batch, or a batch of the evaluation."""
    x = fit_args[0] if fit_args else fit_kwargs.get("x")
    return memory.step_rows(fit_kwargs.get("batch_size") or 32, *([] if x is None else [len(keras.tree.flatten(x)[0])]))


def _early_stopping(settings: dict[str, Any] | None) -> keras.callbacks.EarlyStopping | None:
    """A fresh callback per run: it keeps state between epochs."""
    return None if settings is None else keras.callbacks.EarlyStopping(**settings)


def _mean_metrics(records: list[dict], objective: str) -> dict[str, float]:
    means = {}
    for key in RECORD_METRICS:
        values = [r[key] for r in records if not math.isnan(r[key])]
        if values:
            means[key] = float(np.mean(values))
    if objective not in means:
        raise kt.errors.FailedTrialError(f"no run reported the objective '{objective}'")
    return means


def _finite(metrics: dict[str, float], *keys: str) -> bool:
    return all(math.isfinite(metrics.get(key, math.nan)) for key in keys)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
