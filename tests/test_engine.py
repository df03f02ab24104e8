"""regsearch.fit against model.fit: same numbers, same early stopping, on tiny data."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import regsearch


def moons(n: int = 60, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=0.2, random_state=seed)
    return x.astype("float32"), y.astype("float32")


def make_model(
    units: int = 16, dropout: float = 0.0, l2: float = 1e-3, learning_rate: float = 1e-3, jit_compile: bool | str = "auto"
) -> keras.Model:
    keras.utils.set_random_seed(0)
    layers = [keras.Input((2,)), keras.layers.Dense(units, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile
    )
    return model


def twin_models(**kwargs) -> tuple[keras.Model, keras.Model]:
    """Two compiled models with identical initial weights."""
    first, second = make_model(**kwargs), make_model(**kwargs)
    second.set_weights(first.get_weights())
    return first, second


def assert_same_history(reference: dict, ours: dict, atol: float = 2e-4) -> None:
    assert sorted(reference) == sorted(ours)
    for name in reference:
        assert len(ours[name]) == len(reference[name]), name
        np.testing.assert_allclose(ours[name], reference[name], atol=atol, err_msg=name)


def assert_same_weights(reference: keras.Model, ours: keras.Model, atol: float = 2e-4) -> None:
    for a, b in zip(reference.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(b, a, atol=atol)


def test_one_full_batch_matches_model_fit():
    x, y = moons()
    reference, ours = twin_models()
    expected = reference.fit(x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=40, batch_size=32, verbose=0)
    got = regsearch.fit(ours, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=40, batch_size=32)
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)
    assert got.epoch == list(range(40))
    assert (got.stopped_epoch, got.best_epoch, got.diverged) == (0, 39, False)


@pytest.mark.parametrize("batch_size", [8, 12])  # 5 full batches; 3 full batches and a remainder of 4
def test_minibatches_without_shuffle_match_model_fit(batch_size):
    x, y = moons(40)
    reference, ours = twin_models()
    expected = reference.fit(x, y, validation_data=(x[:20], y[:20]), epochs=15, batch_size=batch_size, shuffle=False, verbose=0)
    got = regsearch.fit(ours, x, y, validation_data=(x[:20], y[:20]), epochs=15, batch_size=batch_size, shuffle=False)
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


def test_xla_compiled_model_matches_model_fit_with_early_stopping():
    x, y = moons(100)
    reference, ours = twin_models(units=32, learning_rate=0.05, jit_compile=True)
    settings = dict(monitor="val_loss", patience=3, restore_best_weights=True)
    reference_callback, our_callback = keras.callbacks.EarlyStopping(**settings), keras.callbacks.EarlyStopping(**settings)
    data = dict(validation_data=(x[30:], y[30:]), epochs=200, batch_size=8)
    expected = reference.fit(x[:30], y[:30], callbacks=[reference_callback], shuffle=False, verbose=0, **data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to a plain graph
        got = regsearch.fit(ours, x[:30], y[:30], early_stopping=our_callback, shuffle=False, **data)
    assert got.stopped_epoch == reference_callback.stopped_epoch > 0
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


def test_training_again_reuses_the_traced_loop_and_continues_like_model_fit():
    from regsearch import population

    x, y = moons(60)
    reference, ours = twin_models(units=16)
    data = dict(validation_data=(x[30:], y[30:]), epochs=10, batch_size=8)
    programs = None
    for _ in range(2):  # the second call continues from the first one's weights and optimizer state
        expected = reference.fit(x[:30], y[:30], shuffle=False, verbose=0, **data)
        got = regsearch.fit(ours, x[:30], y[:30], shuffle=False, **data)
        assert_same_history(expected.history, got.history)
        programs = programs or dict(population._PROGRAMS)
    assert_same_weights(reference, ours)
    assert dict(population._PROGRAMS) == programs  # nothing traced again
    regsearch.fit(make_model(units=16), x[:30], y[:30], shuffle=False, **data)
    assert dict(population._PROGRAMS) == programs  # nor for another model of the same structure (the next trial)


def test_new_data_of_the_same_shape_reuses_the_loop_and_new_settings_retrace():
    from regsearch import population

    x, y = moons(60)
    first, second = twin_models(units=16)
    regsearch.fit(first, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=5, seed=0)
    programs = dict(population._PROGRAMS)
    swapped = regsearch.fit(first, x[30:60], y[30:60], validation_data=(x[:30], y[:30]), epochs=5, seed=0)
    assert dict(population._PROGRAMS) == programs
    regsearch.fit(second, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=5, seed=0)
    fresh = regsearch.fit(second, x[30:60], y[30:60], validation_data=(x[:30], y[:30]), epochs=5, seed=0)
    assert swapped.history == fresh.history
    regsearch.fit(first, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=6, seed=0)
    assert dict(population._PROGRAMS) == programs  # 5 and 6 epochs share a chunk of 8
    regsearch.fit(first, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=5, batch_size=16, seed=0)
    (batches,) = set(population._PROGRAMS) - set(programs)  # a new program for the new batch size
    stop = keras.callbacks.EarlyStopping(patience=2)
    regsearch.fit(first, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=6, early_stopping=stop)
    (stopping,) = set(population._PROGRAMS) - set(programs) - {batches}  # and for the new early-stopping rule
    assert population._PROGRAMS[stopping].settings.rule.restore_best_weights is False


def test_without_validation_data_has_only_train_logs():
    x, y = moons(30)
    got = regsearch.fit(make_model(), x, y, epochs=3)
    assert sorted(got.history) == ["accuracy", "loss"]
    assert len(got.history["loss"]) == 3


EARLY_STOPPING_CASES = [
    dict(monitor="val_loss", patience=3, restore_best_weights=True),
    dict(monitor="val_accuracy", patience=2, restore_best_weights=True),
    dict(monitor="val_loss", patience=2, min_delta=0.01, restore_best_weights=False),
    dict(monitor="val_loss", patience=2, start_from_epoch=5, restore_best_weights=True),
    dict(monitor="val_loss", patience=3, baseline=0.2, restore_best_weights=True),
    dict(monitor="loss", mode="max", patience=1, restore_best_weights=True),
]


@pytest.mark.parametrize("settings", EARLY_STOPPING_CASES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_early_stopping_matches_model_fit(settings):
    x, y = moons(100)
    reference, ours = twin_models(units=32, learning_rate=0.05)
    reference_callback = keras.callbacks.EarlyStopping(**settings)
    our_callback = keras.callbacks.EarlyStopping(**settings)
    data = dict(validation_data=(x[30:], y[30:]), epochs=200, batch_size=32)
    expected = reference.fit(x[:30], y[:30], callbacks=[reference_callback], verbose=0, **data)
    got = regsearch.fit(ours, x[:30], y[:30], early_stopping=our_callback, **data)
    assert len(expected.history["loss"]) < 200, "the case must actually stop early"
    assert got.stopped_epoch == reference_callback.stopped_epoch
    assert got.best_epoch == reference_callback.best_epoch
    assert our_callback.stopped_epoch == reference_callback.stopped_epoch
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


def test_restore_best_weights_returns_the_best_epoch_weights():
    x, y = moons(100)
    first, second = twin_models(units=32, learning_rate=0.05)
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    got = regsearch.fit(first, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=200, early_stopping=callback)
    # Retraining to the best epoch without early stopping must land on the same weights.
    regsearch.fit(second, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=got.best_epoch + 1)
    assert got.best_epoch < len(got.history["loss"]) - 1
    assert_same_weights(second, first, atol=1e-6)
    assert first.evaluate(x[30:], y[30:], verbose=0)[0] == pytest.approx(min(got.history["val_loss"]), abs=1e-4)


def test_dropout_is_reproducible_by_seed():
    x, y = moons(64)

    def run(seed: int) -> dict:
        model = make_model(units=32, dropout=0.5)
        return regsearch.fit(model, x, y, validation_data=(x, y), epochs=10, batch_size=16, seed=seed).history

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first["loss"] != other["loss"]


def test_shuffle_uses_the_seed():
    x, y = moons(64)

    def run(seed: int) -> list:
        return regsearch.fit(make_model(), x, y, epochs=5, batch_size=8, seed=seed).history["loss"]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_divergence_stops_without_exception():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32") * 100
    y = x.sum(axis=1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e6), loss="mse")
    got = regsearch.fit(model, x, y, validation_data=(x, y), epochs=500, batch_size=8)
    assert got.diverged
    assert not np.isfinite(got.history["loss"][-1])
    assert len(got.history["loss"]) < 500
    assert all(np.isfinite(got.history["loss"][:-1]))


def test_divergence_keeps_the_best_weights_when_asked():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(3.0), loss="mse")
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1000, restore_best_weights=True)
    got = regsearch.fit(model, x, y, validation_data=(x, y), epochs=500, batch_size=32, early_stopping=callback)
    assert got.diverged
    assert all(np.isfinite(w).all() for w in model.get_weights())


def dataset_of(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


class MoonsSequence(keras.utils.PyDataset):
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.x, self.y = x, y

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int):
        return self.x, self.y


@pytest.mark.parametrize("kind", ["dataset", "pydataset"])
def test_streaming_data_falls_back_to_model_fit_with_a_warning(kind):
    x, y = moons(30)
    reference, ours = twin_models()
    expected = reference.fit(x, y, validation_data=(x, y), epochs=4, batch_size=32, shuffle=False, verbose=0)
    data = dataset_of(x, y) if kind == "dataset" else MoonsSequence(x, y)
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=50)
    with pytest.warns(UserWarning, match="falls back to model.fit"):
        got = regsearch.fit(ours, data, validation_data=(x, y), epochs=4, shuffle=False, early_stopping=callback)
    assert_same_history(expected.history, got.history)
    assert (got.stopped_epoch, got.diverged) == (0, False)
    assert got.best_epoch == callback.best_epoch


def test_missing_monitor_warns_like_keras_and_trains_every_epoch():
    x, y = moons(30)
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="not available"):
        got = regsearch.fit(make_model(), x, y, epochs=5, early_stopping=callback)
    assert len(got.history["loss"]) == 5


def uncompiled() -> keras.Model:
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


X, Y = moons(30)
BAD_INPUTS = [
    (dict(x=X, y=Y[:10]), "same number of rows; got 30 and 10"),
    (dict(x=X[:0], y=Y[:0]), "'x' must hold at least one row"),
    (dict(x=np.where(np.arange(60).reshape(30, 2) == 3, np.nan, X), y=Y), "'x' must be finite; got 1 NaN"),
    (dict(x=X, y=None), "'y' must be an array of targets for a model compiled with a loss; got None"),
    (dict(x=X, y=Y, epochs=0), "'epochs' must be an integer >= 1; got 0"),
    (dict(x=X, y=Y, epochs=2.5), "'epochs' must be an integer >= 1; got 2.5"),
    (dict(x=X, y=Y, batch_size=0), "'batch_size' must be an integer >= 1; got 0"),
    (dict(x=X, y=Y, early_stopping="val_loss"), "'early_stopping' must be a keras.callbacks.EarlyStopping"),
    (dict(x=X, y=Y, validation_data=(X,)), "'validation_data' must be a pair (x_val, y_val) or a triple"),
    (dict(x=X, y=Y, validation_data=(X, Y[:5])), "'validation_data[0]' and 'validation_data[1]' must have the same number of rows"),
]


@pytest.mark.parametrize("arguments, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_raises_a_value_error_naming_the_argument(arguments, message):
    with pytest.raises(ValueError) as error:
        regsearch.fit(make_model(), **arguments)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_uncompiled_model_is_refused():
    with pytest.raises(ValueError, match="'model' must be compiled"):
        regsearch.fit(uncompiled(), X, Y)


def test_no_warnings_on_the_compiled_path():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regsearch.fit(make_model(), X, Y, validation_data=(X, Y), epochs=2)
