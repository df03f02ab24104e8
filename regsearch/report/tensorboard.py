"""TensorBoard HParams summaries of a search: one TensorBoard run per training run.

``tensorboard --logdir results/NAME/tensorboard`` then shows the HParams
dashboard: one row per row of the trials table, its hyperparameters (every
``param_*`` column without the prefix, ``phase``, ``seed`` and ``fold`` when
the search has folds) and its final metrics as scalars at step 0.

The experiment and the runs are built from the table by pure functions into
plain data; ``write_hparams`` writes them with TensorBoard's own protocol
buffers and event-file writer (no TensorFlow), into a temporary sibling
folder that then replaces the old one, so a rebuilt report never appends a
second set of events to a run.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regsearch.errors import SettingError

__all__ = ["HParamSpec", "RunSummary", "experiment_hparams", "experiment_metrics", "run_name", "run_summaries",
           "write_hparams"]

PARAM_PREFIX = "param_"
#: The final metrics written, in the dashboard's column order (the objective goes first).
METRICS = (
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "train_loss",
    "val_loss",
    "test_loss",
    "gap",
    "best_epoch",
    "epochs_run",
    "zero_fraction",
    "mean_activation",
)
#: A numeric hyperparameter with more distinct values than this (a Bayesian search's) gets an interval domain.
MAX_DISCRETE = 20
EVENTS_PREFIX = "events.out.tfevents."
FOLDER_MODE = 0o755

Value = bool | int | float | str


@dataclass(frozen=True)
class HParamSpec:
    """One hyperparameter of the experiment: its table column and its TensorBoard domain.

    ``kind`` is ``bool``, ``int``, ``float`` or ``str``; ``values`` is the sorted
    discrete domain, or empty for an interval ``[low, high]``.
    """

    name: str
    column: str
    kind: type
    values: tuple[Value, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """What one TensorBoard run holds: its folder name, hyperparameter values and final metrics."""

    name: str
    hparams: Mapping[str, Value] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


def _is_set(value: Any) -> bool:
    """False for NaN, None and pandas' missing values: 'not applicable' in the table."""
    return not (value is None or (not isinstance(value, str) and bool(pd.isna(value))))


def _hparam_columns(trials: pd.DataFrame) -> dict[str, str]:
    """Maps each hyperparameter column to its name: ``param_*`` without the prefix, ``phase``, ``seed``, ``fold``."""
    run_level = ["phase", "seed"] + (["fold"] if "fold" in trials.columns and trials["fold"].notna().any() else [])
    names = {column: column for column in run_level if column in trials.columns}
    for column in trials.columns:
        if column.startswith(PARAM_PREFIX):
            short = column[len(PARAM_PREFIX):]
            # A parameter called ``seed`` keeps its prefix rather than hide the run's seed.
            names[column] = column if not short or short in run_level else short
    return names


def _kind_of(values: pd.Series) -> type:
    """The TensorBoard type of a column's set values: bool, int (integral numbers), float or str."""
    if pd.api.types.is_bool_dtype(values) or all(isinstance(v, (bool, np.bool_)) for v in values):
        return bool
    if pd.api.types.is_numeric_dtype(values):
        return int if all(float(v).is_integer() for v in values) else float
    return str


def _as_kind(value: Any, kind: type) -> Value:
    """A table value as the plain Python scalar the hparams protos take."""
    if kind is str:
        return str(value)
    if kind is bool:
        return bool(value)
    return kind(float(value))


def experiment_hparams(trials: pd.DataFrame) -> list[HParamSpec]:
    """The experiment's hyperparameters and their domains, in table order.

    Strings and booleans get a discrete domain; numbers too unless they take
    more than ``MAX_DISCRETE`` values (then an interval). Columns without any
    value are left out: no run has them.
    """
    specs = []
    for column, name in _hparam_columns(trials).items():
        values = trials[column][trials[column].map(_is_set)]
        if values.empty:
            continue
        kind = _kind_of(values)
        distinct = sorted({_as_kind(v, kind) for v in values})
        if kind in (int, float) and len(distinct) > MAX_DISCRETE:
            specs.append(HParamSpec(name, column, kind, low=float(distinct[0]), high=float(distinct[-1])))
        else:
            specs.append(HParamSpec(name, column, kind, tuple(distinct)))
    return specs


def experiment_metrics(trials: pd.DataFrame, objective: str) -> list[str]:
    """The metric columns with any finite value, the objective first."""
    present = [c for c in METRICS if c in trials.columns]
    if objective in trials.columns and objective not in present:
        present.append(objective)
    present = [c for c in present if _finite(trials[c]).any()]
    return sorted(present, key=lambda c: c != objective)  # stable: the rest keep their order


def _finite(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers.map(math.isfinite)


def run_name(row: Mapping[str, Any]) -> str:
    """A run's folder name: ``<trial_id>_repeat<r>`` and ``_fold<k>`` when set, e.g. ``grid-0003_repeat1``.

    The phase leads when the trial id does not start with it (kfold's ``refit``
    reuses the selected configuration's id). Characters other than letters,
    digits, ``.``, ``-`` and ``_`` become ``_``.
    """
    trial_id, phase = str(row.get("trial_id", "")), row.get("phase")
    parts = [trial_id]
    if _is_set(phase) and not trial_id.startswith(f"{phase}-"):
        parts.insert(0, str(phase))
    parts += [f"{key}{_plain(row[key])}" for key in ("repeat", "fold") if _is_set(row.get(key))]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(parts)).lstrip(".") or "run"


def _plain(value: Any) -> str:
    """``2`` for 2, 2.0 and numpy's 2 (a fold read back from CSV is a float); other values as they are."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


def run_summaries(trials: pd.DataFrame, objective: str) -> list[RunSummary]:
    """One run per row of the trials table, in table order, with unique names.

    Hyperparameters that do not apply to a run (NaN) are left out of its
    values, and so are metrics without a finite value (failed runs, a
    diverged run's infinite loss): TensorBoard takes neither NaN hparams nor
    shows NaN scalars usefully.
    """
    specs = experiment_hparams(trials)
    metrics = experiment_metrics(trials, objective)
    seen: dict[str, int] = {}
    runs = []
    for row in trials.to_dict("records"):
        name = run_name(row)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # the same identity twice: keep both runs apart
            name = f"{name}_{seen[name]}"
        hparams = {s.name: _as_kind(row[s.column], s.kind) for s in specs if _is_set(row[s.column])}
        values = {m: float(row[m]) for m in metrics if _is_set(row[m])}
        runs.append(RunSummary(name, hparams, {m: v for m, v in values.items() if math.isfinite(v)}))
    return runs


def write_hparams(folder: Path, trials: pd.DataFrame, *, objective: str) -> Path:
    """Writes the HParams experiment and one run per row of ``trials`` under ``folder``, replacing its content.

    Args:
        folder: The search's ``tensorboard`` folder (created, or replaced whole
            if it holds only TensorBoard event files).
        trials: The trials table (``trials_frame``), one row per training run.
        objective: The metric the search ranks by; listed first.

    Returns:
        ``folder``.

    Raises:
        SettingError: If ``folder`` holds anything but event files (it would
            be deleted: likely the wrong folder).
    """
    folder = Path(folder)
    specs = experiment_hparams(trials)
    metrics = experiment_metrics(trials, objective)
    runs = run_summaries(trials, objective)
    _replace_folder(folder, lambda new: _write_events(new, specs, metrics, runs, objective))
    return folder


def _write_events(folder: Path, specs: list[HParamSpec], metrics: list[str], runs: list[RunSummary],
                  objective: str) -> None:
    """Writes the experiment config at the top of ``folder`` and each run in its own subfolder.

    The summaries are TensorBoard's own protocol buffers (``hparams_config_pb``,
    ``hparams_pb``, ``scalar_pb``): what ``tf.summary`` writes, without
    TensorFlow (500 runs cost 500 small files, not 500 TensorFlow writers).
    """
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    hparams = [hp.HParam(s.name, _domain(hp, s)) for s in specs]
    described = [
        hp.Metric(m, description="the objective the search ranks by" if m == objective else None) for m in metrics
    ]
    _write_one(folder, [hp.hparams_config_pb(hparams=hparams, metrics=described)])
    for run in runs:
        # The run's own name as its session group: repeats with equal hparams stay separate rows.
        summaries = [hp.hparams_pb(dict(run.hparams), trial_id=run.name)]
        summaries += [scalar_pb(tag, value) for tag, value in run.metrics.items()]
        _write_one(folder / run.name, summaries)


def _write_one(folder: Path, summaries: list[Any]) -> None:
    """One event file in ``folder`` holding ``summaries`` at step 0, written and closed at once.

    TensorBoard's record writer frames the events (length, masked CRC-32C) on a
    plain file, named and begun (``file_version``) as ``tf.summary`` and
    TensorBoard's ``EventFileWriter`` do; that writer itself imports TensorFlow
    for its ``gfile`` where TensorFlow is installed.
    """
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    name = f"{EVENTS_PREFIX}{int(now):010d}.{socket.gethostname()}.{os.getpid()}.{next(_EVENT_FILES)}"
    with open(folder / name, "wb") as file:
        records = RecordWriter(file)
        records.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for summary in summaries:
            records.write(Event(wall_time=now, step=0, summary=summary).SerializeToString())
        records.flush()


_EVENT_FILES = itertools.count()


def _domain(hp: Any, spec: HParamSpec) -> Any:
    if spec.values:
        return hp.Discrete(list(spec.values), dtype=spec.kind)
    if spec.kind is int:
        return hp.IntInterval(int(spec.low), int(spec.high))
    return hp.RealInterval(float(spec.low), float(spec.high))


def _holds_only_events(folder: Path) -> bool:
    return all(p.is_dir() or p.name.startswith(EVENTS_PREFIX) for p in folder.rglob("*"))


def _replace_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """Fills a new temporary sibling of ``folder``, then renames it into place and deletes the old one.

    A reader sees the old content or the new one (for an instant, none): never
    both, never half. A failure leaves the old folder as it was.
    """
    if folder.exists() and not (folder.is_dir() and _holds_only_events(folder)):
        raise SettingError("folder", "a TensorBoard folder holding only event files (it is replaced whole)",
                           str(folder), where="write_hparams")
    folder.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".new"))
    old: Path | None = None
    try:
        fill(new)
        os.chmod(new, FOLDER_MODE)  # mkdtemp makes it 0700
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
            os.replace(folder, old)  # onto the empty placeholder
        try:
            os.replace(new, folder)
        except BaseException:
            if old is not None:
                os.replace(old, folder)
                old = None
            raise
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
