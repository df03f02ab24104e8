"""Tests for regsearch.report.tensorboard: HParams summaries read back with TensorBoard's own reader."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata
from tensorboard.util import tensor_util

from regsearch.errors import SettingError
from regsearch.report.tables import trials_frame
from regsearch.report.tensorboard import run_name, run_summaries, write_hparams

OBJECTIVE = "test_accuracy"
SESSION_TAG = "_hparams_/session_start_info"
EXPERIMENT_TAG = "_hparams_/experiment"
NAN = math.nan


def record(trial_id: str, repeat: int, seed: int, kind: str, strength: float, *, failed: bool = False,
           **metrics: float) -> dict[str, Any]:
    """A trial record; every metric differs between rows, so a swap of two rows shows."""
    row: dict[str, Any] = {
        "search": "moons_l2", "trial_id": trial_id, "phase": trial_id.split("-")[0], "repeat": repeat,
        "seed": seed, "fold": NAN, "status": "failed" if failed else "completed",
        "reason": "out of memory" if failed else "", "param_kind": kind, "param_strength": strength,
        "param_optimizer": "adam",
    }
    names = ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "best_epoch", "epochs_run",
             "zero_fraction", "mean_activation")
    row.update({name: NAN if failed else metrics[name] for name in names})
    return row


def metrics(base: float, epochs: int) -> dict[str, float]:
    return {"train_accuracy": base + 0.05, "test_accuracy": base, "train_loss": 1 - base, "test_loss": 1.1 - base,
            "best_epoch": epochs - 3, "epochs_run": epochs, "zero_fraction": base / 3, "mean_activation": base / 7}


@pytest.fixture
def trials() -> pd.DataFrame:
    """Two configurations x two repeats (one failed), and a baseline without a strength."""
    return trials_frame([
        record("grid-0000", 0, 0, "l2", 0.01, **metrics(0.81, 40)),
        record("grid-0000", 1, 1, "l2", 0.01, **metrics(0.83, 41)),
        record("grid-0001", 0, 2, "l1", 0.0003, **metrics(0.87, 42)),
        record("grid-0001", 1, 3, "l1", 0.0003, failed=True),
        record("baseline-0000", 0, 4, "none", NAN, **metrics(0.79, 43)),
    ])


def read_run(folder: Path) -> tuple[dict[str, Any], dict[str, list[tuple[int, float]]]]:
    """A run's hparams (from its session start info) and its scalars as (step, value) lists per tag."""
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()["tensors"]
    assert tags.count(SESSION_TAG) == 1
    assert len(events.Tensors(SESSION_TAG)) == 1  # one event, not one per write
    info = metadata.parse_session_start_info_plugin_data(events.SummaryMetadata(SESSION_TAG).plugin_data.content)
    hparams = {name: getattr(value, value.WhichOneof("kind")) for name, value in info.hparams.items()}
    scalars = {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
        for tag in tags if tag != SESSION_TAG
    }
    assert info.group_name == folder.name  # each run its own row in the dashboard, repeats included
    return hparams, scalars


def read_experiment(folder: Path) -> Any:
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    assert events.Tags()["tensors"] == [EXPERIMENT_TAG]
    assert len(events.Tensors(EXPERIMENT_TAG)) == 1
    return metadata.parse_experiment_plugin_data(events.SummaryMetadata(EXPERIMENT_TAG).plugin_data.content)


def event_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_one_run_per_row_with_its_hparams_and_metrics(tmp_path: Path, trials: pd.DataFrame) -> None:
    folder = tmp_path / "tensorboard"
    assert write_hparams(folder, trials, objective=OBJECTIVE) == folder

    names = ["grid-0000_repeat0", "grid-0000_repeat1", "grid-0001_repeat0", "grid-0001_repeat1",
             "baseline-0000_repeat0"]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(names)
    metric_names = ["train_accuracy", "test_accuracy", "train_loss", "test_loss", "gap", "best_epoch",
                    "epochs_run", "zero_fraction", "mean_activation"]
    for name, (_, row) in zip(names, trials.iterrows()):
        hparams, scalars = read_run(folder / name)
        expected = {"phase": row["phase"], "seed": row["seed"], "kind": row["param_kind"],
                    "optimizer": "adam", "strength": row["param_strength"]}
        if pd.isna(row["param_strength"]):
            del expected["strength"]  # not applicable: left out, not NaN
        assert hparams == pytest.approx(expected)
        wanted = {m: float(row[m]) for m in metric_names if not pd.isna(row[m])}
        assert {tag: [step for step, _ in values] for tag, values in scalars.items()} == {m: [0] for m in wanted}
        assert {tag: values[0][1] for tag, values in scalars.items()} == pytest.approx(wanted, rel=1e-6)


def test_failed_run_has_hparams_but_no_scalars(tmp_path: Path, trials: pd.DataFrame) -> None:
    write_hparams(tmp_path / "tb", trials, objective=OBJECTIVE)
    hparams, scalars = read_run(tmp_path / "tb" / "grid-0001_repeat1")
    assert hparams == pytest.approx({"phase": "grid", "seed": 3, "kind": "l1", "strength": 0.0003, "optimizer": "adam"})
    assert scalars == {}


def test_config_declares_hparams_and_metrics(tmp_path: Path, trials: pd.DataFrame) -> None:
    write_hparams(tmp_path / "tb", trials, objective=OBJECTIVE)
    experiment = read_experiment(tmp_path / "tb")
    metrics_listed = [info.name.tag for info in experiment.metric_infos]
    assert metrics_listed[0] == OBJECTIVE
    assert sorted(metrics_listed) == sorted(["train_accuracy", "test_accuracy", "train_loss", "test_loss", "gap",
                                             "best_epoch", "epochs_run", "zero_fraction", "mean_activation"])
    assert all(info.name.group == "" for info in experiment.metric_infos)  # scalars sit in the run's own folder
    domains = {info.name: [getattr(v, v.WhichOneof("kind")) for v in info.domain_discrete.values]
               for info in experiment.hparam_infos}
    assert domains.pop("strength") == pytest.approx([0.0003, 0.01])
    assert domains == {"phase": ["baseline", "grid"], "seed": [0, 1, 2, 3, 4], "kind": ["l1", "l2", "none"],
                       "optimizer": ["adam"]}


def test_rewriting_replaces_events(tmp_path: Path, trials: pd.DataFrame) -> None:
    folder = tmp_path / "tensorboard"
    write_hparams(folder, trials, objective=OBJECTIVE)
    first = event_files(folder)
    write_hparams(folder, trials, objective=OBJECTIVE)
    assert len(event_files(folder)) == len(first) == len(trials) + 1  # one events file per run and the config
    for run in folder.iterdir():
        if run.is_dir():
            read_run(run)  # asserts one session start event
    read_experiment(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tensorboard"]  # no temporary folder left beside it

    write_hparams(folder, trials.iloc[:2], objective=OBJECTIVE)  # a run gone from the table is gone from the folder
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["grid-0000_repeat0", "grid-0000_repeat1"]


def test_refuses_a_folder_with_other_files(tmp_path: Path, trials: pd.DataFrame) -> None:
    (tmp_path / "trials.csv").write_text("keep me")
    with pytest.raises(SettingError, match="event files"):
        write_hparams(tmp_path, trials, objective=OBJECTIVE)
    assert (tmp_path / "trials.csv").read_text() == "keep me"


def test_names_are_unique_and_safe() -> None:
    assert run_name({"trial_id": "grid-0003", "phase": "grid", "repeat": 1, "fold": NAN}) == "grid-0003_repeat1"
    assert run_name({"trial_id": "grid-0003", "phase": "grid", "repeat": 1, "fold": 2.0}) == "grid-0003_repeat1_fold2"
    # kfold's refit reuses the selected configuration's id
    assert run_name({"trial_id": "baseline-0000", "phase": "refit", "repeat": 0}) == "refit_baseline-0000_repeat0"
    assert run_name({"trial_id": "../a b", "phase": "x", "repeat": 0}) == "x_.._a_b_repeat0"
    twice = trials_frame([record("grid-0000", 0, 0, "l2", 0.01, **metrics(0.8, 4))] * 2)
    assert [run.name for run in run_summaries(twice, OBJECTIVE)] == ["grid-0000_repeat0", "grid-0000_repeat0_2"]


def test_folds_are_hparams_and_name_runs(tmp_path: Path) -> None:
    rows = [dict(record("grid-0000", 0, 0, "l2", 0.01, **metrics(0.8 + fold / 100, 4)), fold=fold) for fold in (0, 1)]
    write_hparams(tmp_path / "tb", trials_frame(rows), objective=OBJECTIVE)
    for fold in (0, 1):
        hparams, scalars = read_run(tmp_path / "tb" / f"grid-0000_repeat0_fold{fold}")
        assert hparams["fold"] == fold
        assert scalars[OBJECTIVE] == [(0, pytest.approx(0.8 + fold / 100))]


def test_writes_no_log_noise(tmp_path: Path) -> None:
    """A fresh process (TensorFlow not yet imported) prints nothing while writing."""
    code = (
        "import sys, pandas as pd\n"
        "from regsearch.report.tensorboard import write_hparams\n"
        "rows = pd.DataFrame({'trial_id': ['grid-0000'], 'phase': ['grid'], 'repeat': [0], 'seed': [0],"
        " 'param_strength': [0.01], 'test_accuracy': [0.9]})\n"
        "write_hparams(__import__('pathlib').Path(sys.argv[1]), rows, objective='test_accuracy')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tb")], capture_output=True, text=True, check=False,
                          env=env, cwd=Path(__file__).parents[1], timeout=300)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert (tmp_path / "tb" / "grid-0000_repeat0").is_dir()
