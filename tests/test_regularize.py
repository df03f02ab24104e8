"""Regularize on users' own models, and regsearch's HyperModels under every stock Keras Tuner tuner."""

from __future__ import annotations

import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest
from sklearn.datasets import make_moons

import regsearch
from regsearch import Dropout, Regularize, RegularizedMLP, Regularizer, SettingError
from regsearch.search import plan_size
from regsearch.tuners import read_runs


@pytest.fixture(scope="module")
def moons():
    x, y = make_moons(n_samples=100, noise=0.2, random_state=1)
    x, y = x.astype("float32"), y.astype("float32")
    return x[:30], y[:30], x[30:], y[30:]


def functional(compiled: bool = True) -> keras.Model:
    """Not an MLP preset: two hidden Dense layers around a BatchNormalization, a sigmoid head."""
    inputs = keras.Input((2,), name="features")
    h = keras.layers.Dense(16, activation="relu", name="dense_1")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dense(8, activation="relu", name="dense_2", use_bias=False)(h)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="head")(h))
    if compiled:
        model.compile(keras.optimizers.SGD(0.05, momentum=0.7), "binary_crossentropy", metrics=["accuracy"])
    return model


def test_keeps_the_models_compile_settings_with_fresh_objects():
    source = functional()
    model = Regularize(source, regularizer=Regularizer("l2", 1e-3)).build(kt.HyperParameters())
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer is not source.optimizer
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    assert float(model.optimizer.momentum) == pytest.approx(0.7)
    assert model.loss == "binary_crossentropy"
    assert model.get_layer("dense_1").kernel_regularizer.l2 == pytest.approx(1e-3)
    assert model.get_layer("head").kernel_regularizer is None


def test_a_searched_learning_rate_keeps_the_optimizer_and_a_searched_optimizer_replaces_it():
    hp = kt.HyperParameters()
    hp.Fixed("learning_rate", 0.3)
    model = Regularize(functional(), learning_rate=[0.3, 0.01]).build(hp)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.3)
    assert float(model.optimizer.momentum) == pytest.approx(0.7)
    model = Regularize(functional(), optimizer="rmsprop", learning_rate=0.02).build(kt.HyperParameters())
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)


def test_an_uncompiled_model_needs_a_task():
    with pytest.raises(SettingError, match="'task' must be given for a model that is not compiled"):
        Regularize(functional(compiled=False))
    model = Regularize(functional(compiled=False), task="regression").build(kt.HyperParameters())
    assert model.loss == "mean_squared_error"


def test_describe_names_the_layers_and_what_each_takes():
    hypermodel = Regularize(functional(), regularizer=Regularizer("l1", [0.01], target="kernel+bias"))
    config = hypermodel.describe(kt.HyperParameters())
    assert config["layers"] == "dense_1, dense_2 (kernel)"  # dense_2 has no bias
    assert (config["kind"], config["strength"], config["target"]) == ("l1", 0.01, "kernel+bias")


def test_a_build_function_combines_its_own_hyperparameters_with_the_space():
    def build(hp):
        units = hp.Choice("units", [3, 5])
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation="relu", name="hidden"),
                                  keras.layers.Dense(1, activation="sigmoid", name="out")])
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        return model

    hypermodel = Regularize(build, regularizer=Regularizer("l2", [0.1, 0.01]))
    hp = kt.HyperParameters()
    hp.Fixed("units", 5)
    model = hypermodel.build(hp)
    assert model.get_layer("hidden").units == 5
    assert hypermodel.describe(hp)["units"] == 5 and hypermodel.describe(hp)["layers"] == "hidden"
    assert plan_size(hypermodel) == 4  # its Choice counts in the grid


@pytest.mark.parametrize("make, fragment", [
    (lambda: Regularize(3), "'model' must be a keras.Model or a function"),
    (lambda: Regularize(functional(), layers="conv*"), "matching one of the model's layers: dense_1, bn, dense_2, head; got 'conv*'"),
    (lambda: Regularize(functional(), regularizer=Regularizer("l2", 1e-3, target="recurrent")),
     "'regularizer target' must be a target the chosen layers (dense_1, dense_2) have"),
    (lambda: Regularize(functional(), task="ranking"), "'task' must be one of 'binary'"),
])
def test_bad_arguments_are_one_line(make, fragment):
    with pytest.raises(SettingError) as error:
        make()
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_a_subclassed_model_is_refused_by_name():
    class Mine(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    mine = Mine()
    mine(np.zeros((1, 2), "float32"))
    mine.compile("adam", "mse")
    with pytest.raises(SettingError, match="Sequential or functional keras.Model .*got 'Mine'"):
        Regularize(mine)


def test_grid_search_over_a_functional_model_records_every_run(moons, tmp_path):
    x, y, x_val, y_val = moons
    hypermodel = Regularize(functional(), regularizer=Regularizer("l2", [1e-1, 1e-4]),
                            dropout=Dropout("dropout", 0.2))
    tuner = regsearch.GridSearch(hypermodel, objective=kt.Objective("test_accuracy", "max"), repeats=2,
                                 directory=str(tmp_path), project_name="p")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5, verbose=0)
    records, _ = read_runs(tuner)
    assert [(r["param_strength"], r["seed"]) for r in records] == [(0.1, 0), (0.1, 1), (0.0001, 0), (0.0001, 1)]
    assert all(r["status"] == "completed" and r["param_layers"] == "dense_1, dense_2" for r in records)
    best = tuner.get_best_models(1)[0]
    assert best.get_layer("dense_1_dropout").rate == pytest.approx(0.2)


# --- regsearch.GridSearch.search honours model.fit's arguments ------------------------------------------------------


def search_metrics(tmp_path, moons, name, **arguments) -> dict:
    x, y, x_val, y_val = moons
    tuner = regsearch.GridSearch(RegularizedMLP((2,), hidden=[16], regularizer=Regularizer("none")),
                                 objective=kt.Objective("test_accuracy", "max"), directory=str(tmp_path),
                                 project_name=name)
    arguments.setdefault("validation_data", (x_val, y_val))
    tuner.search(x, y, epochs=arguments.pop("epochs", 30), verbose=0, **arguments)
    (record,), _ = read_runs(tuner)
    return record


def test_search_arguments_each_take_effect(moons, tmp_path):
    plain = search_metrics(tmp_path, moons, "plain")
    stopped = search_metrics(tmp_path, moons, "stopped", epochs=200,
                             callbacks=[keras.callbacks.EarlyStopping("loss", min_delta=1.0, patience=2)])
    assert stopped["epochs_run"] == 3  # no epoch improves the loss by 1.0: epochs 0, 1, 2
    weighted = search_metrics(tmp_path, moons, "weighted", class_weight={0: 1.0, 1: 8.0})
    assert weighted["train_loss"] != pytest.approx(plain["train_loss"], abs=1e-4)
    zero_weight = np.where(moons[1] == 1, 0.0, 1.0).astype("float32")
    only_zeros = search_metrics(tmp_path, moons, "sample", sample_weight=zero_weight)
    assert only_zeros["train_accuracy"] < plain["train_accuracy"]  # it never learned the ones
    unshuffled = search_metrics(tmp_path, moons, "unshuffled", shuffle=False, batch_size=8)
    shuffled = search_metrics(tmp_path, moons, "shuffled", shuffle=True, batch_size=8)
    assert unshuffled["train_loss"] != pytest.approx(shuffled["train_loss"], abs=1e-5)


def test_validation_split_holds_out_the_last_rows(moons, tmp_path):
    x, y, _, _ = moons
    record = search_metrics(tmp_path, moons, "split", validation_data=None, validation_split=0.3)
    # 30 rows: the first 21 train, the last 9 validate (Keras floors the training share).
    assert record["val_loss"] == pytest.approx(record["test_loss"], abs=1e-4)
    assert record["test_accuracy"] * 9 == pytest.approx(round(record["test_accuracy"] * 9), abs=1e-4)
    assert record["train_accuracy"] * 21 == pytest.approx(round(record["train_accuracy"] * 21), abs=1e-4)


def test_an_argument_model_fit_does_not_take_is_refused_by_name(moons, tmp_path):
    x, y, x_val, y_val = moons
    tuner = regsearch.GridSearch(RegularizedMLP((2,), regularizer=Regularizer("none")),
                                 objective=kt.Objective("test_accuracy", "max"), directory=str(tmp_path),
                                 project_name="bad")
    with pytest.raises(SettingError, match="'patiense' must be an argument of model.fit") as error:
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=2, patiense=3)
    assert "\n" not in str(error.value)
    assert not tuner.oracle.trials


# --- every stock Keras Tuner tuner drives regsearch's HyperModels -------------------------------------------------


def stock_tuners(hypermodel, directory):
    common = dict(objective="val_loss", directory=str(directory), overwrite=True)
    return {
        "random": kt.RandomSearch(hypermodel, max_trials=2, executions_per_trial=2, project_name="random", **common),
        "grid": kt.GridSearch(hypermodel, max_trials=2, project_name="grid", **common),
        "bayesian": kt.BayesianOptimization(hypermodel, max_trials=3, num_initial_points=2, project_name="bayes",
                                            **common),
        "hyperband": kt.Hyperband(hypermodel, max_epochs=4, factor=2, hyperband_iterations=1,
                                  project_name="hyperband", **common),
    }


@pytest.mark.parametrize("which", ["preset", "regularize"])
def test_every_stock_tuner_runs_regsearch_hypermodels(which, moons, tmp_path, capsys):
    x, y, x_val, y_val = moons
    space = Regularizer("l2", [1e-2, 1e-4])
    hypermodel = (RegularizedMLP((2,), hidden=[16], regularizer=space) if which == "preset"
                  else Regularize(functional(), regularizer=space))
    for name, tuner in stock_tuners(hypermodel, tmp_path).items():
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=3, verbose=0)
        trials = tuner.oracle.trials.values()
        assert trials and all(t.status == "COMPLETED" for t in trials), (name, [t.message for t in trials])
        best = tuner.get_best_models(1)[0]
        assert best.get_layer("dense_1" if which == "regularize" else "hidden_1").kernel_regularizer is not None
        tuner.results_summary(1)
    assert "Score:" in capsys.readouterr().out


def assert_continued_trials_train_only_their_remaining_epochs(tuner: kt.Hyperband) -> None:
    """Hyperband continues from the carried weights: a continued trial trains from its initial epoch on."""
    trials = tuner.oracle.trials
    continued = [t for t in trials.values() if t.hyperparameters.values.get("tuner/trial_id")]
    assert continued and all(t.status == "COMPLETED" for t in trials.values())
    for trial in continued:
        values = trial.hyperparameters.values
        ran = trial.metrics.get_last_value("epochs_run")
        assert ran == values["tuner/epochs"] - values["tuner/initial_epoch"]


def test_training_goes_on_from_loaded_weights_at_initial_epoch(moons):
    """What Hyperband does between brackets: the first epoch continues the parent's loss curve."""
    x, y, x_val, y_val = moons
    hypermodel = Regularize(functional(), regularizer=Regularizer("l2", [1e-3]))
    hp = kt.HyperParameters()
    keras.utils.set_random_seed(0)
    parent = hypermodel.build(hp)
    first = hypermodel.run(hp, parent, x, y, validation_data=(x_val, y_val), epochs=40, seed=0)
    keras.utils.set_random_seed(1)
    child = hypermodel.build(hp)
    fresh_loss = hypermodel.run(hp, hypermodel.build(hp), x, y, validation_data=(x_val, y_val), epochs=1,
                                seed=1).history["loss"][0]
    child.set_weights(parent.get_weights())
    second = hypermodel.run(hp, child, x, y, validation_data=(x_val, y_val), epochs=45, initial_epoch=40, seed=1)
    assert len(second.history["loss"]) == 5 and second.metrics["epochs_run"] == 5
    assert second.metrics["best_epoch"] == 44  # absolute, as Keras counts
    assert second.metrics["loss"] == pytest.approx(second.history["loss"][-1])
    assert abs(second.history["loss"][0] - first.history["loss"][-1]) < abs(fresh_loss - first.history["loss"][-1]) / 3


def test_epochs_may_be_omitted_like_model_fit(moons, tmp_path):
    x, y, x_val, y_val = moons
    tuner = kt.RandomSearch(RegularizedMLP((2,), regularizer=Regularizer("l2", [1e-3])), objective="val_loss",
                            max_trials=1, directory=str(tmp_path), project_name="noepochs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuner.search(x, y, validation_data=(x_val, y_val), verbose=0)
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "COMPLETED" and trial.metrics.get_last_value("epochs_run") == 1
    assert any("no 'epochs' given; training 1 epoch" in str(w.message) for w in caught)


# --- stock tuners over the default space train to their budget ----------------------------------------------------


NO_SPACE = {
    "Regularize": lambda **space: Regularize(functional(), **space),
    "RegularizedMLP": lambda **space: RegularizedMLP((2,), **space),
    "RegularizedCNN": lambda **space: regsearch.RegularizedCNN(**space),
    "RegularizedLSTM": lambda **space: regsearch.RegularizedLSTM(input_shape=(6,), vocab_size=20, **space),
}


@pytest.mark.parametrize("name", list(NO_SPACE))
def test_no_space_at_all_searches_l2_strengths_on_a_log_scale(name):
    make = NO_SPACE[name]
    hp = kt.HyperParameters()
    config = make().describe(hp)
    assert (config["kind"], config["target"]) == ("l2", "kernel")
    (strength,) = hp.space
    assert (strength.name, strength.min_value, strength.max_value, strength.sampling) == ("strength", 1e-6, 0.1, "log")
    # Any piece of space given is the whole space: no penalty is added to it.
    for piece in ({"dropout": Dropout("dropout", [0.1, 0.2])}, {"optimizer": "sgd"}, {"learning_rate": [1e-3, 1e-2]},
                  {"patience": 3}, {"regularizer": Regularizer("none")}):
        assert make(**piece).describe(kt.HyperParameters())["kind"] == "none", piece


def test_a_search_file_without_a_regularizer_searches_no_penalty(tmp_path):
    from regsearch.definition import load_definition
    from regsearch.definition.build import load_data, make_hypermodel

    path = tmp_path / "plain.toml"
    path.write_text('description = "plain"\n[data]\ndataset = "moons"\ntrain_size = 30\n\n'
                    '[model]\nhypermodel = "RegularizedMLP"\nhidden = [8]\n\n[training]\nepochs = 1\n')
    definition = load_definition(path)
    hp = kt.HyperParameters()
    assert make_hypermodel(definition, load_data(definition)).describe(hp)["kind"] == "none"
    assert not hp.space


@pytest.mark.slow
@pytest.mark.parametrize("which", ["regularize", "preset"])
def test_stock_hyperband_over_the_defaults_trains_beyond_the_first_rung(which, moons, tmp_path):
    """factor 7, max_epochs 7: a first bracket of 7 configurations at 1 epoch, its best continued to 7 from the
    carried weights.

    The tutorials' six decades ran out there: Keras Tuner stopped after six 1-epoch trials.
    """
    x, y, x_val, y_val = moons
    hypermodel = (Regularize(functional()) if which == "regularize"
                  else RegularizedMLP((2,), hidden=[8]))  # no space: both search the L2 strength on a log scale
    tuner = kt.Hyperband(hypermodel, objective="val_loss", max_epochs=7, factor=7, hyperband_iterations=1,
                         directory=str(tmp_path), project_name="hb", seed=1)
    tuner.search(x, y, validation_data=(x_val, y_val), verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert all(t.status == "COMPLETED" for t in trials)
    first_rung = [t for t in trials if t.hyperparameters.values["tuner/epochs"] == 1]
    beyond = [t for t in trials if t.hyperparameters.values["tuner/epochs"] == 7]
    assert len(first_rung) == 7 and len({t.hyperparameters.values["strength"] for t in first_rung}) == 7
    assert len(beyond) == 3  # the promoted one (6 more epochs) and the second bracket's two
    assert sorted(t.metrics.get_last_value("epochs_run") for t in beyond) == [6, 7, 7]
    assert_continued_trials_train_only_their_remaining_epochs(tuner)


@pytest.mark.slow
def test_stock_samplers_over_the_defaults_train_every_trial_to_its_epochs(moons, tmp_path):
    x, y, x_val, y_val = moons
    common = dict(objective="val_loss", max_trials=3, directory=str(tmp_path), seed=2)
    for tuner in (kt.RandomSearch(Regularize(functional()), project_name="random", **common),
                  kt.BayesianOptimization(Regularize(functional()), num_initial_points=2, project_name="bayes",
                                          **common)):
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=4, verbose=0)
        trials = list(tuner.oracle.trials.values())
        assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
        assert [t.metrics.get_last_value("epochs_run") for t in trials] == [4, 4, 4]
        assert len({t.hyperparameters.values["strength"] for t in trials}) == 3


def test_a_search_file_without_strengths_keeps_the_tutorials_decades(tmp_path):
    from regsearch.definition import load_definition
    from regsearch.definition.build import make_hypermodel
    from regsearch.oracles import grid_configurations

    (tmp_path / "decades.toml").write_text('description = "x"\n[data]\ndataset = "moons"\n[model]\n'
                                           'hypermodel = "RegularizedMLP"\n[space.regularizer]\nkinds = ["l2"]\n')
    hypermodel = make_hypermodel(load_definition(tmp_path / "decades.toml"))
    assert [c["strength"] for c in grid_configurations(hypermodel)] == [0.1, 0.01, 0.001, 1e-4, 1e-5, 1e-6]
