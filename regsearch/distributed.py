"""Distributed search on Keras Tuner's own chief/worker mode (gRPC).

One chief process owns the oracle and serves it over gRPC; any number of worker
processes, on one machine or many, ask it for trials, train them and report
back, as in Keras Tuner's distributed tuning (``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``). Workers write each
trial's ``runs.json`` and checkpoint into the results folder, so the chief and
every worker must see the same folder (one machine, or a shared filesystem);
the chief reads the runs back and writes the report as a local search does.

What regsearch adds to Keras Tuner's protocol:

- Phases. ``coarse_to_fine`` serves the coarse grid, then the fine grid, on the
  same address. A worker asks for trials as ``<worker id>@<phase>``; the chief
  answers "stopped" to a phase it has finished and "idle" (ask again) to one it
  has not reached, so a worker never runs a trial of one phase as another's.
  Once its coarse search stops, the coarse grid is complete, and a worker
  derives the fine grid from the shared coarse runs as the chief does.
- Checks before any trial runs: a worker waits for the chief, then refuses to
  start unless it sees the chief's ``distributed.json`` in its results folder
  (the folder is shared) with the same definition fingerprint (same search,
  same ``--epochs``/``--max-trials``/``--repeats``); each trial's search space
  is compared with the worker's own as well.
- The chief ends a phase when every trial has ended and at least ``workers``
  workers have been told to stop (Keras Tuner's chief polls every 20 s and
  never stops its server), then stops the server before the next phase.
- Resuming: trials a previous chief had handed to workers that are gone are
  handed out again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Callable

from regsearch import kt_internals
from regsearch.errors import SearchFailedError, SettingError

__all__ = [
    "DEFAULT_IP",
    "DEFAULT_PORT",
    "Endpoint",
    "endpoint",
    "phases",
    "worker_id",
    "become_chief",
    "serve_phase",
    "run_worker",
]

DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 8000
STATE_FILE = "distributed.json"
CHIEF_ID = "chief"
# A worker that is told "idle" (the phase it wants has not started) asks again after this long.
IDLE_WAIT_SECONDS = 1.0
# How often the chief checks whether its phase is over and reports finished trials.
POLL_SECONDS = 0.5
# Time in-flight requests get to complete when the chief stops a phase's server.
STOP_GRACE_SECONDS = 5.0
WHERE = "command line"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the chief serves its oracle."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


def endpoint(ip: str | None = None, port: int | str | None = None) -> Endpoint:
    """The chief's address: the arguments, else Keras Tuner's variables, else ``127.0.0.1:8000``.

    Raises:
        SettingError: A port that is not an integer in 1..65535, or an empty address.
    """
    ip = ip if ip is not None else os.environ.get("KERASTUNER_ORACLE_IP", DEFAULT_IP)
    raw_port = port if port is not None else os.environ.get("KERASTUNER_ORACLE_PORT", DEFAULT_PORT)
    if not str(ip).strip():
        raise SettingError("--oracle-ip", "a host name or IP address", ip, WHERE)
    try:
        number = int(raw_port)
    except (TypeError, ValueError):
        number = -1
    if isinstance(raw_port, bool) or not 1 <= number <= 65535:
        raise SettingError("--oracle-port", "an integer port in 1..65535 (or KERASTUNER_ORACLE_PORT)", raw_port, WHERE)
    return Endpoint(str(ip).strip(), number)


def worker_id(given: str | None = None) -> str:
    """This worker's id: the argument, else ``KERASTUNER_TUNER_ID``, else ``worker-<host>-<pid>``.

    A worker restarted with the same id takes over the trial its predecessor left.

    Raises:
        SettingError: An id Keras Tuner would take for the chief's (it contains
            "chief"), or one with "@" or a path separator.
    """
    tuner_id = given if given is not None else os.environ.get("KERASTUNER_TUNER_ID")
    if tuner_id is None:
        return f"worker-{socket.gethostname()}-{os.getpid()}"
    bad = "chief" in tuner_id or any(c in tuner_id for c in "@/\\") or not tuner_id.strip()
    if bad:
        raise SettingError("--tuner-id", "a non-empty id without 'chief', '@' or '/' (Keras Tuner reserves 'chief')",
                           tuner_id, WHERE)
    return tuner_id


def phases(definition: Any) -> list[str]:
    """The definition's phases, in the order the chief serves them."""
    from regsearch.search import phases as search_phases

    return search_phases(definition)


def fingerprint(definition: Any) -> str:
    """A digest of everything that decides what a trial trains (not the file's path or comments)."""
    fields = {f.name: getattr(definition, f.name) for f in dataclasses.fields(definition)
              if f.name not in ("path", "text", "description", "report")}
    text = json.dumps(fields, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _set_role(tuner_id: str, where: Endpoint) -> None:
    # Keras Tuner reads these when a tuner is built: a worker's tuner then talks
    # to the chief through an OracleClient; the chief's keeps its own oracle.
    os.environ["KERASTUNER_TUNER_ID"] = tuner_id
    os.environ["KERASTUNER_ORACLE_IP"] = where.ip
    os.environ["KERASTUNER_ORACLE_PORT"] = str(where.port)


def become_chief(where: Endpoint, definition: Any, *, workers: int = 1,
                 on_run: Callable[[dict], None] | None = None) -> Callable[[Any, str], None]:
    """Makes this process the chief; returns what serves each phase (``run_search``'s ``serve``)."""
    _set_role(CHIEF_ID, where)
    announcement = {"search": definition.name, "fingerprint": fingerprint(definition), "oracle": str(where),
                    "phases": phases(definition), "chief_host": socket.gethostname(), "chief_pid": os.getpid()}

    def serve(tuner: Any, phase: str) -> None:
        serve_phase(tuner, phase, where=where, order=phases(definition), workers=workers, on_run=on_run,
                    announcement=announcement)

    return serve


# --- the chief --------------------------------------------------------------


def _servicer_class() -> type:
    from keras_tuner.engine import trial as trial_module

    class PhaseServicer(kt_internals.oracle_servicer_class()):
        """Keras Tuner's servicer for one phase; requests name their phase as ``<worker>@<phase>``."""

        def __init__(self, oracle: Any, phase: str, order: list[str]) -> None:
            super().__init__(oracle)
            self.phase, self.order = phase, order
            self.stopped_workers: set[str] = set()

        def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
            worker, _, phase = request.tuner_id.rpartition("@")
            if not worker:  # a plain Keras Tuner worker: this phase
                worker, phase = request.tuner_id, self.phase
            if phase != self.phase:
                later = phase in self.order and self.order.index(phase) > self.order.index(self.phase)
                status = trial_module.TrialStatus.IDLE if later else trial_module.TrialStatus.STOPPED
                trial = trial_module.Trial(self.oracle.get_space(), status=status)
            else:
                trial = self.oracle.create_trial(request.tuner_id)
                if trial.status == trial_module.TrialStatus.STOPPED:
                    self.stop_triggered = True
                    self.stopped_workers.add(worker)
            return kt_internals.oracle_service().CreateTrialResponse(trial=trial.to_proto())

    return PhaseServicer


def serve_phase(
    tuner: Any,
    phase: str,
    *,
    where: Endpoint,
    order: list[str],
    workers: int = 1,
    on_run: Callable[[dict], None] | None = None,
    announcement: dict[str, Any] | None = None,
) -> None:
    """Serves one phase's oracle until every trial has ended and ``workers`` workers were told to stop.

    Args:
        tuner: The phase's regsearch tuner, built in a chief process (:func:`become_chief`).
        phase: Its phase name.
        where: The address to serve on.
        order: Every phase of the search, in order.
        workers: How many workers must have asked for (and been refused) one more
            trial before the phase ends; workers that connect later than that find
            the chief gone.
        on_run: Called with every run of a trial a worker finished, as it is seen.
        announcement: Written to ``<tuner folder>/distributed.json`` before serving:
            workers check it to know that they share the chief's folder and search.

    Raises:
        SettingError: The port cannot be bound, or a finished trial's runs are not
            in the results folder (the workers do not share it).
    """
    # The servicer's threads make the oracle save its state while the phase is served.
    with kt_internals.atomic_keras_tuner_state():
        _serve_phase(tuner, phase, where=where, order=order, workers=workers, on_run=on_run,
                     announcement=announcement)


def _serve_phase(tuner: Any, phase: str, *, where: Endpoint, order: list[str], workers: int,
                 on_run: Callable[[dict], None] | None, announcement: dict[str, Any] | None) -> None:
    import grpc

    oracle = tuner.oracle
    oracle.verbose = 0
    _requeue_abandoned(oracle)
    tuner.save()  # the oracle's state on disk before anyone is served (keras-tuner #976)
    if announcement is not None:
        from regsearch.atomic import write_text_atomic

        write_text_atomic(Path(tuner.directory) / STATE_FILE, json.dumps({**announcement, "phase": phase}, indent=1))
    servicer = _servicer_class()(oracle, phase, order)
    # Without so_reuseport a second server on the port is an error, not a silent load-balancer.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)])
    kt_internals.add_oracle_servicer(servicer, server)
    try:
        bound = server.add_insecure_port(str(where))
    except RuntimeError:
        bound = 0
    if not bound:
        raise SettingError("--oracle-port", f"a port free on {where.ip}", where.port, WHERE)
    seen = _finished_trials(tuner)
    server.start()
    try:
        while True:
            done = (servicer.stop_triggered and kt_internals.chief_may_exit(oracle)
                    and len(servicer.stopped_workers) >= workers)
            seen = _report_new_runs(tuner, seen, on_run)
            if done:
                break
            time.sleep(POLL_SECONDS)
    finally:
        server.stop(STOP_GRACE_SECONDS).wait()
    tuner.save()
    _check_runs_visible(tuner)


def _requeue_abandoned(oracle: Any) -> None:
    """Hands out again the trials a previous chief had given to workers (a resumed search)."""
    kt_internals.retry_ongoing_trials(oracle)


def _finished_trials(tuner: Any) -> set[str]:
    return {trial_id for trial_id, trial in list(tuner.oracle.trials.items()) if trial.status in ("COMPLETED", "FAILED")}


def _report_new_runs(tuner: Any, seen: set[str], on_run: Callable[[dict], None] | None) -> set[str]:
    finished = _finished_trials(tuner)
    if on_run is not None:
        from regsearch.runs import RUNS_FILE

        for trial_id in sorted(finished - seen):
            path = Path(tuner.get_trial_dir(trial_id)) / RUNS_FILE
            if path.is_file():
                for record in json.loads(path.read_text(encoding="utf-8"))["runs"]:
                    on_run(record)
    return finished


def _check_runs_visible(tuner: Any) -> None:
    from regsearch.runs import RUNS_FILE

    missing = [trial_id for trial_id, trial in sorted(tuner.oracle.trials.items())
               if trial.status == "COMPLETED" and not (Path(tuner.get_trial_dir(trial_id)) / RUNS_FILE).is_file()]
    if missing:
        raise SettingError(
            "--results", "the same folder for the chief and every worker (one machine, or a shared filesystem)",
            f"{len(missing)} trials of phase '{tuner.project_name}' finished without a {RUNS_FILE} in "
            f"{tuner.project_dir} (first: trial {missing[0]})", "distributed search")


# --- a worker ---------------------------------------------------------------


def run_worker(
    definition: Any,
    results_dir: Path,
    *,
    where: Endpoint,
    tuner_id: str,
    on_phase: Callable[[str], None] | None = None,
    on_run: Callable[[dict], None] | None = None,
) -> None:
    """Runs trials the chief hands out, phase after phase, until it has none left.

    Args:
        definition: The same definition (and overrides) as the chief's.
        results_dir: The search's folder, shared with the chief.
        where: The chief's address.
        tuner_id: This worker's id (:func:`worker_id`).
        on_phase: Called with each phase's name as the worker starts asking for it.
        on_run: Called with each run's record as it finishes.

    Raises:
        SettingError: The chief's folder is not this one, or serves another definition.
        SearchFailedError: The coarse grid of ``coarse_to_fine`` has no completed run, or
            the chief stopped answering (Keras Tuner's client waits an hour for it).
    """
    import grpc

    try:
        _run_phases(definition, results_dir, where, tuner_id, on_phase, on_run)
    except grpc.RpcError as error:
        code = error.code().name if hasattr(error, "code") else type(error).__name__
        raise SearchFailedError(f"worker {tuner_id}: the chief at {where} did not answer ({code}); it has "
                                "finished (start workers while it runs, or give the chief --workers N) "
                                "or it is gone") from None


def _run_phases(definition: Any, results_dir: Path, where: Endpoint, tuner_id: str,
                on_phase: Callable[[str], None] | None, on_run: Callable[[dict], None] | None) -> None:
    from regsearch import search
    from regsearch.definition.build import load_data, make_hypermodel

    split = load_data(definition)
    arguments = search.fit_arguments(definition, split)
    evaluation = search.evaluation_options(definition, split)
    coarse_hypermodel = hypermodel = make_hypermodel(definition, split)
    tuner_dir = results_dir / search.TUNER_FOLDER
    for index, phase in enumerate(phases(definition)):
        if phase == "fine":
            coarse = _saved_records(tuner_dir / "coarse")
            fine = search.fine_definition(definition, coarse_hypermodel, coarse)
            if fine is None:  # every fine strength was measured by the coarse grid: the chief skips it too
                continue
            hypermodel = make_hypermodel(fine, split)
        elif phase == "baseline":
            hypermodel = make_hypermodel(search.baseline_definition(definition), split)
        _set_role(f"{tuner_id}@{phase}", where)
        tuner = search._make_tuner(definition, hypermodel, phase, tuner_dir, on_run, evaluation)
        if index == 0:
            tuner.oracle.get_space()  # waits for the chief
            _check_same_search(definition, tuner_dir, where)
        _follow_chief(tuner, tuner_id)
        if on_phase is not None:
            on_phase(phase)
        tuner.search(split.x_train, split.y_train, verbose=0, **arguments)


def _check_same_search(definition: Any, tuner_dir: Path, where: Endpoint) -> None:
    path = tuner_dir / STATE_FILE
    if not path.is_file():
        raise SettingError("--results", f"the chief's results folder (the chief at {where} wrote no {STATE_FILE} "
                           "here: share the folder, e.g. on a shared filesystem, and pass the same --results)",
                           str(tuner_dir.parent), WHERE)
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("fingerprint") != fingerprint(definition):
        raise SettingError("search", f"the chief's: '{state.get('search')}' with the same definition and overrides "
                           "(--epochs, --max-trials, --repeats) on every process", f"'{definition.name}' with other settings",
                           WHERE)


def _saved_records(project_dir: Path) -> list[dict]:
    from regsearch.runs import RUNS_FILE, load_runs

    return [record for path in sorted(project_dir.glob(f"trial_*/{RUNS_FILE}")) for record in load_runs(path)[0]]


def _follow_chief(tuner: Any, tuner_id: str) -> None:
    """Wraps the tuner's OracleClient: wait when told "idle", refuse a trial from another search space."""
    import keras_tuner as kt
    from keras_tuner.engine import trial as trial_module

    client = tuner.oracle
    ask = client.create_trial
    local = kt.HyperParameters()
    tuner.hypermodel.declare_hyperparameters(local)
    tuner.hypermodel.describe(local)
    expected = {p.name: p.get_config() for p in local.space}

    def create_trial(requester: str) -> Any:
        trial = ask(requester)
        if trial.status == trial_module.TrialStatus.IDLE:
            time.sleep(IDLE_WAIT_SECONDS)
        elif trial.status == trial_module.TrialStatus.RUNNING:
            served = {p.name: p.get_config() for p in trial.hyperparameters.space}
            if served != expected:
                # Give the trial back as failed, or the chief would wait for it forever.
                trial.status = trial_module.TrialStatus.FAILED
                trial.message = f"worker {tuner_id} has another search space than the chief's"
                client.end_trial(trial)
                raise SettingError("search space", f"the chief's {sorted(served)}", sorted(expected), WHERE)
        return trial

    client.create_trial = create_trial
