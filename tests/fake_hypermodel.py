"""A HyperModel that trains nothing, for tests of the tuners' bookkeeping (resume, failures).

Its one hyperparameter is ``value``; a run "scores" ``test_accuracy = value / 100``
at once. Chosen values can fail to build, diverge, fail in ``describe`` (outside
the runs), or interrupt the search as a kill would.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import keras_tuner as kt
import numpy as np

from regsearch import tuners

X = np.zeros((4, 2), dtype="float32")
Y = np.zeros((4,), dtype="float32")


class Interrupted(BaseException):
    """Stands for SIGKILL: not an Exception, so neither regsearch nor Keras Tuner catches it."""


class FakeHyperModel(kt.HyperModel):
    def __init__(self, values: list[int], *, fail_build: tuple = (), diverge: tuple = (),
                 fail_describe: tuple = (), interrupt_on_call: int | None = None) -> None:
        super().__init__()
        self.values = list(values)
        self.fail_build, self.diverge, self.fail_describe = set(fail_build), set(diverge), set(fail_describe)
        self.interrupt_on_call = interrupt_on_call
        self.trained: list[int] = []

    def describe(self, hp: kt.HyperParameters) -> dict[str, Any]:
        value = hp.Choice("value", self.values)
        if value in self.fail_describe:
            raise RuntimeError(f"describe cannot handle value {value}")
        return {"value": value}

    def build(self, hp: kt.HyperParameters) -> Any:
        value = hp.Choice("value", self.values)
        if value in self.fail_build:
            raise ValueError(f"cannot build a model for value {value}")
        return object()

    def run(self, hp: kt.HyperParameters, model: Any, x: Any, y: Any, **_: Any) -> Any:
        value = hp.get("value")
        if self.interrupt_on_call is not None and len(self.trained) + 1 == self.interrupt_on_call:
            raise Interrupted(f"killed while training value {value}")
        self.trained.append(value)
        if value in self.diverge:
            return SimpleNamespace(metrics={"best_epoch": 0.0, "epochs_run": 1.0}, history={"loss": [np.nan]},
                                   diverged=True)
        metrics = {"test_accuracy": value / 100, "train_accuracy": 1.0, "test_loss": 1 - value / 100}
        return SimpleNamespace(metrics=metrics, history={"loss": [1.0]}, diverged=False)


def make_tuner(kind: str, hypermodel: FakeHyperModel, directory: Any, **kwargs: Any) -> Any:
    """A regsearch tuner over the fake HyperModel, resuming whatever ``directory`` holds."""
    cls = {"grid": tuners.GridSearch, "bayesian": tuners.BayesianOptimization}[kind]
    return cls(hypermodel, objective=kt.Objective("test_accuracy", "max"), directory=str(directory),
               project_name=kind, overwrite=False, phase=kind, search_name="fake", **kwargs)


def search(tuner: Any) -> None:
    tuner.search(X, Y, validation_data=(X, Y), epochs=1, verbose=0)
