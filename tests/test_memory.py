"""Memory across trials: nothing a training run traced outlives it (keras-tuner #395, #873, #1031)."""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorflow.python.framework import func_graph
from tensorflow.python.framework import ops as tf_ops

import regsearch

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "memory.py"


def _train_once(units: int = 8) -> None:
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(20, 2)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    regsearch.fit(model, x, y, validation_data=(x, y), epochs=3, batch_size=8)


def _live_func_graphs() -> int:
    gc.collect()
    return sum(isinstance(obj, func_graph.FuncGraph) for obj in gc.get_objects())


def _drop_kept_programs() -> None:
    from regsearch import population

    while population._PROGRAMS:
        population._PROGRAMS.popitem()[1].keep.close()


def test_fit_leaves_no_traced_graph_behind() -> None:
    # The optimizer's all_reduce registers a custom gradient per trace; left in
    # TensorFlow's global registry, it kept every trial's graph alive. Every run
    # here has a new structure, so every run traces a program of its own.
    _train_once(8)
    _drop_kept_programs()
    registered, graphs = len(tf_ops._gradient_registry._registry), _live_func_graphs()
    for units in (9, 10, 11):
        _train_once(units)
    assert len(tf_ops._gradient_registry._registry) == registered
    _drop_kept_programs()  # what the kept programs held goes with them
    assert _live_func_graphs() <= graphs


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sequential", "population"])
def test_resident_memory_stays_flat_across_trials(tmp_path: Path, engine: str) -> None:
    spec = importlib.util.spec_from_file_location("regsearch_memory_benchmark", BENCHMARK)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)

    # Population: 3 populations of 10 trials, each on the first one's compiled program.
    samples = benchmark.run(trials=30, epochs=50, every=10, directory=str(tmp_path), report=False, engine=engine,
                            batch=10)

    assert [done for done, _ in samples] == [10, 20, 30]
    growth_mib = samples[-1][1] - samples[0][1]
    # The leak this guards against grew about 2.2 MiB per trial (44 MiB here); a
    # generous bound for allocator noise on a shared machine.
    assert growth_mib < 30, samples
