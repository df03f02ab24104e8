"""Training runs on disk: each trial's ``runs.json``, read back without TensorFlow.

A tuner writes one ``runs.json`` per trial (its runs' records and per-epoch
histories); the search, the ``report`` command and a distributed chief all
read them back through :func:`load_runs`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from regsearch.damaged import RETRAINED, DamagedFileError, read_json

__all__ = ["RECORD_METRICS", "RUNS_FILE", "failed_trial_record", "load_runs", "load_rungs"]

RUNS_FILE = "runs.json"
# Keys of RunResult.metrics copied into a run's record.
RECORD_METRICS = (
    "train_accuracy", "test_accuracy", "val_accuracy", "train_loss", "test_loss", "val_loss",
    "best_epoch", "epochs_run", "mean_activation", "zero_fraction",
)


def load_runs(path: Path) -> tuple[list[dict], dict[str, dict[str, list[float]]]]:
    """One trial's run records, and its histories keyed ``<trial_id>/<repeat>``."""
    saved = read_json(path, RETRAINED)
    records = saved.get("runs")
    if not isinstance(records, list) or not records or not isinstance(saved.get("histories"), dict):
        raise DamagedFileError(path, "no list of runs and their histories", RETRAINED)
    histories = {f"{records[0]['trial_id']}/{repeat}": history for repeat, history in saved["histories"].items()}
    return records, histories


def load_rungs(path: Path) -> list[dict]:
    """One trial's rung scores: a row per run and rung (trial_id, phase, repeat, seed, fold, rung, budget,
    epochs, score, kept); none for a trial trained without rungs."""
    saved = read_json(path, RETRAINED)
    rows = []
    for record in saved["runs"]:
        fold = record.get("fold")
        history_key = str(record["repeat"]) if fold in (None, 0) else f"{record['repeat']}/{fold}"
        for score in saved.get("rungs", {}).get(history_key, []):
            rows.append({key: record.get(key) for key in ("search", "trial_id", "phase", "repeat", "seed", "fold")}
                        | {name: value for name, value in record.items() if name.startswith("param_")} | score)
    return rows


def failed_trial_record(search_name: str, phase: str, trial_id: str, values: dict[str, Any],
                        message: str | None) -> dict[str, Any]:
    """The record of a trial that failed before it could write runs.json; the reason is the error's last line."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    return {
        "search": search_name,
        "trial_id": f"{phase}-{trial_id}",
        "phase": phase,
        "repeat": 0,
        "seed": math.nan,
        "fold": None,
        "status": "failed",
        "reason": (lines[-1] if lines else "the trial failed")[:300],
        **{f"param_{key}": value for key, value in values.items()},
        **{key: math.nan for key in RECORD_METRICS},
        "diverged": False,
        "seconds": math.nan,
    }
