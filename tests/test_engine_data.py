"""regsearch.fit against model.fit on what users' own models need: data structures,
weights, validation batches, custom steps, initial_epoch, callbacks; tiny data."""

from __future__ import annotations

import csv
import warnings

import keras
import numpy as np
import pytest
from test_engine import assert_same_history, assert_same_weights, make_model, moons

import regsearch

RNG = np.random.default_rng(0)
XA = RNG.normal(size=(30, 3)).astype("float32")
XB = RNG.normal(size=(30, 2)).astype("float32")
Y_REG = (XA[:, :1] - XB[:, 1:]).astype("float32")
Y_CLS = (XA[:, 1:2] > 0).astype("float32")
WEIGHTS = RNG.uniform(0.1, 3.0, size=30).astype("float32")


def twins(build) -> tuple[keras.Model, keras.Model]:
    """Two compiled models from ``build`` with identical initial weights."""
    keras.utils.set_random_seed(0)
    first, second = build(), build()
    second.set_weights(first.get_weights())
    return first, second


def both_fit(build, *args, **kwargs) -> tuple:
    """model.fit and regsearch.fit from the same initial weights, shuffle off."""
    reference, ours = twins(build)
    expected = reference.fit(*args, shuffle=False, verbose=0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no XLA retry
        got = regsearch.fit(ours, *args, shuffle=False, **kwargs)
    return reference, expected, ours, got


def two_in_two_out(jit_compile: bool | str = "auto") -> keras.Model:
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([a, b]))
    reg = keras.layers.Dense(1, name="reg")(hidden)
    cls = keras.layers.Dense(1, activation="sigmoid", name="cls")(hidden)
    model = keras.Model({"a": a, "b": b}, {"reg": reg, "cls": cls})
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss={"reg": "mse", "cls": "binary_crossentropy"},
        loss_weights={"reg": 0.5, "cls": 2.0},
        metrics={"reg": ["mae"], "cls": ["accuracy"]},
        jit_compile=jit_compile,
    )
    return model


class CountsWeightArrays(keras.Model):
    """Logs how many weight arrays train_step receives: model.fit hands one per output."""

    def train_step(self, data):
        _, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        count = keras.ops.convert_to_tensor(float(len(keras.tree.flatten(sample_weight))))
        return {**super().train_step(data), "weight_arrays": count}


def list_model() -> keras.Model:
    a, b = keras.Input((3,)), keras.Input((2,))
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([a, b]))
    reg = keras.layers.Dense(1, name="reg")(hidden)
    outputs = [reg, keras.layers.Dense(1, activation="sigmoid", name="cls")(hidden)]
    model = CountsWeightArrays([a, b], outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=["mse", "binary_crossentropy"], loss_weights=[0.5, 2.0],
                  metrics=[["mae"], ["accuracy"]])
    return model


# --- weights ---------------------------------------------------------------


def test_sample_weights_in_minibatches_with_a_remainder_match_model_fit():
    x, y = moons(30)
    val_weights = np.linspace(0.5, 2.0, 20).astype("float32")
    data = dict(validation_data=(x[:20], y[:20], val_weights), epochs=4, batch_size=8)  # 3 full batches and 6 rows
    reference, expected, ours, got = both_fit(make_model, x, y, sample_weight=WEIGHTS, **data)
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


def test_shuffled_sample_weights_stay_with_their_rows():
    # Rows weighted 0 count for nothing, whatever their targets: unless their weights were shuffled apart from them.
    x, y = moons(32)
    weights = np.tile([1.0, 0.0], 16).astype("float32")
    garbage = np.where(weights == 0, 1.0 - y, y)

    def run(targets: np.ndarray) -> tuple[list, list]:
        model = twins(make_model)[0]
        history = regsearch.fit(model, x, targets, sample_weight=weights, epochs=3, batch_size=4, seed=3)
        return history.history["loss"], model.get_weights()

    (loss, weights_a), (garbage_loss, weights_b) = run(y), run(garbage)
    np.testing.assert_allclose(garbage_loss, loss, atol=1e-6)
    assert_same_weights_lists(weights_a, weights_b)


def assert_same_weights_lists(first: list, second: list) -> None:
    for a, b in zip(first, second):
        np.testing.assert_allclose(b, a, atol=1e-6)


def test_class_weight_matches_model_fit():
    x, y = moons(30)
    data = dict(validation_data=(x[:20], y[:20]), epochs=4, batch_size=8)
    reference, expected, ours, got = both_fit(make_model, x, y, class_weight={0: 0.3, 1: 2.0}, **data)
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


# --- structures ----------------------------------------------------------


@pytest.mark.parametrize("structure", ["lists", "dicts"])
def test_two_inputs_two_outputs_match_model_fit(structure):
    if structure == "lists":
        build, x, y, weights = list_model, [XA, XB], [Y_REG, Y_CLS], WEIGHTS  # one weight array for both outputs
        validation = ([XA[:20], XB[:20]], [Y_REG[:20], Y_CLS[:20]])
    else:
        build, x, y = two_in_two_out, {"a": XA, "b": XB}, {"reg": Y_REG, "cls": Y_CLS}
        weights = {"reg": WEIGHTS, "cls": WEIGHTS[::-1].copy()}
        validation = ({"a": XA[:20], "b": XB[:20]}, {"reg": Y_REG[:20], "cls": Y_CLS[:20]})
    reference, expected, ours, got = both_fit(build, x, y, sample_weight=weights, validation_data=validation,
                                              epochs=3, batch_size=8)
    assert len(got.history) == 10 + (structure == "lists")  # loss, two losses, two metrics, their val_ twins
    assert got.history.get("weight_arrays", [2.0] * 3) == [2.0] * 3
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


def test_validation_split_takes_the_last_rows_like_model_fit():
    x, y = moons(31)  # 0.3 of 31 rows: the last 10 validate
    weights = np.r_[WEIGHTS, 1.0].astype("float32")  # split with the rows
    reference, expected, ours, got = both_fit(make_model, x, y, sample_weight=weights, validation_split=0.3, epochs=3,
                                              batch_size=8)
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)
    assert got.params["steps"] == 3  # 21 training rows


def test_validation_data_wins_over_validation_split_like_model_fit():
    x, y = moons(30)
    got = regsearch.fit(make_model(), x, y, validation_split=0.5, validation_data=(x[:5], y[:5]), batch_size=8)
    assert got.params["steps"] == 4  # all 30 rows train


# --- validation batches and batch-dependent penalties --------------------


class BatchPenalty(keras.layers.Layer):
    """Adds a penalty that depends on the whole batch, as add_loss users write them."""

    def call(self, inputs):
        self.add_loss(0.5 * keras.ops.square(keras.ops.mean(inputs)))
        return inputs


def penalized_model() -> keras.Model:
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(8, activation="relu", activity_regularizer=keras.regularizers.L2(0.05))(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(BatchPenalty()(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("validation_batch_size", [None, 5])  # 23 rows: 2 batches of 8 and 7; 4 of 5 and 3
def test_batch_dependent_penalties_validate_like_model_fit(validation_batch_size):
    x, y = moons(53)
    reference, expected, ours, got = both_fit(penalized_model, x[:30], y[:30], validation_data=(x[30:], y[30:]),
                                              validation_batch_size=validation_batch_size, epochs=3, batch_size=8)
    assert_same_history(expected.history, got.history, atol=1e-5)
    assert_same_weights(reference, ours)


# --- what steps log ------------------------------------------------------


class ExtraLogs(keras.Model):
    """A custom train_step that logs more than the metrics, and a test_step that logs less."""

    def train_step(self, data):
        logs = super().train_step(data)
        x, y = data
        rows = keras.ops.cast(keras.ops.shape(y)[0], "float32")
        return {**logs, "batch_mean_y": keras.ops.mean(y), "nested": {"rows": rows}}

    def test_step(self, data):
        logs = super().test_step(data)
        return {"error": 1.0 - logs["accuracy"]}


def extra_logs_model(jit_compile: bool | str = "auto") -> keras.Model:
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = ExtraLogs(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


@pytest.mark.parametrize("jit_compile", ["auto", True])
def test_custom_steps_log_every_key_of_the_last_batch_like_model_fit(jit_compile):
    x, y = moons(50)  # batches of 4: 7 full ones in a loop, and 2 rows
    reference, expected, ours, got = both_fit(lambda: extra_logs_model(jit_compile), x[:30], y[:30],
                                              validation_data=(x[30:], y[30:]), epochs=3, batch_size=4)
    assert sorted(got.history) == ["accuracy", "batch_mean_y", "loss", "rows", "val_error"]
    assert got.history["rows"] == [2.0, 2.0, 2.0]
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


class ReturnsMetricNames(keras.Model):
    """A custom train_step returning exactly the metrics' names, with other values: model.fit logs the metrics."""

    def train_step(self, data):
        logs = super().train_step(data)
        return {name: keras.ops.zeros_like(value) + 7.0 for name, value in logs.items()}


def test_a_step_returning_the_metric_names_logs_the_metrics_like_model_fit():
    x, y = moons(30)

    def build() -> keras.Model:
        inputs = keras.Input((2,))
        model = ReturnsMetricNames(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
        return model

    reference, expected, ours, got = both_fit(build, x, y, epochs=3, batch_size=8)
    assert 7.0 not in got.history["loss"]
    assert_same_history(expected.history, got.history)


class NoLoss(keras.Model):
    def train_step(self, data):
        logs = super().train_step(data)
        return {"accuracy": logs["accuracy"]}


def test_a_train_step_without_loss_trains_without_divergence_checks():
    x, y = moons(30)
    inputs = keras.Input((2,))
    model = NoLoss(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    got = regsearch.fit(model, x, y, epochs=2, batch_size=8)
    assert sorted(got.history) == ["accuracy"] and got.diverged is False


def test_vector_valued_metrics_are_logged_per_epoch_like_model_fit():
    x = RNG.normal(size=(40, 4)).astype("float32")
    y = keras.utils.to_categorical(np.argmax(x[:, :3], axis=1), 3)

    def build() -> keras.Model:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy",
                      metrics=[keras.metrics.F1Score(average=None)])
        return model

    reference, expected, ours, got = both_fit(build, x[:30], y[:30], validation_data=(x[30:], y[30:]), epochs=3,
                                              batch_size=8)
    assert got.history["val_f1_score"][0].shape == (3,)
    assert_same_history(expected.history, got.history)


def test_add_loss_model_trains_without_targets_like_model_fit():
    def build() -> keras.Model:
        inputs = keras.Input((2,))
        model = keras.Model(inputs, BatchPenalty()(keras.layers.Dense(3)(inputs)))
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        return model

    x, _ = moons(30)
    reference, expected, ours, got = both_fit(build, x[:20], validation_data=(x[20:], None), epochs=3, batch_size=8)
    assert sorted(got.history) == ["loss", "val_loss"]
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


# --- initial_epoch -------------------------------------------------------


def test_initial_epoch_trains_the_remaining_epochs_like_model_fit():
    x, y = moons(100)
    settings = dict(monitor="val_loss", patience=2, start_from_epoch=5, restore_best_weights=True)
    reference_callback = keras.callbacks.EarlyStopping(**settings)
    our_callback = keras.callbacks.EarlyStopping(**settings)
    build = lambda: make_model(units=32, learning_rate=0.05)  # noqa: E731
    reference, ours = twins(build)
    data = dict(validation_data=(x[30:], y[30:]), epochs=60, initial_epoch=3, batch_size=32, shuffle=False)
    expected = reference.fit(x[:30], y[:30], callbacks=[reference_callback], verbose=0, **data)
    got = regsearch.fit(ours, x[:30], y[:30], early_stopping=our_callback, **data)
    assert got.epoch == expected.epoch and got.epoch[0] == 3 and len(got.epoch) < 57
    assert (got.stopped_epoch, got.best_epoch) == (reference_callback.stopped_epoch, reference_callback.best_epoch)
    assert got.best_epoch >= 5
    assert_same_history(expected.history, got.history)
    assert_same_weights(reference, ours)


def test_resuming_at_initial_epoch_continues_the_shuffled_run():
    x, y = moons(40)
    whole, halves = twins(make_model)
    regsearch.fit(whole, x, y, epochs=4, batch_size=8, seed=5)
    regsearch.fit(halves, x, y, epochs=2, batch_size=8, seed=5)
    regsearch.fit(halves, x, y, epochs=4, initial_epoch=2, batch_size=8, seed=5)
    assert_same_weights(whole, halves, atol=1e-6)


def test_epochs_up_to_initial_epoch_train_nothing():
    x, y = moons(30)
    model = make_model()
    before = model.get_weights()
    got = regsearch.fit(model, x, y, epochs=3, initial_epoch=3)
    assert (got.history, got.epoch) == ({}, [])
    assert_same_weights_lists(before, model.get_weights())


# --- callbacks -----------------------------------------------------------


def test_per_epoch_callbacks_go_through_model_fit_and_act_every_epoch(tmp_path):
    x, y = moons(30)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 / (epoch + 1))
    log = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    reason = r"falls back to model.fit for callbacks .*\(LearningRateScheduler, CSVLogger\)"
    with pytest.warns(UserWarning, match=reason):
        got = regsearch.fit(make_model(), x, y, epochs=3, callbacks=[schedule, log, keras.callbacks.TerminateOnNaN()])
    assert float(schedule.model.optimizer.learning_rate) == pytest.approx(0.1 / 3)
    with open(tmp_path / "log.csv") as rows:
        assert [row["epoch"] for row in csv.DictReader(rows)] == ["0", "1", "2"]
    assert (got.epoch, got.best_epoch, got.diverged) == ([0, 1, 2], 2, False)


def test_callbacks_the_loop_honours_keep_training_on_the_device():
    x, y = moons(30)
    history, stop = keras.callbacks.History(), keras.callbacks.EarlyStopping(monitor="loss", patience=1)
    callbacks = [keras.callbacks.TerminateOnNaN(), history, keras.callbacks.ProgbarLogger(), stop]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = regsearch.fit(make_model(), x, y, epochs=3, callbacks=callbacks)
    assert got is history and len(history.history["loss"]) == 3
    assert stop.best == pytest.approx(min(history.history["loss"]))


@pytest.mark.parametrize("setting, reason", [
    (dict(steps_per_epoch=2), "steps_per_epoch=2"),
    (dict(validation_freq=2), "validation_freq=2"),
    (dict(shuffle="batch"), "shuffle='batch'"),
])
def test_settings_the_loop_cannot_run_go_through_model_fit(setting, reason):
    x, y = moons(30)
    with pytest.warns(UserWarning, match=f"falls back to model.fit for {reason}"):
        got = regsearch.fit(make_model(), x, y, validation_data=(x, y), epochs=2, batch_size=8, **setting)
    assert len(got.history["loss"]) == 2


# --- bad inputs ----------------------------------------------------------

X, Y = moons(30)
TWO = dict(x={"a": XA, "b": XB}, y={"reg": Y_REG, "cls": Y_CLS})


def on_moons(**arguments) -> dict:
    return dict(x=X, y=Y, **arguments)


BAD_INPUTS = [
    (two_in_two_out, dict(x={"a": XA, "b": XB[:29]}, y=TWO["y"]),
     "fit: 'x[\"a\"]' and 'x[\"b\"]' must have the same number of rows; got 30 and 29."),
    (two_in_two_out, dict(x=TWO["x"], y={"reg": Y_REG, "cls": Y_CLS[:29]}),
     "fit: 'x[\"a\"]' and 'y[\"cls\"]' must have the same number of rows; got 30 and 29."),
    (list_model, dict(x=[XA, XB[:10]], y=[Y_REG, Y_CLS]),
     "fit: 'x[0]' and 'x[1]' must have the same number of rows; got 30 and 10."),
    (two_in_two_out, dict(x={"a": XA, "b": None}, y=TWO["y"]),
     "fit: 'x[\"b\"]' must be an array; got None."),
    (two_in_two_out, dict(class_weight={0: 1.0}, **TWO),
     "fit: 'class_weight' applies to single-output models only, as in model.fit; got y with 2 outputs."),
    (two_in_two_out, dict(sample_weight=[WEIGHTS, WEIGHTS], **TWO),
     "fit: 'sample_weight' must be one array, or one per output in the structure of 'y'; got another structure."),
    (make_model, on_moons(sample_weight=WEIGHTS[:29]),
     "fit: 'x' and 'sample_weight' must have the same number of rows; got 30 and 29."),
    (make_model, on_moons(sample_weight=np.where(WEIGHTS > 2, np.nan, WEIGHTS)),
     "fit: 'sample_weight' must be finite; got"),
    (make_model, on_moons(class_weight=[1, 2]),
     "fit: 'class_weight' must be a dict of class index -> weight; got [1, 2]."),
    (make_model, on_moons(class_weight={"a": 1}),
     "fit: 'class_weight' must be a dict of class index -> weight; got {'a': 1}."),
    (make_model, on_moons(class_weight={0: 1.0}, sample_weight=WEIGHTS),
     "fit: 'class_weight' and 'sample_weight' cannot be given together, as in model.fit; got both."),
    (make_model, on_moons(validation_split=1.0),
     "fit: 'validation_split' must be a number in [0, 1); got 1.0."),
    (make_model, on_moons(validation_split=0.99),
     "fit: 'validation_split' must leave rows for both training and validation; got 0.99 of 30 rows."),
    (make_model, on_moons(validation_data=(X, Y, WEIGHTS[:5])),
     "fit: 'validation_data[0]' and 'validation_data[2]' must have the same number of rows; got 30 and 5."),
    (make_model, on_moons(validation_data=[X]),
     "fit: 'validation_data' must be a pair (x_val, y_val) or a triple (x_val, y_val, sample_weight_val); "
     "got a list of 1."),
    (make_model, on_moons(validation_batch_size=0),
     "fit: 'validation_batch_size' must be an integer >= 1 or None; got 0."),
    (make_model, on_moons(initial_epoch=-1),
     "fit: 'initial_epoch' must be an integer >= 0; got -1."),
    (make_model, on_moons(shuffle="yes"),
     "fit: 'shuffle' must be True, False or 'batch'; got 'yes'."),
    (make_model, on_moons(validation_freq=0),
     "fit: 'validation_freq' must be an integer >= 1 or a list of epoch numbers; got 0."),
    (make_model, on_moons(callbacks=keras.callbacks.TerminateOnNaN()),
     "fit: 'callbacks' must be a list of keras.callbacks.Callback or None; got <"),
    (make_model, on_moons(callbacks=[keras.callbacks.EarlyStopping()], early_stopping=keras.callbacks.EarlyStopping()),
     "fit: early stopping must be given once (the 'early_stopping' argument or one EarlyStopping in 'callbacks'); "
     "got 2."),
    (make_model, on_moons(verbose=0),
     "fit: unknown argument 'verbose'; known arguments: x, y, batch_size,"),
    (make_model, on_moons(seed="a"),
     "fit: 'seed' must be an integer or None; got 'a'."),
    (make_model, dict(x=None, y=Y),
     "fit: 'x' must be an array or a list, tuple or dict of arrays; got None."),
    (make_model, dict(x=X.astype(object), y=Y),
     "fit: 'x' must be a numeric array; got dtype object."),
]


@pytest.mark.parametrize("build, arguments, message", BAD_INPUTS, ids=[m[:60] for _, _, m in BAD_INPUTS])
def test_bad_inputs_raise_one_line_value_errors(build, arguments, message):
    with pytest.raises(ValueError) as error:
        regsearch.fit(build(), **arguments)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_sample_weight_without_targets_is_refused():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, BatchPenalty()(keras.layers.Dense(3)(inputs)))
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"^fit: 'sample_weight' needs targets 'y'"):
        regsearch.fit(model, X, sample_weight=WEIGHTS)


def test_weights_in_the_batches_trace_a_new_loop():
    from regsearch import population

    model = make_model()
    regsearch.fit(model, X, Y, batch_size=8)
    programs = dict(population._PROGRAMS)
    regsearch.fit(model, X, Y, batch_size=8)
    assert dict(population._PROGRAMS) == programs
    regsearch.fit(model, X, Y, sample_weight=WEIGHTS, batch_size=8)
    assert len(set(population._PROGRAMS) - set(programs)) == 1
