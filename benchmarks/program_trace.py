"""What a new population program costs before its first epoch: Keras's own steps against a user's own step.

Usage: python benchmarks/program_trace.py [--structures 6] [--rounds 3]
       (KERAS_BACKEND=jax for the JAX backend)

A search pays for one program per structure (a constraint kind, a dropout or
not, an activity penalty before or after the activation: moons_constraints
has five). A program learns the shapes of its logs before it is traced; a
model that keeps Keras's ``train_step`` and ``test_step`` has them from one
traced ``test_step`` (both steps return ``compute_metrics``), while a model
that overrides a step has the training step, the validation step and the
scoring step traced each on its own (``regsearch/population/__init__.py``,
``_log_specs``). The two variants here differ in that alone: the same
functional moons model, once as ``keras.Model`` and once as a subclass whose
``train_step`` only calls ``super()``.

Each round builds ``--structures`` new structures (hidden widths never seen
before, so no kept program serves them) per variant, interleaved, and times
``train_population`` of two members for one epoch: the program's first trace
and compile, the members' building, one epoch and scoring. Printed: the median
seconds per new structure of each variant and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

from regsearch.population import train_population  # noqa: E402

X, Y = make_moons(100, noise=0.2, random_state=1)
X = X.astype("float32")
Y = Y.astype("float32")[:, None]


class OwnStep(keras.Model):
    """A user's model that overrides ``train_step`` (and changes nothing)."""

    def train_step(self, *args):
        return super().train_step(*args)


def build(cls: type, hidden: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,))
    h = keras.layers.Dense(hidden, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
    model = cls(inputs, keras.layers.Dense(1, activation="sigmoid")(h))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def new_structure(cls: type, hidden: int) -> float:
    models = [build(cls, hidden, seed) for seed in (0, 1)]
    start = time.perf_counter()
    train_population(models, (X[:30], Y[:30]), (X[30:], Y[30:]), epochs=1, batch_size=32, seeds=[0, 1],
                     evaluate=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=6, help="new structures per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    new_structure(keras.Model, 3)  # the process's first program: imports and first traces, in neither variant
    variants = {"Keras's own steps": keras.Model, "a user's own train_step": OwnStep}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    hidden = 10
    for _ in range(args.rounds):
        for _ in range(args.structures):
            for name, cls in variants.items():
                hidden += 1
                seconds[name].append(new_structure(cls, hidden))
    table = Table(title=f"a new structure's program, {keras.backend.backend()} (median of "
                        f"{args.rounds * args.structures})")
    table.add_column("variant")
    table.add_column("s per new structure", justify="right")
    table.add_column("ratio", justify="right")
    own = statistics.median(seconds["a user's own train_step"])
    for name in variants:
        median = statistics.median(seconds[name])
        table.add_row(name, f"{median:.3f}", f"{median / own:.2f}")
    Console().print(table)
    print("all times (s):", {name: np.round(values, 3).tolist() for name, values in seconds.items()})


if __name__ == "__main__":
    main()
