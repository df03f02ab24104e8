"""Distributed search (issue 5.7): Keras Tuner's chief/worker mode through ``--chief`` and ``--worker``."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from regsearch import distributed
from regsearch.cli import main
from regsearch.errors import SettingError

GRID = """\
description = "a small grid for the distributed tests"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-1, 1e-2, 1e-3, 1e-4]
target = "kernel"

[search]
strategy = "grid"

[training]
epochs = 10
"""
COARSE_TO_FINE = GRID.replace('strategy = "grid"', 'strategy = "coarse_to_fine"\nfine_points = 2').replace(
    "[1e-1, 1e-2, 1e-3, 1e-4]", "[1e-1, 1e-2, 1e-3]")
# Generous: three processes import TensorFlow and train on two shared cores.
PROCESS_SECONDS = 600


@pytest.fixture(autouse=True)
def no_keras_tuner_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set, then removed: monkeypatch restores the original state even after a worker sets them.
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


# --- options and ids ----------------------------------------------------------


def test_endpoint_comes_from_arguments_then_keras_tuner_variables_then_defaults(monkeypatch) -> None:
    assert distributed.endpoint() == distributed.Endpoint("127.0.0.1", 8000)
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "10.0.0.7")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "9001")
    assert distributed.endpoint() == distributed.Endpoint("10.0.0.7", 9001)
    assert str(distributed.endpoint("node3", 8500)) == "node3:8500"


@pytest.mark.parametrize("port", [0, 70000, "abc", True])
def test_endpoint_refuses_a_port_outside_1_to_65535(port) -> None:
    with pytest.raises(SettingError, match="'--oracle-port' must be an integer port in 1..65535"):
        distributed.endpoint("127.0.0.1", port)


def test_worker_id_comes_from_the_argument_then_the_variable_then_host_and_pid(monkeypatch) -> None:
    assert distributed.worker_id() == f"worker-{socket.gethostname()}-{os.getpid()}"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner7")
    assert distributed.worker_id() == "tuner7"
    assert distributed.worker_id("w1") == "w1"


@pytest.mark.parametrize("bad", ["chief", "my-chief-2", "w@grid", "a/b", " "])
def test_worker_id_refuses_what_keras_tuner_or_the_phases_reserve(bad: str) -> None:
    with pytest.raises(SettingError, match="'--tuner-id' must be a non-empty id without 'chief'"):
        distributed.worker_id(bad)


def test_phases_follow_the_strategy_and_end_with_the_baseline_unless_the_grid_holds_it() -> None:
    from regsearch.evaluation import Protocol

    def phases(strategy: str, space: dict | None = None, baseline: bool = True) -> list[str]:
        return distributed.phases(SimpleNamespace(strategy=strategy, space=space or {"regularizer": {"kinds": ["l2"]}},
                                                  evaluation=Protocol(baseline=baseline)))

    assert phases("grid") == ["grid", "baseline"]
    assert phases("bayesian") == ["bayesian", "baseline"]
    assert phases("coarse_to_fine") == ["coarse", "fine", "baseline"]
    assert phases("grid", baseline=False) == ["grid"]
    assert phases("grid", {"regularizer": {"kinds": ["none", "l2"]}, "dropout": {"kinds": ["none", "dropout"]}}) == [
        "grid"]
    assert phases("grid", {"regularizer": {"kinds": ["none", "l2"]}, "dropout": {"kinds": ["dropout"]}}) == [
        "grid", "baseline"]
    assert phases("bayesian", {"regularizer": {"kinds": ["none", "l2"]}}) == ["bayesian", "baseline"]


BAD_OPTIONS = {
    "both roles": (["--chief", "--worker"], "not allowed with argument"),
    "a worker deleting results": (["--worker", "--overwrite"], "'--overwrite' must be left to the chief"),
    "--tuner-id without --worker": (["--tuner-id", "w1"], "'--tuner-id' must be given only with --worker"),
    "--workers without --chief": (["--workers", "2"], "'--workers' must be given only with --chief"),
    "--oracle-port alone": (["--oracle-port", "8000"], "'--oracle-port' must be given only with --chief or --worker"),
    "--workers 0": (["--chief", "--workers", "0"], "'--workers' must be an integer >= 1; got 0."),
    "a port out of range": (["--chief", "--oracle-port", "70000"], "'--oracle-port' must be an integer port"),
    "a worker id for the chief": (["--worker", "--tuner-id", "chief"], "'--tuner-id' must be a non-empty id"),
}


@pytest.mark.parametrize("arguments, message", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_bad_distributed_options_exit_2_before_anything_is_written(tmp_path, capsys, arguments, message) -> None:
    definition = tmp_path / "small.toml"
    definition.write_text(GRID)
    results = tmp_path / "results"
    assert main([str(definition), "--results", str(results), "--quiet", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not results.exists()


# --- the chief's side, without processes ----------------------------------------


class FakeOracle:
    """Just enough of an Oracle for the servicer: hands out one trial, then stops."""

    def __init__(self) -> None:
        import keras_tuner as kt

        self.space = kt.HyperParameters()
        self.space.Choice("strength", [0.1, 0.01])
        self.requests: list[str] = []

    def get_space(self):
        return self.space

    def create_trial(self, tuner_id: str):
        from keras_tuner.src.engine import trial as trial_module

        self.requests.append(tuner_id)
        status = "RUNNING" if len(self.requests) == 1 else "STOPPED"
        return trial_module.Trial(self.space.copy(), trial_id="00", status=status)


def test_the_chief_answers_each_phase_only_to_workers_asking_for_it() -> None:
    from keras_tuner.src import protos
    from keras_tuner.src.engine import trial as trial_module

    oracle = FakeOracle()
    servicer = distributed._servicer_class()(oracle, "coarse", ["coarse", "fine"])

    def ask(tuner_id: str) -> str:
        request = protos.get_service().CreateTrialRequest(tuner_id=tuner_id)
        return trial_module.TrialStatus.from_proto(servicer.CreateTrial(request, None).trial.status)

    assert ask("w1@fine") == "IDLE"  # not started yet: ask again later
    assert oracle.requests == []
    assert ask("w1@coarse") == "RUNNING"
    assert ask("w2@coarse") == "STOPPED"
    assert servicer.stop_triggered and servicer.stopped_workers == {"w2"}

    later = distributed._servicer_class()(oracle, "fine", ["coarse", "fine"])
    request = protos.get_service().CreateTrialRequest(tuner_id="w3@coarse")
    assert trial_module.TrialStatus.from_proto(later.CreateTrial(request, None).trial.status) == "STOPPED"
    assert later.stopped_workers == set()  # a finished phase does not count for this one


def test_a_resumed_chief_hands_out_again_the_trials_of_workers_that_are_gone() -> None:
    trial = SimpleNamespace(trial_id="03")
    oracle = SimpleNamespace(ongoing_trials={"w1@grid": trial}, _retry_queue=[])
    distributed._requeue_abandoned(oracle)
    assert oracle.ongoing_trials == {} and oracle._retry_queue == ["03"]


def test_the_chief_refuses_a_port_in_use(tmp_path: Path) -> None:
    oracle = SimpleNamespace(verbose=1, ongoing_trials={}, _retry_queue=[], trials={})
    tuner = SimpleNamespace(oracle=oracle, save=lambda: None, directory=str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        where = distributed.Endpoint("127.0.0.1", busy.getsockname()[1])
        with pytest.raises(SettingError, match=f"'--oracle-port' must be a port free on 127.0.0.1; got {where.port}"):
            distributed.serve_phase(tuner, "grid", where=where, order=["grid"])


def test_a_worker_whose_chief_is_gone_stops_with_a_message(tmp_path, monkeypatch) -> None:
    from keras_tuner.src.distribute import oracle_client

    from regsearch.definition import load_definition
    from regsearch.errors import SearchFailedError

    monkeypatch.setattr(oracle_client, "TIMEOUT", 2)  # Keras Tuner waits an hour
    (tmp_path / "small.toml").write_text(GRID)
    where = distributed.Endpoint("127.0.0.1", free_port())
    with pytest.raises(SearchFailedError, match=f"worker w1: the chief at {where} did not answer"):
        distributed.run_worker(load_definition(str(tmp_path / "small.toml")), tmp_path / "small", where=where,
                               tuner_id="w1")


# --- a chief and two workers ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def processes(folder: Path) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    """Started processes, always killed on the way out (the logs stay in ``folder``)."""
    started: list[tuple[str, subprocess.Popen]] = []
    try:
        yield started
    finally:
        for _, process in started:
            if process.poll() is None:
                process.kill()
            process.wait()


def start(started: list, folder: Path, name: str, *arguments: str) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "regsearch", *arguments], stdout=log, stderr=subprocess.STDOUT,
                               cwd=folder, env=env)
    log.close()
    started.append((name, process))


def wait_all(started: list, seconds: float) -> dict[str, int | None]:
    """Each process's exit code, None for those still running after ``seconds`` in all."""
    deadline = time.monotonic() + seconds
    codes: dict[str, int | None] = {}
    for name, process in started:
        try:
            codes[name] = process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            codes[name] = None
    return codes


def logs(folder: Path) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in sorted(folder.glob("*.log")))


def param_columns(frame: pd.DataFrame) -> list[str]:
    return ["phase"] + sorted(c for c in frame.columns if c.startswith("param_"))


@pytest.mark.slow
@pytest.mark.parametrize("text", [GRID, COARSE_TO_FINE], ids=["grid", "coarse_to_fine"])
def test_a_chief_and_two_workers_run_every_configuration_exactly_once(tmp_path: Path, text: str) -> None:
    (tmp_path / "small.toml").write_text(text)
    port = str(free_port())
    shared = ["small.toml", "--results", "shared", "--oracle-port", port]
    with processes(tmp_path) as started:
        start(started, tmp_path, "chief", *shared, "--chief", "--workers", "2")
        start(started, tmp_path, "w1", *shared, "--worker", "--tuner-id", "w1")
        start(started, tmp_path, "w2", *shared, "--worker", "--tuner-id", "w2")
        codes = wait_all(started, PROCESS_SECONDS)
    assert codes == {"chief": 0, "w1": 0, "w2": 0}, logs(tmp_path)

    folder = tmp_path / "shared" / "small"
    saved = {path: json.loads(path.read_text()) for path in sorted(folder.glob("tuner/*/trial_*/runs.json"))}
    runs = [run for content in saved.values() for run in content["runs"]]
    trial_ids = [run["trial_id"] for run in runs]
    assert len(trial_ids) == len(set(trial_ids))  # one run per trial (repeats = 1), no trial twice
    configurations = [(run["phase"], run["param_strength"]) for run in runs]
    assert len(configurations) == len(set(configurations))  # no configuration twice
    ran_by = {content["tuner_id"] for content in saved.values()}
    phases = {run["phase"] for run in runs}
    assert ran_by <= {f"{worker}@{phase}" for worker in ("w1", "w2") for phase in phases}

    # The chief's report holds the same configurations as a search in one process.
    assert main([str(tmp_path / "small.toml"), "--results", str(tmp_path / "local"), "--quiet"]) == 0
    local = pd.read_csv(tmp_path / "local" / "small" / "trials.csv")
    chief = pd.read_csv(folder / "trials.csv")
    columns = param_columns(local)
    assert param_columns(chief) == columns
    ordered = lambda frame: frame[columns].sort_values(columns).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(ordered(chief), ordered(local))
    assert len(chief) == len(runs) == len(configurations)
    assert (folder / "summary.md").is_file()
