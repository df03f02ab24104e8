"""Resident memory across many Keras Tuner trials in one process.

Usage: python benchmarks/memory.py [--trials 100] [--epochs 300] [--every 10] [--xla] [--engine population --batch 10]

Runs a regsearch ``GridSearch`` over the moons model (Dense(500, relu) ->
Dense(1, sigmoid), L2 on the hidden kernel) with a grid of ``--trials``
strengths, so every trial builds a new model and compiles a new training loop,
as a real search does. Prints the resident set size (RSS) after every
``--every`` trials and the growth from the first report to the last, which
should stay under 20% (keras-tuner #395, #873, #1031: RAM grows across trials
despite ``clear_session``). Exit code 1 if it does not.

``--xla`` compiles every model with ``jit_compile=True`` (Keras turns XLA off
by default on CPU-only machines, so the default run trains as a plain graph):
TensorFlow's XLA compilation cache keeps every trial's executable, with no way
to clear it in-process.

``--engine population --batch B`` trains the grid in populations of ``B``
trials (as a Bayesian search trains its batches): each population reuses the
first one's compiled program, so memory must stay flat across them too.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

MAX_GROWTH_PERCENT = 20.0


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def run(
    trials: int, epochs: int, every: int, directory: str, *, xla: bool = False, report: bool = True,
    engine: str = "sequential", batch: int = 10,
) -> list[tuple[int, float]]:
    """Runs the search and returns ``(trials done, RSS MiB)`` after every ``every`` trials."""
    import keras_tuner as kt

    from regsearch import hypermodels, space, tuners
    from regsearch.datasets import load_dataset

    class XlaMLP(hypermodels.RegularizedMLP):
        def build(self, hp: kt.HyperParameters) -> object:
            model = super().build(hp)
            model.jit_compile = True
            return model

    split = load_dataset("moons", train_size=30)
    strengths = [float(s) for s in np.logspace(-6, -1, trials)]
    hypermodel = (XlaMLP if xla else hypermodels.RegularizedMLP)(
        input_shape=split.input_shape, hidden=[500], regularizer=space.Regularizer("l2", strengths=strengths)
    )
    samples: list[tuple[int, float]] = []
    started = time.perf_counter()

    def on_run(record: dict) -> None:
        done = int(record["trial_id"].split("-", 1)[1]) + 1
        if done % every == 0:
            samples.append((done, rss_mib()))
            if report:
                print(f"trial {done:4d}  RSS {samples[-1][1]:8.1f} MiB  {time.perf_counter() - started:6.1f} s", flush=True)

    tuner = tuners.GridSearch(
        hypermodel,
        objective=kt.Objective("test_accuracy", "max"),
        directory=directory,
        project_name="memory",
        overwrite=True,
        on_run=on_run,
        engine=engine,
        batch=batch,
    )
    tuner.search(
        split.x_train, split.y_train, validation_data=(split.x_test, split.y_test),
        epochs=epochs, batch_size=32, verbose=0,
    )
    return samples


def growth_percent(samples: list[tuple[int, float]]) -> float:
    """RSS growth from the first sample to the last, in percent of the first."""
    return 100.0 * (samples[-1][1] - samples[0][1]) / samples[0][1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--xla", action="store_true", help="compile every model with jit_compile=True")
    parser.add_argument("--engine", choices=("sequential", "population"), default="sequential")
    parser.add_argument("--batch", type=int, default=10, help="trials per population (--engine population)")
    args = parser.parse_args(argv)

    # Every trial traces a new compiled loop on purpose; TensorFlow's retracing notice is noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    print(f"RSS before importing TensorFlow: {rss_mib():.1f} MiB")
    with tempfile.TemporaryDirectory(prefix="regsearch-memory-") as directory:
        samples = run(args.trials, args.epochs, args.every, directory, xla=args.xla, engine=args.engine,
                      batch=args.batch)
    growth = growth_percent(samples)
    print(f"growth from trial {samples[0][0]} to trial {samples[-1][0]}: {growth:+.1f}% "
          f"({samples[-1][1] - samples[0][1]:+.1f} MiB; bound {MAX_GROWTH_PERCENT:.0f}%)")
    return 0 if growth < MAX_GROWTH_PERCENT else 1


if __name__ == "__main__":
    raise SystemExit(main())
