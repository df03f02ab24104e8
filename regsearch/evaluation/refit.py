"""``kfold``'s assessment: chosen configurations retrained on every training row, then scored on the test rows.

Each candidate trains, once per seed, for the number of epochs its folds
found best (the mean of their best epochs), without early stopping: no rows
are left to watch, and the test rows must not be watched. The seeds of all
candidates of one structure and length train as one population.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import keras
import numpy as np

from regsearch.evaluation.compare import REFIT_PHASE
from regsearch.runs import RECORD_METRICS

__all__ = ["Candidate", "refit"]


@dataclass(frozen=True)
class Candidate:
    """A configuration to retrain: its trial id (as in trials.csv), HyperModel, hyperparameters and epochs."""

    trial_id: str
    hypermodel: Any
    hyperparameters: Any
    epochs: int


def refit(candidates: Sequence[Candidate], x: Any, y: Any, x_test: Any, y_test: Any, *, seeds: Sequence[int],
          batch_size: int, search_name: str = "") -> tuple[list[dict], list[keras.Model]]:
    """Trains every candidate once per seed on ``(x, y)``; returns run records (phase ``refit``) and the models.

    Records carry the candidate's ``param_*`` columns, ``train_*`` and
    ``test_*`` of the trained model, ``epochs_run`` and ``best_epoch`` (the last).
    Models come in the order of the records.
    """
    from regsearch.hypermodels.base import evaluate_rows
    from regsearch.population import group_by_structure, train_population

    runs = []
    for candidate in candidates:
        params = {f"param_{k}": v for k, v in candidate.hypermodel.describe(candidate.hyperparameters).items()}
        for repeat, seed in enumerate(seeds):
            keras.utils.set_random_seed(seed)
            runs.append((candidate, repeat, seed, params, candidate.hypermodel.build(candidate.hyperparameters)))
    records: list[dict] = [{} for _ in runs]
    by_length: dict[int, list[int]] = {}
    for index, run in enumerate(runs):
        by_length.setdefault(run[0].epochs, []).append(index)
    for epochs, indices in by_length.items():
        for group in group_by_structure([runs[i][4] for i in indices]):
            members = [indices[i] for i in group]
            data = keras.tree.map_structure(np.asarray, (x, y))
            outcomes = train_population([runs[i][4] for i in members], data, None,
                                        epochs=epochs, batch_size=batch_size, early_stopping=None,
                                        seeds=[runs[i][2] for i in members], evaluate=True)
            for i, outcome in zip(members, outcomes):
                candidate, repeat, seed, params, model = runs[i]
                metrics: dict[str, float] = {}
                if not outcome.diverged:
                    metrics.update({f"train_{k}": v for k, v in outcome.scores["train"].items()})
                    metrics.update({f"test_{k}": v for k, v in evaluate_rows(model, x_test, y_test).items()})
                records[i] = {
                    "search": search_name, "trial_id": candidate.trial_id, "phase": REFIT_PHASE, "repeat": repeat,
                    "seed": seed, "fold": None, "status": "diverged" if outcome.diverged else "completed",
                    "reason": "the loss became NaN or infinite" if outcome.diverged else "", **params,
                    **{key: float(metrics.get(key, math.nan)) for key in RECORD_METRICS},
                    "diverged": outcome.diverged,
                    "seconds": math.nan,
                }
                records[i]["epochs_run"] = float(outcome.epochs_run)
                records[i]["best_epoch"] = float(outcome.best_epoch)
    return records, [run[4] for run in runs]
