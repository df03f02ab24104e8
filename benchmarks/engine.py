"""model.fit versus regsearch.fit on the moons model, side by side in one process.

Usage: python benchmarks/engine.py [--epochs 300 1000 4000]

Both runs start from the same initial weights. Prints wall time of each, the
ratio, the engine's compile time and steady per-epoch cost (from a warm second
run), and both runs' final train/test accuracy.
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


def moons_model() -> keras.Model:
    """The tutorials' overfitting model: Dense(500, relu) -> Dense(1, sigmoid)."""
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(500, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def accuracy(model: keras.Model, x, y) -> float:
    return float(model.evaluate(x, y, verbose=0, batch_size=len(x))[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[300, 1000, 4000])
    args = parser.parse_args(argv)

    x, y = make_moons(n_samples=100, noise=0.2, random_state=1)
    x, y = x.astype("float32"), y.astype("float32")
    train, test = (x[:30], y[:30]), (x[30:], y[30:])

    table = Table(title="moons model, batch 32, validation on the 70 test rows, no early stopping")
    for column in ("epochs", "model.fit s", "regsearch.fit s", "ratio", "compile s", "us/epoch", "fit train/test acc", "engine train/test acc"):
        table.add_column(column, justify="right")

    for epochs in args.epochs:
        keras.utils.set_random_seed(0)
        reference = moons_model()
        initial = reference.get_weights()
        start = time.perf_counter()
        reference.fit(*train, validation_data=test, epochs=epochs, batch_size=32, verbose=0)
        fit_seconds = time.perf_counter() - start

        ours = moons_model()
        ours.set_weights(initial)
        start = time.perf_counter()
        regsearch.fit(ours, *train, validation_data=test, epochs=epochs, batch_size=32)
        engine_seconds = time.perf_counter() - start

        # Steady cost: a second, already-compiled-shape model; the difference between
        # a long and a one-epoch run removes compilation.
        warm = moons_model()
        start = time.perf_counter()
        regsearch.fit(warm, *train, validation_data=test, epochs=1, batch_size=32)
        one_epoch_seconds = time.perf_counter() - start
        per_epoch = max(engine_seconds - one_epoch_seconds, 0.0) / max(epochs - 1, 1)

        table.add_row(
            str(epochs),
            f"{fit_seconds:.2f}",
            f"{engine_seconds:.3f}",
            f"{fit_seconds / engine_seconds:.0f}x",
            f"{one_epoch_seconds:.2f}",
            f"{per_epoch * 1e6:.0f}",
            f"{accuracy(reference, *train):.3f} / {accuracy(reference, *test):.3f}",
            f"{accuracy(ours, *train):.3f} / {accuracy(ours, *test):.3f}",
        )
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
