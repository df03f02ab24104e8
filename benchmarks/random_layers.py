"""A population with a random layer (Dropout) on TensorFlow: XLA against a plain graph, side by side.

    python benchmarks/random_layers.py [--members 4] [--epochs 400]

Prints the seconds of a second call (compiled already) per variant and their
ratio, and the same for the model without the Dropout layer. On a CPU the
population engine runs models with random layers as a plain graph
(``regsearch.population._tensorflow``) because of what this prints.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from sklearn.datasets import make_moons

import regsearch.population._tensorflow as tensorflow_backend
from regsearch.population import train_population


def moons_model(dropout: bool) -> keras.Model:
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(500, activation="relu")(inputs)
    if dropout:
        hidden = keras.layers.Dropout(0.3)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model


def seconds(dropout: bool, xla: bool, members: int, epochs: int) -> float:
    """The second of two identical populations (the first compiles)."""
    x, y = make_moons(100, noise=0.2, random_state=1)
    x, y = x.astype("float32"), y.astype("float32")
    original = tensorflow_backend.Backend.__init__

    def forced(self, model, set_row):  # the variant under test, whatever the default would pick
        original(self, model, set_row)
        self.xla = xla

    tensorflow_backend.Backend.__init__ = forced
    _forget_programs()  # a kept program of the other variant would be reused
    try:
        for _ in range(2):
            models = [moons_model(dropout) for _ in range(members)]
            start = time.perf_counter()
            train_population(models, (x[:30], y[:30]), (x[30:], y[30:]), epochs=epochs, batch_size=32,
                             seeds=list(range(members)), early_stopping=None)
            elapsed = time.perf_counter() - start
    finally:
        tensorflow_backend.Backend.__init__ = original
    return elapsed


def _forget_programs() -> None:
    from regsearch import population

    while population._PROGRAMS:
        population._PROGRAMS.popitem()[1].keep.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=400)
    args = parser.parse_args()
    assert keras.backend.backend() == "tensorflow", "this compares TensorFlow's XLA and graph programs"
    for dropout in (True, False):
        xla = seconds(dropout, True, args.members, args.epochs)
        graph = seconds(dropout, False, args.members, args.epochs)
        per = 1e3 / (args.members * args.epochs)
        print(f"{'with Dropout' if dropout else 'without Dropout':16s} XLA {xla:6.2f} s ({xla * per:.3f} ms per "
              f"member-epoch), graph {graph:6.2f} s ({graph * per:.3f} ms); XLA / graph = {xla / graph:.1f}x")


if __name__ == "__main__":
    main()
