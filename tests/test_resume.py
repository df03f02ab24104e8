"""Resume (issue 5.1): a killed search finishes the remaining trials only, and --overwrite starts afresh.

Keras Tuner 1.4.8's GridSearchOracle keeps its walk through the grid in memory
only; reloaded, it raised KeyError after retrying the interrupted trial, or
stopped at once when the kill fell between two trials. The fast tests below
drive the tuners with a HyperModel that trains nothing; the slow ones kill the
real CLI with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fake_hypermodel import FakeHyperModel, Interrupted, make_tuner, search
from regsearch.cli import main
from regsearch.report import summary_frame
from regsearch.search import fine_strengths
from regsearch.tuners import read_runs

VALUES = list(range(1, 9))


def trained_values(tuner) -> list[int]:
    records, _ = read_runs(tuner)
    return sorted(r["param_value"] for r in records)


def test_grid_stopped_between_trials_resumes_the_rest(tmp_path: Path) -> None:
    # max_trials=3 ends the first search cleanly after three trials: the state a kill between trials leaves.
    first = FakeHyperModel(VALUES)
    search(make_tuner("grid", first, tmp_path, max_trials=3))
    assert first.trained == [1, 2, 3]

    second = FakeHyperModel(VALUES)
    tuner = make_tuner("grid", second, tmp_path)
    search(tuner)

    assert second.trained == [4, 5, 6, 7, 8]
    assert trained_values(tuner) == VALUES


def test_grid_interrupted_mid_trial_reruns_that_trial_under_its_id(tmp_path: Path) -> None:
    first = FakeHyperModel(VALUES, interrupt_on_call=4)
    with pytest.raises(Interrupted):
        search(make_tuner("grid", first, tmp_path))
    assert first.trained == [1, 2, 3]

    second = FakeHyperModel(VALUES)
    tuner = make_tuner("grid", second, tmp_path)
    search(tuner)

    assert second.trained == [4, 5, 6, 7, 8]  # the interrupted trial restarts from scratch, once
    assert trained_values(tuner) == VALUES
    assert sorted(tuner.oracle.trials) == [f"{i:04d}" for i in range(8)]
    assert {t.status for t in tuner.oracle.trials.values()} == {"COMPLETED"}


def test_finished_grid_reloaded_runs_nothing(tmp_path: Path) -> None:
    search(make_tuner("grid", FakeHyperModel(VALUES), tmp_path))
    again = FakeHyperModel(VALUES)
    tuner = make_tuner("grid", again, tmp_path)
    search(tuner)
    assert again.trained == []
    assert trained_values(tuner) == VALUES


def test_bayesian_interrupted_mid_trial_finishes_max_trials(tmp_path: Path) -> None:
    values = list(range(1, 21))
    first = FakeHyperModel(values, interrupt_on_call=4)
    with pytest.raises(Interrupted):
        search(make_tuner("bayesian", first, tmp_path, max_trials=6, num_initial_points=2))

    second = FakeHyperModel(values)
    tuner = make_tuner("bayesian", second, tmp_path, max_trials=6, num_initial_points=2)
    search(tuner)

    assert len(first.trained) + len(second.trained) == 6
    assert sorted(tuner.oracle.trials) == [f"{i}" for i in range(6)]
    records, _ = read_runs(tuner)
    assert sorted(r["trial_id"] for r in records) == [f"bayesian-{i}" for i in range(6)]


# --- the real CLI, killed with SIGKILL --------------------------------------------------------

GRID = """\
description = "resume test: eight strengths"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [50]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
target = "kernel"

[search]
strategy = "grid"
repeats = 1

[training]
epochs = 5   # bookkeeping: which trials ran, once each, not what they learned
[early_stopping]
patience = "none"
[evaluation]
baseline = false   # resume of one grid phase; the baseline phase is resumed in the coarse-to-fine test
"""

COARSE_TO_FINE = """\
description = "resume test: decades then a fine grid"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [50]

[space.regularizer]
kinds = ["l2"]
strengths = { decades = [1e-1, 1e-6] }
target = "kernel"

[search]
strategy = "coarse_to_fine"
fine_points = 4
repeats = 1

[training]
epochs = 50  # the kill falls between the fine phase's trials' records, written one by one after it trained

[early_stopping]
patience = "none"
"""


def start_cli(definition: Path, results: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "regsearch", str(definition), "--results", str(results), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(process: subprocess.Popen, ready) -> None:
    """SIGKILLs the process as soon as ``ready()`` holds; fails if the search ends first."""
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the search ended before the kill point: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()


def rerun(definition: Path, results: Path, *extra: str) -> None:
    """The same command again, in this process: the killed one is gone, only its folder is left."""
    assert main([str(definition), "--results", str(results), "--quiet", *extra]) == 0


def configurations(trials_csv: Path) -> list[tuple]:
    trials = pd.read_csv(trials_csv)
    params = sorted(c for c in trials.columns if c.startswith("param_"))
    return sorted(map(tuple, trials[["phase", "trial_id", *params]].astype(str).to_numpy()))


def runs_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("tuner/*/trial_*/runs.json"))


def assert_each_trial_once(folder: Path, expected_trials: int) -> None:
    files = runs_files(folder)
    assert len(files) == expected_trials
    ids = [run["trial_id"] for path in files for run in json.loads(path.read_text())["runs"]]
    assert len(ids) == len(set(ids)) == expected_trials
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == expected_trials
    params = [c for c in trials.columns if c.startswith("param_")]
    assert not trials.duplicated(["phase", *params]).any(), "a configuration ran twice"
    assert not trials.duplicated(["trial_id"]).any()
    assert set(trials["status"]) == {"completed"}


def assert_no_temporary_files(folder: Path) -> None:
    leftovers = [p for p in folder.rglob(".*") if p.name != ".lock"]
    assert leftovers == []


# SIGKILLs at random instants (grid on TensorFlow, Hyperband mid-bracket on JAX) are tests/test_faults.py's, and a
# population killed while it trains resumes from its checkpoint in tests/test_checkpoints.py.


@pytest.mark.slow
def test_overwrite_forgets_the_saved_trials_and_trains_every_configuration_again(tmp_path: Path) -> None:
    definition = tmp_path / "grid8.toml"
    definition.write_text(GRID)
    results = tmp_path / "results"
    folder = results / "grid8"
    assert main([str(definition), "--results", str(results), "--quiet"]) == 0
    assert_each_trial_once(folder, 8)
    assert_no_temporary_files(folder)
    first = configurations(folder / "trials.csv")

    marker = folder / "tuner" / "grid" / "marker"
    marker.write_text("from the first search")
    before = {path: path.stat().st_mtime_ns for path in runs_files(folder)}
    assert main([str(definition), "--results", str(results), "--quiet", "--overwrite"]) == 0
    assert not marker.exists()
    assert all(path.stat().st_mtime_ns > mtime for path, mtime in before.items())
    assert_each_trial_once(folder, 8)
    assert configurations(folder / "trials.csv") == first


@pytest.mark.slow
def test_coarse_to_fine_killed_in_the_fine_phase_resumes(tmp_path: Path) -> None:
    definition = tmp_path / "c2f.toml"
    definition.write_text(COARSE_TO_FINE)
    results = tmp_path / "results"
    folder = results / "c2f"

    process = start_cli(definition, results)
    kill_when(process, lambda: any(folder.glob("tuner/fine/trial_*/runs.json")))
    assert len(list(folder.glob("tuner/coarse/trial_*/runs.json"))) == 6
    assert len(list(folder.glob("tuner/fine/trial_*/runs.json"))) < 4

    rerun(definition, results)
    assert_each_trial_once(folder, 6 + 4 + 1)  # the decades, the fine grid, the baseline
    assert_no_temporary_files(folder)

    # The configurations an uninterrupted run visits: the decades, then the fine grid around the best one.
    trials = pd.read_csv(folder / "trials.csv")
    coarse = trials[trials["phase"] == "coarse"]
    assert list(coarse["param_strength"]) == [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    best = summary_frame(coarse, objective="val_accuracy", direction="max").iloc[0]["param_strength"]
    expected = fine_strengths(best, list(coarse["param_strength"]), points=4)
    assert list(trials[trials["phase"] == "fine"]["param_strength"]) == expected


TWO = """\
description = "two strengths"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-2, 1e-3]

[training]
epochs = 2
"""


def test_resuming_under_other_settings_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition = tmp_path / "two.toml"
    definition.write_text(TWO)
    results = tmp_path / "results"
    folder = results / "two"
    assert main([str(definition), "--results", str(results), "--quiet"]) == 0
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}

    # A quick look with --epochs, or an edited grid, would otherwise keep trials trained another way.
    assert main([str(definition), "--results", str(results), "--quiet", "--epochs", "5"]) == 2
    assert main([str(definition), "--results", str(results), "--quiet", "--repeats", "2"]) == 2
    definition.write_text(TWO.replace("1e-3]", "1e-4]"))
    assert main([str(definition), "--results", str(results), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"regsearch: error: {folder}: 'training.epochs' must be 2 as when the saved trials ran "
        "(or pass --overwrite to start afresh); got 5.",
        f"regsearch: error: {folder}: 'search.repeats' must be unset (the default) as when the saved trials ran "
        "(or pass --overwrite to start afresh); got 2.",
        f"regsearch: error: {folder}: 'space.regularizer.strengths' must be [0.01, 0.001] as when the saved "
        "trials ran (or pass --overwrite to start afresh); got [0.01, 0.0001].",
    ]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != ".lock"} == before

    # A new description or comment changes no trial: the search resumes, with nothing to train.
    definition.write_text(TWO.replace('"two strengths"', '"two strengths, described better"') + "# a comment\n")
    assert main([str(definition), "--results", str(results), "--quiet"]) == 0
    assert all(p.stat().st_mtime_ns == before[p] for p in runs_files(folder))
    assert capsys.readouterr().out == ""  # not even Keras Tuner's "Reloading Tuner from ..."

    definition.write_text(TWO.replace("1e-3]", "1e-4]"))
    assert main([str(definition), "--results", str(results), "--quiet", "--overwrite"]) == 0
    assert sorted(pd.read_csv(folder / "trials.csv")["param_strength"].dropna().unique()) == [1e-4, 1e-2]
