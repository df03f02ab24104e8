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
- Leases. A worker renews its trial's lease with a heartbeat (Keras Tuner's
  ``GetTrial`` call) every ``lease / 6`` seconds; a worker silent for
  ``lease`` seconds is lost: its trial goes back to Keras Tuner's retry queue
  under its own id, another worker takes it, and the phase no longer waits
  for the lost worker.
- Bounded waits. A worker's every call to the chief gives up after
  ``chief_timeout`` seconds, and is interrupted by Ctrl-C: a worker with no
  chief, or whose chief is gone, stops with one line instead of waiting
  Keras Tuner's hour.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import socket
import threading
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
    "check_address",
    "Leases",
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
IDLE_WAIT_SECONDS = 0.25
# How often the chief checks whether its phase is over and reports finished trials.
POLL_SECONDS = 0.2
# Time in-flight requests get to complete when the chief stops a phase's server.
STOP_GRACE_SECONDS = 5.0
#: A worker silent this long is lost and its trial handed out again (the chief's ``--lease``).
DEFAULT_LEASE_SECONDS = 60.0
#: A worker gives up when the chief has not answered for this long (the worker's ``--chief-timeout``).
DEFAULT_CHIEF_TIMEOUT_SECONDS = 60.0
#: Heartbeats per lease: a worker renews its lease this many times before it would run out.
BEATS_PER_LEASE = 6
#: How long a worker whose chief is gone gives its main thread to stop before it exits anyway.
EXIT_GRACE_SECONDS = 10.0
#: Blocking waits are cut into slices this long, so that Ctrl-C is seen between them.
WAIT_SLICE_SECONDS = 0.25
#: What a worker's call gets from a chief between two phases (a server stopping refuses new calls as CANCELLED):
#: the call is made again until its time is up.
RETRIED_CODES = ("CANCELLED", "UNAVAILABLE")
WHERE = "command line"
#: A worker waiting for its chief tries to connect at least once a second (gRPC's default backoff grows to 120 s,
#: so a worker started well before its chief would notice it up to two minutes late).
RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 1000)]


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


def check_address(where: Endpoint, *, serve: bool) -> None:
    """Refuses an address that does not resolve and, for a chief (``serve``), a port this machine cannot bind.

    Called before anything is printed, locked or served.

    Raises:
        SettingError: Naming ``--oracle-ip`` or ``--oracle-port`` and what was received.
    """
    try:
        addresses = socket.getaddrinfo(where.ip, where.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SettingError("--oracle-ip", "a host name or IP address that resolves", f"{where.ip} ({reason})",
                           WHERE) from None
    if not serve:
        return
    family, kind, protocol, _, address = addresses[0]
    with socket.socket(family, kind, protocol) as probe:
        # As gRPC binds: SO_REUSEADDR (a port left in TIME_WAIT is free), no SO_REUSEPORT (a listener is not).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SettingError("--oracle-port", f"a port free on {where.ip} (another process listens on it)",
                                   where.port, WHERE) from None
            raise SettingError("--oracle-ip", "an address of this machine for the chief to serve on",
                               f"{where.ip} ({error.strerror})", WHERE) from None


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
              if f.name not in ("path", "text", "description", "report", "time_limit")}
    text = json.dumps(fields, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _set_role(tuner_id: str, where: Endpoint) -> None:
    # Keras Tuner reads these when a tuner is built: a worker's tuner then talks
    # to the chief through an OracleClient; the chief's keeps its own oracle.
    os.environ["KERASTUNER_TUNER_ID"] = tuner_id
    os.environ["KERASTUNER_ORACLE_IP"] = where.ip
    os.environ["KERASTUNER_ORACLE_PORT"] = str(where.port)


@dataclasses.dataclass
class ChiefEvents:
    """What the chief reports as it serves: each finished run, the trials in flight, a lost worker."""

    on_run: Callable[[dict], None] | None = None
    on_flight: Callable[[dict[str, str]], None] | None = None
    on_lost: Callable[[str], None] | None = None


def become_chief(where: Endpoint, definition: Any, *, workers: int = 1, lease: float = DEFAULT_LEASE_SECONDS,
                 events: ChiefEvents | None = None) -> Callable[[Any, str], None]:
    """Makes this process the chief; returns what serves each phase (``run_search``'s ``serve``).

    ``lease``: seconds a worker may stay silent before it counts as lost and its trial is handed out again.
    """
    _set_role(CHIEF_ID, where)
    announcement = {"search": definition.name, "fingerprint": fingerprint(definition), "oracle": str(where),
                    "phases": phases(definition), "chief_host": socket.gethostname(), "chief_pid": os.getpid(),
                    "lease_seconds": lease}
    leases = Leases(lease)  # one for the whole search: a worker seen in one phase is awaited in the next

    def serve(tuner: Any, phase: str) -> None:
        serve_phase(tuner, phase, where=where, order=phases(definition), workers=workers, events=events,
                    announcement=announcement, leases=leases)

    return serve


# --- the chief --------------------------------------------------------------


class Leases:
    """When each worker was last heard from, and which ones have been silent for longer than ``seconds``.

    One for a whole search: a worker lost in one phase is not awaited in the next.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.heard_at: dict[str, float] = {}
        self.gone: set[str] = set()  # lost, and not heard from since
        self.lock = threading.Lock()

    def heard(self, worker: str) -> None:
        """``worker`` asked for a trial or renewed its lease."""
        with self.lock:
            self.heard_at[worker] = self.clock()
            self.gone.discard(worker)

    def renew_all(self) -> None:
        """Starts every known worker's lease afresh (a new phase: the chief did not listen in between)."""
        with self.lock:
            now = self.clock()
            self.heard_at = dict.fromkeys(self.heard_at, now)

    def lost(self) -> list[str]:
        """The workers silent for longer than the lease, forgotten from now on (until heard again)."""
        with self.lock:
            now = self.clock()
            gone = sorted(w for w, at in self.heard_at.items() if now - at > self.seconds)
            for worker in gone:
                del self.heard_at[worker]
            self.gone.update(gone)
        return gone


def _worker_of(tuner_id: str) -> str:
    """The worker's own id in a request's ``<worker>@<phase>`` (a plain Keras Tuner worker's id as it is)."""
    return tuner_id.rpartition("@")[0] or tuner_id


def _servicer_class() -> type:
    from keras_tuner.engine import trial as trial_module

    class PhaseServicer(kt_internals.oracle_servicer_class()):
        """Keras Tuner's servicer for one phase; requests name their phase as ``<worker>@<phase>``."""

        def __init__(self, oracle: Any, phase: str, order: list[str], leases: Leases | None = None,
                     workers: int = 1) -> None:
            super().__init__(oracle)
            self.phase, self.order = phase, order
            self.leases = leases if leases is not None else Leases(DEFAULT_LEASE_SECONDS)
            self.stopped_workers: set[str] = set()
            # A population worker asks for more trials as "<worker>@<phase>+<i>": it may hold its share of a
            # planned phase at once, so that every worker gets a chunk (a Bayesian phase has no cap).
            planned = getattr(oracle, "configurations", None)
            self.share = -(-len(planned) // workers) if planned else None

        def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
            worker, _, phase = request.tuner_id.rpartition("@")
            if not worker:  # a plain Keras Tuner worker: this phase
                worker, phase = request.tuner_id, self.phase
            phase, extra, _ = phase.partition("+")
            self.leases.heard(worker)
            if phase != self.phase:
                later = phase in self.order and self.order.index(phase) > self.order.index(self.phase)
                status = trial_module.TrialStatus.IDLE if later else trial_module.TrialStatus.STOPPED
                trial = trial_module.Trial(self.oracle.get_space(), status=status)
            elif extra and self.share is not None and self._held_by(worker) >= self.share:
                trial = trial_module.Trial(self.oracle.get_space(), status=trial_module.TrialStatus.STOPPED)
            else:
                trial = self.oracle.create_trial(request.tuner_id)
                if extra:  # a slot of a worker's batch, not a process the phase must tell to stop
                    kt_internals.forget_tuner_ids(self.oracle, [request.tuner_id])
                elif trial.status == trial_module.TrialStatus.STOPPED:
                    self.stop_triggered = True
                    self.stopped_workers.add(worker)
            return kt_internals.oracle_service().CreateTrialResponse(trial=trial.to_proto())

        def _held_by(self, worker: str) -> int:
            return sum(_worker_of(tuner_id) == worker for tuner_id in list(self.oracle.ongoing_trials))

        def GetTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
            """Keras Tuner's call; from a regsearch worker also the heartbeat that renews its lease."""
            for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
                if trial.trial_id == request.trial_id:
                    self.leases.heard(_worker_of(tuner_id))
            return super().GetTrial(request, context)

    return PhaseServicer


def serve_phase(
    tuner: Any,
    phase: str,
    *,
    where: Endpoint,
    order: list[str],
    workers: int = 1,
    events: ChiefEvents | None = None,
    announcement: dict[str, Any] | None = None,
    leases: Leases | None = None,
) -> None:
    """Serves one phase's oracle until every trial has ended and ``workers`` workers were told to stop or lost.

    Args:
        tuner: The phase's regsearch tuner, built in a chief process (:func:`become_chief`).
        phase: Its phase name.
        where: The address to serve on.
        order: Every phase of the search, in order.
        workers: How many workers must have asked for (and been refused) one more
            trial, or have been lost, before the phase ends; workers that connect
            later than that find the chief gone.
        events: Where finished runs, trials in flight and lost workers are reported.
        announcement: Written to ``<tuner folder>/distributed.json`` before serving:
            workers check it to know that they share the chief's folder and search.
        leases: The workers' leases (:class:`Leases`); a worker silent for longer
            than its lease is lost and the trial it held is handed out again.

    Raises:
        SettingError: The port cannot be bound, or a finished trial's runs are not
            in the results folder (the workers do not share it).
    """
    # The servicer's threads make the oracle save its state while the phase is served.
    with kt_internals.atomic_keras_tuner_state():
        _serve_phase(tuner, phase, where=where, order=order, workers=workers, events=events or ChiefEvents(),
                     announcement=announcement, leases=leases or Leases(DEFAULT_LEASE_SECONDS))


def _serve_phase(tuner: Any, phase: str, *, where: Endpoint, order: list[str], workers: int, events: ChiefEvents,
                 announcement: dict[str, Any] | None, leases: Leases) -> None:
    import grpc

    oracle = tuner.oracle
    oracle.verbose = 0
    _requeue_abandoned(oracle)
    tuner.save()  # the oracle's state on disk before anyone is served (keras-tuner #976)
    if announcement is not None:
        from regsearch.atomic import write_text_atomic

        write_text_atomic(Path(tuner.directory) / STATE_FILE, json.dumps({**announcement, "phase": phase}, indent=1))
    leases.renew_all()
    servicer = _servicer_class()(oracle, phase, order, leases, workers)
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
    flight: dict[str, str] = {}
    server.start()
    try:
        while True:
            _hand_back_lost(oracle, phase, leases, events)
            done = (servicer.stop_triggered and kt_internals.chief_may_exit(oracle)
                    and len(servicer.stopped_workers | leases.gone) >= workers)
            seen = _report_new_runs(tuner, seen, events.on_run)
            now_in_flight = {_worker_of(tuner_id): f"{phase}-{trial.trial_id}"
                             for tuner_id, trial in list(oracle.ongoing_trials.items())}
            if now_in_flight != flight and events.on_flight is not None:
                events.on_flight(now_in_flight)
            flight = now_in_flight
            if done:
                break
            time.sleep(POLL_SECONDS)
    finally:
        server.stop(STOP_GRACE_SECONDS).wait()
    tuner.save()
    _check_runs_visible(tuner)


def _hand_back_lost(oracle: Any, phase: str, leases: Leases, events: ChiefEvents) -> None:
    """Hands out again the trials of workers whose lease ran out, and stops waiting for those workers."""
    for worker in leases.lost():
        held = [tuner_id for tuner_id in list(oracle.ongoing_trials) if _worker_of(tuner_id) == worker]
        requesters = [tuner_id for tuner_id in list(getattr(oracle, "tuner_ids", ())) if _worker_of(tuner_id) == worker]
        trials = kt_internals.hand_back_trials(oracle, sorted(set(held) | set(requesters)))
        if events.on_lost is not None:
            what = (f"trial {', '.join(f'{phase}-{trial}' for trial in trials)} handed out again" if trials
                    else "it held no trial")
            events.on_lost(f"worker {worker} lost (silent for over {leases.seconds:g} s): {what}")


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
    chief_timeout: float = DEFAULT_CHIEF_TIMEOUT_SECONDS,
    engine: str = "population",
    on_start: Callable[[], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    on_run: Callable[[dict], None] | None = None,
) -> None:
    """Runs trials the chief hands out, phase after phase, until it has none left.

    Args:
        definition: The same definition (and overrides) as the chief's, or its
            :class:`~regsearch.definition.plan.Plan` (made here when not given).
        results_dir: The search's folder, shared with the chief.
        where: The chief's address.
        tuner_id: This worker's id (:func:`worker_id`).
        chief_timeout: Seconds to wait for the chief, at the start and whenever it
            stops answering, before giving up.
        engine: ``run_search``'s: ``"population"`` trains the worker's share of a
            phase as one population, ``"sequential"`` one run at a time.
        on_start: Called once the chief answered and shares this results folder.
        on_phase: Called with each phase's name as the worker starts asking for it.
        on_run: Called with each run's record as it finishes.

    Raises:
        SettingError: No chief answered within ``chief_timeout``, or the chief's
            folder is not this one, or it serves another definition.
        SearchFailedError: The coarse grid of ``coarse_to_fine`` has no completed run,
            or the chief stopped answering for ``chief_timeout`` seconds.
    """
    import grpc

    from regsearch.definition.plan import Plan, make_plan

    plan = definition if isinstance(definition, Plan) else make_plan(definition)
    definition = plan.definition
    link = ChiefLink(where, tuner_id, chief_timeout)
    _import_training_stack()  # while the chief, started at the same time, imports it too
    if not link.wait_for_chief():
        raise SettingError("--oracle-ip/--oracle-port", f"the address of a running chief (none answered within "
                           f"{chief_timeout:g} s, --chief-timeout)", str(where), WHERE)
    tuner_dir = results_dir / _tuner_folder()
    lease = _check_same_search(definition, tuner_dir, where)
    if on_start is not None:
        on_start()
    try:
        _run_phases(plan, results_dir, link, lease, engine, on_phase, on_run)
    except (grpc.RpcError, KeyboardInterrupt) as error:
        if isinstance(error, KeyboardInterrupt) and link.lost is None:
            raise
        raise SearchFailedError(link.lost or link.gone_message(error)) from None
    finally:
        link.stop_beating()


def _import_training_stack() -> None:
    """Imports Keras Tuner (and with it Keras and its backend), which every phase's tuner needs.

    A worker does this before it waits for the chief: a chief and workers started together then import at the
    same time, and the first trial starts as soon as the chief serves instead of one import (seconds) later.
    """
    import keras_tuner  # noqa: F401 - imported for its side effect


def _tuner_folder() -> str:
    from regsearch.search import TUNER_FOLDER

    return TUNER_FOLDER


class ChiefLink:
    """A worker's calls to the chief: bounded by ``timeout``, interruptible by Ctrl-C, and a heartbeat per trial."""

    def __init__(self, where: Endpoint, tuner_id: str, timeout: float) -> None:
        self.where, self.tuner_id, self.timeout = where, tuner_id, timeout
        self.lost: str | None = None  # why the worker gave up on the chief, once it has
        self._beating: threading.Event | None = None

    def wait_for_chief(self, timeout: float | None = None) -> bool:
        """Whether the chief's address accepts a connection within ``timeout`` (default: the link's)."""
        import grpc

        with grpc.insecure_channel(str(self.where), options=RECONNECT_OPTIONS) as channel:
            try:
                self._wait(grpc.channel_ready_future(channel), self.timeout if timeout is None else timeout)
            except grpc.FutureTimeoutError:
                return False
        return True

    def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        """Calls one gRPC method of the chief, waiting for it at most ``timeout`` seconds (default: the link's).

        A call the chief refuses while it changes phase (its server stopping, or not serving yet) is made again
        until the time is up: the request names its phase, so the next phase's server answers it rightly.
        """
        import grpc

        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = max(deadline - time.monotonic(), WAIT_SLICE_SECONDS)
            try:
                return self._wait(method.future(request, wait_for_ready=True, timeout=left), None)
            except grpc.RpcError as error:
                if error.code().name not in RETRIED_CODES or time.monotonic() + IDLE_WAIT_SECONDS >= deadline:
                    raise
            time.sleep(IDLE_WAIT_SECONDS)

    @staticmethod
    def _wait(future: Any, timeout: float | None) -> Any:
        import grpc

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    return future.result(timeout=WAIT_SLICE_SECONDS)
                except grpc.FutureTimeoutError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise
        except BaseException:
            future.cancel()
            raise

    def gone_message(self, error: Any) -> str:
        code = error.code().name if hasattr(error, "code") else type(error).__name__
        return (f"worker {self.tuner_id}: the chief at {self.where} did not answer within {self.timeout:g} s "
                f"({code}); it has finished or it is gone (restart it: it resumes)")

    def beat_while_running(self, stub: Any, trial_id: str, interval: float) -> None:
        """Renews the lease on ``trial_id`` every ``interval`` seconds until :meth:`stop_beating`.

        When the chief has not answered for ``timeout`` seconds, the worker gives
        up: its main thread is interrupted and, if it does not stop within
        ``EXIT_GRACE_SECONDS``, the process exits with code 1.
        """
        self.stop_beating()
        stop = self._beating = threading.Event()
        request = kt_internals.oracle_service().GetTrialRequest(trial_id=trial_id)

        def beat() -> None:
            import grpc

            answered = time.monotonic()
            while not stop.wait(interval):
                try:
                    self.call(stub.GetTrial, request, timeout=interval)
                    answered = time.monotonic()
                except grpc.RpcError as error:
                    if time.monotonic() - answered > self.timeout and not stop.is_set():
                        self._give_up(self.gone_message(error))
                        return

        threading.Thread(target=beat, name=f"regsearch-heartbeat-{trial_id}", daemon=True).start()

    def stop_beating(self) -> None:
        if self._beating is not None:
            self._beating.set()
            self._beating = None

    def _give_up(self, message: str) -> None:
        import _thread

        self.lost = message
        _thread.interrupt_main()
        time.sleep(EXIT_GRACE_SECONDS)  # the main thread normally ends the process before this returns
        logging.getLogger(__name__).error("search failed: %s", message)  # the CLI writes it as one line on stderr
        os._exit(1)


def _run_phases(plan: Any, results_dir: Path, link: ChiefLink, lease: float, engine: str,
                on_phase: Callable[[str], None] | None, on_run: Callable[[dict], None] | None) -> None:
    from regsearch import search

    definition, split = plan.definition, plan.split
    arguments = search.fit_arguments(definition, split)
    evaluation = search.evaluation_options(definition, split)
    coarse_hypermodel = hypermodel = plan.hypermodel
    tuner_dir = results_dir / search.TUNER_FOLDER
    for phase in phases(definition):
        if phase == "fine":
            coarse = _saved_records(tuner_dir / "coarse")
            fine = search.fine_definition(definition, coarse_hypermodel, coarse)
            if fine is None:  # every fine strength was measured by the coarse grid: the chief skips it too
                continue
            hypermodel = plan.hypermodel_for(fine)
        elif phase == "baseline":
            hypermodel = plan.hypermodel_for(search.baseline_definition(definition))
        _set_role(f"{link.tuner_id}@{phase}", link.where)
        tuner = search._make_tuner(definition, hypermodel, phase, tuner_dir, on_run, {"engine": engine, **evaluation})
        _follow_chief(tuner, link, lease)
        if on_phase is not None:
            on_phase(phase)
        tuner.search(split.x_train, split.y_train, verbose=0, **arguments)


def _check_same_search(definition: Any, tuner_dir: Path, where: Endpoint) -> float:
    """Refuses a folder the chief did not announce itself in, or another search; returns the chief's lease."""
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
    return float(state.get("lease_seconds", DEFAULT_LEASE_SECONDS))


def _saved_records(project_dir: Path) -> list[dict]:
    from regsearch.runs import RUNS_FILE, load_runs

    return [record for path in sorted(project_dir.glob(f"trial_*/{RUNS_FILE}")) for record in load_runs(path)[0]]


def _follow_chief(tuner: Any, link: ChiefLink, lease: float) -> None:
    """Wraps the tuner's OracleClient: bounded calls, a heartbeat while a trial runs, wait when told "idle",
    refuse a trial from another search space."""
    import keras_tuner as kt
    from keras_tuner.engine import trial as trial_module

    client = tuner.oracle
    stub = client.stub
    kt_internals.route_client_calls(client, link.call)
    ask, end = client.create_trial, client.end_trial
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
                trial.message = f"worker {link.tuner_id} has another search space than the chief's"
                end(trial)
                raise SettingError("search space", f"the chief's {sorted(served)}", sorted(expected), WHERE)
            link.beat_while_running(stub, trial.trial_id, lease / BEATS_PER_LEASE)
        return trial

    def end_trial(trial: Any) -> None:
        link.stop_beating()
        end(trial)

    client.create_trial, client.end_trial = create_trial, end_trial
