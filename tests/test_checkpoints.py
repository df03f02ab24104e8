"""Checkpoints inside a population (issue 28, item 1): a run resumed from one equals a run never interrupted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest

from regsearch import population
from regsearch.errors import SettingError
from regsearch.population import Population, checkpoints, progress, train_population
from regsearch.population.rungs import Rungs

sys.path.insert(0, str(Path(__file__).parent))
from test_population import X_TRAIN, X_VAL, Y_TRAIN, Y_VAL, build, stopping  # noqa: E402

#: Strength, dropout rate, max-norm bound and learning rate of three members; with patiences they stop apart.
SETTINGS = [(0, 1e-3, 0.1, 2.0, 1e-2), (1, 1e-1, 0.3, 1.5, 3e-2), (2, None, 0.2, 3.0, 5e-3)]
#: The first two members stop early (after epochs 13 and 20), the third trains every epoch.
EPOCHS = 22


class Interrupted(BaseException):
    """Raised from the progress listener: training stops between two chunks, as a kill would stop it."""


def trained(after_chunks: int | None = None, hear=None) -> tuple[list, list[keras.Model]]:
    """The members trained together; interrupted after ``after_chunks`` chunks if given; ``hear`` hears each chunk."""
    models = [build(*s) for s in SETTINGS]
    heard = 0

    def listener(chunk: progress.PopulationProgress) -> None:
        nonlocal heard
        heard += 1
        if hear is not None:
            hear(chunk)
        if heard == after_chunks:
            raise Interrupted

    with progress.reporting(listener):
        outcomes = train_population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=EPOCHS, batch_size=8,
                                    early_stopping=stopping(), patiences=[2, 5, 40], seeds=[10, 11, 12],
                                    evaluate=True)
    return outcomes, models


def assert_same(got: tuple[list, list[keras.Model]], want: tuple[list, list[keras.Model]]) -> None:
    """Histories, scores, stopping and weights exactly equal: the program is deterministic."""
    for a, b in zip(got[0], want[0]):
        assert a == b  # Outcome: history, epochs_run, stopped_epoch, best_epoch, best, wait, diverged, scores
    for a, b in zip(got[1], want[1]):
        for u, v in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(u), keras.ops.convert_to_numpy(v))


@pytest.fixture(scope="module")
def uninterrupted() -> tuple[list, list[keras.Model]]:
    chunk = population.CHUNK
    population.CHUNK = 4
    try:
        return trained()
    finally:
        population.CHUNK = chunk


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(population, "CHUNK", 4)


@pytest.mark.parametrize("after_chunks", [2, 7, 12])  # before, while and after members wait to stop
def test_a_population_interrupted_between_chunks_resumes_to_the_uninterrupted_result(
        tmp_path: Path, small_chunks: None, uninterrupted: tuple, after_chunks: int) -> None:
    with checkpoints.checkpointing(tmp_path, every=1e-9) as written:  # a checkpoint after every chunk
        with pytest.raises(Interrupted):
            trained(after_chunks)
        assert len(list(tmp_path.glob("*.npz"))) == 1
        resumed = trained()
    # Each member resumed from the last call before the interruption: the first call measures the pace in one
    # epoch, and every later one pauses after an epoch too, a checkpoint being always due.
    assert written.resumed == sum(min(after_chunks, o.epochs_run) for o in uninterrupted[0])
    assert 0 < written.resumed < sum(o.epochs_run for o in uninterrupted[0])
    assert_same(resumed, uninterrupted)
    assert any(o.epochs_run < EPOCHS for o in uninterrupted[0])  # early stopping's state crossed the checkpoint
    written.remove()
    assert not tmp_path.exists()


def test_a_checkpoint_waits_for_its_interval_and_another_population_never_takes_it(
        tmp_path: Path, small_chunks: None) -> None:
    with checkpoints.checkpointing(tmp_path, every=3600) as written:
        with pytest.raises(Interrupted):
            trained(3)
        assert not list(tmp_path.glob("*.npz"))  # an hour of training has not passed
    with checkpoints.checkpointing(tmp_path, every=1e-9) as written:
        with pytest.raises(Interrupted):
            trained(3)
        (path,) = tmp_path.glob("*.npz")
        # Other seeds, epochs or rows make another population: its key differs, it starts from its first epoch.
        for change in ({"seeds": [10, 11, 13]}, {"epochs": EPOCHS + 1}, {"data": (X_TRAIN[:-1], Y_TRAIN[:-1])}):
            arguments = {"data": (X_TRAIN, Y_TRAIN), "seeds": [10, 11, 12], "epochs": EPOCHS, **change}
            members = Population([build(*s) for s in SETTINGS], arguments["data"], (X_VAL, Y_VAL),
                                 epochs=arguments["epochs"], batch_size=8, early_stopping=stopping(),
                                 patiences=[2, 5, 40], seeds=arguments["seeds"])
            assert members.checkpoint_path != path and members.resumed == 0
        assert written.resumed == 0


def test_a_compiled_call_lasts_about_until_the_next_checkpoint_is_due(tmp_path: Path) -> None:
    """So that a checkpoint lands every interval even where one chunk (up to 1000 epochs) would last longer."""
    with checkpoints.checkpointing(tmp_path, every=10.0):
        members = Population([build(*s) for s in SETTINGS], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=5000,
                             batch_size=8, seeds=[0, 1, 2])
    epoch, alive = np.array([0, 7, 7]), np.array([True, True, False])
    assert list(members._pause(epoch, alive, 5000)) == [1, 8, 8]  # the first call measures the pace
    members._seconds_per_epoch = 0.01  # two members alive: 50 member-epochs per second, 500 epochs each in 10 s
    assert 495 <= members._pause(epoch, alive, 5000)[0] <= 500
    assert list(members._pause(epoch, alive, 5000) - members._pause(epoch, alive, 5000)[0]) == [0, 7, 7]
    assert list(members._pause(epoch, alive, 300)) == [300, 300, 300]  # never beyond the rung or the end
    assert list(Population([build(*s) for s in SETTINGS], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=5000,
                           batch_size=8, seeds=[0, 1, 2])._pause(epoch, alive, 5000)) == [5000] * 3  # no checkpoints


def test_a_trained_population_is_checkpointed_before_its_members_are_scored_and_recorded(
        tmp_path: Path, small_chunks: None, uninterrupted: tuple) -> None:
    with checkpoints.checkpointing(tmp_path, every=3600) as written:
        trained()  # no interval passed: only the checkpoint at the end of training
        assert written.writes == 1
        again = trained()  # a rerun killed while it recorded: nothing trains again
    assert written.resumed == sum(o.epochs_run for o in uninterrupted[0])
    assert_same(again, uninterrupted)


def test_a_damaged_checkpoint_is_said_in_one_line_and_its_population_trains_from_the_start(
        tmp_path: Path, small_chunks: None, uninterrupted: tuple) -> None:
    with checkpoints.checkpointing(tmp_path, every=1e-9) as written:
        with pytest.raises(Interrupted):
            trained(3)
        (path,) = tmp_path.glob("*.npz")
        path.write_bytes(path.read_bytes()[:100])  # cut short
        with pytest.warns(UserWarning, match=r"the checkpoint .* cannot be used \(BadZipFile\); what it holds "
                                             r"trains again\.$"):
            again = trained()
    assert written.resumed == 0
    assert_same(again, uninterrupted)


def test_checkpoint_seconds_is_checked() -> None:
    from regsearch.definition.schema import DEFAULT_CHECKPOINT_SECONDS
    from regsearch.hypermodels import RegularizedMLP
    from regsearch.tuners import GridSearch

    assert DEFAULT_CHECKPOINT_SECONDS == checkpoints.DEFAULT_SECONDS
    with pytest.raises(SettingError, match="GridSearch: 'checkpoint_seconds' must be a number of seconds > 0; got 0."):
        GridSearch(RegularizedMLP(input_shape=(2,)), checkpoint_seconds=0, objective="val_loss")
    with pytest.raises(ValueError, match="'every' must be a number of seconds > 0; got -1"):
        with checkpoints.checkpointing("unused", every=-1):
            pass


@pytest.fixture(scope="module")
def uninterrupted_searches() -> dict[str, tuple[list, dict]]:
    """Each tuner's uninterrupted search, kept for the cases of that tuner that follow (filled by the test)."""
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("tuner, lost", [("SuccessiveHalving", False), ("SuccessiveHalving", True),
                                         ("GridSearch", False)])
def test_a_tuner_interrupted_mid_population_resumes_every_run_and_removes_its_checkpoints(
        tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch, uninterrupted_searches: dict,
        tuner: str, lost: bool) -> None:
    """Mid-rung for successive halving: its decided rungs resume too. The records equal an uninterrupted search's.

    ``lost``: the population's checkpoint is deleted, so it is older than the rungs decided: the rerun trains
    its members again up to each decided rung and drops there whom the record says.
    """
    from test_rungs import TRAIN, VALIDATION, hypermodel

    from regsearch import tuners
    from regsearch.tuners import read_runs

    def search(folder: Path, after_chunks: int | None = None) -> tuple[list, dict]:
        options = ({"rungs": Rungs((3, 9, 20), 3, "val_accuracy", minimize=False, tie_breaker="val_loss")}
                   if tuner == "SuccessiveHalving" else {"engine": "population", "batch": 2})
        # At each record, the checkpoints on disk: the recorded batch's own (the one before it is removed).
        checkpoints_seen = lambda _: seen.append(len(list((folder / "p" / "checkpoints").glob("*.npz"))))
        made = getattr(tuners, tuner)(hypermodel([1e-3, 1e-2, 0.1, 1.0]), repeats=2, seed=5,
                                      objective=kt.Objective("val_accuracy", "max"), directory=str(folder),
                                      project_name="p", checkpoint_seconds=1e-9, on_run=checkpoints_seen,
                                      **options)
        heard = 0

        def listener(_: progress.PopulationProgress) -> None:
            nonlocal heard
            heard += 1
            if heard == after_chunks:
                raise Interrupted

        with progress.reporting(listener):
            made.search(*TRAIN, validation_data=VALIDATION, epochs=20, batch_size=8, verbose=0,
                        early_stopping={"monitor": "val_loss", "patience": 3, "restore_best_weights": True})
        records, histories = read_runs(made)
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records], histories

    seen: list[int] = []
    if tuner not in uninterrupted_searches:  # the same search for either case of a tuner: run once
        uninterrupted_searches[tuner] = search(tmp_path / "whole")
        assert seen == [1] * 8
    expected = uninterrupted_searches[tuner]
    with pytest.raises(Interrupted):
        search(tmp_path / "killed", after_chunks=4)
    folder = tmp_path / "killed" / "p" / "checkpoints"
    assert len(list(folder.glob("*.npz"))) == 1
    assert len(list(folder.glob("*.json"))) == (tuner == "SuccessiveHalving")  # rung 0 was decided
    if lost:
        next(folder.glob("*.npz")).unlink()
    written = []
    original = checkpoints.checkpointing

    @contextlib.contextmanager
    def noted(*args, **kwargs):
        with original(*args, **kwargs) as used:
            written.append(used)
            yield used

    monkeypatch.setattr(checkpoints, "checkpointing", noted)
    assert search(tmp_path / "killed") == expected
    assert (sum(used.resumed for used in written) > 0) is not lost
    assert not folder.exists()  # removed once the runs were recorded


#: Trains the population of ``trained`` with a checkpoint after every chunk; ``resume`` compares with a fresh run.
SCRIPT = """
import json, sys, time
sys.path.insert(0, {tests!r})
from regsearch import population
from regsearch.population import checkpoints, progress
import test_checkpoints as t
population.CHUNK = 4
with checkpoints.checkpointing({folder!r}, every=1e-9) as written:
    # The killed process dwells after each chunk, so that the kill comes before its training ends.
    got = t.trained(hear=lambda p: (print("chunk", p.epochs_done, flush=True), time.sleep(0 if {resume!r} else 0.5)))
print(json.dumps({{"resumed": written.resumed}}), flush=True)
if {resume!r}:
    t.assert_same(got, t.trained())
    print("equal", flush=True)
"""


@pytest.mark.slow
def test_a_population_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """A real SIGKILL (no Python clean-up) once a checkpoint is on disk; the rerun resumes it and equals a fresh run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    tests = str(Path(__file__).parent)

    def script(resume: bool) -> list[str]:
        return [sys.executable, "-c", SCRIPT.format(tests=tests, folder=str(tmp_path), resume=resume)]

    process = subprocess.Popen(script(False), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in process.stdout:
            if line.startswith("chunk") and int(line.split()[1]) >= 9:  # three calls' checkpoints are written
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob("*.npz"))) == 1  # (and maybe the next one's temporary file, cut short)
    done = subprocess.run(script(True), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert json.loads(next(line for line in lines if line.startswith("{")))["resumed"] >= 9
    assert lines[-1] == "equal"


#: This module's in-process tests that run again under ``KERAS_BACKEND=jax`` (Keras picks its backend once per
#: process): tests/test_population.py::test_the_population_tests_hold_on_jax runs them in its JAX process, one
#: process and one compilation cache for both modules instead of a second start of Python, Keras and JAX.
ON_JAX = "between_chunks or damaged or interval or before_its_members"
