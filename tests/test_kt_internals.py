"""regsearch.kt_internals: keras-tuner's private API, touched in one place and only in scope.

Importing regsearch leaves keras-tuner as it was; its JSON state is written
atomically only while a regsearch tuner works (built, searching, saving,
reloading, or serving as a distributed chief). The contract tests at the end
fail, naming the installed keras-tuner, when one of the private names
kt_internals relies on changes.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras_tuner as kt
import pytest
from keras_tuner.src import config as kt_config
from keras_tuner.src import utils as kt_utils

from fake_hypermodel import FakeHyperModel, make_tuner, search
from regsearch import distributed, kt_internals
from regsearch.errors import SettingError

ORIGINAL_SAVE_JSON = kt_utils.save_json
KERAS_TUNER = f"keras-tuner {kt.__version__} (kt_internals was checked against {kt_internals.CHECKED_VERSION})"


def atomic_installed() -> bool:
    return kt_utils.save_json is kt_internals.save_json_atomic


# --- no patch at import time ------------------------------------------------------------------


def test_importing_regsearch_leaves_keras_tuner_as_it_was() -> None:
    # A fresh process: in this one other tests have imported everything already.
    program = textwrap.dedent("""
        import sys
        import regsearch.distributed, regsearch.kt_internals
        assert "keras_tuner" not in sys.modules, "importing kt_internals or distributed imported keras-tuner"
        from keras_tuner.src import config, utils
        original = utils.save_json
        import regsearch, regsearch.tuners, regsearch.search, regsearch.hypermodels
        regsearch.GridSearch
        assert utils.save_json is original, f"save_json is {utils.save_json!r} after importing regsearch"
        assert config.DEBUG is True, "config.DEBUG changed by importing regsearch"
        print("unchanged")
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("unchanged")


# --- the scope ----------------------------------------------------------------------------------


def test_the_atomic_writer_is_installed_inside_the_scope_only() -> None:
    assert not atomic_installed()
    with kt_internals.atomic_keras_tuner_state():
        assert atomic_installed()
    assert kt_utils.save_json is ORIGINAL_SAVE_JSON


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_the_original_writer_comes_back_after_an_exception(error: type[BaseException]) -> None:
    with pytest.raises(error), kt_internals.atomic_keras_tuner_state():
        raise error("inside")
    assert kt_utils.save_json is ORIGINAL_SAVE_JSON
    with kt_internals.atomic_keras_tuner_state():  # and the next scope still installs it
        assert atomic_installed()


def test_nested_scopes_restore_only_when_the_outermost_ends() -> None:
    with kt_internals.atomic_keras_tuner_state():
        with kt_internals.atomic_keras_tuner_state():
            assert atomic_installed()
        assert atomic_installed()
        with pytest.raises(RuntimeError), kt_internals.atomic_keras_tuner_state():
            raise RuntimeError("inner")
        assert atomic_installed()
    assert kt_utils.save_json is ORIGINAL_SAVE_JSON


def test_overlapping_scopes_as_threads_use_them_restore_when_the_last_ends() -> None:
    first, second = kt_internals.atomic_keras_tuner_state(), kt_internals.atomic_keras_tuner_state()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to leave is not the last in
    assert atomic_installed()
    second.__exit__(None, None, None)
    assert kt_utils.save_json is ORIGINAL_SAVE_JSON


def test_failed_trial_tracebacks_are_quiet_in_scope_only() -> None:
    assert kt_config.DEBUG is True
    with kt_internals.quiet_failed_trials():
        with kt_internals.quiet_failed_trials():
            assert kt_config.DEBUG is False
        assert kt_config.DEBUG is False
    assert kt_config.DEBUG is True
    with pytest.raises(ValueError), kt_internals.quiet_failed_trials():
        raise ValueError("inside")
    assert kt_config.DEBUG is True


def test_the_atomic_writer_writes_what_keras_tuner_would(tmp_path: Path) -> None:
    path = tmp_path / "oracle.json"
    state = {"trials": ["00", "01"], "score": 0.5}
    assert kt_internals.save_json_atomic(str(path), state) == ORIGINAL_SAVE_JSON(str(tmp_path / "kt.json"), state)
    assert path.read_text() == (tmp_path / "kt.json").read_text()
    assert kt_utils.load_json(str(path)) == state


def test_remote_paths_go_to_the_writer_the_scope_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    remote: list[str] = []

    def keras_tuners_writer(path: str, obj: Any) -> str:
        remote.append(path)
        return json.dumps(obj)

    monkeypatch.setattr(kt_utils, "save_json", keras_tuners_writer)
    with kt_internals.atomic_keras_tuner_state():
        kt_utils.save_json("gs://bucket/oracle.json", {"a": 1})
        assert atomic_installed()
    assert remote == ["gs://bucket/oracle.json"]
    assert kt_utils.save_json is keras_tuners_writer


# --- regsearch's tuners write atomically, Keras Tuner's own do not change ----------------------------


class Writes:
    """Counts the state files written by the atomic writer and by Keras Tuner's original ``save_json``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import regsearch.atomic

        self.atomic: list[str] = []
        self.original: list[str] = []
        real_atomic = regsearch.atomic.write_text_atomic

        def atomic(path: Any, text: str, *args: Any, **kwargs: Any) -> Any:
            self.atomic.append(str(path))
            return real_atomic(path, text, *args, **kwargs)

        def original(path: Any, obj: Any) -> str:
            self.original.append(str(path))
            return ORIGINAL_SAVE_JSON(path, obj)

        # kt_internals looks write_text_atomic up when it writes; regsearch's scope saves and
        # restores whatever save_json is when it starts: this counting one.
        monkeypatch.setattr(regsearch.atomic, "write_text_atomic", atomic)
        monkeypatch.setattr(kt_utils, "save_json", original)

    def names(self, paths: list[str], root: Path) -> set[str]:
        return {Path(p).relative_to(root).as_posix() for p in paths}


def state_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.json") if p.name != "runs.json"}


@pytest.mark.parametrize("kind", ["grid", "bayesian"])
def test_a_regsearch_search_writes_keras_tuners_state_atomically(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(monkeypatch)
    extra = {"max_trials": 3, "num_initial_points": 2} if kind == "bayesian" else {}
    tuner = make_tuner(kind, FakeHyperModel([1, 2, 3]), tmp_path, **extra)
    search(tuner)
    tuner.save()

    assert writes.original == []
    written = state_files(tmp_path)
    assert {f"{kind}/oracle.json", f"{kind}/tuner0.json"} <= written, written
    assert len([name for name in written if name.endswith("/trial.json")]) == 3, written
    assert writes.names(writes.atomic, tmp_path) >= written
    for name in written:
        json.loads((tmp_path / name).read_text())  # whole files
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert kt_utils.save_json is not kt_internals.save_json_atomic


class BlackBoxGrid(kt.GridSearch):
    """A stock Keras Tuner GridSearch, used as its docs show for a black-box function."""

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> float:
        return float(trial.hyperparameters.Choice("x", [1, 2, 3]))


def test_a_stock_keras_tuner_search_after_a_regsearch_one_uses_keras_tuners_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(monkeypatch)
    search(make_tuner("grid", FakeHyperModel([1, 2]), tmp_path / "regsearch"))
    assert writes.original == [] and writes.atomic

    writes.atomic.clear()
    stock = BlackBoxGrid(objective=kt.Objective("score", "max"), directory=str(tmp_path / "stock"),
                         project_name="stock")
    stock.search(verbose=0)

    assert writes.atomic == []
    written = state_files(tmp_path / "stock")
    assert {"stock/oracle.json", "stock/tuner0.json"} <= written, written
    assert writes.names(writes.original, tmp_path / "stock") >= written
    assert len(stock.oracle.trials) == 3


class ScopeSpy(FakeHyperModel):
    """Records whether the atomic writer is installed each time Keras Tuner builds it (it does, building a tuner)."""

    def __init__(self, values: list[int]) -> None:
        super().__init__(values)
        self.in_scope: list[bool] = []

    def build(self, hp: kt.HyperParameters) -> Any:
        self.in_scope.append(atomic_installed())
        return super().build(hp)


def test_building_and_reloading_a_regsearch_tuner_run_in_scope(tmp_path: Path, monkeypatch) -> None:
    fresh = ScopeSpy([1, 2])
    tuner = make_tuner("grid", fresh, tmp_path)
    assert fresh.in_scope and all(fresh.in_scope)
    assert not atomic_installed()
    search(tuner)
    seen: list[bool] = []
    real_load = kt_utils.load_json

    def load_json(path: str) -> Any:
        seen.append(atomic_installed())
        return real_load(path)

    monkeypatch.setattr(kt_utils, "load_json", load_json)
    tuner = make_tuner("grid", FakeHyperModel([1, 2]), tmp_path)  # reloads the saved state
    assert seen and all(seen)
    seen.clear()
    tuner.reload()
    assert seen and all(seen)
    assert not atomic_installed()


def test_a_distributed_chief_serves_in_scope_and_restores_after(tmp_path: Path) -> None:
    import socket

    saved_atomically: list[bool] = []
    oracle = SimpleNamespace(verbose=1, ongoing_trials={}, _retry_queue=[], trials={})
    tuner = SimpleNamespace(oracle=oracle, save=lambda: saved_atomically.append(atomic_installed()),
                            directory=str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        where = distributed.Endpoint("127.0.0.1", busy.getsockname()[1])
        with pytest.raises(SettingError):  # the port is taken: it stops after saving, before serving
            distributed.serve_phase(tuner, "grid", where=where, order=["grid"])
    assert saved_atomically == [True]
    assert kt_utils.save_json is ORIGINAL_SAVE_JSON


# --- the keras-tuner internals kt_internals relies on -------------------------------------------------


def check(condition: Any, what: str) -> None:
    assert condition, f"{what}: changed in {KERAS_TUNER}; update regsearch/kt_internals.py"


def parameters(function: Any) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def test_keras_tuner_writes_its_state_only_through_utils_save_json() -> None:
    check(parameters(ORIGINAL_SAVE_JSON) == ["path", "obj"], "keras_tuner.src.utils.save_json(path, obj)")
    root = Path(kt.__file__).parent
    uses = []
    for path in sorted(root.rglob("*.py")):
        if path.name.endswith("_test.py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "save_json" in line and not re.search(r"\butils\.save_json\(|^def save_json\(", line):
                uses.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    check(uses == [], f"save_json reached other than as utils.save_json {uses}")
    import keras_tuner.src.distribute.oracle_chief  # noqa: F401 - every module that could hold it
    import keras_tuner.src.tuners  # noqa: F401

    holders = sorted(name for name, module in list(sys.modules.items())
                     if name.startswith("keras_tuner") and getattr(module, "save_json", None) is ORIGINAL_SAVE_JSON)
    check(holders == sorted(kt_internals.SAVE_JSON_HOLDERS), f"modules holding save_json {holders}")


def test_keras_tuner_reads_config_debug_when_a_trial_fails() -> None:
    from keras_tuner.src.engine.base_tuner import BaseTuner

    check(isinstance(kt_config.DEBUG, bool), "keras_tuner.src.config.DEBUG")
    check("config_module.DEBUG" in inspect.getsource(BaseTuner._try_run_and_update_trial),
          "BaseTuner._try_run_and_update_trial reading config.DEBUG")


def test_keras_tuners_callbacks_and_tuner_helpers() -> None:
    import keras

    from keras_tuner.src.engine.base_tuner import BaseTuner
    from keras_tuner.src.engine.tuner import Tuner
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch, TunerCallback

    check(parameters(SaveBestEpoch.__init__) == ["objective", "filepath"],
          "tuner_utils.SaveBestEpoch(objective, filepath)")
    check(issubclass(TunerCallback, keras.callbacks.Callback), "tuner_utils.TunerCallback")
    check(kt_internals.tuner_callback_types() == (SaveBestEpoch, TunerCallback), "kt_internals.tuner_callback_types")
    check(parameters(Tuner._get_checkpoint_fname) == ["trial_id"], "Tuner._get_checkpoint_fname(trial_id)")
    check(parameters(Tuner._deepcopy_callbacks) == ["callbacks"], "Tuner._deepcopy_callbacks(callbacks)")
    check(parameters(BaseTuner._is_worker) == [], "BaseTuner._is_worker()")


def test_a_trial_model_loads_as_keras_tuners_load_model_loads_it(tmp_path: Path) -> None:
    """The same weights as ``Tuner.load_model`` from the same trial, without its garbage collection."""

    import keras
    import numpy as np

    from keras_tuner.src.engine.tuner import Tuner

    check([name for name in ("_try_build", "_get_build_config_fname", "_get_checkpoint_fname")
           if name in inspect.getsource(Tuner.load_model)] == ["_try_build", "_get_build_config_fname",
                                                               "_get_checkpoint_fname"], "Tuner.load_model")
    check("self._build_hypermodel(hp)" in inspect.getsource(Tuner._try_build), "Tuner._try_build")

    def build(hp: kt.HyperParameters) -> keras.Model:
        model = keras.Sequential([keras.layers.Dense(hp.Choice("units", [3, 4])), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        return model  # unbuilt: the build config Keras Tuner wrote builds it

    x, y = np.random.default_rng(0).normal(size=(16, 2)), np.zeros(16)
    tuner = kt.GridSearch(build, objective="val_loss", directory=tmp_path, project_name="p")
    tuner.search(x, y, validation_data=(x, y), epochs=2, verbose=0)
    for trial in tuner.oracle.trials.values():
        ours, theirs = kt_internals.load_trial_model(tuner, trial), tuner.load_model(trial)
        assert ours.layers[0].units == trial.hyperparameters["units"]
        for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_keras_tuners_retry_queue() -> None:
    oracle = kt.Oracle(objective=kt.Objective("score", "max"))
    check(isinstance(getattr(oracle, "_retry_queue", None), list), "Oracle._retry_queue (a list)")
    check(isinstance(oracle.ongoing_trials, dict), "Oracle.ongoing_trials")
    check(isinstance(getattr(oracle, "tuner_ids", None), set), "Oracle.tuner_ids (a set)")


def test_keras_tuners_oracle_client_calls_through_its_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras_tuner.src.distribute import oracle_client

    source = inspect.getsource(oracle_client.OracleClient)
    calls = re.findall(r"self\.stub\.(\w+)\(", source)
    check(calls and source.count("timeout=TIMEOUT") == len(calls),
          "OracleClient's methods call self.stub.<Method>(request, wait_for_ready=True, timeout=TIMEOUT)")
    for name, value in {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "1",
                        "KERASTUNER_TUNER_ID": "w1"}.items():
        monkeypatch.setenv(name, value)
    client = oracle_client.OracleClient(kt.Oracle(objective=kt.Objective("score", "max")))
    seen: list[Any] = []

    def call(method: Any, request: Any) -> Any:
        seen.append((method, request))
        return kt_internals.oracle_service().GetSpaceResponse(hyperparameters=kt.HyperParameters().to_proto())

    stub = client.stub
    kt_internals.route_client_calls(client, call)
    check(isinstance(client.get_space(), kt.HyperParameters), "OracleClient.get_space() through OracleClient.stub")
    check(seen and seen[0][0] == stub.GetSpace, "OracleClient.stub.GetSpace")


def test_keras_tuners_distributed_chief() -> None:
    from keras_tuner.src.distribute.oracle_chief import exit_chief

    servicer_class = kt_internals.oracle_servicer_class()
    servicer = servicer_class(SimpleNamespace())
    check(hasattr(servicer, "oracle") and servicer.stop_triggered is False,
          "OracleServicer(oracle).oracle and .stop_triggered")
    check(parameters(servicer_class.CreateTrial) == ["request", "context"],
          "OracleServicer.CreateTrial(request, context)")
    check(hasattr(kt_internals.oracle_service(), "CreateTrialResponse"), "protos.get_service().CreateTrialResponse")
    from keras_tuner.src import protos

    check(hasattr(protos.get_service_grpc(), "add_OracleServicer_to_server"),
          "protos.get_service_grpc().add_OracleServicer_to_server")
    class Oracle:  # hashable, as keras-tuner's lock per oracle needs
        def __init__(self, ongoing: dict) -> None:
            self.ongoing_trials, self.tuner_ids = ongoing, set()

    check(kt_internals.chief_may_exit(Oracle({})) is True and exit_chief(Oracle({"w": 1})) is False,
          "oracle_chief.exit_chief(oracle)")


def test_no_other_regsearch_module_touches_keras_tuners_private_api() -> None:
    sources = Path(kt_internals.__file__).parent
    touches = [f"{path.relative_to(sources)}:{number}"
               for path in sorted(sources.rglob("*.py")) if path.name != "kt_internals.py"
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if "keras_tuner.src" in line]
    assert touches == [], "keras_tuner.src outside regsearch/kt_internals.py"

