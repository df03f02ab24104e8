"""Per-row outcomes: how each run did on each row that scored it, kept so that intervals can resample the rows.

A run's ``test_accuracy`` in trials.csv is the mean over the test rows of
whether each was right; a row's own outcome is what a confidence interval
needs to carry the rows' sampling variance (:mod:`regsearch.evaluation.intervals`).
Each run keeps, per set of rows (``"val"``: the rows its ``val_*`` scores
come from; ``"test"``: its ``test_*`` rows), the rows' indices (into the
training rows for ``val`` with folds, else into the scored rows themselves),
whether each was right (classification) and each one's loss (without the
penalty, which belongs to the run, not to a row).

A tuner writes its trial's outcomes to ``rows.npz`` beside ``runs.json`` (a
resumed search reads them back with the finished trials); the report writes
every run's into ``outcomes.npz`` beside trials.csv. Size: per run and set, 4
bytes of index, 1 of correctness and 4 of loss per row, before compression; a
set of val rows that are the test rows (``tutorial``) is kept once (moons_l2:
70 test rows x 130 runs, 82 kB raw, 38 kB compressed, the losses most of it;
10,000 test rows x 1,000 runs would be about 90 MB raw). Memory while reading
is the same arrays. Only numpy is imported.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["OUTCOMES_FILE", "TRIAL_ROWS_FILE", "Outcomes", "RowScores", "load_outcomes", "outcomes_bytes",
           "run_key", "SETS"]

OUTCOMES_FILE = "outcomes.npz"
TRIAL_ROWS_FILE = "rows.npz"
#: The sets of rows a run is scored on, as prefixes of trials.csv's columns.
SETS = ("val", "test")


@dataclass(frozen=True)
class RowScores:
    """One run on one set of rows: which rows, whether each was right (None: no accuracy), each one's loss."""

    rows: np.ndarray
    correct: np.ndarray | None
    loss: np.ndarray

    def values(self, kind: str) -> np.ndarray | None:
        """The per-row values of ``accuracy`` (1 right, 0 wrong) or ``loss``; None when not recorded."""
        if kind == "accuracy":
            return None if self.correct is None else self.correct.astype(float)
        return self.loss.astype(float) if kind == "loss" else None


#: A run: (phase, trial_id, repeat, fold), fold -1 for a run without folds.
RunKey = tuple[str, str, int, int]
#: Every run's outcomes, per set of rows.
Outcomes = dict[RunKey, dict[str, RowScores]]


def run_key(record: Mapping[str, Any]) -> RunKey:
    """The key of a trials.csv row (a run record)."""
    fold = record.get("fold")
    try:
        fold = -1 if fold is None or fold != fold else int(fold)  # NaN from a CSV
    except (TypeError, ValueError):
        fold = -1
    return str(record["phase"]), str(record["trial_id"]), int(record["repeat"]), fold


def outcomes_bytes(outcomes: Outcomes) -> bytes:
    """The ``.npz`` file of ``outcomes``: per set, ragged arrays (one run after another) and offsets."""
    keys = sorted(outcomes)
    arrays: dict[str, np.ndarray] = {
        "phase": np.array([k[0] for k in keys], dtype=str), "trial_id": np.array([k[1] for k in keys], dtype=str),
        "repeat": np.array([k[2] for k in keys], dtype=np.int64),
        "fold": np.array([k[3] for k in keys], dtype=np.int64),
    }
    # Where the val rows are the test rows (the tutorial protocol), they are kept once.
    same = [_same(outcomes[k].get("val"), outcomes[k].get("test")) for k in keys]
    arrays["val_is_test"] = np.array(same, dtype=bool)
    for name in SETS:
        scores = [None if name == "val" and twin else outcomes[k].get(name) for k, twin in zip(keys, same)]
        present = [s for s in scores if s is not None]
        sizes = [0 if s is None else len(s.rows) for s in scores]
        arrays[f"{name}_offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays[f"{name}_present"] = np.array([s is not None for s in scores], dtype=bool)
        arrays[f"{name}_rows"] = np.concatenate([s.rows for s in present] or [np.zeros(0)]).astype(np.int32)
        arrays[f"{name}_loss"] = np.concatenate([s.loss for s in present] or [np.zeros(0)]).astype(np.float32)
        has_correct = [s is not None and s.correct is not None for s in scores]
        arrays[f"{name}_has_correct"] = np.array(has_correct, dtype=bool)
        arrays[f"{name}_correct"] = np.concatenate(
            [s.correct if s.correct is not None else np.zeros(len(s.rows)) for s in present] or [np.zeros(0)]
        ).astype(np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _same(first: RowScores | None, second: RowScores | None) -> bool:
    if first is None or second is None:
        return False
    if first is second:
        return True
    return (np.array_equal(first.rows, second.rows) and np.array_equal(first.loss, second.loss)
            and (first.correct is None) == (second.correct is None)
            and (first.correct is None or np.array_equal(first.correct, second.correct)))


def load_outcomes(path: str | Path) -> Outcomes:
    """Reads a file :func:`outcomes_bytes` wrote (``outcomes.npz`` or a trial's ``rows.npz``).

    Raises:
        DamagedFileError: The file is not a whole one (named, with what to do: a trial's ``rows.npz``
            means training that trial again; ``outcomes.npz``, writing the report anew).
    """
    import zipfile

    from regsearch.damaged import RETRAINED, REWRITTEN, DamagedFileError

    try:
        return _read_outcomes(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, IndexError, zipfile.BadZipFile) as error:
        remedy = RETRAINED if Path(path).name == TRIAL_ROWS_FILE else REWRITTEN
        raise DamagedFileError(path, f"not a whole .npz file: {type(error).__name__}", remedy) from error


def _read_outcomes(path: str | Path) -> Outcomes:
    outcomes: Outcomes = {}
    with np.load(path, allow_pickle=False) as saved:
        keys = list(zip(saved["phase"].tolist(), saved["trial_id"].tolist(), saved["repeat"].tolist(),
                        saved["fold"].tolist()))
        for key in keys:
            outcomes[(str(key[0]), str(key[1]), int(key[2]), int(key[3]))] = {}
        for name in SETS:
            offsets = saved[f"{name}_offsets"]
            present, has_correct = saved[f"{name}_present"], saved[f"{name}_has_correct"]
            rows, loss, correct = saved[f"{name}_rows"], saved[f"{name}_loss"], saved[f"{name}_correct"]
            for i, key in enumerate(keys):
                if not present[i]:
                    continue
                part = slice(offsets[i], offsets[i + 1])
                outcomes[(str(key[0]), str(key[1]), int(key[2]), int(key[3]))][name] = RowScores(
                    rows[part], correct[part] if has_correct[i] else None, loss[part])
        twins = saved["val_is_test"] if "val_is_test" in saved else np.zeros(len(keys), dtype=bool)
        for key, twin in zip(keys, twins):
            sets = outcomes[(str(key[0]), str(key[1]), int(key[2]), int(key[3]))]
            if twin:
                sets["val"] = sets["test"]
    return outcomes
