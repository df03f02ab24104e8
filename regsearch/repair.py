"""A phase's saved tuner state checked before Keras Tuner reloads it: a damaged trial is trained again.

Keras Tuner reloads a phase from ``oracle.json``, ``tuner0.json`` and each
trial's ``trial.json``; regsearch adds each trial's ``runs.json``, and the
best epoch's weights are in ``checkpoint.weights.h5``. Written atomically,
none of them is ever half-written by regsearch, but one can be damaged from
outside. Before the reload, :func:`repair_project` falls back to the last
good state it can rebuild, and says so in one line (a warning of the
``regsearch`` logger) per file:

- a trial whose ``runs.json``, per-row outcomes (``rows.npz``) or checkpoint is damaged is handed to Keras
  Tuner's retry queue (as a trial a killed process left running) and trained
  again under its own id; the other trials are kept;
- a damaged ``trial.json`` is rebuilt from the settings its ``runs.json``
  recorded, and that trial trained again;
- a damaged ``oracle.json`` or ``tuner0.json`` is rebuilt from the trials.

What cannot be rebuilt (a damaged ``trial.json`` whose settings are nowhere
else) raises :class:`~regsearch.damaged.DamagedFileError`, naming the file
and what to do, before anything is trained.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from regsearch import kt_internals
from regsearch.atomic import write_text_atomic
from regsearch.damaged import RETRAINED, DamagedFileError, read_json
from regsearch.outcomes import TRIAL_ROWS_FILE, load_outcomes
from regsearch.runs import RUNS_FILE, load_runs

__all__ = ["CHECKPOINT_FILE", "HYPERPARAMETERS_KEY", "repair_project"]

logger = logging.getLogger(__name__)

TRIAL_FILE = "trial.json"
CHECKPOINT_FILE = "checkpoint.weights.h5"
#: The key of ``runs.json`` holding the trial's hyperparameter values (what rebuilds a damaged ``trial.json``).
HYPERPARAMETERS_KEY = "hyperparameters"
#: The tuner id a trial handed back for retraining runs under in ``oracle.json`` until the reload retries it.
RETRAIN_TUNER = "regsearch-retrain-"


def repair_project(tuner: Any) -> list[str]:
    """Checks the saved state of ``tuner``'s phase and rewrites what it can; returns the trials to train again.

    Call it before ``tuner.reload()``: the rewritten files are what Keras Tuner reloads.

    Raises:
        DamagedFileError: A file that cannot be rebuilt (named, with what to do).
    """
    project = Path(tuner.project_dir)
    oracle = tuner.oracle
    states: dict[str, dict[str, Any]] = {}
    retrain: list[str] = []
    for trial_file in sorted(project.glob(f"trial_*/{TRIAL_FILE}")):
        trial_id = _trial_id(trial_file.parent)
        try:
            states[trial_id] = read_json(trial_file, RETRAINED)
        except DamagedFileError as error:
            states[trial_id] = _rebuilt_trial(oracle, trial_id, trial_file, error)
            retrain.append(trial_id)
            continue
        status = states[trial_id].get("status")
        if status in ("COMPLETED", "FAILED") and _damaged_output(trial_file.parent, status):
            retrain.append(trial_id)
    oracle_file = Path(oracle._get_oracle_fname()) if hasattr(oracle, "_get_oracle_fname") else project / "oracle.json"
    state, rebuilt = _oracle_state(oracle, oracle_file, states)
    for trial_id in retrain if state is not None else ():
        # Keras Tuner retries what the oracle says was running when it stopped: the trial, under its id.
        if trial_id not in state["ongoing_trials"].values():
            state["ongoing_trials"][f"{RETRAIN_TUNER}{trial_id}"] = trial_id
        states[trial_id]["status"] = "RUNNING"
    if state is not None and (retrain or rebuilt):
        write_text_atomic(oracle_file, json.dumps(state))
    for trial_id in retrain:  # after oracle.json: a kill between the two finds the damage again
        write_text_atomic(project / f"trial_{trial_id}" / TRIAL_FILE, json.dumps(states[trial_id]))
    tuner_file = Path(tuner._get_tuner_fname())
    try:
        read_json(tuner_file, RETRAINED)
    except FileNotFoundError:
        pass
    except DamagedFileError as error:
        logger.warning("%s is damaged (%s); rebuilt afresh", tuner_file, error.problem)
        write_text_atomic(tuner_file, json.dumps(tuner.get_state()))
    return retrain


def _damaged_output(trial_dir: Path, status: str) -> bool:
    """Whether a finished trial's ``runs.json`` or checkpoint cannot be read (logged); a completed trial's
    runs.json is written before Keras Tuner records it completed, so its absence is damage too."""
    runs = trial_dir / RUNS_FILE
    try:
        if runs.exists() or status == "COMPLETED":
            load_runs(runs)
    except FileNotFoundError:
        logger.warning("%s is missing; trial %s is trained again", runs, _trial_id(trial_dir))
        return True
    except DamagedFileError as error:
        logger.warning("%s is damaged (%s); trial %s is trained again", runs, error.problem, _trial_id(trial_dir))
        return True
    rows = trial_dir / TRIAL_ROWS_FILE
    try:
        if rows.exists():
            load_outcomes(rows)
    except DamagedFileError as error:
        logger.warning("%s is damaged (%s); trial %s is trained again", rows, error.problem, _trial_id(trial_dir))
        return True
    checkpoint = trial_dir / CHECKPOINT_FILE
    problem = _checkpoint_problem(checkpoint) if checkpoint.exists() else None
    if problem is not None:
        logger.warning("%s is damaged (%s); trial %s is trained again", checkpoint, problem, _trial_id(trial_dir))
        return True
    return False


def _trial_id(trial_dir: Path) -> str:
    return trial_dir.name.removeprefix("trial_")


def _checkpoint_problem(path: Path) -> str | None:
    """Why Keras' weights file ``path`` cannot be read (every dataset is read), or None."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            file.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        return f"not a whole HDF5 file: {str(error).splitlines()[0][:120]}" if str(error) else "not a whole HDF5 file"
    return None


def _rebuilt_trial(oracle: Any, trial_id: str, trial_file: Path, error: DamagedFileError) -> dict[str, Any]:
    """A damaged trial.json rebuilt from the values its runs.json recorded, as a trial to run again."""
    import keras_tuner as kt

    runs = trial_file.with_name(RUNS_FILE)
    values = None
    try:
        values = read_json(runs, RETRAINED).get(HYPERPARAMETERS_KEY) if runs.exists() else None
    except DamagedFileError:
        pass
    if not isinstance(values, dict):
        raise DamagedFileError(trial_file, error.problem, "the trial's settings are saved nowhere else: delete "
                               f"{trial_file.parent.parent} to train that phase again, or pass --overwrite to "
                               "start the search afresh") from None
    logger.warning("%s is damaged (%s); rebuilt from %s, and trial %s is trained again", trial_file, error.problem,
                   RUNS_FILE, trial_id)
    hyperparameters = oracle.hyperparameters.copy()
    hyperparameters.values = dict(values)
    return kt.engine.trial.Trial(hyperparameters, trial_id=trial_id, status="RUNNING").get_state()


def _oracle_state(oracle: Any, path: Path, trials: dict[str, dict[str, Any]]) -> tuple[dict[str, Any] | None, bool]:
    """``oracle.json``'s state, read back or, when damaged, rebuilt from the trials; and whether it was rebuilt.

    None when there is no oracle.json and no trial (a phase not started yet).
    """
    try:
        return read_json(path, RETRAINED), False
    except FileNotFoundError:
        if not trials:
            return None, False
        problem = "missing"
    except DamagedFileError as error:
        problem = error.problem
    logger.warning("%s is damaged (%s); rebuilt from the %d trials saved beside it", path, problem, len(trials))
    return kt_internals.oracle_state_from_trials(oracle, trials), True
