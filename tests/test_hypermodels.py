"""The HyperModels: what they build, how they train, and how Keras Tuner drives them."""

from __future__ import annotations

import math

import keras
import keras_tuner as kt
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_moons

import regsearch
from regsearch import (
    Constraint,
    Decades,
    Dropout,
    LogRange,
    Placement,
    Range,
    RegularizedCNN,
    RegularizedLSTM,
    RegularizedMLP,
    Regularizer,
    RunResult,
    SettingError,
)

CLASSIFICATION_KEYS = {
    "loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "train_loss",
    "test_loss",
    "train_accuracy",
    "test_accuracy",
    "best_epoch",
    "epochs_run",
    "diverged",
    "mean_activation",
    "zero_fraction",
}


@pytest.fixture(scope="module")
def moons():
    x, y = make_moons(n_samples=100, noise=0.2, random_state=1)
    x, y = x.astype("float32"), y.astype("float32")
    return x[:30], y[:30], x[30:], y[30:]


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x, y = (data.images[:80, :, :, None] / 16.0).astype("float32"), data.target[:80]
    return x[:50], y[:50], x[50:], y[50:]


@pytest.fixture(scope="module")
def tokens():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(60, 6)).astype("int32")
    y = (x[:, 0] >= 10).astype("float32")
    return x[:40], y[:40], x[40:], y[40:]


def built(hypermodel, **values):
    """Builds the model for the defaults, overridden by ``values``."""
    hp = kt.HyperParameters()
    hypermodel.describe(hp)
    hp.values.update(values)
    return hypermodel.build(hp), hp


def mlp(**kwargs) -> RegularizedMLP:
    return RegularizedMLP(input_shape=(2,), **{"hidden": (8,), **kwargs})


def trial_values(tuner) -> list[dict]:
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
    return [t.hyperparameters.values for t in trials]


# --- structure ------------------------------------------------------------


def test_default_mlp_is_the_moons_model():
    model, _ = built(RegularizedMLP(input_shape=(2,), regularizer=Regularizer("none")))
    assert [layer.name for layer in model.layers] == ["inputs", "hidden_1", "output"]
    hidden, output = model.layers[1], model.layers[2]
    assert hidden.units == 500 and hidden.activation is keras.activations.relu
    assert output.units == 1 and output.activation is keras.activations.sigmoid
    assert hidden.kernel_regularizer is None and hidden.activity_regularizer is None
    assert model.loss == "binary_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("kind", "cls", "attrs"),
    [
        ("l1", keras.regularizers.L1, {"l1": 1e-3}),
        ("l2", keras.regularizers.L2, {"l2": 1e-3}),
        ("l1_l2", keras.regularizers.L1L2, {"l1": 1e-3, "l2": 1e-3}),
    ],
)
@pytest.mark.parametrize("target", ["kernel", "bias", "activity"])
def test_every_kind_lands_on_its_target(kind, cls, attrs, target):
    model, _ = built(mlp(hidden=(8, 4), regularizer=Regularizer(kind, 1e-3, target=target)))
    for name in ("hidden_1", "hidden_2"):
        layer = model.get_layer(name)
        regularizer = getattr(layer, f"{target}_regularizer")
        assert type(regularizer) is cls
        for attr, value in attrs.items():
            assert float(getattr(regularizer, attr)) == pytest.approx(value)
        others = {"kernel", "bias", "activity"} - {target}
        assert all(getattr(layer, f"{other}_regularizer") is None for other in others)
    assert model.get_layer("output").kernel_regularizer is None


def test_kernel_plus_bias_target_regularizes_both():
    model, _ = built(mlp(regularizer=Regularizer("l2", 1e-2, target="kernel+bias")))
    hidden = model.get_layer("hidden_1")
    assert isinstance(hidden.kernel_regularizer, keras.regularizers.L2)
    assert isinstance(hidden.bias_regularizer, keras.regularizers.L2)
    assert hidden.kernel_regularizer is not hidden.bias_regularizer


def test_activity_after_is_one_dense_with_its_activation():
    model, _ = built(mlp(regularizer=Regularizer("l1", 1e-4, target="activity"), placement="after"))
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Dense"]
    hidden = model.get_layer("hidden_1")
    assert hidden.activation is keras.activations.relu
    assert float(hidden.activity_regularizer.l1) == pytest.approx(1e-4)


def test_activity_before_is_a_linear_dense_then_the_activation():
    model, _ = built(
        mlp(regularizer=Regularizer("l1", 1e-4, target="activity"), placement="before")
    )
    assert [layer.name for layer in model.layers] == [
        "inputs",
        "hidden_1_linear",
        "hidden_1",
        "output",
    ]
    linear, activation = model.get_layer("hidden_1_linear"), model.get_layer("hidden_1")
    assert isinstance(linear, keras.layers.Dense) and linear.activation is keras.activations.linear
    assert float(linear.activity_regularizer.l1) == pytest.approx(1e-4)
    assert (
        isinstance(activation, keras.layers.Activation)
        and activation.activation is keras.activations.relu
    )


@pytest.mark.parametrize(
    ("constraint", "cls", "attrs"),
    [
        (
            Constraint("max_norm", 3.0, targets=("kernel", "bias")),
            keras.constraints.MaxNorm,
            {"max_value": 3.0},
        ),
        (Constraint("unit_norm", targets=("kernel", "bias")), keras.constraints.UnitNorm, {}),
        (Constraint("non_neg", targets=("kernel", "bias")), keras.constraints.NonNeg, {}),
        (
            Constraint("min_max_norm", 2.0, min_value=0.5, rate=0.8, targets=("kernel", "bias")),
            keras.constraints.MinMaxNorm,
            {"min_value": 0.5, "max_value": 2.0, "rate": 0.8},
        ),
    ],
)
def test_constraints_on_kernel_and_bias(constraint, cls, attrs):
    model, _ = built(mlp(constraint=constraint))
    hidden = model.get_layer("hidden_1")
    for made in (hidden.kernel_constraint, hidden.bias_constraint):
        assert type(made) is cls
        for attr, value in attrs.items():
            assert getattr(made, attr) == pytest.approx(value)
    assert model.get_layer("output").kernel_constraint is None


def test_constraint_on_kernel_only_by_default():
    model, _ = built(mlp(constraint=Constraint("max_norm", 3.0)))
    assert isinstance(model.get_layer("hidden_1").kernel_constraint, keras.constraints.MaxNorm)
    assert model.get_layer("hidden_1").bias_constraint is None


@pytest.mark.parametrize(
    ("kind", "cls", "attr"),
    [
        ("dropout", keras.layers.Dropout, "rate"),
        ("gaussian_dropout", keras.layers.GaussianDropout, "rate"),
        ("gaussian_noise", keras.layers.GaussianNoise, "stddev"),
    ],
)
@pytest.mark.parametrize(
    ("where", "names"),
    [
        ("input", ["inputs", "input_dropout", "hidden_1", "hidden_2", "output"]),
        (
            "hidden",
            ["inputs", "hidden_1", "hidden_1_dropout", "hidden_2", "hidden_2_dropout", "output"],
        ),
        (
            "both",
            [
                "inputs",
                "input_dropout",
                "hidden_1",
                "hidden_1_dropout",
                "hidden_2",
                "hidden_2_dropout",
                "output",
            ],
        ),
    ],
)
def test_dropout_layers_in_order(kind, cls, attr, where, names):
    model, _ = built(mlp(hidden=(8, 4), dropout=Dropout(kind, 0.3, where=where)))
    assert [layer.name for layer in model.layers] == names
    for layer in model.layers:
        if layer.name.endswith("dropout"):
            assert type(layer) is cls and getattr(layer, attr) == pytest.approx(0.3)


def test_tasks_set_head_loss_and_metrics():
    model, _ = built(mlp(task="multiclass", classes=3))
    assert model.get_layer("output").units == 3 and model.loss == "sparse_categorical_crossentropy"
    model, _ = built(mlp(task="regression"))
    assert (
        model.get_layer("output").activation is keras.activations.linear
        and model.loss == "mean_squared_error"
    )


def test_searched_optimizer_and_learning_rate():
    hypermodel = mlp(optimizer=["sgd", "adam"], learning_rate=[1e-6, 0.01, 1.0])
    model, hp = built(hypermodel, optimizer="sgd", learning_rate=0.01)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert hp.get("learning_rate") == 0.01


def test_cnn_regularizes_every_conv_and_hidden_dense():
    hypermodel = RegularizedCNN(
        filters=(4, 8),
        dense=(8,),
        regularizer=Regularizer("l2", 5e-4, target="kernel"),
        constraint=Constraint("max_norm", 3.0, targets=("kernel", "bias")),
    )
    model, _ = built(hypermodel)
    names = [layer.name for layer in model.layers]
    assert names == [
        "inputs",
        "conv_1",
        "pool_1",
        "conv_2",
        "pool_2",
        "flatten",
        "dense_1",
        "output",
    ]
    for name in ("conv_1", "conv_2", "dense_1"):
        layer = model.get_layer(name)
        assert float(layer.kernel_regularizer.l2) == pytest.approx(5e-4)
        assert layer.kernel_constraint.max_value == 3.0 and layer.bias_constraint.max_value == 3.0
    assert model.get_layer("conv_1").kernel_constraint.axis == [0, 1, 2]
    assert (
        model.get_layer("output").units == 10
        and model.get_layer("output").kernel_regularizer is None
    )


def test_cnn_activity_before():
    hypermodel = RegularizedCNN(
        filters=(4,),
        dense=(),
        regularizer=Regularizer("l1", 1e-4, target="activity"),
        placement="before",
    )
    model, _ = built(hypermodel)
    assert [layer.name for layer in model.layers][:3] == ["inputs", "conv_1_linear", "conv_1"]
    assert isinstance(model.get_layer("conv_1"), keras.layers.Activation)


def test_lstm_kernel_recurrent_bias_and_embeddings():
    hypermodel = RegularizedLSTM(
        input_shape=(6,),
        vocab_size=20,
        embedding_dim=4,
        units=4,
        regularizer=Regularizer("l2", 1e-6, target=["kernel+recurrent+bias", "embeddings"]),
        constraint=Constraint(
            "max_norm", 3.0, targets=("kernel", "recurrent", "bias", "embeddings")
        ),
    )
    model, _ = built(hypermodel)
    assert [layer.name for layer in model.layers] == ["inputs", "embedding", "lstm", "output"]
    lstm, embedding = model.get_layer("lstm"), model.get_layer("embedding")
    cell = lstm.cell
    for target in ("kernel", "recurrent", "bias"):
        assert float(getattr(cell, f"{target}_regularizer").l2) == pytest.approx(1e-6)
        assert getattr(cell, f"{target}_constraint").max_value == 3.0
    assert embedding.embeddings_regularizer is None
    assert (
        embedding.embeddings_constraint.max_value == 3.0
        and embedding.embeddings_constraint.axis == 1
    )

    model, _ = built(hypermodel, target="embeddings")
    assert float(model.get_layer("embedding").embeddings_regularizer.l2) == pytest.approx(1e-6)
    assert model.get_layer("lstm").cell.kernel_regularizer is None


# --- describe -----------------------------------------------------------------


def test_describe_the_moons_activity_search():
    hypermodel = mlp(
        regularizer=Regularizer(["none", "l1", "l1_l2"], Decades(1e-1, 1e-3), target="activity"),
        placement=Placement(["after", "before"]),
        constraint=Constraint(["none", "max_norm"], 3.0, targets=("kernel", "bias")),
        dropout=Dropout("dropout", [0.2, 0.5], where="hidden"),
        patience=[10, 50],
    )
    hp = kt.HyperParameters()
    hypermodel.describe(hp)
    assert [h.name for h in hp.space] == [
        "regularizer",
        "placement",
        "constraint",
        "dropout_rate",
        "patience",
    ]
    hp.values.update(
        regularizer="l1_l2:0.01:0.01",
        placement="before",
        constraint="max_norm:3.0",
        dropout_rate=0.5,
    )
    assert hypermodel.describe(hp) == {
        "kind": "l1_l2",
        "strength": 0.01,
        "l1": 0.01,
        "l2": 0.01,
        "target": "activity",
        "placement": "before",
        "constraint": "max_norm",
        "max_value": 3.0,
        "constraint_target": "kernel+bias",
        "dropout_kind": "dropout",
        "dropout_rate": 0.5,
        "dropout_where": "hidden",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "patience": 10,
    }


def test_describe_a_fixed_model_still_shows_everything():
    assert mlp(regularizer=Regularizer("none")).describe(kt.HyperParameters()) == {
        "kind": "none",
        "strength": None,
        "target": "none",
        "constraint": "none",
        "constraint_target": "none",
        "dropout_kind": "none",
        "dropout_rate": None,
        "dropout_where": None,
        "optimizer": "adam",
        "learning_rate": 0.001,
    }


def test_describe_gives_plain_python_values():
    hypermodel = mlp(dropout=Dropout(["dropout", "gaussian_noise"], Range(0.1, 0.6)))
    hp = kt.HyperParameters()
    hypermodel.describe(hp)
    hp.values["dropout_rate"] = np.float64(0.25)
    rate = hypermodel.describe(hp)["dropout_rate"]
    assert type(rate) is float and rate == 0.25


def test_describe_placement_only_where_activity_is_the_target():
    hypermodel = mlp(
        regularizer=Regularizer("l2", 1e-3, target=["kernel", "activity"]),
        placement=["after", "before"],
    )
    _, hp = built(hypermodel, target="kernel", placement="before")
    assert hypermodel.describe(hp)["placement"] is None


# --- bad settings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda: mlp(task="ranking"),
            "RegularizedMLP: 'task' must be one of 'binary', 'multiclass', 'regression'",
        ),
        (
            lambda: mlp(task="multiclass"),
            "'classes' must be an integer >= 2 for task 'multiclass'; got None.",
        ),
        (
            lambda: mlp(hidden=500),
            "'hidden' must be a non-empty list of positive layer sizes; got 500.",
        ),
        (
            lambda: RegularizedMLP(input_shape=2),
            "'input_shape' must be a tuple of positive sizes such as (2,)",
        ),
        (lambda: mlp(activation="relux"), "'activation' must be a Keras activation name"),
        (
            lambda: mlp(regularizer="l2"),
            "'regularizer' must be a regsearch.Regularizer or None; got 'l2'.",
        ),
        (
            lambda: mlp(regularizer=Regularizer("l2", target="recurrent")),
            "RegularizedMLP: 'regularizer target' must be one of 'kernel', 'bias', 'activity'; got 'recurrent'.",
        ),
        (
            lambda: mlp(placement=["after", "before"]),
            "'placement' must be a single value unless the regularizer targets 'activity'",
        ),
        (
            lambda: mlp(constraint=Constraint("max_norm", targets="recurrent")),
            "'constraint targets' must be one of 'kernel', 'bias'",
        ),
        (lambda: mlp(optimizer="adamm"), "'optimizer' must be one of 'adam', 'adamw', 'sgd'"),
        (lambda: mlp(learning_rate=0.0), "'learning_rate' must be positive; got 0.0."),
        (
            lambda: mlp(learning_rate=LogRange(1e-4, 1e-4)),
            "'high' must be a number greater than low=0.0001",
        ),
        (lambda: mlp(patience=-1), "'patience' must be an integer >= 0, 'none', or a list of them; got -1."),
        (lambda: mlp(jit_compile="yes"), "'jit_compile' must be true, false or 'auto'; got 'yes'."),
        (
            lambda: RegularizedCNN(input_shape=(8, 8)),
            "RegularizedCNN: 'input_shape' must be (height, width, channels)",
        ),
        (
            lambda: RegularizedCNN(filters=()),
            "'filters' must be a non-empty list of positive sizes",
        ),
        (
            lambda: RegularizedLSTM(
                input_shape=(6, 2), regularizer=Regularizer("l2", target="embeddings")
            ),
            "RegularizedLSTM: 'vocab_size' must be given when a target is 'embeddings'; got None.",
        ),
        (
            lambda: RegularizedLSTM(
                input_shape=(6, 2),
                regularizer=Regularizer("l1", target="activity"),
                placement="before",
            ),
            "RegularizedLSTM: 'placement' must be one of 'after'; got 'before'.",
        ),
        (lambda: RegularizedLSTM(input_shape=(6,)), "'input_shape' must be (timesteps, features)"),
        (
            lambda: RegularizedLSTM(input_shape=(6, 2), vocab_size=20),
            "'input_shape' must be (sequence_length,) with an Embedding",
        ),
    ],
)
def test_bad_arguments_raise_setting_error(make, fragment):
    with pytest.raises(SettingError) as raised:
        make()
    assert fragment in str(raised.value)


def test_run_needs_validation_data(moons):
    x, y, _, _ = moons
    hypermodel = mlp()
    model, hp = built(hypermodel)
    with pytest.raises(SettingError, match="'validation_data' must be a tuple"):
        hypermodel.run(hp, model, x, y, epochs=1)


# --- training ----------------------------------------------------------------


def test_run_reports_every_metric_at_the_restored_epoch(moons):
    x, y, xv, yv = moons
    hypermodel = mlp(hidden=(16,), regularizer=Regularizer("l1", 1e-3, target="activity"))
    keras.utils.set_random_seed(0)
    model, hp = built(hypermodel)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    result = hypermodel.run(
        hp, model, x, y, validation_data=(xv, yv), epochs=20, early_stopping=stop, seed=1
    )
    assert isinstance(result, RunResult) and not result.diverged
    assert CLASSIFICATION_KEYS <= set(result.metrics)
    best = int(result.metrics["best_epoch"])
    assert result.metrics["epochs_run"] == len(result.history["loss"])
    assert result.metrics["val_accuracy"] == result.history["val_accuracy"][best]
    # The restored model is the best epoch's: its validation scores are the logged ones.
    assert result.metrics["test_accuracy"] == pytest.approx(
        result.metrics["val_accuracy"], abs=1e-6
    )
    assert result.metrics["test_loss"] == pytest.approx(result.metrics["val_loss"], rel=1e-4)
    assert (
        0.0 <= result.metrics["zero_fraction"] <= 1.0 and result.metrics["mean_activation"] >= 0.0
    )


def test_same_seed_same_run(moons):
    x, y, xv, yv = moons
    hypermodel = mlp(hidden=(16,), dropout=Dropout("gaussian_dropout", 0.3, where="both"))

    def once():
        keras.utils.set_random_seed(3)
        model, hp = built(hypermodel)
        return hypermodel.run(hp, model, x, y, validation_data=(xv, yv), epochs=5, seed=3).metrics

    assert once() == once()


def test_searched_patience_builds_early_stopping_from_the_callback(moons):
    x, y, xv, yv = moons
    hypermodel = mlp(patience=[1, 100])
    model, hp = built(hypermodel, patience=1)
    monitor = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=999, restore_best_weights=True
    )
    result = hypermodel.fit(
        hp, model, x, y, validation_data=(xv, yv), epochs=30, callbacks=[monitor], verbose=0
    )
    assert result["epochs_run"] < 30
    assert result["best_epoch"] <= result["epochs_run"] - 1


def test_regression_metrics_have_no_accuracy(moons):
    x, y, xv, yv = moons
    hypermodel = mlp(task="regression")
    model, hp = built(hypermodel)
    result = hypermodel.run(hp, model, x, y, validation_data=(xv, yv), epochs=2)
    assert {
        "loss",
        "val_loss",
        "train_loss",
        "test_loss",
        "best_epoch",
        "epochs_run",
        "diverged",
    } <= set(result.metrics)
    assert not any("accuracy" in key for key in result.metrics)


def test_a_diverged_run_returns_a_result(moons):
    x, y, xv, yv = moons
    hypermodel = mlp(task="regression", optimizer="sgd", learning_rate=1e6)
    model, hp = built(hypermodel)
    result = hypermodel.run(hp, model, x, y, validation_data=(xv, yv), epochs=20, seed=0)
    assert result.diverged and result.metrics["diverged"] == 1.0
    assert result.metrics["epochs_run"] < 20
    assert not math.isfinite(result.history["loss"][-1])


def test_activation_sparsity_counts_exact_zeros():
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(4, activation="relu", name="h")
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden(inputs)))
    hidden.set_weights([np.zeros((2, 4), "float32"), np.array([1.0, 3.0, -1.0, -2.0], "float32")])
    result = regsearch.activation_sparsity(model, "h", np.ones((5, 2), "float32"), batch_size=2)
    assert result == {"mean_activation": 1.0, "zero_fraction": 0.5}


def test_activation_sparsity_of_a_sequential_model_loaded_from_a_keras_file(tmp_path):
    # Keras 3 gives a Sequential model no ``input`` until it is called: a user's saved Sequential model failed here.
    hidden = keras.layers.Dense(4, activation="relu", name="h")
    model = keras.Sequential([keras.Input((2,)), hidden, keras.layers.Dense(1)])
    hidden.set_weights([np.zeros((2, 4), "float32"), np.array([1.0, 3.0, -1.0, -2.0], "float32")])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    result = regsearch.activation_sparsity(loaded, "h", np.ones((5, 2), "float32"), batch_size=2)
    assert result == {"mean_activation": 1.0, "zero_fraction": 0.5}


#: Run again on JAX by tests/test_population.py, where the forward passes are compiled and kept.
ON_JAX = "compiles_once_per_structure"


def test_activation_sparsity_compiles_once_per_structure_and_reads_each_models_own_weights():
    """Two builds of one structure (other automatic names, another L2 strength, other weights) share one compiled
    forward pass on JAX, and each is measured on its own weights; a nested layer's path has its own."""
    from regsearch import forward

    def build(strength: float, bias: list[float]) -> keras.Model:
        inputs = keras.Input((2,))
        hidden = keras.layers.Dense(4, activation="relu", name="h", kernel_regularizer=keras.regularizers.L2(strength))
        model = keras.Model(inputs, keras.layers.Dense(1)(hidden(inputs)))
        hidden.set_weights([np.zeros((2, 4), "float32"), np.array(bias, "float32")])
        model.compile(optimizer="adam", loss="mse")
        return model

    forward._PASSES.clear()
    x = np.ones((5, 2), "float32")
    first = regsearch.activation_sparsity(build(1e-3, [1.0, 3.0, -1.0, -2.0]), "h", x, batch_size=2)
    second = regsearch.activation_sparsity(build(1e-1, [2.0, -1.0, -1.0, -2.0]), "h", x, batch_size=2)
    assert first == {"mean_activation": 1.0, "zero_fraction": 0.5}
    assert second == {"mean_activation": 0.5, "zero_fraction": 0.75}
    on_jax = keras.backend.backend() == "jax"  # elsewhere the pass runs eagerly: nothing compiled, nothing kept
    assert len(forward._PASSES) == (1 if on_jax else 0)

    inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="relu", name="h")], name="inner")
    outer_inputs = keras.Input((2,))
    outer = keras.Model(outer_inputs, keras.layers.Dense(1)(inner(keras.layers.Dense(2, name="first")(outer_inputs))))
    measured = regsearch.activation_sparsity(outer, "inner/h", x)
    expected = keras.ops.convert_to_numpy(inner(outer.get_layer("first")(x)))
    assert measured["mean_activation"] == pytest.approx(float(expected.mean()))
    assert len(forward._PASSES) == (2 if on_jax else 0)

    # Each run's rows are scored through a pass of its structure's own (not the layer's), on the model's weights.
    from regsearch.hypermodels.base import row_scores

    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0], "float32")
    for bias in ([1.0, 3.0, -1.0, -2.0], [2.0, -1.0, 5.0, -2.0]):
        model = build(1e-2, bias)
        predicted = keras.ops.convert_to_numpy(model(x))[:, 0]
        assert row_scores(model, x, y, batch_size=2).loss == pytest.approx((predicted - y) ** 2)
    assert len(forward._PASSES) == (3 if on_jax else 0)


# --- Keras Tuner ---------------------------------------------------------------


def assert_searched(tuner, n_trials):
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == n_trials
    assert all(t.status == "COMPLETED" for t in trials)
    assert all(t.metrics.exists("test_accuracy") and t.metrics.exists("best_epoch") for t in trials)
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, keras.Model)
    return best


def test_mlp_random_search(moons, tmp_path):
    x, y, xv, yv = moons
    hypermodel = mlp(
        regularizer=Regularizer(["l1", "l2"], LogRange(1e-5, 1e-1)),
        dropout=Dropout("dropout", [0.1, 0.5]),
    )
    tuner = kt.RandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=2,
        seed=0,
        directory=tmp_path,
        overwrite=True,
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, verbose=0)
    best = assert_searched(tuner, 2)
    # get_best_models reloads the restored weights of the best trial.
    score = tuner.oracle.get_best_trials(1)[0].score
    assert best.evaluate(xv, yv, verbose=0, return_dict=True)["accuracy"] == pytest.approx(
        score, abs=1e-6
    )


def test_cnn_random_search(digits, tmp_path):
    x, y, xv, yv = digits
    hypermodel = RegularizedCNN(filters=(4,), dense=(), regularizer=Regularizer("l2", [5e-4, 5e-3]))
    tuner = kt.RandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=2,
        seed=0,
        directory=tmp_path,
        overwrite=True,
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    assert_searched(tuner, 2)


def test_lstm_random_search(tokens, tmp_path):
    x, y, xv, yv = tokens
    hypermodel = RegularizedLSTM(
        input_shape=(6,),
        vocab_size=20,
        embedding_dim=4,
        units=4,
        regularizer=Regularizer("l2", [1e-6, 1e-4], target="kernel+recurrent+bias"),
    )
    tuner = kt.RandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=2,
        seed=0,
        directory=tmp_path,
        overwrite=True,
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    assert_searched(tuner, 2)


def test_grid_search_visits_exactly_the_declared_decades(moons, tmp_path):
    x, y, xv, yv = moons
    hypermodel = mlp(regularizer=Regularizer("l2", Decades(1e-1, 1e-6)))
    tuner = kt.GridSearch(hypermodel, objective="val_accuracy", directory=tmp_path, overwrite=True)
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    assert [v["strength"] for v in trial_values(tuner)] == [0.1, 0.01, 0.001, 0.0001, 1e-05, 1e-06]


def test_grid_search_kind_strength_placement_on_moons(moons, tmp_path):
    x, y, xv, yv = moons
    hypermodel = RegularizedMLP(
        input_shape=(2,),
        hidden=(32,),
        regularizer=Regularizer(["none", "l1", "l2"], Decades(1e-2, 1e-3), target="activity"),
        placement=Placement(["after", "before"]),
    )
    tuner = kt.GridSearch(hypermodel, objective="val_accuracy", directory=tmp_path, overwrite=True)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, callbacks=[stop], verbose=0)  # what it visits, not fits
    seen = [(v["regularizer"], v["placement"]) for v in trial_values(tuner)]
    options = ["none", "l1:0.01", "l1:0.001", "l2:0.01", "l2:0.001"]
    assert sorted(seen) == sorted((o, p) for o in options for p in ("after", "before"))
    assert_searched(tuner, 10)
    described = [hypermodel.describe(t.hyperparameters) for t in tuner.oracle.trials.values()]
    assert {(d["kind"], d["strength"], d["placement"]) for d in described} == {
        (kind, strength, placement)
        for kind, strength in [
            ("none", None),
            ("l1", 0.01),
            ("l1", 0.001),
            ("l2", 0.01),
            ("l2", 0.001),
        ]
        for placement in ("after", "before")
    }


def test_patience_none_trains_every_epoch_without_early_stopping(moons):
    x, y, xv, yv = moons
    hypermodel = mlp(patience=["none", 1])
    model, hp = built(hypermodel, patience="none")
    assert hypermodel.describe(hp)["patience"] is None
    monitor = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0)
    result = hypermodel.fit(hp, model, x, y, validation_data=(xv, yv), epochs=12, callbacks=[monitor])
    assert result["epochs_run"] == 12
    model, hp = built(hypermodel, patience="1")
    assert hypermodel.describe(hp)["patience"] == 1


def test_jit_compile_reaches_the_model_and_the_engine_uses_xla(moons):
    x, y, xv, yv = moons
    hypermodel = mlp(jit_compile=True)
    model, hp = built(hypermodel)
    assert model.jit_compile is True
    hypermodel.fit(hp, model, x, y, validation_data=(xv, yv), epochs=3)
    from regsearch import population

    assert next(reversed(population._PROGRAMS.values())).backend.xla is True  # the program that trained it
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    plain.compile(optimizer="adam", loss="mse")
    assert built(mlp())[0].jit_compile == plain.jit_compile  # "auto": Keras decides (XLA only with a GPU)


def test_presets_regularize_only_the_layers_chosen():
    hypermodel = RegularizedMLP((2,), hidden=[6, 4], layers=["hidden_2"], regularizer=Regularizer("l2", 0.02),
                                placement="before", dropout=Dropout("dropout", 0.3))
    model = hypermodel.build(kt.HyperParameters())
    names = [layer.name for layer in model.layers]
    assert model.get_layer("hidden_1").kernel_regularizer is None and "hidden_1_dropout" not in names
    assert model.get_layer("hidden_2").kernel_regularizer.l2 == pytest.approx(0.02)
    assert "hidden_2_dropout" in names
    cnn = RegularizedCNN(filters=[4, 4], dense=[8], layers="conv_*", regularizer=Regularizer("l1", 0.01))
    built = cnn.build(kt.HyperParameters())
    assert float(built.get_layer("conv_2").kernel_regularizer.l1) == pytest.approx(0.01)
    assert built.get_layer("dense_1").kernel_regularizer is None
    with pytest.raises(SettingError, match=r"'layers' must be names or glob patterns matching one of 'hidden_1', "
                                           r"'hidden_2'; got 'dense_1'\."):
        RegularizedMLP((2,), hidden=[6, 4], layers=["dense_1"])
