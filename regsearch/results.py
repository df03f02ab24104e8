"""A results folder read back: which searches it holds and each one's runs, without retraining.

What a search leaves in ``results/NAME/`` splits in two. ``trials.csv``,
``search.toml``, the pages and the models are committed; ``tuner/`` (Keras
Tuner's state, with each trial's ``runs.json``) is not (see ``.gitignore``).
Everything here works from the committed part alone and prefers the tuner's
state where it is present (it is the authority while a search is unfinished).
:func:`open_results` hands a finished search back to Python. Only the
standard library is imported at module level: the CLI imports this.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from regsearch.damaged import RETRAINED, REWRITTEN, DamagedFileError, read_json, read_table
from regsearch.provenance import STOPPED

__all__ = ["BASELINE_MODEL", "BEST_MODEL", "DEFINITION_COPY", "TRIALS_FILE", "Results", "committed_runs", "nested_runs",
           "open_results", "report_runs", "saved_definition", "saved_models", "saved_outcomes", "saved_provenance",
           "saved_rungs", "saved_runs", "saved_searches"]

DEFINITION_COPY = "search.toml"
BEST_MODEL = "best_model.keras"
BASELINE_MODEL = "baseline_model.keras"
TRIALS_FILE = "trials.csv"
RUNGS_FILE = "rungs.csv"
NESTED_TRIALS_FILE = "nested_trials.csv"  # regsearch.report.write.NESTED_TRIALS_FILE (this module imports no report)


def _has_tuner_runs(folder: Path) -> bool:
    return any(folder.glob("tuner/*/trial_*/trial.json"))


def saved_searches(results: str | Path) -> list[str]:
    """The searches of a results folder: every subfolder with a ``trials.csv`` or saved tuner runs, sorted."""
    results = Path(results)
    if not results.is_dir():
        return []
    return sorted(p.name for p in results.iterdir()
                  if p.is_dir() and ((p / TRIALS_FILE).is_file() or _has_tuner_runs(p)))


def saved_rungs(folder: Path) -> list[dict]:
    """Every run's score at every rung: from the tuner's runs.json files, else from the committed rungs.csv."""
    from regsearch.runs import RUNS_FILE, load_rungs

    rows = [row for path in sorted(folder.glob(f"tuner/*/trial_*/{RUNS_FILE}")) for row in load_rungs(path)]
    if rows or not (folder / RUNGS_FILE).is_file():
        return rows
    import pandas as pd

    return read_table(folder / RUNGS_FILE, REWRITTEN).to_dict("records")


def saved_runs(folder: Path) -> tuple[list[dict], dict[str, dict[str, list[float]]]]:
    """Every run recorded under ``folder/tuner``, read from the runs.json files (no TensorFlow needed)."""
    return _runs_under(folder / "tuner", folder.name)


def _runs_under(tuner: Path, name: str) -> tuple[list[dict], dict[str, dict[str, list[float]]]]:
    """The runs of one search's tuners (``tuner/<phase>/trial_*``) and its refit, in the order they ran."""
    from regsearch.runs import RUNS_FILE, failed_trial_record, load_runs

    records: list[dict] = []
    histories: dict[str, dict[str, list[float]]] = {}
    for trial_file in sorted(tuner.glob("*/trial_*/trial.json")):
        path = trial_file.with_name(RUNS_FILE)
        if not path.is_file():
            trial = read_json(trial_file, RETRAINED)
            if trial.get("status") == "FAILED":  # failed before it could write runs.json
                records.append(failed_trial_record(name, trial_file.parent.parent.name, trial["trial_id"],
                                                   trial["hyperparameters"]["values"], trial.get("message")))
            continue
        read_json(trial_file, RETRAINED)  # the trial's state too: a rerun reads it
        trial_records, trial_histories = load_runs(path)
        records.extend(trial_records)
        histories.update(trial_histories)
    refit = tuner / "refit" / RUNS_FILE
    if refit.is_file():  # kfold's assessment (regsearch.search.write_refit)
        records.extend(load_runs(refit)[0])
    phase_order = {"coarse": 0, "fine": 1, "baseline": 3, "refit": 4}  # as run_search runs them; grid, bayesian: 2
    records.sort(key=lambda r: (phase_order.get(r["phase"], 2), r["trial_id"], r["repeat"]))
    return records, histories


def saved_outcomes(folder: Path, from_tuner: bool | None = None) -> dict:
    """Each run's per-row outcomes (:mod:`regsearch.outcomes`): from the tuner's trials (``rows.npz``) when the
    runs come from there (``from_tuner``; None: whenever it has any), else the committed ``outcomes.npz``; empty for
    results saved before they were recorded."""
    from regsearch.outcomes import OUTCOMES_FILE, TRIAL_ROWS_FILE, load_outcomes

    outcomes: dict = {}
    if from_tuner is not False:
        for path in sorted(folder.glob(f"tuner/*/trial_*/{TRIAL_ROWS_FILE}")) + sorted(
                folder.glob(f"tuner/refit/{TRIAL_ROWS_FILE}")):
            outcomes.update(load_outcomes(path))
    if from_tuner or outcomes or not (folder / OUTCOMES_FILE).is_file():
        return outcomes
    return load_outcomes(folder / OUTCOMES_FILE)
def nested_runs(folder: Path) -> list[dict]:
    """A nested search's outer folds' runs (column ``outer``): from ``tuner/outer<k>/``, else ``nested_trials.csv``."""
    records: list[dict] = []
    outer_folders = sorted(folder.glob("tuner/outer*"), key=lambda p: int(p.name.removeprefix("outer") or -1))
    for tuner in outer_folders:
        if tuner.name.removeprefix("outer").isdigit():
            records.extend({**record, "outer": int(tuner.name.removeprefix("outer"))}
                           for record in _runs_under(tuner, folder.name)[0])
    if records or not (folder / NESTED_TRIALS_FILE).is_file():
        return records
    import pandas as pd

    return pd.read_csv(folder / NESTED_TRIALS_FILE).to_dict("records")


def committed_runs(folder: Path) -> list[dict]:
    """The run records of the committed ``trials.csv`` (what a fresh clone has), in its order."""
    import pandas as pd

    frame = read_table(folder / TRIALS_FILE, REWRITTEN, keep_default_na=True)
    return frame.to_dict("records")


def report_runs(folder: Path) -> tuple[list[dict], dict[str, dict[str, list[float]]], bool]:
    """The runs a report of ``folder`` is built from: the tuner's when it has any, else ``trials.csv``.

    Returns:
        The records, the per-run histories (none from ``trials.csv``: it holds
        no epochs), and whether they came from the tuner's state.
    """
    if _has_tuner_runs(folder):
        records, histories = saved_runs(folder)
        if records:
            return records, histories, True
    return committed_runs(folder), {}, False


def saved_provenance(folder: Path) -> dict[str, Any] | None:
    """The search's ``provenance.json`` (versions, device, command, times), or None for results made before it."""
    from regsearch.provenance import PROVENANCE_FILE

    path = folder / PROVENANCE_FILE
    return read_json(path, REWRITTEN) if path.is_file() else None


def saved_definition(folder: Path) -> Any:
    """The definition copied into the results folder when the search ran, or None.

    Read against the schema only: its data and model files are where the
    original definition was, and a report needs neither.
    """
    from regsearch.definition import read_definition

    from regsearch.errors import SettingError

    path = folder / DEFINITION_COPY
    if not path.is_file():
        return None
    try:
        return read_definition(path)
    except SettingError as error:
        problem = str(error).removeprefix(f"{path}: ").removeprefix("command line: ").rstrip(".")
        raise DamagedFileError(path, f"not a search definition: {problem}", REWRITTEN) from None


def saved_models(folder: Path, definition: Any) -> dict[str, Any]:
    """The saved best and baseline models (safe mode) and the search's data; what is missing is None.

    The data is loaded again from the definition (the named datasets are
    generated); data files that have moved since the search ran leave it None.
    Its rows are in the file's units, as the saved models take them; a folder
    saved before the models carried their scaling (no predictor.json) keeps
    the scaled rows its models take.
    """
    from regsearch.definition.build import load_data
    from regsearch.errors import SettingError
    from regsearch.predictor import PREDICTOR_FILE

    models = {}
    for key, name in (("best_model", BEST_MODEL), ("baseline_model", BASELINE_MODEL)):
        models[key] = load_saved_model(folder / name) if (folder / name).is_file() else None
    try:
        data = load_data(definition) if definition is not None else None
    except (SettingError, OSError):
        data = None
    if data is not None and (folder / PREDICTOR_FILE).is_file():
        data = data.unscaled()
    return {**models, "data": data}


class Results:
    """One search's results folder, back in Python: ``regsearch.open_results("results/moons_l2")``.

    Attributes:
        folder: The results folder.
        trials: Every run (``trials.csv`` as :func:`regsearch.trials_frame` types it).
        summary: The configurations, ranked as the report ranks them (``summary.csv``).
        best: The selected configuration's settings, ``{"kind": "l2", "strength": 0.00562, ...}``
            (its scores are ``summary.iloc[0]``).
        answer: The report's one-line answer (None when every run failed), ending with ``stopped``
            when the search stopped early.
        stopped: Why the search stopped before its plan did ("Stopped by the time limit ..."), or None.
        warnings: The report's reasons to read the answer with care, one sentence each.
        definition: The search definition as it ran (``search.toml``), or None.
        outcomes: Each run's outcome on each row that scored it (``outcomes.npz``, :mod:`regsearch.outcomes`);
            empty for results saved before they were recorded (the answer's interval is then over seeds only).
        provenance: ``provenance.json`` (versions, device, command, times), or None for older results.
    """

    def __init__(self, folder: str | Path) -> None:
        from regsearch.errors import SettingError
        from regsearch.report import trials_frame

        self.folder = Path(folder)
        if not (self.folder / TRIALS_FILE).is_file():
            raise SettingError("results folder", f"a search's results folder (holding {TRIALS_FILE})",
                               str(self.folder), where="open_results")
        self.trials = trials_frame(committed_runs(self.folder))
        self.provenance = saved_provenance(self.folder)
        self.stopped: str | None = (self.provenance or {}).get(STOPPED)

    def __repr__(self) -> str:
        return f"Results({str(self.folder)!r})"

    @functools.cached_property
    def outcomes(self) -> dict:
        return saved_outcomes(self.folder, from_tuner=False)

    @functools.cached_property
    def definition(self) -> Any:
        return saved_definition(self.folder)

    @functools.cached_property
    def _settings(self) -> tuple[str, str, str, bool]:
        from regsearch.report.write import report_settings

        return report_settings(self.definition, self.trials.to_dict("records"))

    @functools.cached_property
    def summary(self) -> Any:
        from regsearch.evaluation import compare
        from regsearch.report import summary_frame

        objective, direction, _, _ = self._settings
        return summary_frame(compare.selection_rows(self.trials), objective, direction)

    @property
    def best(self) -> dict[str, Any]:
        from regsearch.report import best_configuration

        return dict(best_configuration(self.summary)["params"])

    @property
    def answer(self) -> str | None:
        from regsearch.report.write import answer_of, with_stopped

        _, _, protocol, baseline = self._settings
        return with_stopped(answer_of(self.trials, self.summary, protocol, baseline, self.outcomes)[0], self.stopped)

    @property
    def warnings(self) -> list[str]:
        from regsearch.evaluation.caveats import caveats

        definition = self.definition
        return caveats(self.trials, self.summary, epochs=definition.epochs if definition else None,
                       early_stopping=definition is None or definition.early_stopping is not None)

    def best_model(self) -> Any:
        """The selected configuration's trained model (its first run), loaded in safe mode."""
        return self._model(BEST_MODEL)

    def baseline_model(self) -> Any:
        """Its baseline's (no regularization), loaded in safe mode."""
        return self._model(BASELINE_MODEL)

    def _model(self, name: str) -> Any:
        path = self.folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no saved model (every run failed, or the search has no baseline)")
        return load_saved_model(path)


def load_saved_model(path: Path) -> Any:
    """A saved ``.keras`` model in safe mode.

    Raises:
        DamagedFileError: The file is not a whole Keras archive (cut short, zero bytes, overwritten).
    """
    import warnings
    import zipfile

    import keras

    if not zipfile.is_zipfile(path):
        raise DamagedFileError(path, "not a whole Keras archive", REWRITTEN)
    try:
        with warnings.catch_warnings():
            # Saved with the optimizer's slots, which a model built for loading has not made yet: harmless.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, EOFError, KeyError, OSError, json.JSONDecodeError) as error:
        raise DamagedFileError(path, f"the Keras archive cannot be read: {type(error).__name__}",
                               REWRITTEN) from None


def open_results(folder: str | Path) -> Results:
    """Opens a search's results folder (from the CLI or ``run_search``): its tables, answer and models.

    Works from what git holds (``trials.csv``, ``search.toml``, the models); no
    tuner state is needed.

    Raises:
        SettingError: ``folder`` holds no ``trials.csv``.
        DamagedFileError: ``trials.csv`` or ``provenance.json`` cannot be read back whole (named, with what to do).
    """
    return Results(folder)
