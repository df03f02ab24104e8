"""model.fit versus regsearch.fit on the moons model, side by side in one process.

Usage: python benchmarks/engine.py [--epochs 300 1000 4000]

All runs start from the same initial weights. For each epoch count it prints
the wall time of ``model.fit`` and of ``regsearch.fit`` (the model compiled as
Keras compiles it by default, which on a CPU-only machine means a plain
TensorFlow graph, and with ``jit_compile=True``, XLA), the ratios, each
engine's first-call cost (tracing and compiling) and steady cost per epoch
(a second call on the same model reuses the traced loop), and the final
train/test accuracy of every run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

import regsearch  # noqa: E402


def moons_model(jit_compile: bool | str = "auto") -> keras.Model:
    """The tutorials' overfitting model: Dense(500, relu) -> Dense(1, sigmoid)."""
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(500, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def accuracy(model: keras.Model, x, y) -> str:
    return f"{float(model.evaluate(x, y, verbose=0, batch_size=len(x))[1]):.3f}"


def timed_engine(initial: list, epochs: int, train: tuple, test: tuple, jit_compile: bool | str) -> dict:
    """One engine run from ``initial`` weights, then a second to measure the steady cost."""
    model = moons_model(jit_compile)
    model.set_weights(initial)
    start = time.perf_counter()
    regsearch.fit(model, *train, validation_data=test, epochs=epochs, batch_size=32)
    seconds = time.perf_counter() - start
    accuracies = f"{accuracy(model, *train)} / {accuracy(model, *test)}"
    start = time.perf_counter()
    regsearch.fit(model, *train, validation_data=test, epochs=epochs, batch_size=32)
    steady = (time.perf_counter() - start) / epochs
    return {"seconds": seconds, "first_call": seconds - steady * epochs, "steady": steady, "accuracies": accuracies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[300, 1000, 4000])
    args = parser.parse_args(argv)

    x, y = make_moons(n_samples=100, noise=0.2, random_state=1)
    x, y = x.astype("float32"), y.astype("float32")
    train, test = (x[:30], y[:30]), (x[30:], y[30:])

    table = Table(title="moons model, batch 32, validation on the 70 test rows every epoch, no early stopping")
    columns = ("epochs", "model.fit s", "engine s", "ratio", "engine XLA s", "ratio XLA",
               "first call s (graph / XLA)", "us/epoch (fit / graph / XLA)", "train/test acc (fit / graph / XLA)")
    for column in columns:
        table.add_column(column, justify="right")

    for epochs in args.epochs:
        keras.utils.set_random_seed(0)
        reference = moons_model()
        initial = reference.get_weights()
        start = time.perf_counter()
        reference.fit(*train, validation_data=test, epochs=epochs, batch_size=32, verbose=0)
        fit_seconds = time.perf_counter() - start

        graph = timed_engine(initial, epochs, train, test, "auto")
        xla = timed_engine(initial, epochs, train, test, True)
        table.add_row(
            str(epochs),
            f"{fit_seconds:.2f}",
            f"{graph['seconds']:.3f}",
            f"{fit_seconds / graph['seconds']:.0f}x",
            f"{xla['seconds']:.3f}",
            f"{fit_seconds / xla['seconds']:.0f}x",
            f"{graph['first_call']:.2f} / {xla['first_call']:.2f}",
            f"{fit_seconds / epochs * 1e6:.0f} / {graph['steady'] * 1e6:.0f} / {xla['steady'] * 1e6:.0f}",
            f"{accuracy(reference, *train)}/{accuracy(reference, *test)} | {graph['accuracies']} | {xla['accuracies']}",
        )
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
