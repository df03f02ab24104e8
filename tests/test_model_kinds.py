"""Every kind of user model, saved as .keras, searched from a search file and through Regularize under stock tuners."""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_moons

from regsearch import Regularize, Regularizer, SettingError
from regsearch.cli import main
from regsearch.datafiles import load_file
from regsearch.definition.build import load_model_file


def compiled(model: keras.Model) -> keras.Model:
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model


def sequential_with_input() -> keras.Model:
    return compiled(keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                                      keras.layers.Dense(1, activation="sigmoid", name="out")]))


def sequential_built() -> keras.Model:
    """No Input: ``build(shape)`` defines it (the model has never been called, so ``model.input`` raises)."""
    model = keras.Sequential([keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(1, activation="sigmoid", name="out")])
    model.build((None, 2))
    return compiled(model)


def functional() -> keras.Model:
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return compiled(keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(hidden)))


def several_inputs() -> keras.Model:
    """One feature per input: the data is a list of two arrays."""
    first, second = keras.Input((1,), name="first"), keras.Input((1,), name="second")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(keras.layers.Concatenate()([first, second]))
    return compiled(keras.Model([first, second], keras.layers.Dense(1, activation="sigmoid", name="out")(hidden)))


def nested() -> keras.Model:
    """A Sequential encoder used as a layer: its Dense is the one to regularize."""
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu", name="hidden")],
                               name="encoder")
    inputs = keras.Input((2,))
    return compiled(keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(encoder(inputs))))


#: Each kind: its maker and the path of the layer Regularize chooses by default.
KINDS = {
    "sequential with Input": (sequential_with_input, "hidden"),
    "sequential built": (sequential_built, "hidden"),
    "functional": (functional, "hidden"),
    "several inputs": (several_inputs, "hidden"),
    "nested": (nested, "encoder/hidden"),
}


def saved_and_loaded(kind: str, folder: Path) -> keras.Model:
    """The kind's model after a round trip through .keras in safe mode, as a user hands it over."""
    path = folder / "model.keras"
    KINDS[kind][0]().save(path)
    return keras.saving.load_model(path, safe_mode=True)


def layer_at(model: keras.Model, path: str) -> keras.layers.Layer:
    for name in path.split("/"):
        model = model.get_layer(name)
    return model


@pytest.fixture(scope="module")
def moons() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_moons(n_samples=60, noise=0.2, random_state=1)
    return x.astype("float32"), y.astype("float32")


#: Each stock tuner, one or two trials: the model kind is what is tested (the tuners' ways in test_regularize).
CHEAP_STOCK_TUNERS = {
    "random": lambda hypermodel, **common: kt.RandomSearch(hypermodel, max_trials=1, **common),
    "grid": lambda hypermodel, **common: kt.GridSearch(hypermodel, max_trials=1, **common),
    "bayesian": lambda hypermodel, **common: kt.BayesianOptimization(hypermodel, max_trials=1, num_initial_points=1,
                                                                     **common),
    "hyperband": lambda hypermodel, **common: kt.Hyperband(hypermodel, max_epochs=2, factor=3, **common),
}


#: Each kind of model under one stock tuner, every tuner at least once: test_regularize runs every stock tuner over
#: Regularize and the presets, so what varies here is the model; Hyperband, which carries weights from rung to rung,
#: gets the nested model (a layer inside a layer) and a Sequential one.
TUNER_OF = {"sequential with Input": "hyperband", "sequential built": "bayesian", "functional": "random",
            "several inputs": "grid", "nested": "hyperband"}


def test_every_kind_and_every_stock_tuner_is_covered():
    assert set(TUNER_OF) == set(KINDS)
    assert set(TUNER_OF.values()) == set(CHEAP_STOCK_TUNERS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_regularize_under_a_stock_tuner_completes_every_trial(kind, moons, tmp_path):
    x, y = moons
    rows = (lambda a: [a[:, :1], a[:, 1:]]) if kind == "several inputs" else (lambda a: a)
    model = saved_and_loaded(kind, tmp_path)
    hypermodel = Regularize(model)  # the default space: L2 on the kernels, strengths on a log scale
    path = KINDS[kind][1]
    name = TUNER_OF[kind]
    tuner = CHEAP_STOCK_TUNERS[name](hypermodel, objective="val_loss", directory=str(tmp_path), project_name=name)
    tuner.search(rows(x[:40]), y[:40], validation_data=(rows(x[40:]), y[40:]), epochs=2, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert trials and all(t.status == "COMPLETED" for t in trials), (name, [t.message for t in trials])
    assert all(np.isfinite(t.metrics.get_last_value("zero_fraction")) for t in trials), name
    best = tuner.get_best_models(1)[0]
    strength = tuner.get_best_hyperparameters(1)[0].values["strength"]
    assert float(layer_at(best, path).kernel_regularizer.l2) == pytest.approx(strength, rel=1e-5), name
    assert best.get_layer("out").kernel_regularizer is None


SEARCH = """\
description = "L2 on a user's {kind} model"
[data]
file = "moons.npz"
[model]
file = "model.keras"
[space.regularizer]
kinds = ["l2"]
strengths = [1e-2]
[search]
repeats = 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind != "several inputs"])
def test_a_search_file_searches_every_kind_of_model(kind, moons, tmp_path, capsys):
    x, y = moons
    np.savez(tmp_path / "moons.npz", x=x, y=y.astype("int64"))
    KINDS[kind][0]().save(tmp_path / "model.keras")
    (tmp_path / "mine.toml").write_text(SEARCH.format(kind=kind))
    code = main([str(tmp_path / "mine.toml"), "--results", str(tmp_path / "out"), "--epochs", "2", "--quiet"])
    assert code == 0, capsys.readouterr().err[-2000:]
    trials = pd.read_csv(tmp_path / "out" / "mine" / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "completed").all()  # the strength and the baseline
    assert set(trials["param_layers"]) == {KINDS[kind][1]}
    assert sorted(trials["param_strength"].dropna()) == [0.01]


def test_a_search_file_refuses_a_model_of_several_inputs_in_one_line(moons, tmp_path, capsys):
    x, y = moons
    np.savez(tmp_path / "moons.npz", x=x, y=y.astype("int64"))
    several_inputs().save(tmp_path / "model.keras")
    (tmp_path / "mine.toml").write_text(SEARCH.format(kind="several inputs"))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([str(tmp_path / "mine.toml"), "--results", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "'model.file' must be a model with one input" in line and "regsearch.Regularize" in line
    assert "model.keras with inputs [(1,), (1,)]" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_unbuilt_sequential_model_is_built_from_the_data_by_a_search_file_and_refused_by_regularize(
    moons, tmp_path
):
    x, y = moons
    np.savez(tmp_path / "moons.npz", x=x, y=y.astype("int64"))
    unbuilt = compiled(keras.Sequential([keras.layers.Dense(8, activation="relu", name="hidden"),
                                         keras.layers.Dense(1, activation="sigmoid", name="out")]))
    unbuilt.save(tmp_path / "unbuilt.keras")
    loaded = load_model_file(tmp_path / "unbuilt.keras", load_file(tmp_path / "moons.npz"), "mine.toml")
    assert [tuple(t.shape) for t in loaded.inputs] == [(None, 2)]
    with pytest.raises(SettingError, match="'model' must be a built Sequential model") as error:
        Regularize(unbuilt)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["sequential with Input", "sequential built"])
def test_activation_sparsity_of_a_rewritten_sequential_model(kind, moons, tmp_path):
    """What failed every trial: a Sequential model has never been called, so ``model.input`` raised."""
    from regsearch.sparsity import activation_sparsity

    x, _ = moons
    model = Regularize(saved_and_loaded(kind, tmp_path)).build(kt.HyperParameters())
    hidden = keras.ops.convert_to_numpy(model.get_layer("hidden")(x))
    measured = activation_sparsity(model, "hidden", x)
    assert measured == {"mean_activation": pytest.approx(hidden.mean(), abs=1e-6),
                        "zero_fraction": pytest.approx((hidden == 0).mean())}
