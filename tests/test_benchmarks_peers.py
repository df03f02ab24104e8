"""benchmarks/peers.py compares like with like: regsearch's search files carry the rows' settings, and the Keras
Tuner side trains and validates on the rows regsearch uses."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regsearch.definition import load_definition
from regsearch.definition.build import load_data

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("regsearch_peers_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.mark.parametrize("name", ["moons", "cnn", "lstm", "tabular"])
def test_each_row_gives_both_sides_the_same_settings_and_rows(peers, name: str, tmp_path: Path) -> None:
    row = peers.quick(peers.FULL[name])
    definition = load_definition(peers.prepare(row, tmp_path))
    assert (definition.strategy, definition.epochs, definition.repeats, definition.batch_size) == (
        "grid", row.epochs, row.repeats, row.batch_size)
    # keras.callbacks.EarlyStopping's defaults otherwise, as on the Keras Tuner side
    assert definition.early_stopping == {"monitor": "val_loss", "patience": row.patience, "restore_best_weights": True,
                                         "min_delta": 0, "mode": "auto", "start_from_epoch": 0}
    assert definition.space["regularizer"]["strengths"] == list(row.strengths)
    assert (definition.evaluation.kind, definition.evaluation.baseline) == ("tutorial", False)
    assert definition.objective == "val_accuracy"
    if name != "moons":
        assert definition.model["layers"] == list(row.layers)
    # The Keras Tuner side validates on the test rows, as regsearch's tutorial protocol does.
    split = load_data(definition)
    x_train, y_train, x_test, y_test = peers.read_data(row, tmp_path)
    np.testing.assert_allclose(x_train, split.x_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x_test, split.x_test, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y_train, split.y_train)
    np.testing.assert_array_equal(y_test, split.y_test)


def test_picks_agree_when_equal_or_within_twice_the_standard_error(peers) -> None:
    summary = pd.DataFrame({"param_strength": [1e-3, 1e-2, 1e-1], "mean_val_accuracy": [0.90, 0.89, 0.80],
                            "std_val_accuracy": [0.01, 0.01, 0.01], "n_runs": [2, 2, 2]})
    assert peers.agreement(summary, (1e-3, 1e-3)) == ("0.900±0.010 / 0.900±0.010", "same")
    assert peers.agreement(summary, (1e-3, 1e-2))[1] == "within noise"  # 0.01 <= 2 * 0.01
    assert peers.agreement(summary, (1e-3, 1e-1))[1] == "differs"
