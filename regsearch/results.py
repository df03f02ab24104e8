"""A results folder read back: which searches it holds and each one's runs, without retraining.

What a search leaves in ``results/NAME/`` splits in two. ``trials.csv``,
``search.toml``, the pages and the models are committed; ``tuner/`` (Keras
Tuner's state, with each trial's ``runs.json``) is not (see ``.gitignore``).
Everything here works from the committed part alone and prefers the tuner's
state where it is present (it is the authority while a search is unfinished).
Only the standard library is imported at module level: the CLI imports this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["BASELINE_MODEL", "BEST_MODEL", "DEFINITION_COPY", "TRIALS_FILE", "committed_runs", "report_runs",
           "saved_definition", "saved_models", "saved_provenance", "saved_rungs", "saved_runs", "saved_searches"]

DEFINITION_COPY = "search.toml"
BEST_MODEL = "best_model.keras"
BASELINE_MODEL = "baseline_model.keras"
TRIALS_FILE = "trials.csv"
RUNGS_FILE = "rungs.csv"


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

    return pd.read_csv(folder / RUNGS_FILE).to_dict("records")


def saved_runs(folder: Path) -> tuple[list[dict], dict[str, dict[str, list[float]]]]:
    """Every run recorded under ``folder/tuner``, read from the runs.json files (no TensorFlow needed)."""
    from regsearch.runs import RUNS_FILE, failed_trial_record, load_runs

    records: list[dict] = []
    histories: dict[str, dict[str, list[float]]] = {}
    for trial_file in sorted(folder.glob("tuner/*/trial_*/trial.json")):
        path = trial_file.with_name(RUNS_FILE)
        if not path.is_file():
            trial = json.loads(trial_file.read_text(encoding="utf-8"))
            if trial.get("status") == "FAILED":  # failed before it could write runs.json
                records.append(failed_trial_record(folder.name, trial_file.parent.parent.name, trial["trial_id"],
                                                   trial["hyperparameters"]["values"], trial.get("message")))
            continue
        trial_records, trial_histories = load_runs(path)
        records.extend(trial_records)
        histories.update(trial_histories)
    refit = folder / "tuner" / "refit" / RUNS_FILE
    if refit.is_file():  # kfold's assessment (regsearch.search.write_refit)
        records.extend(load_runs(refit)[0])
    phase_order = {"coarse": 0, "fine": 1, "baseline": 3, "refit": 4}  # as run_search runs them; grid, bayesian: 2
    records.sort(key=lambda r: (phase_order.get(r["phase"], 2), r["trial_id"], r["repeat"]))
    return records, histories


def committed_runs(folder: Path) -> list[dict]:
    """The run records of the committed ``trials.csv`` (what a fresh clone has), in its order."""
    import pandas as pd

    frame = pd.read_csv(folder / TRIALS_FILE, keep_default_na=True)
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
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def saved_definition(folder: Path) -> Any:
    """The definition copied into the results folder when the search ran, or None.

    Read against the schema only: its data and model files are where the
    original definition was, and a report needs neither.
    """
    from regsearch.definition import read_definition

    path = folder / DEFINITION_COPY
    return read_definition(path) if path.is_file() else None


def saved_models(folder: Path, definition: Any) -> dict[str, Any]:
    """The saved best and baseline models (safe mode) and the search's data; what is missing is None.

    The data is loaded again from the definition (the named datasets are
    generated); data files that have moved since the search ran leave it None.
    """
    import keras

    from regsearch.definition.build import load_data
    from regsearch.errors import SettingError

    models = {}
    for key, name in (("best_model", BEST_MODEL), ("baseline_model", BASELINE_MODEL)):
        models[key] = keras.saving.load_model(folder / name, safe_mode=True) if (folder / name).is_file() else None
    try:
        data = load_data(definition) if definition is not None else None
    except (SettingError, OSError):
        data = None
    return {**models, "data": data}
