"""A population program learns its logs' shapes from one traced ``test_step`` unless the model overrides a step."""

from __future__ import annotations

import importlib

import keras
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from regsearch.population import train_population

X, LABELS = make_blobs(90, centers=3, cluster_std=2.5, random_state=0)
X = X.astype("float32")
Y = keras.utils.to_categorical(LABELS, 3).astype("float32")


def metrics() -> list:
    # A metric with a vector result (one F1 per class): its shape, not only its name, must come out right.
    return ["accuracy", keras.metrics.F1Score(average=None, name="f1")]


def build(cls: type = keras.Model, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
    model = cls(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy", metrics=metrics())
    return model


class ExtraLog(keras.Model):
    """A user's training step that logs one more thing than its metrics."""

    def train_step(self, *args):
        logs = super().train_step(*args)
        if keras.backend.backend() == "jax":
            logs, state = logs
            return {**logs, "twice_loss": 2 * logs["loss"]}, state
        return {**logs, "twice_loss": 2 * logs["loss"]}


@pytest.fixture
def traced_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The steps the backend traces for their logs' shapes, in order (the real method, counted); no kept program."""
    from collections import OrderedDict

    import regsearch.population

    monkeypatch.setattr(regsearch.population, "_PROGRAMS", OrderedDict())  # another test's program is not traced
    backend = importlib.import_module(f"regsearch.population._{keras.backend.backend()}").Backend
    original, steps = backend.log_specs, []

    def counted(self, step, state, batch):
        steps.append(step)
        return original(self, step, state, batch)

    monkeypatch.setattr(backend, "log_specs", counted)
    return steps


def test_keras_own_steps_are_traced_once_and_log_what_model_fit_logs(traced_steps: list[str]) -> None:
    model, twin = build(), build()
    twin.set_weights(model.get_weights())
    (outcome,) = train_population([model], (X[:60], Y[:60]), (X[60:], Y[60:]), epochs=4, batch_size=16,
                                  shuffle=False, seeds=[0], evaluate=True)
    assert traced_steps == ["test_step"]
    history = twin.fit(X[:60], Y[:60], validation_data=(X[60:], Y[60:]), epochs=4, batch_size=16, shuffle=False,
                       verbose=0).history
    assert set(outcome.history) == set(history)
    for key, values in history.items():
        np.testing.assert_allclose(np.array(outcome.history[key]), np.array(values), rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    assert np.array(outcome.history["f1"]).shape == (4, 3)


def test_a_model_with_its_own_train_step_has_each_step_traced(traced_steps: list[str]) -> None:
    model, twin = build(ExtraLog), build(ExtraLog)
    twin.set_weights(model.get_weights())
    (outcome,) = train_population([model], (X[:60], Y[:60]), (X[60:], Y[60:]), epochs=3, batch_size=16,
                                  shuffle=False, seeds=[0])
    assert sorted(traced_steps) == ["test_step", "test_step", "train_step"]
    history = twin.fit(X[:60], Y[:60], validation_data=(X[60:], Y[60:]), epochs=3, batch_size=16, shuffle=False,
                       verbose=0).history
    assert "twice_loss" in outcome.history and "val_twice_loss" not in outcome.history
    np.testing.assert_allclose(outcome.history["twice_loss"], history["twice_loss"], rtol=1e-5)
