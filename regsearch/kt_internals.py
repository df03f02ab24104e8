"""Every touch of keras-tuner's private API, in one place; checked against keras-tuner 1.4.8.

regsearch needs a few things keras-tuner does not export: its checkpoint
callback, its retry queue (to resume a distributed chief and hand back a lost
worker's trial), its gRPC servicer and client, its traceback switch and its JSON
writer. Each is reached through one small function here, whose docstring names
what it relies on; ``tests/test_kt_internals.py`` fails when one of them
changes. Importing this module imports nothing of keras-tuner (the CLI's
``list`` stays free of TensorFlow), and nothing here changes keras-tuner unless
asked: :func:`atomic_keras_tuner_state` and :func:`quiet_failed_trials` swap a
keras-tuner global only while a regsearch tuner works and put it back after.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import threading
from collections.abc import Iterator
from typing import Any

#: The keras-tuner release every touch below was read against.
CHECKED_VERSION = "1.4.8"

#: The modules holding a reference to ``save_json`` that keras-tuner calls (1.4.8: only ``utils`` itself;
#: ``engine/stateful.py`` and ``engine/tuner.py`` call it as ``utils.save_json``).
SAVE_JSON_HOLDERS = ("keras_tuner.src.utils",)


class _Swap:
    """Replaces ``module.attribute`` while at least one user is inside; the first in saves, the last out restores.

    Counting users, not nesting stack frames, keeps nested and concurrent (threaded) uses
    from restoring the original while another user still relies on the replacement.
    """

    def __init__(self, holders: tuple[str, ...], attribute: str) -> None:
        self.holders, self.attribute = holders, attribute
        self.depth = 0
        self.saved: dict[str, Any] = {}
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, value: Any) -> Iterator[None]:
        with self.lock:
            if self.depth == 0:
                modules = [importlib.import_module(name) for name in self.holders]
                self.saved = {module.__name__: getattr(module, self.attribute) for module in modules}
                for module in modules:
                    setattr(module, self.attribute, value)
            self.depth += 1
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0:
                    for name, original in self.saved.items():
                        setattr(importlib.import_module(name), self.attribute, original)
                    self.saved = {}

    def original(self, holder: str) -> Any:
        """The value ``holder`` had before the swap (its current one when no swap is active)."""
        with self.lock:
            if holder in self.saved:
                return self.saved[holder]
        return getattr(importlib.import_module(holder), self.attribute)


_save_json_swap = _Swap(SAVE_JSON_HOLDERS, "save_json")
_debug_swap = _Swap(("keras_tuner.src.config",), "DEBUG")


def save_json_atomic(path: Any, obj: Any) -> str:
    """keras-tuner's ``utils.save_json(path, obj) -> str`` through a temporary file and a rename.

    keras-tuner writes oracle.json, tuner0.json and trial.json in place; a kill
    in the middle of one would leave a file that cannot be reloaded. Remote
    paths (``gs://...``) go to keras-tuner's own writer.
    """
    from regsearch.atomic import write_text_atomic

    if "://" in str(path):
        return _save_json_swap.original(SAVE_JSON_HOLDERS[0])(path, obj)
    text = json.dumps(obj)
    write_text_atomic(path, text)
    return text


def atomic_keras_tuner_state() -> contextlib.AbstractContextManager[None]:
    """Within it, keras-tuner writes its JSON state with :func:`save_json_atomic`.

    Relies on keras-tuner calling ``keras_tuner.src.utils.save_json`` through the
    module attribute (``SAVE_JSON_HOLDERS``). Nested and concurrent uses are safe:
    the original comes back when the last one ends, exception or not. While it is
    active it applies to every keras-tuner object of the process, not only regsearch's.
    """
    return _save_json_swap(save_json_atomic)


def quiet_failed_trials() -> contextlib.AbstractContextManager[None]:
    """Within it, keras-tuner does not print the traceback of a failed trial.

    Relies on ``keras_tuner.src.config.DEBUG``, read by ``BaseTuner._try_run_and_update_trial``;
    regsearch records the reason in runs.json (or trial.json) and trials.csv instead.
    """
    return _debug_swap(False)


def best_epoch_checkpoint(tuner: Any, trial_id: str) -> Any:
    """keras-tuner's own checkpoint callback for a trial, so that ``get_best_models()`` works as usual.

    The weights are written atomically: saved by Keras into a temporary folder, then
    renamed into the trial's folder (:func:`regsearch.atomic.write_bytes_atomic`). A kill
    leaves the last whole checkpoint, and a full disk raises a plain ``OSError`` instead of
    HDF5 failing part-way through the file (which crashed the process).

    Relies on ``tuner_utils.SaveBestEpoch(objective, filepath)``, its ``_save_model()`` (called
    at each better epoch, saving ``self.model``'s weights to ``self.filepath``) and
    ``Tuner._get_checkpoint_fname(trial_id)``.
    """
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    class AtomicSaveBestEpoch(SaveBestEpoch):
        def _save_model(self) -> None:
            import tempfile
            from pathlib import Path

            from regsearch.atomic import write_bytes_atomic

            with tempfile.TemporaryDirectory(prefix="regsearch-checkpoint-") as folder:
                local = Path(folder) / Path(self.filepath).name
                self.model.save_weights(local)
                write_bytes_atomic(self.filepath, local.read_bytes())

    return AtomicSaveBestEpoch(objective=tuner.oracle.objective, filepath=tuner._get_checkpoint_fname(trial_id))


def load_trial_model(tuner: Any, trial: Any) -> Any:
    """``tuner.load_model(trial)`` without its two ``gc.collect()`` calls (each 0.3 to 1 s with TensorFlow loaded).

    Keras Tuner clears the session and collects garbage before each build; this clears the session only (Python's
    collector frees the rest in its own time), builds, and loads the trial's checkpoint, as ``load_model`` does.
    Relies on ``Tuner._build_hypermodel(hp)``, ``Tuner._get_build_config_fname(trial_id)`` and
    ``Tuner._get_checkpoint_fname(trial_id)``, which ``Tuner.load_model`` (keras-tuner 1.4.8) calls.
    """
    import keras

    keras.backend.clear_session(free_memory=False)
    model = tuner._build_hypermodel(trial.hyperparameters)
    if not model.built:
        with open(tuner._get_build_config_fname(trial.trial_id), encoding="utf-8") as config:
            model.build_from_config(json.load(config))
    model.load_weights(tuner._get_checkpoint_fname(trial.trial_id))
    return model


def tuner_callback_types() -> tuple[type, ...]:
    """keras-tuner's own callbacks, which save and report but do not train: ``SaveBestEpoch``, ``TunerCallback``."""
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch, TunerCallback

    return (SaveBestEpoch, TunerCallback)


def copy_callbacks(tuner: Any, callbacks: list[Any]) -> list[Any]:
    """Deep copies of ``callbacks`` as keras-tuner makes per execution; relies on ``Tuner._deepcopy_callbacks``."""
    return tuner._deepcopy_callbacks(callbacks)


def is_worker(tuner: Any) -> bool:
    """Whether the tuner is a distributed worker (its oracle is the chief's); relies on ``BaseTuner._is_worker``."""
    return tuner._is_worker()


def retry_ongoing_trials(oracle: Any) -> None:
    """Moves every running trial of the oracle to its retry queue (see :func:`hand_back_trials`).

    keras-tuner does this itself when an oracle is reloaded; a distributed chief
    resumed with the state it saved before serving needs it again.
    """
    hand_back_trials(oracle, list(getattr(oracle, "ongoing_trials", None) or {}))


def hand_back_trials(oracle: Any, tuner_ids: list[str]) -> list[str]:
    """Puts the trials ``tuner_ids`` run back in the oracle's retry queue and forgets those tuners; returns the trial ids.

    Relies on ``Oracle.ongoing_trials`` (tuner id -> running trial), ``Oracle._retry_queue``
    (trial ids handed out again first, under their own ids) and ``Oracle.tuner_ids`` (the tuners
    not yet told to stop, which ``exit_chief`` waits for). Holds the oracle's lock
    (``keras_tuner.synchronized``) as the servicer's calls do.
    """
    if not tuner_ids or not hasattr(oracle, "_retry_queue"):
        return []
    import keras_tuner as kt

    return kt.synchronized(_hand_back)(oracle, tuner_ids)


def _hand_back(oracle: Any, tuner_ids: list[str]) -> list[str]:
    handed = []
    for tuner_id in tuner_ids:
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        if trial is not None and trial.trial_id not in oracle._retry_queue:
            oracle._retry_queue.append(trial.trial_id)
            handed.append(trial.trial_id)
    forget_tuner_ids(oracle, tuner_ids)
    return handed


def forget_tuner_ids(oracle: Any, tuner_ids: list[str]) -> None:
    """Stops the chief from waiting for ``tuner_ids`` to be told to stop; relies on ``Oracle.tuner_ids`` (a set).

    keras-tuner adds every id that asks for a trial and removes it when it answers
    "stopped"; ``exit_chief`` waits until none is left.
    """
    ids = getattr(oracle, "tuner_ids", None)
    for tuner_id in tuner_ids if ids is not None else ():
        ids.discard(tuner_id)


def route_client_calls(client: Any, call: Any) -> None:
    """Sends every call of a worker's ``OracleClient`` through ``call(method, request)``.

    keras-tuner's client waits up to an hour for each answer, in a call Ctrl-C does
    not interrupt; regsearch's ``call`` bounds the wait and stays interruptible.
    Relies on ``OracleClient.stub`` (the gRPC stub) and on its methods calling
    ``self.stub.<Method>(request, wait_for_ready=True, timeout=TIMEOUT)``: the
    keyword arguments are replaced by ``call``'s own.
    """
    client.stub = _RoutedStub(client.stub, call)


class _RoutedStub:
    def __init__(self, stub: Any, call: Any) -> None:
        self.stub, self.call = stub, call

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.stub, name)
        return lambda request, **_: self.call(method, request)


def oracle_servicer_class() -> type:
    """keras-tuner's gRPC servicer of a chief: ``distribute.oracle_chief.OracleServicer(oracle)``.

    regsearch's subclass relies on its ``oracle`` and ``stop_triggered`` attributes and its
    ``CreateTrial(request, context)`` method.
    """
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    return OracleServicer


def oracle_service() -> Any:
    """The generated protobuf messages of keras-tuner's oracle service: ``protos.get_service()``."""
    from keras_tuner.src import protos

    return protos.get_service()


def add_oracle_servicer(servicer: Any, server: Any) -> None:
    """Registers ``servicer`` on a gRPC ``server``: ``protos.get_service_grpc().add_OracleServicer_to_server``."""
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)


def chief_may_exit(oracle: Any) -> bool:
    """keras-tuner's own test that a chief's trials have all ended: ``distribute.oracle_chief.exit_chief(oracle)``."""
    from keras_tuner.src.distribute.oracle_chief import exit_chief

    return exit_chief(oracle)


def oracle_state_from_trials(oracle: Any, trials: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``oracle.json``'s content rebuilt from the trials' saved states (``trial.json``), for a damaged one.

    Starts from the fresh ``oracle.get_state()`` (its seed and display state) and fills in what
    ``Oracle.get_state`` derives from the trials: the search space (merged from every trial's),
    ``start_order`` and ``end_order`` (by trial id), ``run_times``, ``tried_so_far`` and ``id_to_hash``
    (``Oracle._compute_values_hash`` of each trial's values); trials that were running are
    ``ongoing_trials``, which a reload hands to the retry queue. A Bayesian oracle's random state
    (``seed_state``) starts again from its seed: later proposals may differ from an uninterrupted run's.
    """
    import keras_tuner as kt

    state = oracle.get_state()
    space = oracle.hyperparameters.copy()
    ids = sorted(trials)
    ended = [trial_id for trial_id in ids if trials[trial_id].get("status") in ("COMPLETED", "FAILED", "INVALID")]
    hashes = {}
    for trial_id in ids:
        hyperparameters = kt.HyperParameters.from_config(trials[trial_id]["hyperparameters"])
        space.merge(hyperparameters.space)
        hashes[trial_id] = oracle._compute_values_hash(hyperparameters.values)
    state.update(
        ongoing_trials={f"rebuilt-{trial_id}": trial_id for trial_id in ids if trial_id not in ended},
        hyperparameters=space.get_config(), start_order=ids, end_order=ended,
        run_times={trial_id: 1 for trial_id in ended}, retry_queue=[],
        tried_so_far=sorted(set(hashes.values())), id_to_hash=hashes,
    )
    return state
