"""Distributed search (issue 5.7): Keras Tuner's chief/worker mode through ``--chief`` and ``--worker``."""

from __future__ import annotations

import contextlib
import fcntl
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

from regsearch import distributed, kt_internals
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
repeats = 1

[training]
epochs = 10

[early_stopping]
patience = "none"
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
    "--lease on a worker": (["--worker", "--lease", "5"], "'--lease' must be given only with --chief"),
    "--chief-timeout on a chief": (["--chief", "--chief-timeout", "5"],
                                   "'--chief-timeout' must be given only with --worker"),
    "--lease 0": (["--chief", "--lease", "0"], "'--lease' must be a number of seconds > 0; got 0.0."),
    "--chief-timeout -1": (["--worker", "--chief-timeout", "-1"], "'--chief-timeout' must be a number of seconds > 0"),
    "--lease nan": (["--chief", "--lease", "nan"], "'--lease' must be a number of seconds > 0; got nan."),
    "--lease inf": (["--chief", "--lease", "inf"], "'--lease' must be a number of seconds > 0; got inf."),
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


def planned_oracle(tmp_path: Path, strengths=(0.1, 0.01, 0.001)):
    from regsearch.oracles import PlannedOracle

    oracle = PlannedOracle([{"strength": value} for value in strengths], objective="val_loss")
    oracle._set_project_dir(str(tmp_path), "grid")
    oracle.verbose = 0
    import keras_tuner as kt

    space = kt.HyperParameters()
    space.Choice("strength", list(strengths))
    oracle.update_space(space)
    return oracle


def test_a_resumed_chief_hands_out_again_the_trials_of_workers_that_are_gone(tmp_path: Path) -> None:
    oracle = planned_oracle(tmp_path)
    first, second = oracle.create_trial("w1@grid"), oracle.create_trial("w2@grid")
    distributed._requeue_abandoned(oracle)
    assert oracle.ongoing_trials == {} and sorted(oracle._retry_queue) == sorted([first.trial_id, second.trial_id])


def test_a_lost_workers_trial_goes_back_under_its_own_id_and_the_chief_stops_waiting_for_it(tmp_path: Path) -> None:
    oracle = planned_oracle(tmp_path)
    held = oracle.create_trial("w1@grid")
    oracle.create_trial("w2@grid")
    assert kt_internals.hand_back_trials(oracle, ["w1@grid"]) == [held.trial_id]
    assert "w1@grid" not in oracle.ongoing_trials and "w1@grid" not in oracle.tuner_ids
    again = oracle.create_trial("w3@grid")  # the next worker to ask takes it, same id, same values
    assert (again.trial_id, again.hyperparameters.values) == (held.trial_id, held.hyperparameters.values)
    fresh = oracle.create_trial("w1@grid")  # a restarted w1 gets the configuration nobody holds
    assert fresh.hyperparameters.values == {"strength": 0.001}


def test_a_population_worker_takes_its_share_of_a_planned_phase_in_one_batch(tmp_path: Path) -> None:
    from keras_tuner.src import protos
    from keras_tuner.src.engine import trial as trial_module

    oracle = planned_oracle(tmp_path, strengths=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5))
    servicer = distributed._servicer_class()(oracle, "grid", ["grid"], workers=2)

    def ask(tuner_id: str) -> str:
        request = protos.get_service().CreateTrialRequest(tuner_id=tuner_id)
        return trial_module.TrialStatus.from_proto(servicer.CreateTrial(request, None).trial.status)

    # Five trials, two workers: a share is three, the first asker's batch stops there.
    assert [ask(t) for t in ("w1@grid", "w1@grid+1", "w1@grid+2", "w1@grid+3")] == ["RUNNING"] * 3 + ["STOPPED"]
    assert [ask(t) for t in ("w2@grid", "w2@grid+1", "w2@grid+2")] == ["RUNNING", "RUNNING", "IDLE"]
    assert oracle.tuner_ids == {"w1@grid", "w2@grid"}  # batch slots are not processes the chief waits for
    assert not servicer.stop_triggered and servicer.stopped_workers == set()
    servicer.leases.heard_at["w1"] = -1e9  # w1 lost: the trials of its batch slots go back too
    lost: list[str] = []
    distributed._hand_back_lost(oracle, "grid", servicer.leases, distributed.ChiefEvents(on_lost=lost.append))
    assert lost == ["worker w1 lost (silent for over 60 s): trial grid-0000, grid-0001, grid-0002 handed out again"]
    assert oracle.tuner_ids == {"w2@grid"} and sorted(oracle._retry_queue) == ["0000", "0001", "0002"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_leases_run_out_after_their_seconds_and_a_new_phase_renews_them() -> None:
    clock = Clock()
    leases = distributed.Leases(10, clock)
    leases.heard("w1")
    clock.now += 6
    leases.heard("w2")
    clock.now += 4  # w1 silent exactly 10 s: not yet lost
    assert leases.lost() == []
    clock.now += 0.5
    assert leases.lost() == ["w1"] and leases.gone == {"w1"}
    assert leases.lost() == []  # reported once
    clock.now += 30
    leases.renew_all()  # the chief did not listen between phases: nobody is blamed for that
    clock.now += 9
    assert leases.lost() == []
    clock.now += 2
    assert leases.lost() == ["w2"]


def test_a_heartbeat_renews_the_lease_of_the_worker_holding_the_trial(tmp_path: Path) -> None:
    from keras_tuner.src import protos

    clock = Clock()
    oracle = planned_oracle(tmp_path)
    leases = distributed.Leases(10, clock)
    servicer = distributed._servicer_class()(oracle, "grid", ["grid"], leases)
    ask = lambda worker: servicer.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id=worker), None)  # noqa: E731
    held = ask("w1@grid").trial
    ask("w2@grid")
    clock.now += 8
    servicer.GetTrial(protos.get_service().GetTrialRequest(trial_id=held.trial_id), None)
    clock.now += 8
    lost: list[str] = []
    distributed._hand_back_lost(oracle, "grid", leases, distributed.ChiefEvents(on_lost=lost.append))
    assert lost == ["worker w2 lost (silent for over 10 s): trial grid-0001 handed out again"]
    assert leases.gone == {"w2"} and oracle._retry_queue == ["0001"]
    assert ask("w3@grid").trial.trial_id == "0001"
    ask("w2@grid")  # back: the chief waits for it again
    assert leases.gone == set()


def test_check_address_refuses_what_does_not_resolve_and_a_chief_port_in_use() -> None:
    for bad in ("not an address!", "999.1.2.3", "no-such-host.invalid"):
        with pytest.raises(SettingError, match=f"'--oracle-ip' must be a host name or IP address that resolves; "
                                               f"got '{bad} \\("):
            distributed.check_address(distributed.Endpoint(bad, 8000), serve=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        distributed.check_address(distributed.Endpoint("127.0.0.1", port), serve=False)  # a worker connects there
        with pytest.raises(SettingError, match=f"'--oracle-port' must be a port free on 127.0.0.1 .*; got {port}."):
            distributed.check_address(distributed.Endpoint("127.0.0.1", port), serve=True)
    with pytest.raises(SettingError, match="'--oracle-ip' must be an address of this machine .*; got '192.0.2.1 \\("):
        distributed.check_address(distributed.Endpoint("192.0.2.1", free_port()), serve=True)  # TEST-NET-1
    distributed.check_address(distributed.Endpoint("localhost", free_port()), serve=True)


def test_the_chief_refuses_a_port_in_use(tmp_path: Path) -> None:
    oracle = SimpleNamespace(verbose=1, ongoing_trials={}, _retry_queue=[], trials={})
    tuner = SimpleNamespace(oracle=oracle, save=lambda: None, directory=str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        where = distributed.Endpoint("127.0.0.1", busy.getsockname()[1])
        with pytest.raises(SettingError, match=f"'--oracle-port' must be a port free on 127.0.0.1; got {where.port}"):
            distributed.serve_phase(tuner, "grid", where=where, order=["grid"])


def test_a_worker_with_no_chief_gives_up_after_its_timeout(tmp_path) -> None:
    from regsearch.definition import load_definition

    (tmp_path / "small.toml").write_text(GRID)
    where = distributed.Endpoint("127.0.0.1", free_port())
    started = time.monotonic()
    with pytest.raises(SettingError, match=f"'--oracle-ip/--oracle-port' must be the address of a running chief "
                                           f"\\(none answered within 1.5 s, --chief-timeout\\); got '{where}'"):
        distributed.run_worker(load_definition(str(tmp_path / "small.toml")), tmp_path / "small", where=where,
                               tuner_id="w1", chief_timeout=1.5)
    assert 1.5 <= time.monotonic() - started < 30
    assert not (tmp_path / "small").exists()


def test_a_worker_imports_keras_tuner_before_it_waits_for_the_chief(tmp_path, monkeypatch) -> None:
    from regsearch.definition import load_definition

    (tmp_path / "small.toml").write_text(GRID)
    steps: list[str] = []
    monkeypatch.setattr(distributed, "_import_training_stack", lambda: steps.append("import"))

    def wait_for_chief(self) -> bool:
        steps.append("wait")
        return False

    monkeypatch.setattr(distributed.ChiefLink, "wait_for_chief", wait_for_chief)
    with pytest.raises(SettingError, match="must be the address of a running chief"):
        distributed.run_worker(load_definition(str(tmp_path / "small.toml")), tmp_path / "small",
                               where=distributed.Endpoint("127.0.0.1", free_port()), tuner_id="w1")
    assert steps == ["import", "wait"]


def test_a_worker_waiting_for_the_chief_retries_its_connection_at_least_once_a_second(monkeypatch) -> None:
    import grpc

    given: list = []
    real_channel = grpc.insecure_channel

    def channel(target: str, options=None, **keywords):
        given.extend(options or [])
        return real_channel(target, options, **keywords)

    monkeypatch.setattr(grpc, "insecure_channel", channel)
    with bare_grpc_server() as port:
        assert distributed.ChiefLink(distributed.Endpoint("127.0.0.1", port), "w1", timeout=30).wait_for_chief()
    assert ("grpc.max_reconnect_backoff_ms", 1000) in given


@pytest.mark.parametrize("engine", ["sequential", "population"])
def test_a_worker_trains_with_the_engine_it_is_given(tmp_path, monkeypatch, engine: str) -> None:
    from regsearch import search
    from regsearch.definition import load_definition

    (tmp_path / "small.toml").write_text(GRID)
    definition = load_definition(str(tmp_path / "small.toml"))
    tuner_dir = tmp_path / "small" / search.TUNER_FOLDER
    tuner_dir.mkdir(parents=True)
    (tuner_dir / distributed.STATE_FILE).write_text(json.dumps({"fingerprint": distributed.fingerprint(definition)}))
    monkeypatch.setattr(distributed.ChiefLink, "wait_for_chief", lambda self: True)
    built: list[dict] = []

    def make_tuner(definition, hypermodel, phase, directory, on_run, options):
        built.append(options)
        raise KeyboardInterrupt  # enough: how the first phase's tuner would train

    monkeypatch.setattr(search, "_make_tuner", make_tuner)
    with pytest.raises(KeyboardInterrupt):
        distributed.run_worker(definition, tmp_path / "small", where=distributed.Endpoint("127.0.0.1", free_port()),
                               tuner_id="w1", engine=engine)
    assert built[0]["engine"] == engine


def test_a_worker_takes_the_lease_the_chief_announced(tmp_path) -> None:
    from regsearch.definition import load_definition

    (tmp_path / "small.toml").write_text(GRID)
    definition = load_definition(str(tmp_path / "small.toml"))
    state = {"fingerprint": distributed.fingerprint(definition), "lease_seconds": 7.5}
    (tmp_path / distributed.STATE_FILE).write_text(json.dumps(state))
    assert distributed._check_same_search(definition, tmp_path, distributed.Endpoint("h", 1)) == 7.5


def test_waiting_for_the_chief_stops_at_ctrl_c() -> None:
    import _thread
    import signal
    import threading

    link = distributed.ChiefLink(distributed.Endpoint("127.0.0.1", free_port()), "w1", timeout=600)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited ignored (see above)
    try:
        threading.Timer(0.5, _thread.interrupt_main).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            link.wait_for_chief()
    finally:
        signal.signal(signal.SIGINT, handler)
    assert time.monotonic() - started < 10  # not Keras Tuner's hour, nor the link's 600 s


def test_a_call_to_a_chief_that_is_gone_ends_after_the_timeout() -> None:
    import grpc

    from keras_tuner.src import protos

    link = distributed.ChiefLink(distributed.Endpoint("127.0.0.1", free_port()), "w1", timeout=1)
    with grpc.insecure_channel(str(link.where)) as channel:
        stub = protos.get_service_grpc().OracleStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            link.call(stub.GetSpace, protos.get_service().GetSpaceRequest())
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert link.gone_message(raised.value) == (f"worker w1: the chief at {link.where} did not answer within 1 s "
                                               "(DEADLINE_EXCEEDED); it has finished or it is gone (restart it: it resumes)")


class Answer:
    """A gRPC future already settled: a result, or an error."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def result(self, timeout=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def cancel(self) -> bool:
        return True


class Refusal(Exception):
    """An RpcError with a status code, as a gRPC future raises it."""

    def __init__(self, code: str) -> None:
        import grpc

        super().__init__(code)
        self.status = getattr(grpc.StatusCode, code)

    def code(self):
        return self.status


class Method:
    """A stub's method whose calls end as ``outcomes`` say, one after another."""

    def __init__(self, *outcomes) -> None:
        self.outcomes, self.calls = list(outcomes), 0

    def future(self, request, **keywords):
        self.calls += 1
        return Answer(self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0])


def test_a_call_the_chief_refuses_between_phases_is_made_again_until_the_timeout() -> None:
    import grpc

    class Refused(Refusal, grpc.RpcError):
        """A refusal that is a gRPC error (grpc is imported in tests only where used)."""

    link = distributed.ChiefLink(distributed.Endpoint("127.0.0.1", free_port()), "w1", timeout=30)
    method = Method(Refused("CANCELLED"), Refused("UNAVAILABLE"), "trial")
    assert link.call(method, "request") == "trial" and method.calls == 3
    method = Method(Refused("UNKNOWN"), "trial")  # the chief failed the call: no second try
    with pytest.raises(grpc.RpcError):
        link.call(method, "request")
    assert method.calls == 1
    method = Method(Refused("CANCELLED"))
    with pytest.raises(grpc.RpcError) as raised:
        link.call(method, "request", timeout=1)  # refused for as long as the call may wait: it gives up
    assert raised.value.code() == grpc.StatusCode.CANCELLED and 1 < method.calls


@contextlib.contextmanager
def bare_grpc_server() -> Iterator[int]:
    """A gRPC server with no service: a worker's connection succeeds, nothing else does."""
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0).wait()


#: Bad input a chief or a worker refuses before anything is printed, locked, served or written.
BAD_ADDRESSES = {
    "chief: a malformed address": (["--chief", "--oracle-ip", "not an address!"],
                                   "'--oracle-ip' must be a host name or IP address that resolves"),
    "worker: a malformed address": (["--worker", "--oracle-ip", "999.1.2.3"],
                                    "'--oracle-ip' must be a host name or IP address that resolves"),
    "chief: an unresolvable host": (["--chief", "--oracle-ip", "no-such-host.invalid"],
                                    "'--oracle-ip' must be a host name or IP address that resolves"),
    "worker: an unresolvable host": (["--worker", "--oracle-ip", "no-such-host.invalid"],
                                     "'--oracle-ip' must be a host name or IP address that resolves"),
    "chief: an address of another machine": (["--chief", "--oracle-ip", "192.0.2.1"],
                                             "'--oracle-ip' must be an address of this machine"),
    "chief: a port in use": (["--chief", "--oracle-port", "{busy}"], "'--oracle-port' must be a port free on 127.0.0.1"),
    "worker: no chief": (["--worker", "--oracle-port", "{free}", "--chief-timeout", "1"],
                         "must be the address of a running chief (none answered within 1 s"),
    "worker: a folder the chief does not share": (["--worker", "--oracle-port", "{serving}"],
                                                  "'--results' must be the chief's results folder"),
}


@pytest.mark.parametrize("arguments, message", BAD_ADDRESSES.values(), ids=BAD_ADDRESSES.keys())
def test_bad_addresses_and_folders_exit_2_with_one_line_and_nothing_written(tmp_path, capfd, arguments,
                                                                            message) -> None:
    definition = tmp_path / "small.toml"
    definition.write_text(GRID)
    results = tmp_path / "results"
    with socket.socket() as busy, bare_grpc_server() as serving:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = {"busy": busy.getsockname()[1], "free": free_port(), "serving": serving}
        filled = [argument.format(**ports) for argument in arguments]
        assert main([str(definition), "--results", str(results), *filled]) == 2
    out, error = capfd.readouterr()
    assert message in error and error.count("\n") == 1, error
    assert out == ""  # nothing printed before the refusal
    assert not results.exists()


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


def _ctrl_c_delivered() -> None:
    """In the child: SIGINT at its default, as in a terminal's foreground job.

    A test run started in the background of a shell without job control inherits SIGINT ignored, and
    Python then installs no Ctrl-C handler in the processes it starts.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(started: list, folder: Path, name: str, *arguments: str) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "regsearch", *arguments], stdout=log, stderr=subprocess.STDOUT,
                               cwd=folder, env=env, preexec_fn=_ctrl_c_delivered)
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
def test_a_chief_and_two_workers_run_every_configuration_exactly_once(tmp_path: Path) -> None:
    """Coarse to fine: a grid phase, a fine phase planned from it, then the baseline, each shared by the workers
    (a plain grid is its first and last phases; the phases each strategy plans are tested above)."""
    (tmp_path / "small.toml").write_text(COARSE_TO_FINE)
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
    assert phases == {"coarse", "fine", "baseline"}
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


# --- faults: real processes killed --------------------------------------------------

#: Long enough runs that a process can be killed in the middle of one: four trials of two repeats. A run takes
#: about 0.4 s once its structure is compiled (XLA; the engine keeps its program; the first run compiles, 5-6 s), so
#: a worker killed once its first run of a trial has ended is still in that trial, and a chief killed in w1's second
#: trial leaves that trial, two more and the baseline to its restart.
FAULTS = GRID.replace("epochs = 10", "epochs = 6000").replace("repeats = 1", "repeats = 2")
#: Ctrl-C sent once a first run has ended must land mid-search even on a loaded machine: the runs of ``FAULTS``, but
#: 100 trials, so that the worker has about 80 s of runs left then (never trained: the search stops at the signal;
#: with six trials the worker once ended its last runs before the signal came).
CTRL_C = FAULTS.replace("[1e-1, 1e-2, 1e-3, 1e-4]", str([float(f"{10 ** (-1 - k / 20):.3g}") for k in range(100)]))
SEQUENTIAL = ["--engine", "sequential"]


def wait_for_line(path: Path, text: str, seconds: float = PROCESS_SECONDS, times: int = 1) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text(errors="replace").count(text) >= times:
            return
        time.sleep(0.05)  # a kill on this line lands soon after it (a run is about 0.4 s)
    raise AssertionError(f"{text!r} never appeared in {path}")


def same_runs(folder: Path, reference: Path) -> None:
    """trials.csv equal, the seconds and worker columns aside."""
    frames = []
    for path in (folder / "trials.csv", reference / "trials.csv"):
        frame = pd.read_csv(path).drop(columns=["seconds", "worker"])
        frames.append(frame.sort_values(["trial_id", "repeat"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(*frames)


@pytest.fixture(scope="session")
def faults_in_one_process(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The single-process reference run, made once for all test workers (pytest-xdist's recipe, with flock)."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "faults_in_one_process"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            (root / "faults.toml").write_text(FAULTS)
            assert main([str(root / "faults.toml"), "--results", str(root / "results"), "--quiet", *SEQUENTIAL]) == 0
            (root / "done").touch()
    return root / "results" / "faults"


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_only_that_trial(tmp_path: Path, faults_in_one_process: Path) -> None:
    (tmp_path / "faults.toml").write_text(FAULTS)
    shared = ["faults.toml", "--results", "shared", "--oracle-port", str(free_port()), *SEQUENTIAL]
    with processes(tmp_path) as started:
        start(started, tmp_path, "chief", *shared, "--chief", "--workers", "2", "--lease", "6")
        start(started, tmp_path, "w1", *shared, "--worker", "--tuner-id", "w1")
        start(started, tmp_path, "w2", *shared, "--worker", "--tuner-id", "w2")
        wait_for_line(tmp_path / "w1.log", " run 0: ")  # the first run of w1's trial has ended: it is in the second
        started[1][1].kill()
        codes = wait_all(started, PROCESS_SECONDS)
    assert codes == {"chief": 0, "w1": -9, "w2": 0}, logs(tmp_path)
    chief = (tmp_path / "chief.log").read_text()
    assert "worker w1 lost (silent for over 6 s): trial grid-" in chief and " handed out again" in chief, chief
    folder = tmp_path / "shared" / "faults"
    same_runs(folder, faults_in_one_process)
    workers = pd.read_csv(folder / "trials.csv").groupby("trial_id")["worker"].agg(set)
    assert set().union(*workers) <= {"w1", "w2"} and all(len(w) == 1 for w in workers)  # a trial's runs: one worker
    assert (pd.read_csv(faults_in_one_process / "trials.csv")["worker"] == "tuner0").all()


@pytest.mark.slow
def test_workers_of_a_killed_chief_exit_and_a_restart_resumes(tmp_path: Path, faults_in_one_process: Path) -> None:
    (tmp_path / "faults.toml").write_text(FAULTS)
    shared = ["faults.toml", "--results", "shared", "--oracle-port", str(free_port()), *SEQUENTIAL]
    folder = tmp_path / "shared" / "faults"
    with processes(tmp_path) as started:
        start(started, tmp_path, "chief", *shared, "--chief", "--workers", "1")
        start(started, tmp_path, "w1", *shared, "--worker", "--tuner-id", "w1", "--chief-timeout", "4")
        # A run of w1's second trial has ended: the first trial's end has reached the chief.
        wait_for_line(tmp_path / "w1.log", " run 0: ", times=2)
        started[0][1].kill()
        killed = time.monotonic()
        code = started[1][1].wait(timeout=PROCESS_SECONDS)
        waited = time.monotonic() - killed
    assert code == 1, logs(tmp_path)
    last = (tmp_path / "w1.log").read_text().strip().splitlines()[-1]
    assert last.startswith("regsearch: search failed: worker w1: the chief at 127.0.0.1:") and "within 4 s" in last
    assert waited < 4 + distributed.EXIT_GRACE_SECONDS + 30  # the timeout, the grace, a loaded machine's slack
    # Finished: the chief recorded the trial's end (a worker may write a trial's runs after its chief died).
    finished = {path: path.stat().st_mtime_ns for path in folder.glob("tuner/*/trial_*/runs.json")
                if json.loads((path.parent / "trial.json").read_text())["status"] == "COMPLETED"}
    assert finished

    for log in tmp_path.glob("*.log"):
        log.rename(log.with_suffix(".first"))
    with processes(tmp_path) as started:
        start(started, tmp_path, "chief", *shared, "--chief", "--workers", "1")
        start(started, tmp_path, "w1", *shared, "--worker", "--tuner-id", "w1")
        codes = wait_all(started, PROCESS_SECONDS)
    assert codes == {"chief": 0, "w1": 0}, logs(tmp_path)
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # nothing finished was run again
    same_runs(folder, faults_in_one_process)


@pytest.mark.slow
def test_ctrl_c_stops_a_worker_and_a_chief_promptly_leaving_no_partial_file(tmp_path: Path) -> None:
    import signal

    (tmp_path / "ctrl_c.toml").write_text(CTRL_C)
    shared = ["ctrl_c.toml", "--results", "shared", "--oracle-port", str(free_port()), *SEQUENTIAL]
    with processes(tmp_path) as started:
        start(started, tmp_path, "chief", *shared, "--chief", "--workers", "1")
        start(started, tmp_path, "w1", *shared, "--worker", "--tuner-id", "w1")
        wait_for_line(tmp_path / "w1.log", " run 0: ")  # in the middle of a trial, 199 runs and the baseline's left
        codes = {}
        for name, process in reversed(started):
            process.send_signal(signal.SIGINT)
            codes[name] = process.wait(timeout=60)
    assert codes == {"w1": 130, "chief": 130}, logs(tmp_path)
    for name in ("w1", "chief"):
        last = (tmp_path / f"{name}.log").read_text().strip().splitlines()[-1]
        assert last == "regsearch: interrupted; run the same command again to resume", logs(tmp_path)
    assert not [p for p in (tmp_path / "shared").rglob("*") if p.name.endswith(".tmp")]
